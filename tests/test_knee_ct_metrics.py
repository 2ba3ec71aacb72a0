"""Knee CT-from-radiographs metrics: bone overlap after rigid registration, Frechet distance, FID on CT
slices, re-projection PSNR. Phantom knees on small grids (48^3 at 3 mm, 32^3 at 4.5 mm), seconds each."""
from __future__ import annotations

import math
from pathlib import Path
import warnings

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from scipy import ndimage

from orthogen.errors import InputError
from orthogen.metrics import (
    bone_overlap,
    frechet_distance,
    frechet_distance_of_features,
    gaussian_fit,
    reprojected_views,
    reprojection_geometry,
    reprojection_psnr,
    slice_fid,
)
from orthogen.metrics.bone_overlap import _array, bone_dice_assd, sitk_image
from orthogen.metrics.radiograph import PSNR_CAP_DB
from orthogen.networks import SliceFeatureNet, slice_feature_network, train_slice_features
from orthogen.networks.slice_features import SLICE_PLANES, phantom_slice_volumes, ras_slice_stack
from orthogen.phantoms import KneePhantom

pytestmark = pytest.mark.filterwarnings("ignore:.*always_return_as_numpy.*")  # MONAI 1.6's own deprecation


@pytest.fixture(scope="module")
def knee():
    """A phantom knee CT, 48^3 voxels at 3 mm (HU, RAS affine)."""
    return KneePhantom.from_seed(0).render((48, 48, 48), (3.0, 3.0, 3.0))


# --- bone overlap -------------------------------------------------------------------------------------

def _moved(ct, rotation_deg, translation_mm):
    """The knee resampled through a known Euler transform about its centre; returns (HU, expected RAS shift).

    ``sitk.Resample`` with T gives moved(p) = ct(T(p)); registering moved to ct then finds T^-1, whose
    displacement of the centre, in RAS, is the expected translation.
    """
    image = sitk_image(ct.volume_hu, ct.affine)
    transform = sitk.Euler3DTransform()
    centre = image.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in image.GetSize()])
    transform.SetCenter(centre)
    transform.SetRotation(*np.radians(rotation_deg))
    transform.SetTranslation(translation_mm)
    moved = _array(sitk.Resample(image, image, transform, sitk.sitkLinear, -1000.0, sitk.sitkFloat32))
    shift_lps = np.subtract(transform.GetInverse().TransformPoint(centre), centre)
    return moved, np.diag([-1.0, -1.0, 1.0]) @ shift_lps


def test_registration_recovers_a_known_rigid_motion(knee):
    moved, expected_shift = _moved(knee, (4.0, -3.0, 5.0), (6.0, -4.5, 3.0))
    result = bone_overlap(moved, knee.affine, knee.volume_hu, knee.affine)
    assert result.dice_unregistered < 0.85 < 0.9 < result.dice
    assert result.assd_mm < result.assd_unregistered_mm
    assert np.linalg.norm(np.subtract(result.translation_mm, expected_shift)) < 3.0  # within a voxel
    assert result.rotation_deg == pytest.approx(7.05, abs=1.0)  # the angle of the (4, -3, 5) deg Euler turn
    row = result.as_dict()
    assert row["dice"] == result.dice and row["translation_norm_mm"] == pytest.approx(np.linalg.norm(expected_shift),
                                                                                      abs=3.0)


def test_identical_cts_overlap_exactly(knee):
    result = bone_overlap(knee.volume_hu, knee.affine, knee.volume_hu, knee.affine, bone_threshold_hu=300.0)
    assert (result.dice, result.assd_mm, result.dice_unregistered, result.assd_unregistered_mm) == (1.0, 0.0, 1.0, 0.0)
    assert result.rotation_deg == 0.0 and result.translation_mm == (0.0, 0.0, 0.0)
    assert result.bone_threshold_hu == 300.0


def test_surface_distance_uses_the_voxel_spacing():
    real = np.zeros((20, 20, 20), bool)
    real[5:15, 5:15, 5:15] = True
    generated = np.roll(real, 1, axis=0)  # one voxel along x
    _, assd_1mm = bone_dice_assd(generated, real, (1.0, 1.0, 1.0))
    _, assd_x3 = bone_dice_assd(generated, real, (3.0, 1.0, 1.0))
    assert 0 < assd_1mm < 1.0 and assd_x3 == pytest.approx(3 * assd_1mm, rel=0.35)


