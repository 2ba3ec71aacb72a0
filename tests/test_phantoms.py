"""Procedural knee and lumbar-spine CT phantoms: determinism, HU per tissue, labels, geometry, errors."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage

from orthogen.errors import InputError
from orthogen.phantoms import KneePhantom, KneeRanges, PhantomCT, SpinePhantom, knee_phantom, spine_phantom
from orthogen.phantoms.canvas import HUCanvas
from orthogen.phantoms.grid import VoxelGrid
from orthogen.phantoms.shapes import Capsule, Ellipsoid, EllipticCylinder, Pose, RoundedBox, Solid, vertical_clearance_mm
from orthogen.phantoms.tissue import TissueLayer

KNEE_SEED = 3
SPINE_SEED = 5


@pytest.fixture(scope="module")
def knee() -> PhantomCT:
    return knee_phantom(KNEE_SEED)  # 128^3 at 1 mm


@pytest.fixture(scope="module")
def spine() -> PhantomCT:
    return spine_phantom(SPINE_SEED)  # 128^3 at 1.5 mm


def world_coordinates(ct: PhantomCT) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Broadcastable world x, y, z (mm) of the voxel centres, from the affine."""
    axes = []
    for axis, n in enumerate(ct.volume_hu.shape):
        shape = [1, 1, 1]
        shape[axis] = n
        axes.append((ct.affine[axis, axis] * np.arange(n) + ct.affine[axis, 3]).astype(np.float32).reshape(shape))
    return axes[0], axes[1], axes[2]


def label_centroid_mm(ct: PhantomCT, label: int) -> np.ndarray:
    index = np.argwhere(ct.labels == label).mean(axis=0)
    return ct.affine[:3, :3] @ index + ct.affine[:3, 3]


def bone_volumes_mm3(ct: PhantomCT) -> dict[int, float]:
    voxel_mm3 = float(np.prod(ct.spacing))
    return {label: float(np.count_nonzero(ct.labels == label)) * voxel_mm3 for label in ct.label_names}


# --- determinism ---------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [knee_phantom, spine_phantom])
def test_same_seed_gives_identical_volume_labels_and_affine(make):
    first, second = make(11, shape=(48, 40, 56), spacing=(2.5, 3.0, 2.5)), make(11, shape=(48, 40, 56), spacing=(2.5, 3.0, 2.5))
    np.testing.assert_array_equal(first.volume_hu, second.volume_hu)
    np.testing.assert_array_equal(first.labels, second.labels)
    np.testing.assert_array_equal(first.affine, second.affine)


@pytest.mark.parametrize("phantom_type, make", [(KneePhantom, knee_phantom), (SpinePhantom, spine_phantom)])
def test_different_seeds_give_different_anatomy(phantom_type, make):
    assert phantom_type.from_seed(1) == phantom_type.from_seed(1)
    assert phantom_type.from_seed(1) != phantom_type.from_seed(2)
    one, two = make(1, shape=(64, 64, 64), spacing=(2.5, 2.5, 2.5)), make(2, shape=(64, 64, 64), spacing=(2.5, 2.5, 2.5))
    bone = (one.labels > 0) | (two.labels > 0)
    disagreeing = np.count_nonzero(one.labels[bone] != two.labels[bone]) / np.count_nonzero(bone)
    assert disagreeing > 0.05
    volumes_one, volumes_two = bone_volumes_mm3(one), bone_volumes_mm3(two)
    assert any(abs(volumes_one[k] / volumes_two[k] - 1) > 0.02 for k in volumes_one)


def test_knee_parameters_vary_by_seed_within_documented_ranges():
    ranges = KneeRanges()  # the full set of ranges is checked in test_knee_phantom_variety.py
    knees = [KneePhantom.from_seed(seed) for seed in range(30)]
    gaps = [k.joint_gap_mm for k in knees]
    assert 3.0 <= min(gaps) and max(gaps) <= 7.0 and max(gaps) - min(gaps) > 2.5
    assert all(-4.0 <= k.valgus_deg <= 6.0 for k in knees)
    assert all(ranges.flexion_deg[0] <= k.flexion_deg <= ranges.flexion_deg[1] for k in knees)
    assert len({round(k.valgus_deg, 3) for k in knees}) == 30
    assert all(1.5 <= t <= 4.0 for k in knees for t in k.cortical_mm)
    assert all(85.0 <= 2 * min(k.leg_radii_mm) and 2 * max(k.leg_radii_mm) <= 170.0 for k in knees)


