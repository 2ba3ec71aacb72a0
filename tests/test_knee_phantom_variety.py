"""Knee phantom variety: a mean knee must not fit held-out knees well; sides, flexion, rotation, offset,
size, girth and scanner grids drawn from the seed within documented ranges; plausible anatomy at the
extremes (no bone in another, a joint gap, patella in front, bones under the skin)."""
from __future__ import annotations

import itertools
from dataclasses import fields, replace

import numpy as np
import pytest
from scipy import ndimage

from orthogen.errors import InputError
from orthogen.phantoms import KneePhantom, KneeRanges, TissueHU, knee_phantom
from orthogen.phantoms.grid import VoxelGrid
from orthogen.phantoms.knee import PATELLOFEMORAL_GAP_MM
from orthogen.phantoms.shapes import vertical_clearance_mm

TRAIN_SEEDS, HELD_OUT_SEEDS = range(100, 120), range(120, 130)
FIELD_OF_VIEW_MM = 128.0
BONE_HU = 200.0


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.count_nonzero(a & b) / max(np.count_nonzero(a) + np.count_nonzero(b), 1)


def mean_knee_bone_dice(n: int) -> list[float]:
    """Bone (HU > 200) Dice of the mean training mask (voxels bone in at least half of seeds 100-119)
    against each held-out knee (seeds 120-129), all on the same world-centred n^3 grid of 128 mm."""
    spacing = (FIELD_OF_VIEW_MM / n,) * 3
    bone = {seed: knee_phantom(seed, (n, n, n), spacing).volume_hu > BONE_HU for seed in (*TRAIN_SEEDS, *HELD_OUT_SEEDS)}
    mean_knee = np.mean([bone[seed] for seed in TRAIN_SEEDS], axis=0) >= 0.5
    return [dice(mean_knee, bone[seed]) for seed in HELD_OUT_SEEDS]


@pytest.mark.parametrize("n", [32, 64])  # 4 mm and 2 mm voxels
def test_a_mean_knee_does_not_fit_held_out_knees(n):
    scores = mean_knee_bone_dice(n)
    assert np.mean(scores) <= 0.75, f"mean-knee bone Dice {np.mean(scores):.3f} +- {np.std(scores):.3f} at {n}^3"
    assert np.min(scores) > 0.2  # still knees in the same field of view, not noise


# --- drawn from the seed, within the documented ranges -------------------------------------------


def test_same_seed_gives_the_same_knee_and_scan():
    assert KneePhantom.from_seed(42) == KneePhantom.from_seed(42)
    first, second = knee_phantom(42, (40, 36, 44), (3.0, 3.5, 3.0)), knee_phantom(42, (40, 36, 44), (3.0, 3.5, 3.0))
    np.testing.assert_array_equal(first.volume_hu, second.volume_hu)
    np.testing.assert_array_equal(first.labels, second.labels)
    assert KneePhantom.from_seed(42).scanner_grid() == KneePhantom.from_seed(42).scanner_grid()


def within(value: float, low_high: tuple[float, float]) -> bool:
    return low_high[0] <= value <= low_high[1]