def test_empty_bone_masks(knee):
    air = np.full_like(knee.volume_hu, -1000.0)
    with pytest.raises(InputError, match=r"^real_hu: the real CT has no voxel above 200 HU"):
        bone_overlap(knee.volume_hu, knee.affine, air, knee.affine)
    # an empty generated mask is a (failed) result, not an error: Dice 0, ASSD inf
    assert bone_dice_assd(np.zeros((8, 8, 8), bool), np.ones((8, 8, 8), bool), (1, 1, 1)) == (0.0, math.inf)


@pytest.mark.parametrize("kwargs, message", [
    (dict(generated_hu=np.zeros((4, 4))), r"^generated_hu: expected a real \(X, Y, Z\) CT"),
    (dict(real_hu=np.full((8, 8, 8), np.nan)), r"^real_hu: expected finite HU values"),
    (dict(real_affine=np.eye(3)), r"^real_affine: expected a finite \(4, 4\)"),
    (dict(bone_threshold_hu=float("nan")), r"^bone_threshold_hu: expected a finite HU value"),
    (dict(metric="ncc"), r"^metric: expected one of"),
])
def test_bone_overlap_bad_inputs(kwargs, message):
    args = dict(generated_hu=np.full((8, 8, 8), 500.0), generated_affine=np.eye(4),
                real_hu=np.full((8, 8, 8), 500.0), real_affine=np.eye(4))
    args.update(kwargs)
    with pytest.raises(InputError, match=message):
        bone_overlap(args.pop("generated_hu"), args.pop("generated_affine"), args.pop("real_hu"),
                     args.pop("real_affine"), **args)


# --- Frechet distance ---------------------------------------------------------------------------------

def _random_spd(rng, size):
    a = rng.normal(size=(size, size))
    return a @ a.T / size + 0.1 * np.eye(size)


def _frechet_by_eigh(mu1, s1, mu2, s2):
    """Independent form: Tr (S1 S2)^(1/2) = Tr (S1^(1/2) S2 S1^(1/2))^(1/2), all symmetric eigen-decompositions."""
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(root1 @ s2 @ root1)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(np.clip(inner, 0, None))))


def test_frechet_closed_forms():
    rng = np.random.default_rng(0)
    mu, s = rng.normal(size=5), _random_spd(rng, 5)
    assert frechet_distance(mu, s, mu, s) == pytest.approx(0.0, abs=1e-9)
    s1, s2 = np.array([1.0, 4.0, 9.0, 0.25]), np.array([4.0, 1.0, 0.0, 0.25])
    mu1, mu2 = np.zeros(4), np.array([1.0, -2.0, 0.5, 0.0])
    expected = np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2) + np.sum((mu1 - mu2) ** 2)  # 1 + 1 + 9 + 0 + 5.25
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-9)
    # commuting covariances: one eigenbasis, d = ||dmu||^2 + sum (sqrt(a) - sqrt(b))^2 over the eigenvalues
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    a, b = rng.uniform(0.1, 3.0, 6), rng.uniform(0.1, 3.0, 6)
    value = frechet_distance(np.zeros(6), q @ np.diag(a) @ q.T, np.ones(6), q @ np.diag(b) @ q.T)
    assert value == pytest.approx(6.0 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2), rel=1e-8)


def test_frechet_random_spd_pair_and_symmetry():
    rng = np.random.default_rng(1)
    mu1, mu2, s1, s2 = rng.normal(size=8), rng.normal(size=8), _random_spd(rng, 8), _random_spd(rng, 8)
    value = frechet_distance(mu1, s1, mu2, s2)
    assert value == pytest.approx(_frechet_by_eigh(mu1, s1, mu2, s2), rel=1e-8)
    assert frechet_distance(mu2, s2, mu1, s1) == pytest.approx(value, rel=1e-10)


def test_frechet_of_singular_covariances_is_finite():
    """Fewer samples than features (FID on few slices): singular covariances, the eps path of pytorch-fid."""
    rng = np.random.default_rng(2)
    f1, f2 = rng.normal(size=(5, 12)), rng.normal(size=(7, 12)) + 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = frechet_distance_of_features(f1, f2)
    (mu1, s1), (mu2, s2) = gaussian_fit(f1), gaussian_fit(f2)
    assert np.isfinite(value) and value == pytest.approx(_frechet_by_eigh(mu1, s1, mu2, s2), rel=1e-4)
    assert frechet_distance_of_features(f2, f1) == pytest.approx(value, rel=1e-4)