def test_spine_parameters_vary_by_seed_within_documented_ranges():
    spines = [SpinePhantom.from_seed(seed) for seed in range(30)]
    lordosis = [s.lordosis_deg for s in spines]
    assert 20.0 <= min(lordosis) and max(lordosis) <= 50.0 and max(lordosis) - min(lordosis) > 15.0
    widths = np.array([s.body_width_mm for s in spines])
    assert np.all(np.diff(widths, axis=1) > -5.0)  # bodies widen from L1 to L5, give or take the jitter
    assert widths[:, 4].mean() > widths[:, 0].mean() + 5.0
    assert np.ptp(widths[:, 2]) > 4.0


@pytest.mark.parametrize("seed", [0, 7])
def test_knee_joint_gap_is_the_vertical_clearance_between_femur_and_tibia(seed):
    knee = KneePhantom.from_seed(seed)
    bones = knee.bone_solids("tibia")  # the tibia's axis along z: "vertical" is along the tibia
    measured = vertical_clearance_mm(bones[1], bones[2], (-50.0, -40.0, -20.0), (50.0, 35.0, 20.0), 1.0, 0.05)
    assert measured == pytest.approx(knee.joint_gap_mm, abs=0.1)


# --- tissue HU ------------------------------------------------------------------------------------


def assert_bone_hu(ct: PhantomCT, cortical_mm: dict[int, float]):
    """Each bone has cortical voxels in 1000-1800 HU and a cancellous core in 150-400 HU."""
    for label, thickness in cortical_mm.items():
        mask = ct.labels == label
        hu = ct.volume_hu[mask]
        assert np.count_nonzero((hu >= 1000) & (hu <= 1800)) > 0.05 * hu.size, ct.label_names[label]
        assert np.percentile(hu, 99.9) <= 1800.0
        depth = ndimage.distance_transform_edt(mask, sampling=ct.spacing)
        core = ct.volume_hu[depth >= thickness + 1.5 * max(ct.spacing)]
        assert core.size > 20, ct.label_names[label]
        assert 150.0 <= np.median(core) <= 400.0
        assert np.mean((core >= 150.0) & (core <= 400.0)) > 0.97


def test_knee_bones_have_cortical_shell_and_cancellous_core(knee):
    params = KneePhantom.from_seed(KNEE_SEED)
    assert_bone_hu(knee, dict(zip((1, 2, 3, 4), params.cortical_mm)))


def test_spine_vertebrae_have_cortical_shell_and_cancellous_core(spine):
    params = SpinePhantom.from_seed(SPINE_SEED)
    assert_bone_hu(spine, {label: params.cortical_mm for label in spine.label_names})


def test_knee_soft_tissues_and_air(knee):
    params = KneePhantom.from_seed(KNEE_SEED)
    x, y, z = world_coordinates(knee)
    skin_depth = -params.leg_solid().signed_distance(x, y, z)
    bone_distance = ndimage.distance_transform_edt(knee.labels == 0, sampling=knee.spacing)
    muscle = knee.volume_hu[(skin_depth > params.skin_mm + params.fat_mm + 2.0) & (bone_distance > 3.0)]
    assert abs(np.median(muscle) - 40.0) < 12.0
    assert np.median(muscle) == pytest.approx(params.tissue.muscle, abs=2.0)
    fat = knee.volume_hu[(skin_depth > params.skin_mm + 1.0) & (skin_depth < params.skin_mm + params.fat_mm - 1.0)]
    assert -130.0 < np.median(fat) < -70.0
    corners = [knee.volume_hu[i:i + 6, j:j + 6, k:k + 6] for i in (0, -6) for j in (0, -6) for k in (0, -6)]
    air = np.concatenate([c.ravel() for c in corners])
    assert np.all(knee.labels[:6, :6, :6] == 0)
    assert abs(air.mean() + 1000.0) < 3.0
    assert 8.0 < air.std() < 22.0  # the CT noise, 10-20 HU
    # the leg's width across the row through the knee centre: as wide as the skin outline there
    centre = np.round((np.asarray(params.joint_offset_mm) - knee.affine[:3, 3]) / knee.spacing).astype(int)
    leg_width_mm = np.count_nonzero(knee.volume_hu[:, centre[1], centre[2]] > -500) * knee.spacing[0]
    outline_mm = np.count_nonzero(skin_depth[:, centre[1], centre[2]] > 0) * knee.spacing[0]
    assert leg_width_mm == pytest.approx(outline_mm, abs=2.0)
    assert 85.0 <= leg_width_mm <= 128.0