def test_drawn_parameters_lie_in_their_documented_ranges_and_span_them():
    ranges = KneeRanges()
    knees = [KneePhantom.from_seed(seed) for seed in range(60)]
    for knee in knees:
        assert within(knee.bone_scale, ranges.bone_scale)
        assert within(knee.flexion_deg, ranges.flexion_deg)
        assert within(knee.leg_rotation_deg, ranges.leg_rotation_deg)
        assert all(within(v, r) for v, r in zip(knee.joint_offset_mm, ranges.joint_offset_mm))
        assert within(knee.fat_mm, ranges.fat_mm) and within(knee.skin_mm, ranges.skin_mm)
        assert within(knee.joint_gap_mm, ranges.joint_gap_mm) and within(knee.valgus_deg, ranges.valgus_deg)
        assert within(knee.tibial_slope_deg, ranges.tibial_slope_deg)
        assert all(within(t, r) for t, r in zip(knee.cortical_mm, ranges.cortical_mm))
        lean = 52.0 * knee.bone_scale + knee.fat_mm
        assert all(within(radius - lean, ranges.leg_margin_mm) for radius in knee.leg_radii_mm)  # girth
        pixel_x, pixel_y, slice_mm = knee.scan_spacing_mm
        assert pixel_x == pixel_y and within(pixel_x, ranges.scan_pixel_mm) and within(slice_mm, ranges.scan_slice_mm)
        assert within(knee.scan_fov_mm[0], ranges.scan_fov_xy_mm) and within(knee.scan_fov_mm[2], ranges.scan_fov_z_mm)
        grid = knee.scanner_grid()
        assert grid.spacing == knee.scan_spacing_mm
        assert all(abs(n * s - fov) <= s / 2 + 1e-9 for n, s, fov in zip(grid.shape, grid.spacing, knee.scan_fov_mm))
    assert {k.side for k in knees} == {"left", "right"}
    spread = lambda name: np.ptp([getattr(k, name) for k in knees])  # noqa: E731
    assert spread("flexion_deg") > 20.0 and spread("leg_rotation_deg") > 25.0 and spread("bone_scale") > 0.25
    assert np.ptp([k.joint_offset_mm for k in knees], axis=0).min() > 20.0
    assert spread("fat_mm") > 8.0
    assert np.all(np.ptp([k.scan_spacing_mm for k in knees], axis=0) > [0.5, 0.5, 1.8])


def test_narrowing_a_range_fixes_that_parameter_and_keeps_the_others():
    narrow = KneeRanges(flexion_deg=(0.0, 0.0), left_fraction=0.0, joint_offset_mm=((0.0, 0.0),) * 3)
    for seed in (3, 8):
        wide, straight = KneePhantom.from_seed(seed), KneePhantom.from_seed(seed, narrow)
        assert straight.flexion_deg == 0.0 and straight.side == "right" and straight.joint_offset_mm == (0.0, 0.0, 0.0)
        same = {f.name for f in fields(KneePhantom)} - {"flexion_deg", "side", "joint_offset_mm"}
        assert all(getattr(straight, name) == getattr(wide, name) for name in same)


@pytest.mark.parametrize("ranges, field", [
    (dict(flexion_deg=(10.0, 5.0)), "flexion_deg"),
    (dict(flexion_deg=(0.0, 60.0)), "flexion_deg"),
    (dict(bone_scale=(0.0, 1.0)), "bone_scale"),
    (dict(joint_offset_mm=((-5.0, 5.0), (float("nan"), 1.0), (0.0, 0.0))), "joint_offset_mm"),
    (dict(left_fraction=1.5), "left_fraction"),
])
def test_bad_ranges_raise_input_error(ranges, field):
    with pytest.raises(InputError, match=field):
        KneeRanges(**ranges)


@pytest.mark.parametrize("values, field", [
    (dict(side="middle"), "side"), (dict(flexion_deg=50.0), "flexion_deg"), (dict(flexion_deg=-3.0), "flexion_deg"),
    (dict(leg_rotation_deg=120.0), "leg_rotation_deg"), (dict(joint_offset_mm=(0.0, 1.0)), "joint_offset_mm"),
    (dict(scan_spacing_mm=(0.5, 0.5, 0.0)), "scan_spacing_mm"),
])
def test_bad_knee_parameters_raise_input_error(values, field):
    with pytest.raises(InputError, match=field):
        KneePhantom(**values)


# --- left and right --------------------------------------------------------------------------------