@pytest.mark.parametrize("args, message", [
    ((np.zeros(3), np.eye(3), np.zeros(4), np.eye(4)), r"^mu1, mu2: expected means of one length"),
    ((np.zeros(3), np.eye(2), np.zeros(3), np.eye(3)), r"^sigma1: expected a covariance of shape \(3, 3\)"),
    ((np.zeros(2), np.eye(2), np.zeros(2), np.diag([1.0, -1.0])), r"^sigma2: expected a positive semi-definite"),
    ((np.zeros(2), np.array([[1.0, 0.5], [0.0, 1.0]]), np.zeros(2), np.eye(2)), r"^sigma1: expected a symmetric"),
    ((np.array([np.nan, 0.0]), np.eye(2), np.zeros(2), np.eye(2)), r"^mu1: expected finite values"),
])
def test_frechet_bad_inputs(args, message):
    with pytest.raises(InputError, match=message):
        frechet_distance(*args)


def test_gaussian_fit_needs_two_samples():
    with pytest.raises(InputError, match=r"^features: expected at least 2 samples to fit a covariance, got 1"):
        gaussian_fit(np.zeros((1, 4)))
    with pytest.raises(InputError, match=r"^features: expected finite features"):
        gaussian_fit(np.array([[0.0, np.inf], [1.0, 2.0]]))


# --- FID on slices ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_knees():
    """Two phantom knees, 32^3 voxels at 4.5 mm."""
    return phantom_slice_volumes(2, (32, 32, 32), (4.5, 4.5, 4.5))


def test_slices_follow_the_montage_orientation(knee):
    from orthogen.montage import ras_slices

    for name, display, _ in ras_slices(knee.volume_hu, knee.affine):
        stack, positions = ras_slice_stack(knee.volume_hu, knee.affine, name, size=48, window_hu=(-1000.0, 2000.0))
        middle = stack[len(stack) // 2, 0].numpy()  # 48^3 cube: no padding, no resizing
        assert np.allclose(middle, np.clip((display + 1000.0) / 3000.0, 0, 1), atol=1e-5), name
        assert positions[0] == 0 and positions[-1] == 1


def test_slice_fid_zero_for_one_set_and_monotone_in_noise(small_knees):
    torch.manual_seed(0)
    network = slice_feature_network(features=16, channels=(8, 16, 32))
    same = slice_fid(small_knees, small_knees, network, size=32)
    rng = np.random.default_rng(0)
    noisy = []
    for sigma in (25.0, 100.0, 400.0):
        volumes = [(v + rng.normal(0.0, sigma, v.shape).astype(np.float32), a) for v, a in small_knees]
        noisy.append(slice_fid(volumes, small_knees, network, size=32).overall)
    shifted = slice_fid([(v + 100.0, a) for v, a in small_knees], small_knees, network, size=32)
    assert same.network == "SliceFeatureNet[untrained]" and str(same).startswith("FID [SliceFeatureNet[untrained]]:")
    assert set(same.per_plane) == set(SLICE_PLANES) and same.slices["axial"] == (64, 64)
    assert same.overall <= 1e-6 * noisy[0]
    assert noisy[0] < noisy[1] < noisy[2]
    assert shifted.overall > 100 * same.overall and min(shifted.per_plane.values()) > 0
    assert same.as_dict()["feature_network"] == "SliceFeatureNet[untrained]"


def test_slice_fid_reports_the_given_network_name(small_knees):
    class Mean(torch.nn.Module):  # any (N, 1, H, W) -> (N, F) module will do
        def forward(self, x):
            return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)

    result = slice_fid(small_knees[:1], small_knees[1:], Mean(), size=16, stride=4)
    assert result.network == "Mean" and result.overall > 0
    assert slice_fid(small_knees[:1], small_knees[1:], Mean(), network_name="stats-v0", size=16).network == "stats-v0"