def test_spine_discs_torso_and_air(spine):
    params = SpinePhantom.from_seed(SPINE_SEED)
    x, y, z = world_coordinates(spine)
    bone_distance = ndimage.distance_transform_edt(spine.labels == 0, sampling=spine.spacing)
    for disc in params.disc_solids()[1:-1]:  # the four discs between L1 and L5
        inside = (disc.signed_distance(x, y, z) < -2.0) & (bone_distance > 2.0)
        assert np.count_nonzero(inside) > 20
        assert 75.0 <= np.median(spine.volume_hu[inside]) <= 105.0
    skin_depth = -params.torso_solid().signed_distance(x, y, z)
    muscle = spine.volume_hu[(skin_depth > params.skin_mm + params.fat_mm + 3.0) & (bone_distance > 8.0)]
    assert np.median(muscle) == pytest.approx(params.tissue.muscle, abs=3.0)
    fat = spine.volume_hu[(skin_depth > params.skin_mm + 1.5) & (skin_depth < params.skin_mm + params.fat_mm - 1.5)]
    assert -130.0 < np.median(fat) < -70.0
    # a wide field of view around the same spine: air beyond the torso, soft tissue around the vertebrae
    wide = spine_phantom(SPINE_SEED, shape=(48, 48, 16), spacing=(8.0, 8.0, 8.0))
    assert abs(wide.volume_hu[:3, :3, :].mean() + 1000.0) < 5.0
    assert abs(wide.volume_hu[-3:, -3:, :].mean() + 1000.0) < 5.0
    torso_x_mm = np.count_nonzero(wide.volume_hu[:, 24, 8] > -500) * 8.0
    assert torso_x_mm == pytest.approx(2 * params.torso_radii_mm[0], abs=16.0)


# --- labels and geometry -----------------------------------------------------------------------


def test_knee_labels_are_exactly_the_documented_set(knee):
    assert knee.label_names == {1: "femur", 2: "tibia", 3: "fibula", 4: "patella"}
    assert np.unique(knee.labels).tolist() == [0, 1, 2, 3, 4]
    assert knee.labels.dtype == np.uint8 and knee.volume_hu.dtype == np.float32
    assert knee.volume_hu.shape == (128, 128, 128)


def test_spine_labels_are_exactly_the_documented_set(spine):
    assert spine.label_names == {20: "L1", 21: "L2", 22: "L3", 23: "L4", 24: "L5"}
    assert np.unique(spine.labels).tolist() == [0, 20, 21, 22, 23, 24]
    assert spine.labels.dtype == np.uint8 and spine.volume_hu.dtype == np.float32


@pytest.mark.parametrize("make", [knee_phantom, spine_phantom])
def test_affine_is_the_spacing_and_centres_the_volume(make):
    shape, spacing = (30, 40, 50), (2.0, 3.5, 2.5)
    ct = make(0, shape=shape, spacing=spacing)
    assert ct.affine.dtype == np.float64 and ct.affine.shape == (4, 4)
    np.testing.assert_allclose(ct.affine[:3, :3], np.diag(spacing))
    np.testing.assert_allclose(ct.affine[3], [0, 0, 0, 1])
    centre = ct.affine @ np.array([(n - 1) / 2 for n in shape] + [1.0])
    np.testing.assert_allclose(centre[:3], 0.0, atol=1e-12)
    assert ct.spacing == spacing
    assert ct.volume_hu.shape == shape