def test_left_knee_is_the_mirror_image_of_the_right():
    drawn = KneePhantom.from_seed(11)
    # the knee centre on the world's x = 0 plane, so that the mirror of the phantom's frame is the grid's
    right = replace(drawn, side="right", leg_rotation_deg=15.0, joint_offset_mm=(0.0, *drawn.joint_offset_mm[1:]),
                    flexion_deg=20.0, tissue=replace(drawn.tissue, noise_hu=0.0))
    left = replace(right, side="left")
    shape, spacing = (64, 64, 64), (2.0, 2.0, 2.0)
    right_ct, left_ct = right.render(shape, spacing), left.render(shape, spacing)
    np.testing.assert_array_equal(left_ct.labels, right_ct.labels[::-1])
    np.testing.assert_allclose(left_ct.volume_hu, right_ct.volume_hu[::-1], atol=1e-2)
    assert np.count_nonzero(left_ct.labels != right_ct.labels) > 1000  # the knee itself is not symmetric
    # the fibula is lateral: +x for a right knee in its own frame, -x for a left knee
    for knee, sign in ((right, 1.0), (left, -1.0)):
        own = replace(knee, leg_rotation_deg=0.0, joint_offset_mm=(0.0, 0.0, 0.0)).render(shape, spacing)
        fibula_x = np.argwhere(own.labels == 3)[:, 0].mean() - (shape[0] - 1) / 2
        tibia_x = np.argwhere(own.labels == 2)[:, 0].mean() - (shape[0] - 1) / 2
        assert sign * (fibula_x - tibia_x) * spacing[0] > 20.0


@pytest.mark.parametrize("side, lateral", [("right", 1.0), ("left", -1.0)])
def test_external_rotation_turns_the_front_of_the_knee_lateral(side, lateral):
    knee = replace(KneePhantom(seed=4, side=side), tissue=TissueHU(noise_hu=0.0))
    patella_x = []
    for rotation in (0.0, 20.0):
        ct = replace(knee, leg_rotation_deg=rotation).render((64, 64, 64), (2.0, 2.0, 2.0))
        patella_x.append(np.argwhere(ct.labels == 4)[:, 0].mean() * 2.0)
    assert lateral * (patella_x[1] - patella_x[0]) > 8.0  # ~40 mm in front of the leg's axis, turned 20 degrees


# --- plausible anatomy at the extremes of the ranges ----------------------------------------------


def extreme_knees() -> list[KneePhantom]:
    """Knees at the corners of the default ranges (small/large, straight/flexed, varus/valgus, the
    narrowest joint gap and the thinnest leg), and a few drawn ones."""
    knees = []
    for seed, (scale, flexion, valgus) in enumerate([(0.8, 0.0, -4.0), (0.8, 45.0, 6.0), (1.2, 30.0, -4.0),
                                                     (1.2, 45.0, 6.0), (1.0, 30.0, 0.0)]):
        ranges = KneeRanges(bone_scale=(scale, scale), flexion_deg=(flexion, flexion), valgus_deg=(valgus, valgus),
                            joint_gap_mm=(3.0, 3.0), leg_margin_mm=(0.0, 0.0), fat_mm=(3.0, 3.0))
        knees.append(KneePhantom.from_seed(seed, ranges))
    return knees + [KneePhantom.from_seed(seed) for seed in (100, 101, 102)]


def world_grid_coordinates(shape, spacing):
    _, coordinates = VoxelGrid(shape, spacing).sub_box(np.full(3, -1e9), np.full(3, 1e9))
    return coordinates


@pytest.mark.parametrize("knee", extreme_knees(), ids=lambda k: f"s{k.bone_scale:.1f}-f{k.flexion_deg:.0f}-{k.side}")
def test_bones_do_not_overlap_and_keep_their_gaps(knee):
    x, y, z = world_grid_coordinates((112, 112, 112), (1.25, 1.25, 1.25))
    distance = {label: solid.signed_distance(x, y, z) for label, solid in knee.bone_solids().items()}
    claims = sum((d <= 0).astype(np.uint8) for d in distance.values())
    assert claims.max() == 1  # no voxel lies in two bones
    for a, b in itertools.combinations(distance, 2):
        nearest = float(np.maximum(distance[a], distance[b]).min())  # about half the gap between a and b, mm
        assert nearest > (1.0 if (a, b) == (1, 2) else 0.4), (a, b, nearest)
    # every bone lies under the skin
    skin = knee.leg_solid().signed_distance(x, y, z)
    for label, d in distance.items():
        if np.any(d <= 0):
            assert skin[d <= 0].max() < -knee.skin_mm, label
    # the tibial plateau lies below the condyles by the joint gap, along the tibia's axis
    tibia_frame = knee.bone_solids("tibia")
    s = knee.bone_scale
    gap = vertical_clearance_mm(tibia_frame[1], tibia_frame[2], (-45.0 * s, -35.0 * s, -20.0), (45.0 * s, 30.0 * s, 20.0))
    assert gap == pytest.approx(knee.joint_gap_mm, abs=0.15)
    assert gap >= 3.0 - 0.15