def test_slice_fid_bad_inputs(small_knees):
    network = SliceFeatureNet(features=4, channels=(4,))
    with pytest.raises(InputError, match=r"^generated: expected a non-empty list"):
        slice_fid([], small_knees, network)
    with pytest.raises(InputError, match=r"^real\[0\] volume_hu: expected finite HU values"):
        slice_fid(small_knees, [(np.full((8, 8, 8), np.nan), np.eye(4))], network, size=16)
    with pytest.raises(InputError, match=r"^planes: expected planes among"):
        slice_fid(small_knees, small_knees, network, planes=("oblique",))
    with pytest.raises(InputError, match=r"^generated axial slices: expected at least 2 samples .* got 1"):
        slice_fid(small_knees[:1], small_knees, network, size=16, stride=100)


def test_slice_feature_training_lowers_its_loss(small_knees, tmp_path):
    torch.manual_seed(0)
    network = SliceFeatureNet(features=16, channels=(8, 16, 32))
    losses = train_slice_features(network, small_knees, steps=40, batch_size=16, size=32, log_every=0)
    assert len(losses) == 40 and np.mean(losses[-8:]) < np.mean(losses[:8])
    assert not network.training
    path = tmp_path / "slice_features.pt"
    torch.save(network.state_dict(), path)
    loaded = slice_feature_network(path, features=16, channels=(8, 16, 32))
    assert loaded.name == "SliceFeatureNet[slice_features.pt]"
    x = torch.rand(2, 1, 32, 32)
    assert torch.equal(loaded(x), network(x)) and loaded(x).shape == (2, 16)
    with pytest.raises(InputError, match=r"slice_features.pt: the weights do not fit"):
        slice_feature_network(path, features=8)


def test_train_slice_features_script(tmp_path):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "train_slice_features", Path(__file__).parents[1] / "scripts" / "train_slice_features.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = script.main(["--out", str(tmp_path / "w.pt"), "--knees", "1", "--grid", "24", "--spacing", "6",
                       "--size", "24", "--features", "8", "--steps", "3", "--batch-size", "4", "--device", "cpu"])
    assert out.is_file() and out.with_suffix(".json").is_file()
    assert slice_feature_network(out, features=8).name == "SliceFeatureNet[w.pt]"


# --- re-projection ------------------------------------------------------------------------------------

def test_true_ct_reprojects_to_its_own_views_and_a_degraded_ct_does_not(knee):
    geometry = reprojection_geometry(knee.volume_hu.shape, knee.affine, 48)
    views = reprojected_views(knee.volume_hu, knee.affine, geometry)
    assert set(views) == {"ap", "lateral"} and views["ap"].shape == (48, 48)
    own = reprojection_psnr(knee.volume_hu, knee.affine, views, geometry)
    assert own == {"PSNR_ap": PSNR_CAP_DB, "PSNR_lateral": PSNR_CAP_DB, "PSNR_mean": PSNR_CAP_DB}
    blurred = reprojection_psnr(ndimage.gaussian_filter(knee.volume_hu, 1.5), knee.affine, views, geometry)
    noise = np.random.default_rng(0).normal(0.0, 200.0, knee.volume_hu.shape).astype(np.float32)
    noised = reprojection_psnr(knee.volume_hu + noise, knee.affine, views, geometry)
    for result in (blurred, noised):
        assert result["PSNR_mean"] < 45.0
        assert result["PSNR_mean"] == pytest.approx((result["PSNR_ap"] + result["PSNR_lateral"]) / 2)


def test_reprojection_pins_the_isocenter_across_grids(knee):
    """The same knee on a finer grid re-projects close to the coarse grid's views (same isocenter)."""
    geometry = reprojection_geometry(knee.volume_hu.shape, knee.affine, 48)
    views = reprojected_views(knee.volume_hu, knee.affine, geometry)
    fine = KneePhantom.from_seed(0).render((72, 72, 72), (2.0, 2.0, 2.0))
    assert reprojection_psnr(fine.volume_hu, fine.affine, views, geometry)["PSNR_mean"] > 25.0


def test_reprojection_bad_inputs(knee):
    geometry = reprojection_geometry(knee.volume_hu.shape, knee.affine, 16)
    good = np.zeros((16, 16))
    with pytest.raises(InputError, match=r"^input_views\['ap'\]: expected the shape of its DRR"):
        reprojection_psnr(knee.volume_hu, knee.affine, {"ap": np.zeros((8, 8))}, geometry)
    with pytest.raises(InputError, match=r"^input_views\['lateral'\]: expected finite values in \[0, 1\]"):
        reprojection_psnr(knee.volume_hu, knee.affine, {"ap": good, "lateral": good + 2}, geometry)
    with pytest.raises(InputError, match=r"^angles_deg: expected a gantry angle for every view"):
        reprojection_psnr(knee.volume_hu, knee.affine, {"oblique": good}, geometry)
    with pytest.raises(InputError, match=r"^input_views: expected a mapping"):
        reprojection_psnr(knee.volume_hu, knee.affine, {}, geometry)


