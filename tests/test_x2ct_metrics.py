"""The X2CT metric table against values computed by hand."""
import math

import numpy as np
import pytest

from orthogen.errors import InputError
from orthogen.metrics import (
    cosine_similarity,
    mae,
    mae0,
    mean_metric_table,
    mse,
    mse0,
    psnr_2d_per_axis,
    psnr_3d,
    ssim_3axes,
    x2ct_metric_table,
)

KEYS = [
    "MAE0", "MSE0", "MAE", "MSE", "PSNR_3D", "PSNR_1", "PSNR_2", "PSNR_3", "PSNR_avg",
    "CosineSimilarity", "SSIM", "PSNR_3D_honest",
]


def db(peak: float, rmse: float) -> float:
    return 20 * math.log10(peak / rmse)


@pytest.fixture()
def pair() -> tuple[np.ndarray, np.ndarray]:
    """2x2x2 target of 0.5 everywhere; the prediction differs by +0.25 at (0,0,0) and -0.125 at (1,0,0)."""
    target = np.full((2, 2, 2), 0.5)
    pred = target.copy()
    pred[0, 0, 0] = 0.75
    pred[1, 0, 0] = 0.375
    return pred, target


def test_errors_on_the_unit_scale(pair):
    pred, target = pair
    assert mae0(pred, target) == pytest.approx((0.25 + 0.125) / 8)  # 0.046875
    assert mse0(pred, target) == pytest.approx((0.0625 + 0.015625) / 8)  # 0.009765625


def test_errors_on_the_truncated_2500_scale(pair):
    pred, target = pair
    # 0.5 -> 1250, 0.75 -> 1875, 0.375 -> 937.5 truncated to 937: differences 625 and 313.
    assert mae(pred, target) == pytest.approx((625 + 313) / 8)  # 117.25
    assert mse(pred, target) == pytest.approx((625**2 + 313**2) / 8)  # 61074.25
    assert mae(pred.astype(np.float32), target.astype(np.float32)) == pytest.approx(117.25)


def test_psnr_3d_and_its_honest_peak(pair):
    pred, target = pair
    assert psnr_3d(pred, target) == pytest.approx(db(4095, math.sqrt(61074.25)))  # 24.38 dB
    honest = psnr_3d(pred, target, peak=2500)
    assert honest == pytest.approx(db(2500, math.sqrt(61074.25)))
    assert psnr_3d(pred, target) - honest == pytest.approx(20 * math.log10(4095 / 2500))
    assert 20 * math.log10(4095 / 2500) == pytest.approx(4.29, abs=0.005)


def test_psnr_per_axis_slices_by_hand(pair):
    pred, target = pair
    # Axis 0: slice 0 holds the 625 error, MSE 625^2/4 = 312.5^2; slice 1 the 313 error, 156.5^2.
    psnr_1 = (db(4095, 312.5) + db(4095, 156.5)) / 2
    # Axes 1 and 2: slice 0 holds both errors, MSE (625^2 + 313^2)/4 = 122148.5; slice 1 is exact -> 100 dB.
    psnr_2 = (db(4095, math.sqrt(122148.5)) + 100) / 2
    result = psnr_2d_per_axis(pred, target)
    assert result == pytest.approx((psnr_1, psnr_2, psnr_2, (psnr_1 + 2 * psnr_2) / 3))


def test_cosine_similarity_by_hand(pair):
    pred, target = pair
    # dot = 0.5 * (6 * 0.5 + 0.75 + 0.375) = 2.0625; |pred|^2 = 6 * 0.25 + 0.5625 + 0.140625 = 2.203125;
    # |target|^2 = 8 * 0.25 = 2.
    assert cosine_similarity(pred, target) == pytest.approx(2.0625 / math.sqrt(2.203125 * 2))
    assert math.isnan(cosine_similarity(np.zeros((2, 2, 2)), target))