@pytest.mark.parametrize("flexion", [0.0, 30.0, 45.0])
def test_flexion_turns_the_tibia_and_keeps_the_patella_in_front_of_the_condyles(flexion):
    ranges = KneeRanges(flexion_deg=(flexion, flexion), left_fraction=0.0, leg_rotation_deg=(0.0, 0.0),
                        joint_offset_mm=((0.0, 0.0),) * 3)
    knee = KneePhantom.from_seed(5, ranges)  # a right knee in its own frame: world = knee frame
    ct = knee.render((128, 128, 128), (1.25, 1.25, 1.25))  # 160 mm: the flexed tibia's shaft stays inside
    labels = ct.labels
    # in every anterior-posterior row holding both, the patella lies in front of the femur, by a gap
    y_index = np.arange(labels.shape[1])[None, :, None]
    patella_back = np.where(labels == 4, y_index, 10**6).min(axis=1)
    femur_front = np.where(labels == 1, y_index, -1).max(axis=1)
    rows = (patella_back < 10**6) & (femur_front >= 0)
    assert np.count_nonzero(rows) > 100
    assert np.all(patella_back[rows] > femur_front[rows] + 1)
    # femur, tibia and patella labels are apart: at least the joint gap / cartilage between voxel centres
    for a, b, least_mm in ((1, 2, 2.0), (1, 4, PATELLOFEMORAL_GAP_MM - 1.0), (2, 3, 1.0), (2, 4, 5.0)):
        apart = ndimage.distance_transform_edt(labels != a, sampling=ct.spacing)[labels == b]
        assert apart.size and apart.min() >= least_mm, (a, b, apart.min() if apart.size else None)
    # the tibia's shaft turns posterior (toward -y) by the flexion going down, and the rendered tibia follows
    s = knee.bone_scale
    shaft = knee.bone_solids()[2].pose.to_world(np.array([[-s, s, -50.0 * s], [-s, s, -65.0 * s]]))
    (_, y_upper, z_upper), (_, y_lower, z_lower) = shaft
    assert np.degrees(np.arctan2(y_upper - y_lower, z_upper - z_lower)) == pytest.approx(flexion, abs=0.5)
    for point in shaft:
        index = np.round(np.linalg.solve(ct.affine[:3, :3], point - ct.affine[:3, 3])).astype(int)
        assert labels[tuple(index)] == 2


# --- scanner grids ----------------------------------------------------------------------------------


def test_render_like_a_scan_samples_the_seeds_scanner_grid():
    coarse = KneeRanges(scan_pixel_mm=(1.0, 1.0), scan_slice_mm=(3.0, 3.0), scan_fov_xy_mm=(150.0, 150.0),
                        scan_fov_z_mm=(120.0, 120.0))
    knee = KneePhantom.from_seed(9, coarse)
    ct = knee.render_like_a_scan()
    assert ct.volume_hu.shape == (150, 150, 40) and ct.spacing == (1.0, 1.0, 3.0)
    assert set(np.unique(ct.labels).tolist()) == {0, 1, 2, 3, 4}
    explicit = knee.render((150, 150, 40), (1.0, 1.0, 3.0))  # the same knee at an explicit grid
    np.testing.assert_array_equal(explicit.volume_hu, ct.volume_hu)
    fine = KneePhantom.from_seed(9).scanner_grid()
    assert 0.3 <= fine.spacing[0] <= 1.0 and 0.5 <= fine.spacing[2] <= 3.0