def test_knee_bone_volumes_agree_across_resolutions(knee):
    coarse = knee_phantom(KNEE_SEED, shape=(64, 64, 64), spacing=(2.0, 2.0, 2.0))  # the same 128 mm field
    fine, rough = bone_volumes_mm3(knee), bone_volumes_mm3(coarse)
    assert fine[1] > 100_000 and fine[4] > 8_000  # femur > 100 ml, patella > 8 ml in the field of view
    for label in fine:
        assert rough[label] == pytest.approx(fine[label], rel=0.05), knee.label_names[label]


def test_spine_bone_volumes_agree_across_resolutions(spine):
    # 2 mm, not coarser: the 6 mm thin laminae and spinous processes alias in label counts at >= 3 mm
    coarse = spine_phantom(SPINE_SEED, shape=(96, 96, 96), spacing=(2.0, 2.0, 2.0))  # the same 192 mm field
    fine, rough = bone_volumes_mm3(spine), bone_volumes_mm3(coarse)
    for label in fine:
        assert 20_000 < fine[label] < 120_000, spine.label_names[label]
        assert rough[label] == pytest.approx(fine[label], rel=0.05), spine.label_names[label]


def test_knee_anatomy_is_ordered():
    # in the phantom's own frame: a right knee, not turned, its centre in the middle of the grid
    params = replace(KneePhantom.from_seed(KNEE_SEED), side="right", leg_rotation_deg=0.0, joint_offset_mm=(0, 0, 0))
    knee = params.render()
    femur, tibia, fibula, patella = (label_centroid_mm(knee, label) for label in (1, 2, 3, 4))
    assert femur[2] > tibia[2] + 40.0
    # in every vertical column holding both, all femur voxels lie above all tibia voxels
    z_index = np.arange(knee.labels.shape[2])
    femur_low = np.where(knee.labels == 1, z_index, 10**6).min(axis=2)
    tibia_high = np.where(knee.labels == 2, z_index, -1).max(axis=2)
    both = (femur_low < 10**6) & (tibia_high >= 0)
    assert np.count_nonzero(both) > 1000
    assert np.all(femur_low[both] > tibia_high[both] + 1)
    # in every anterior-posterior row holding both, the patella lies in front of the femur
    y_index = np.arange(knee.labels.shape[1])[None, :, None]
    patella_back = np.where(knee.labels == 4, y_index, 10**6).min(axis=1)
    femur_front = np.where(knee.labels == 1, y_index, -1).max(axis=1)
    rows = (patella_back < 10**6) & (femur_front >= 0)
    assert np.count_nonzero(rows) > 100
    assert np.all(patella_back[rows] > femur_front[rows])
    assert patella[1] > femur[1] + 20.0
    # fibula: lateral (+x for a right knee) and posterior of the tibia, its head below the plateau
    assert fibula[0] > tibia[0] + 20.0 and fibula[1] < tibia[1] - 10.0
    top = lambda label: np.nonzero(np.any(knee.labels == label, axis=(0, 1)))[0].max()
    assert top(3) < top(2) - 5


def test_spine_anatomy_is_ordered(spine):
    params = SpinePhantom.from_seed(SPINE_SEED)
    centroids = {label: label_centroid_mm(spine, label) for label in spine.label_names}
    heights = [centroids[label][2] for label in (20, 21, 22, 23, 24)]
    assert all(upper > lower + 25.0 for upper, lower in zip(heights, heights[1:]))  # L1 above ... L5
    x, y, _ = world_coordinates(spine)
    for level, label in enumerate(spine.label_names):
        mask = spine.labels == label
        ys = np.broadcast_to(y, mask.shape)[mask]
        xs = np.broadcast_to(x, mask.shape)[mask]
        posterior = np.argmin(ys)
        assert abs(xs[posterior]) <= 6.0  # the most posterior point is the spinous process, on the midline
        assert ys.max() - ys.min() > 60.0  # body front to spinous tip
        assert ys[posterior] < centroids[label][1] - 25.0
        reach = params.body_width_mm[level] / 2 + 5.0  # transverse processes, left and right of the body
        assert xs.min() < -reach and xs.max() > reach
    # the lordosis: the middle of the column lies anterior of its ends
    bodies_y = [centroids[label][1] for label in (20, 22, 24)]
    assert bodies_y[1] > max(bodies_y[0], bodies_y[2]) + 3.0


