"""Tests of orthogen.transforms on small synthetic arrays with hand-checked numbers."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from orthogen.errors import InputError
from orthogen.transforms import (
    ClipNormalizeHU,
    ClipNormalizeHUd,
    CropToMask,
    CropToMaskd,
    DenormalizeHU,
    DenormalizeHUd,
    ResampleToShape,
    ResampleToShaped,
    ResampleToSpacing,
    ResampleToSpacingd,
    XrayPreprocess,
    XrayPreprocessd,
)

# A CT grid with anisotropic spacing (2, 1, 0.5) mm and origin (10, -20, 5) mm.
SPACING = np.array([2.0, 1.0, 0.5])
ORIGIN = np.array([10.0, -20.0, 5.0])


def _affine() -> torch.Tensor:
    affine = np.diag([*SPACING, 1.0])
    affine[:3, 3] = ORIGIN
    return torch.as_tensor(affine)


def _world_ramp(shape: tuple[int, int, int], weights: tuple[float, float, float]) -> MetaTensor:
    """(1, X, Y, Z) volume whose value at each voxel is weights . (world position in mm)."""
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    world = index * SPACING + ORIGIN
    return MetaTensor(torch.as_tensor((world @ np.array(weights))[None], dtype=torch.float32), affine=_affine())


def _corners_mm(affine: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """World mm of the outer corners (index -0.5 and n - 0.5) of a grid, for a diagonal affine."""
    low = affine[:3, :3] @ np.full(3, -0.5) + affine[:3, 3]
    high = affine[:3, :3] @ (np.asarray(shape, dtype=float) - 0.5) + affine[:3, 3]
    return low, high


# --- HU windowing ---------------------------------------------------------------------------------


def test_hu_window_endpoints_map_to_0_and_1_and_outside_values_clip():
    hu = np.array([[-2000.0, -1024.0, 226.0, 1476.0, 3000.0]])
    out = ClipNormalizeHU()(hu)
    np.testing.assert_allclose(np.asarray(out), [[0.0, 0.0, 0.5, 1.0, 1.0]], atol=1e-7)
    assert out.dtype == torch.float32
    custom = ClipNormalizeHU(hu_min=-1000.0, hu_max=1000.0)(np.array([[-1000.0, 0.0, 500.0]]))
    np.testing.assert_allclose(np.asarray(custom), [[0.0, 0.5, 0.75]], atol=1e-7)


def test_denormalize_inverts_normalize_within_the_window():
    rng = np.random.default_rng(0)
    hu = rng.uniform(-1024.0, 1476.0, size=(1, 6, 5, 4)).astype(np.float32)
    back = DenormalizeHU()(ClipNormalizeHU()(hu))
    np.testing.assert_allclose(np.asarray(back), hu, atol=5e-4)
    # an overshooting network output is clipped to the window
    np.testing.assert_allclose(np.asarray(DenormalizeHU()(np.array([[-0.1, 0.5, 1.2]]))), [[-1024.0, 226.0, 1476.0]])


def test_hu_dict_forms_equal_array_forms_and_keep_the_affine():
    ct = _world_ramp((3, 4, 5), (100.0, 0.0, 0.0))
    d = ClipNormalizeHUd(keys="ct", hu_min=-500.0, hu_max=500.0)({"ct": ct, "other": 7})
    assert torch.equal(d["ct"], ClipNormalizeHU(-500.0, 500.0)(ct))
    assert d["other"] == 7
    assert torch.equal(d["ct"].affine, ct.affine)
    d = DenormalizeHUd(keys="ct", hu_min=-500.0, hu_max=500.0)(d)
    np.testing.assert_allclose(np.asarray(d["ct"]), np.clip(np.asarray(ct), -500.0, 500.0), atol=1e-4)


def test_hu_bad_window_and_bad_input_raise_input_error():
    with pytest.raises(InputError, match="hu_min"):
        ClipNormalizeHU(hu_min=100.0, hu_max=100.0)
    with pytest.raises(InputError, match="hu_min"):
        DenormalizeHU(hu_min=200.0, hu_max=-200.0)
    with pytest.raises(InputError, match="img: expected a numeric"):
        ClipNormalizeHU()("not an image")


# --- crop to mask ---------------------------------------------------------------------------------


def test_crop_is_the_mask_box_plus_the_margin_in_voxels_and_moves_the_origin():
    ct = _world_ramp((10, 8, 12), (1.0, 10.0, 100.0))
    mask = MetaTensor(torch.zeros(1, 10, 8, 12), affine=_affine())
    mask[0, 3:6, 2:5, 4:9] = 1
    # 1 mm margin = 1 voxel at 2 mm (0.5 rounds up), 1 voxel at 1 mm, 2 voxels at 0.5 mm
    out = CropToMask(margin_mm=1.0)(ct, mask)
    assert out.shape == (1, 5, 5, 9)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(ct)[:, 2:7, 1:6, 2:11])
    np.testing.assert_allclose(out.affine[:3, 3].numpy(), ORIGIN + np.array([2, 1, 2]) * SPACING)
    np.testing.assert_allclose(out.affine[:3, :3].numpy(), np.diag(SPACING))
    # no margin: exactly the mask's box
    assert CropToMask()(ct, mask).shape == (1, 3, 3, 5)


def test_crop_selects_labels_and_clips_the_margin_at_the_volume_edge():
    ct = _world_ramp((10, 8, 12), (1.0, 0.0, 0.0))
    mask = MetaTensor(torch.zeros(1, 10, 8, 12), affine=_affine())
    mask[0, 0:2, 0:2, 0:2] = 1
    mask[0, 7:9, 5:7, 9:11] = 2
    out = CropToMask(margin_mm=4.0, labels=[2])(ct, mask)
    # label 2's box [7:9, 5:7, 9:11] + (2, 4, 8) voxels = [5:11, 1:11, 1:19], clipped to the grid (10, 8, 12)
    assert out.shape == (1, 5, 7, 11)
    np.testing.assert_allclose(out.affine[:3, 3].numpy(), ORIGIN + np.array([5, 1, 1]) * SPACING)
    assert CropToMask(labels=[1, 2])(ct, mask).shape == (1, 9, 7, 11)


def test_crop_dict_form_crops_every_key_like_the_array_form_and_records_the_box():
    ct = _world_ramp((10, 8, 12), (1.0, 10.0, 100.0))
    seg = MetaTensor(torch.zeros(1, 10, 8, 12), affine=_affine())
    seg[0, 3:6, 2:5, 4:9] = 1
    d = CropToMaskd(keys=["ct", "seg"], mask_key="seg", margin_mm=1.0)({"ct": ct, "seg": seg})
    expected = CropToMask(margin_mm=1.0)(ct, seg)
    assert torch.equal(d["ct"], expected)
    assert torch.equal(d["ct"].affine, expected.affine)
    assert d["seg"].shape == (1, 5, 5, 9)
    assert float(d["seg"].sum()) == 3 * 3 * 5
    np.testing.assert_array_equal(d["seg_crop_box"], [[2, 1, 2], [7, 6, 11]])


def test_crop_empty_mask_and_mismatched_shapes_raise_input_error_naming_the_key():
    ct = _world_ramp((6, 6, 6), (1.0, 0.0, 0.0))
    empty = MetaTensor(torch.zeros(1, 6, 6, 6), affine=_affine())
    with pytest.raises(InputError, match="^seg: the mask is empty"):
        CropToMaskd(keys="ct", mask_key="seg")({"ct": ct, "seg": empty})
    full = torch.ones(1, 6, 6, 6)
    with pytest.raises(InputError, match="the labels \\[3.0\\]"):
        CropToMask(labels=[3])(ct, full)
    with pytest.raises(InputError, match="^mask: expected the spatial shape"):
        CropToMask()(ct, torch.ones(1, 6, 6, 5))
    with pytest.raises(InputError, match="^seg: expected the mask under this key"):
        CropToMaskd(keys="ct", mask_key="seg")({"ct": ct})
    with pytest.raises(InputError, match="margin_mm"):
        CropToMask(margin_mm=-1.0)


# --- resampling -----------------------------------------------------------------------------------


def test_resample_to_spacing_keeps_extent_and_a_linear_ramp():
    ct = _world_ramp((10, 8, 12), (1.0, -2.0, 3.0))  # extent 20 x 8 x 6 mm
    out = ResampleToSpacing(1.0)(ct)
    assert out.shape == (1, 20, 8, 6)
    affine = out.affine.numpy()
    np.testing.assert_allclose(np.diag(affine)[:3], [1.0, 1.0, 1.0])
    low_in, high_in = _corners_mm(ct.affine.numpy(), (10, 8, 12))
    low_out, high_out = _corners_mm(affine, (20, 8, 6))
    np.testing.assert_allclose(low_out, low_in, atol=1e-9)  # extents divide evenly here
    np.testing.assert_allclose(high_out, high_in, atol=1e-9)
    # value = weights . world position of each output voxel, away from the clamped border
    index = np.stack(np.meshgrid(*[np.arange(n) for n in (20, 8, 6)], indexing="ij"), axis=-1)
    expected = (index * np.diag(affine)[:3] + affine[:3, 3]) @ np.array([1.0, -2.0, 3.0])
    np.testing.assert_allclose(np.asarray(out)[0, 1:-1, 1:-1, 1:-1], expected[1:-1, 1:-1, 1:-1], atol=1e-3)


def test_resample_to_spacing_rounds_the_shape_and_stays_within_half_a_voxel():
    ct = _world_ramp((10, 8, 12), (0.0, 0.0, 1.0))
    out = ResampleToSpacing((3.0, 3.0, 0.7))(ct)
    # 20/3 -> 7, 8/3 -> 3, 6/0.7 -> 9
    assert out.shape == (1, 7, 3, 9)
    low_in, high_in = _corners_mm(ct.affine.numpy(), (10, 8, 12))
    low_out, high_out = _corners_mm(out.affine.numpy(), (7, 3, 9))
    half_voxel = np.array([1.5, 1.5, 0.35])
    assert np.all(np.abs(low_out - low_in) <= half_voxel) and np.all(np.abs(high_out - high_in) <= half_voxel)
    np.testing.assert_allclose((low_out + high_out) / 2, (low_in + high_in) / 2, atol=1e-9)  # same centre


def test_resample_to_shape_makes_a_cube_with_the_same_corners_and_ramp():
    ct = _world_ramp((10, 8, 12), (1.0, 1.0, 1.0))
    out = ResampleToShape(16)(ct)
    assert out.shape == (1, 16, 16, 16)
    affine = out.affine.numpy()
    np.testing.assert_allclose(np.diag(affine)[:3], [20 / 16, 8 / 16, 6 / 16])
    low_in, high_in = _corners_mm(ct.affine.numpy(), (10, 8, 12))
    low_out, high_out = _corners_mm(affine, (16, 16, 16))
    np.testing.assert_allclose(low_out, low_in, atol=1e-9)
    np.testing.assert_allclose(high_out, high_in, atol=1e-9)
    index = np.stack(np.meshgrid(*[np.arange(16)] * 3, indexing="ij"), axis=-1)
    expected = (index * np.diag(affine)[:3] + affine[:3, 3]).sum(-1)
    np.testing.assert_allclose(np.asarray(out)[0, 2:-2, 2:-2, 2:-2], expected[2:-2, 2:-2, 2:-2], atol=1e-3)


def test_resample_dict_forms_equal_array_forms_with_nearest_for_labels():
    ct = _world_ramp((10, 8, 12), (1.0, 0.0, 0.0))
    seg = MetaTensor(torch.zeros(1, 10, 8, 12), affine=_affine())
    seg[0, 2:8, 2:6, 3:9] = 3
    d = ResampleToSpacingd(keys=["ct", "seg"], spacing_mm=1.0, mode=("bilinear", "nearest"))({"ct": ct, "seg": seg})
    assert torch.equal(d["ct"], ResampleToSpacing(1.0)(ct))
    assert torch.equal(d["seg"], ResampleToSpacing(1.0, mode="nearest")(seg))
    assert set(np.unique(np.asarray(d["seg"]))) == {0.0, 3.0}
    # the label box of 12 x 4 x 3 mm stays 12 x 4 x 3 voxels at 1 mm
    assert float((d["seg"] == 3).sum()) == 12 * 4 * 3
    d = ResampleToShaped(keys=["ct", "seg"], shape=(5, 4, 6), mode=("bilinear", "nearest"))({"ct": ct, "seg": seg})
    assert torch.equal(d["ct"], ResampleToShape((5, 4, 6))(ct))
    assert d["seg"].shape == (1, 5, 4, 6)


def test_resample_bad_arguments_raise_input_error():
    ct = _world_ramp((4, 4, 4), (1.0, 0.0, 0.0))
    with pytest.raises(InputError, match="spacing_mm"):
        ResampleToSpacing(0.0)
    with pytest.raises(InputError, match="spacing_mm"):
        ResampleToSpacing((1.0, 2.0))(ct)
    with pytest.raises(InputError, match="shape"):
        ResampleToShape((8, 8))(ct)
    with pytest.raises(InputError, match="mode"):
        ResampleToShape(8, mode="cubic")
    with pytest.raises(InputError, match="^img: expected a channel-first array"):
        ResampleToSpacing(1.0)(np.zeros(5))


# --- radiograph preprocessing ---------------------------------------------------------------------


def _synthetic_radiograph() -> np.ndarray:
    """(96, 128) in [0, 1]: a 20 x 40 px bright block at rows 20:40, cols 70:110 (a 0.5 -> 1.0 ramp
    left to right), a smaller 8 x 8 block, 2 x 2 specks, and a 1 px wire hanging off the block."""
    image = np.full((96, 128), 0.02)
    image[20:40, 70:110] = np.linspace(0.5, 1.0, 40)[None, :]
    image[70:78, 10:18] = 0.7
    for row, col in [(5, 5), (50, 60), (90, 120), (44, 90), (10, 100)]:
        image[row : row + 2, col : col + 2] = 0.95
    image[40:46, 90] = 0.9
    return image


def test_xray_preprocess_crops_to_the_block_centres_it_and_removes_specks():
    image = _synthetic_radiograph()
    affine = torch.diag(torch.tensor([0.5, 0.5, 1.0, 1.0], dtype=torch.float64))
    xray = MetaTensor(torch.as_tensor(image[None], dtype=torch.float32), affine=affine,
                      meta={"pixel_spacing_mm": (0.5, 0.5)})
    out = XrayPreprocess(size=64)(xray)
    assert out.shape == (1, 64, 64) and out.dtype == torch.float32
    assert out.meta["crop_box"] == (20, 70, 40, 110)  # specks, wire and small block left out
    assert out.meta["scale"] == pytest.approx(64 / 40)
    assert out.meta["pixel_spacing_mm"] == pytest.approx((0.5 * 40 / 64, 0.5 * 40 / 64))
    pixels = np.asarray(out)[0]
    assert pixels.min() >= 0.0 and pixels.max() <= 1.0
    # 20 rows padded to 40 (10 above, 10 below), scaled by 1.6: the block fills rows 16..47
    assert pixels[:14].max() < 0.02 and pixels[50:].max() < 0.02
    np.testing.assert_allclose(pixels[18:46].mean(axis=1), 0.5, atol=0.01)  # mean of a 0 -> 1 ramp
    weights = pixels.sum(axis=1)
    assert (weights * np.arange(64)).sum() / weights.sum() == pytest.approx(31.5, abs=0.1)
    # the ramp, min-max normalised to 0..1 across the 40 crop columns
    crop_col = (np.arange(64) + 0.5) / 1.6 - 0.5
    np.testing.assert_allclose(pixels[32, 3:-3], (crop_col / 39)[3:-3], atol=0.01)
    # the output centre sits where the crop centre sat: input pixel (29.5, 89.5) at 0.5 mm
    centre_world = out.affine.numpy() @ np.array([31.5, 31.5, 0.0, 1.0])
    np.testing.assert_allclose(centre_world[:2], [29.5 * 0.5, 89.5 * 0.5])
    np.testing.assert_allclose(np.diag(out.affine.numpy())[:2], [0.5 / 1.6, 0.5 / 1.6])


def test_xray_preprocess_rgb_dict_form_and_fixed_threshold_agree():
    image = _synthetic_radiograph().astype(np.float32)
    gray_out = XrayPreprocess(size=32)(image[None])
    rgb_out = XrayPreprocess(size=32)(np.repeat(image[None], 3, axis=0))
    np.testing.assert_allclose(np.asarray(rgb_out), np.asarray(gray_out), atol=1e-5)
    fixed = XrayPreprocess(size=32, threshold=0.3)(torch.as_tensor(image[None]))
    assert fixed.meta["crop_box"] == (20, 70, 40, 110)
    d = XrayPreprocessd(keys="AP", size=32)({"AP": image[None]})
    assert torch.equal(d["AP"], gray_out)
    assert d["AP_crop_box"] == (20, 70, 40, 110)
    assert d["AP_scale"] == pytest.approx(32 / 40)
    # without the opening, the wire joins the block and stretches the box down to row 46
    assert XrayPreprocess(size=32, closing_radius_px=0)(image[None]).meta["crop_box"] == (20, 70, 46, 110)


def test_xray_preprocess_bad_input_raises_input_error():
    with pytest.raises(InputError, match="^lateral: no bright region"):
        XrayPreprocessd(keys="lateral", threshold=0.5)({"lateral": np.full((1, 32, 32), 0.2)})
    with pytest.raises(InputError, match="^img: expected values in \\[0.0, 1.0\\], got \\[0, 255\\]"):
        XrayPreprocess()(np.array([[[0.0, 255.0], [3.0, 4.0]]]))
    with pytest.raises(InputError, match="^img: expected a channel-first array of shape \\(C, H, W\\)"):
        XrayPreprocess()(np.zeros((32, 32)))
    with pytest.raises(InputError, match="^img: expected 1 or 3 channel"):
        XrayPreprocess()(np.zeros((2, 32, 32)))
    with pytest.raises(InputError, match="threshold"):
        XrayPreprocess(threshold=1.5)