def test_ssim_of_constant_volumes_is_the_luminance_term():
    # Constant slices have zero variance, so SSIM = (2ab + C1) / (a^2 + b^2 + C1), C1 = (0.01 * 1)^2.
    expected = (2 * 0.5 * 0.25 + 1e-4) / (0.5**2 + 0.25**2 + 1e-4)  # 0.80006...
    result = ssim_3axes(np.full((7, 7, 7), 0.5), np.full((7, 7, 7), 0.25))
    assert result == pytest.approx((expected,) * 4)


def test_ssim_axis_order():
    # Each axis-0 slice is constant; only slice 3 differs (0.2 instead of 0.4): along axis 0, six
    # slices score 1 and slice 3 scores the luminance term. Along axes 1 and 2 the slices are equal in
    # distribution (the volume only varies along axis 0), so SSIM_2 == SSIM_3 < 1.
    target = np.broadcast_to(np.arange(1, 8)[:, None, None] / 10, (7, 7, 7)).copy()
    pred = target.copy()
    pred[3] = 0.2
    ssim_1, ssim_2, ssim_3, ssim_avg = ssim_3axes(pred, target)
    assert ssim_1 == pytest.approx((6 + (2 * 0.2 * 0.4 + 1e-4) / (0.04 + 0.16 + 1e-4)) / 7)
    assert ssim_2 == pytest.approx(ssim_3) and ssim_2 < 0.99
    assert ssim_avg == pytest.approx((ssim_1 + ssim_2 + ssim_3) / 3)


def test_identical_volumes():
    volume = np.random.default_rng(0).random((8, 8, 8))
    table = x2ct_metric_table(volume, volume)
    assert list(table) == KEYS
    assert table["MAE0"] == table["MSE0"] == table["MAE"] == table["MSE"] == 0
    # A zero error is reported as 100 dB, as the reference does.
    for key in ("PSNR_3D", "PSNR_1", "PSNR_2", "PSNR_3", "PSNR_avg", "PSNR_3D_honest"):
        assert table[key] == 100
    assert table["SSIM"] == pytest.approx(1.0)
    assert table["CosineSimilarity"] == pytest.approx(1.0)


def test_table_clips_the_prediction_and_matches_the_functions():
    rng = np.random.default_rng(1)
    target = rng.random((8, 9, 10))
    pred = target + rng.normal(0, 0.2, target.shape)  # leaves [0, 1] in places
    clipped = np.clip(pred, 0, 1)
    table = x2ct_metric_table(pred, target)
    assert table == x2ct_metric_table(clipped, target)
    assert table["MAE0"] == mae0(clipped, target)
    assert table["MSE"] == mse(clipped, target)
    assert table["PSNR_avg"] == psnr_2d_per_axis(clipped, target)[3]
    assert table["SSIM"] == ssim_3axes(clipped, target)[3]
    assert table["PSNR_3D"] - table["PSNR_3D_honest"] == pytest.approx(20 * math.log10(4095 / 2500))


def test_mean_metric_table():
    first = {"MAE": 1.0, "PSNR_3D": 20.0}
    second = {"MAE": 3.0, "PSNR_3D": 30.0}
    assert mean_metric_table([first, second]) == {"MAE": 2.0, "PSNR_3D": 25.0}
    with pytest.raises(InputError):
        mean_metric_table([])
    with pytest.raises(InputError, match=r"tables\[1\]"):
        mean_metric_table([first, {"MAE": 3.0}])


def test_bad_inputs_raise_input_errors(pair):
    pred, target = pair
    with pytest.raises(InputError, match="one shape"):
        mae0(pred, target[:, :, :1])
    with pytest.raises(InputError, match="one shape"):
        psnr_3d(pred[0], target[0])
    with pytest.raises(InputError, match="target"):
        mse(pred, target + 1)
    nan_pred = pred.copy()
    nan_pred[0, 0, 0] = np.nan
    with pytest.raises(InputError, match=r"^pred: expected finite"):
        x2ct_metric_table(nan_pred, target)
    with pytest.raises(InputError, match="SSIM needs"):
        ssim_3axes(pred, target)
    with pytest.raises(InputError, match="one shape"):
        x2ct_metric_table(np.zeros((8, 8, 8)), np.zeros((8, 8, 9)))