# --- anti-aliasing and primitives ---------------------------------------------------------------


def test_partial_volume_sums_to_the_true_volume():
    grid = VoxelGrid((24, 24, 24), (1.5, 1.5, 1.5))
    canvas = HUCanvas(grid, background_hu=0.0)
    sphere = Solid((Ellipsoid((9.0, 9.0, 9.0), Pose(origin=(0.3, -0.7, 0.45))),))
    canvas.paint(sphere, [TissueLayer(0.0, 1.0)], label=7)
    volume_mm3 = float(canvas.volume_hu.sum()) * 1.5**3
    assert volume_mm3 == pytest.approx(4 / 3 * math.pi * 9.0**3, rel=0.01)
    edge = (canvas.volume_hu > 0.02) & (canvas.volume_hu < 0.98)
    assert np.count_nonzero(edge) > 200  # a ramp at the surface, not a staircase
    assert set(np.unique(canvas.labels)) == {0, 7}


def test_primitive_signed_distances():
    p = lambda *c: tuple(np.array([[[v]]], np.float32) for v in c)
    sphere = Ellipsoid((10.0, 10.0, 10.0))
    assert sphere.local_signed_distance(*p(0.0, 0.0, 13.0)).item() == pytest.approx(3.0, abs=1e-4)
    assert sphere.local_signed_distance(*p(6.0, 0.0, 0.0)).item() == pytest.approx(-4.0, abs=1e-4)
    box = RoundedBox((5.0, 4.0, 3.0), 1.0)
    assert box.local_signed_distance(*p(7.0, 0.0, 0.0)).item() == pytest.approx(2.0, abs=1e-4)
    assert box.local_signed_distance(*p(0.0, 0.0, 0.0)).item() == pytest.approx(-3.0, abs=1e-4)
    rod = Capsule((0.0, 0.0, 0.0), (0.0, 0.0, 20.0), 4.0, 4.0)
    assert rod.local_signed_distance(*p(10.0, 0.0, 10.0)).item() == pytest.approx(6.0, abs=1e-4)
    assert rod.local_signed_distance(*p(0.0, 0.0, 27.0)).item() == pytest.approx(3.0, abs=1e-4)
    cylinder = EllipticCylinder((8.0, 8.0), 10.0)
    assert cylinder.local_signed_distance(*p(0.0, 11.0, 0.0)).item() == pytest.approx(3.0, abs=1e-4)
    assert cylinder.local_signed_distance(*p(0.0, 0.0, 12.0)).item() == pytest.approx(2.0, abs=1e-4)
    turned = Solid((box,), Pose.from_euler((0.0, 0.0, 90.0), origin=(1.0, 2.0, 3.0)))  # box x now along world y
    assert turned.signed_distance(*p(1.0, 9.0, 3.0)).item() == pytest.approx(2.0, abs=1e-4)


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize("spacing", [(0.0, 1.0, 1.0), (1.0, -1.0, 1.0), (1.0, 1.0), (1.0, float("nan"), 1.0), "1mm"])
def test_bad_spacing_raises_input_error(spacing):
    with pytest.raises(InputError, match="spacing"):
        knee_phantom(0, shape=(8, 8, 8), spacing=spacing)
    with pytest.raises(InputError, match="spacing"):
        spine_phantom(0, shape=(8, 8, 8), spacing=spacing)


@pytest.mark.parametrize("shape", [(64, 64), (64, 64, 64, 1), (0, 64, 64), (64.5, 64, 64), (-2, 8, 8), 64])
def test_bad_shape_raises_input_error(shape):
    with pytest.raises(InputError, match="shape"):
        knee_phantom(0, shape=shape)
    with pytest.raises(InputError, match="shape"):
        SpinePhantom().render(shape=shape)


def test_bad_seed_and_parameters_raise_input_error():
    with pytest.raises(InputError, match="seed"):
        knee_phantom(-1)
    with pytest.raises(InputError, match="seed"):
        SpinePhantom.from_seed(1.5)
    with pytest.raises(InputError, match="joint_gap_mm"):
        KneePhantom(joint_gap_mm=0.0)
    with pytest.raises(InputError, match="disc_height_mm"):
        SpinePhantom(disc_height_mm=(8.0,) * 5)