# --- the evaluation report's slice FID ---------------------------------------------------------------

def test_the_knee_ct_report_scores_the_sets_slice_fid_model_beside_baseline(tmp_path, caplog):
    """A "model" that returns the real CT has FID ~0; the mean volume on every case has a positive one;
    the log and both CSVs name the data and the split."""
    import csv

    from monai.data import MetaTensor

    from orthogen.handlers import KneeCTMetricReport

    cts = [KneePhantom.from_seed(seed).render((16, 16, 16), (8.0, 8.0, 8.0)) for seed in range(3)]
    unit = [np.clip((ct.volume_hu + 1024.0) / 2500.0, 0.0, 1.0).astype(np.float32) for ct in cts]
    torch.manual_seed(0)
    report = KneeCTMetricReport(np.mean(unit, axis=0), tmp_path / "metrics.csv", "phantom",
                                registration={"shrink_factors": [1], "smoothing_sigmas": [0.0], "iterations": 3},
                                feature_network=slice_feature_network(features=8, channels=(8, 8)), split="validation")
    for i, (ct, volume) in enumerate(zip(cts, unit)):
        views = MetaTensor(torch.zeros(2, 16, 16), meta={"affine": ct.affine, "filename_or_obj": f"knee_{i}.h5"})
        label = torch.from_numpy(volume)[None]
        report.collect({"pred": label.clone(), "label": label, "image": views})
    with caplog.at_level("INFO"):
        report.report()
    assert "knee CT metric table, 3 phantom validation cases (mean)" in caplog.text
    assert "slice FID, nested diffusion vs the real CTs, 3 phantom validation cases: " in caplog.text
    model, baseline = report.fid["nested diffusion"], report.fid["mean training volume"]
    assert model.network == baseline.network == "SliceFeatureNet[untrained]"
    assert model.slices["axial"] == (48, 48)  # 16 slices a plane, 3 cases, both sets
    assert model.overall < 1e-6 * baseline.overall and baseline.overall > 0
    rows = {r["method"]: r for r in csv.DictReader((tmp_path / "metrics_fid.csv").open())}
    assert float(rows["mean training volume"]["FID_overall"]) == pytest.approx(baseline.overall)
    assert rows["nested diffusion"]["data"] == "phantom" and rows["nested diffusion"]["split"] == "validation"
    cases = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert len(cases) == 8 and {(r["data"], r["split"]) for r in cases} == {("phantom", "validation")}


def test_the_shipped_fid_network_ranks_blur_noise_and_the_mean_volume_behind_other_knees():
    """The bundle's phantom-trained feature network: another 4 phantom knees are the nearest set; noise,
    blur and the mean volume (the baseline) move the FID up, in order (measured: 7.3; noise 150 HU 8.8;
    blur 1 / 2 voxels 7.9 / 11.8; mean volume 17.1)."""
    from scipy import ndimage as image_filters

    from orthogen.networks.slice_features import phantom_slice_volumes

    weights = Path(__file__).resolve().parents[1] / "bundles" / "knee_xray2ct_diffusion" / "models" / "slice_features.pt"
    network = slice_feature_network(weights)
    assert network.name == "SliceFeatureNet[slice_features.pt]"
    first, other = (phantom_slice_volumes(4, (48, 48, 48), (3.0, 3.0, 3.0), first_seed=s) for s in (2000, 2004))
    rng = np.random.default_rng(0)
    between = slice_fid(first, other, network).overall
    noisy = slice_fid([(v + rng.normal(0, 150.0, v.shape).astype(np.float32), a) for v, a in first], other, network)
    blurred = [slice_fid([(image_filters.gaussian_filter(v, s), a) for v, a in first], other, network).overall
               for s in (1.0, 2.0)]
    mean = np.mean([v for v, _ in first], axis=0)
    baseline = slice_fid([(mean, a) for _, a in first], other, network).overall
    assert between < noisy.overall and between < blurred[0] < blurred[1] < baseline
    assert baseline > 2 * between
