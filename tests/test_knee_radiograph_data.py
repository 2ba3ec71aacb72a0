"""Knee radiograph dataset preparation: orbit DRRs of leg CTs, their two segmentations, the split by CT."""
import json

import numpy as np
import pytest
from PIL import Image

from orthogen.data.case_layout import write_case
from orthogen.data.ct_folder import find_ct_volumes
from orthogen.data.knee_radiograph_prepare import KneeRadiographPreparation, prepare_knee_radiographs
from orthogen.errors import InputError
from orthogen.phantoms import KneePhantom
from orthogen.transforms.radiograph_segmentation import (
    SegmentationLevels,
    leg_contour,
    leg_contour_and_bone,
    segmentation_levels,
)

PREP = KneeRadiographPreparation(size=32, views=6)


@pytest.fixture(scope="module")
def knee_cts(tmp_path_factory):
    """Five small knee phantoms (32^3 at 4 mm) in the CTSpine1K-style layout (with label maps beside)."""
    root = tmp_path_factory.mktemp("knee_cts")
    for seed in range(5):
        p = KneePhantom.from_seed(seed).render(shape=(32, 32, 32), spacing=(4.0, 4.0, 4.0))
        write_case(p.volume_hu, p.labels, p.affine, root, f"knee_{seed:04d}")
    return root


@pytest.fixture(scope="module")
def prepared(knee_cts, tmp_path_factory):
    out = tmp_path_factory.mktemp("knee_radiographs")
    return out, prepare_knee_radiographs(knee_cts, out, PREP)


def _read(path) -> np.ndarray:
    with Image.open(path) as picture:
        array = np.asarray(picture, dtype=np.float64)
    return array / (65535.0 if array.max() > 255 else 255.0)


def test_masks_are_not_taken_for_cts(knee_cts):
    assert [p.name for p in find_ct_volumes(knee_cts)] == [f"knee_{s:04d}.nii.gz" for s in range(5)]


def test_every_ct_gives_an_orbit_of_views_with_segmentations_of_exactly_three_levels(prepared):
    out, datalist = prepared
    items = datalist["training"] + datalist["validation"] + datalist["test"]
    assert len(items) == 5 * 6
    for case in {item["case"] for item in items}:
        angles = sorted(item["angle_deg"] for item in items if item["case"] == case)
        np.testing.assert_allclose(angles, [0, 60, 120, 180, 240, 300])
    for item in items[:12]:
        image = _read(out / item["image"])
        assert image.shape == (32, 32) and 0.0 <= image.min() and image.max() == pytest.approx(1.0, abs=1e-4)
        contour = segmentation_levels(_read(out / item["contour"]), item["contour"])
        both = segmentation_levels(_read(out / item["contour_bone"]), item["contour_bone"])
        assert set(np.unique(contour)) == {0.0, 0.5}
        assert set(np.unique(both)) == {0.0, 0.5, 1.0}
        assert np.array_equal(both > 0, contour > 0)  # bone only inside the leg
        assert item["pixel_spacing_mm"][0] > 0


def test_no_ct_volume_is_in_two_splits_and_the_split_is_seeded(prepared, knee_cts, tmp_path):
    _, datalist = prepared
    cases = {split: {item["case"] for item in datalist[split]} for split in ("training", "validation", "test")}
    assert cases["training"] and cases["validation"] and cases["test"]
    assert not (cases["training"] & cases["validation"] or cases["training"] & cases["test"]
                or cases["validation"] & cases["test"])
    again = prepare_knee_radiographs(knee_cts, tmp_path / "again", PREP, workers=2)
    for split in ("training", "validation", "test"):
        assert again[split] == datalist[split]  # same seed, same split; parallel rendering, same files
    assert json.loads((tmp_path / "again" / "datalist.json").read_text())["test"] == datalist["test"]


def test_split_by_image_reproduces_the_seed_papers_leaky_split(knee_cts, tmp_path):
    datalist = prepare_knee_radiographs(knee_cts, tmp_path, KneeRadiographPreparation(size=16, views=6,
                                                                                       split_by="image"))
    sizes = [len(datalist[s]) for s in ("training", "validation", "test")]
    assert sum(sizes) == 30 and sizes[1] == sizes[2] == 3  # 30 images, 9:1:1
    train_cases = {item["case"] for item in datalist["training"]}
    assert train_cases & {item["case"] for item in datalist["test"]}  # views of one leg on both sides


def test_segmentations_from_arrays():
    drr = np.array([[0.0, 0.05, 0.2], [0.5, 0.9, 1.0]])
    bone = np.array([[3.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    np.testing.assert_array_equal(leg_contour(drr), [[0, 0, 0.5], [0.5, 0.5, 0.5]])
    np.testing.assert_array_equal(leg_contour_and_bone(drr, bone), [[0, 0, 0.5], [0.5, 1.0, 0.5]])
    with pytest.raises(InputError, match=r"seg.png: 1 pixels are not 0, 0.5 or 1 \(e.g. \[0.3\]\)"):
        segmentation_levels(np.array([0.0, 0.3, 1.0]), "seg.png")
    eight_bit = np.array([[[0, 128, 255]]]) / 255.0  # how an 8-bit PNG stores 0, 0.5, 1
    np.testing.assert_array_equal(SegmentationLevels()(eight_bit), [[[0.0, 0.5, 1.0]]])
    with pytest.raises(InputError, match="expected a 64x64 segmentation .*, got 1x3"):
        SegmentationLevels(spatial_size=(64, 64))(eight_bit, "seg.png")


@pytest.mark.parametrize("kwargs, match", [
    ({"size": 0}, "size: expected a whole number >= 1, got 0"),
    ({"views": 2.5}, "views: expected a whole number"),
    ({"split_by": "patient"}, "split_by: expected one of volume, image, got 'patient'"),
])
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(InputError, match=match):
        KneeRadiographPreparation(**kwargs)


def test_bad_sources_are_refused_before_rendering(knee_cts, tmp_path):
    with pytest.raises(InputError, match="no CT found"):
        prepare_knee_radiographs(tmp_path, tmp_path / "out", PREP)
    (tmp_path / "two").mkdir()
    for name in ("a", "b"):
        (tmp_path / "two" / f"{name}.nii.gz").write_bytes((knee_cts / "data" / "knee_0000.nii.gz").read_bytes())
    with pytest.raises(InputError, match="at least 3 CTs"):
        prepare_knee_radiographs(tmp_path / "two", tmp_path / "out", PREP)
    assert not (tmp_path / "out").exists()
