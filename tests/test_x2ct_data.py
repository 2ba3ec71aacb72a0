"""X2CT data preparation from phantom spines, the case file, and the bi-planar input loader."""
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from orthogen.data.biplanar_input import LoadBiplanarInputd
from orthogen.data.case_layout import write_case
from orthogen.data.x2ct_hdf5 import read_x2ct_case
from orthogen.data.x2ct_prepare import X2CTPreparation, prepare_x2ct_dataset
from orthogen.errors import InputError
from orthogen.io import write_png

SIZE = 16


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, spine_phantom_root):
    root = tmp_path_factory.mktemp("x2ct")
    datalist = prepare_x2ct_dataset(spine_phantom_root, root / "ds", X2CTPreparation(size=SIZE, seed=1))
    return root, datalist


def test_split_is_by_source_case_and_seeded(prepared, tmp_path):
    root, datalist = prepared
    source_of = lambda item: item["h5"].split("_v")[0]  # noqa: E731
    sources = {split: {source_of(i) for i in datalist[split]} for split in ("training", "validation", "test")}
    assert sources["test"] and sources["validation"] and sources["training"]
    assert not sources["test"] & sources["training"] and not sources["test"] & sources["validation"]
    assert not sources["validation"] & sources["training"]
    # one case per vertebra: 4 spines x 5 lumbar vertebrae
    assert sum(len(datalist[s]) for s in ("training", "validation", "test")) == 20
    assert (root / "ds" / "test.txt").read_text().split() == [i["h5"] for i in datalist["test"]]
    assert json.loads((root / "ds" / "datalist.json").read_text())["test"] == datalist["test"]


def test_without_inputs_inference_runs_on_the_split_asked_for_the_test_split_by_default(prepared):
    from orthogen.data.x2ct_datalist import inference_datalist

    root, datalist = prepared
    names = lambda items: [Path(i["h5"]).name for i in items]  # noqa: E731
    assert names(inference_datalist(dataset_dir=root / "ds")) == names(datalist["test"])
    assert names(inference_datalist(dataset_dir=root / "ds", split="validation")) == names(datalist["validation"])
    with pytest.raises(InputError, match=r"^split: expected one of \('training', 'validation', 'test'\), got 'tset'$"):
        inference_datalist(dataset_dir=root / "ds", split="tset")


def test_case_file_holds_aligned_views_of_the_cropped_cube(prepared):
    root, datalist = prepared
    case = read_x2ct_case(root / "ds" / datalist["training"][0]["h5"])
    assert case.ct_hu.shape == (SIZE,) * 3 and case.ap.shape == case.lateral.shape == (SIZE, SIZE)
    assert 0.0 <= case.ap.min() and case.ap.max() <= 1.0
    assert case.ct_hu.max() > 700  # cortical bone inside the vertebra crop
    # view-aligned axes: AP = (D, W) is the CT's projection over H, lateral = (D, H) over W
    attenuation = np.clip(case.ct_hu + 1000.0, 0, None)
    for image, projection in ((case.ap, attenuation.sum(axis=1)), (case.lateral, attenuation.sum(axis=2))):
        r = np.corrcoef(image.ravel(), projection.ravel())[0, 1]
        assert r > 0.9, r
    wrong = np.corrcoef(case.ap.ravel(), attenuation.sum(axis=2).T.ravel())[0, 1]
    assert wrong < 0.9  # a transposed projection does not match as well
    with h5py.File(root / "ds" / datalist["training"][0]["h5"]) as f:
        assert f.attrs["axcodes"] == "IAL"
        np.testing.assert_allclose(f.attrs["spacing_mm"], np.linalg.norm(case.affine[:3, :3], axis=0))


def test_same_seed_same_dataset(prepared, spine_phantom_root, tmp_path):
    root, datalist = prepared
    again = prepare_x2ct_dataset(spine_phantom_root, tmp_path / "ds", X2CTPreparation(size=SIZE, seed=1))
    assert again == datalist
    name = datalist["test"][0]["h5"]
    a, b = read_x2ct_case(root / "ds" / name), read_x2ct_case(tmp_path / "ds" / name)
    np.testing.assert_array_equal(a.ct_hu, b.ct_hu)
    np.testing.assert_array_equal(a.lateral, b.lateral)
    other = prepare_x2ct_dataset(spine_phantom_root, tmp_path / "ds2", X2CTPreparation(size=SIZE, seed=2))
    assert other["test"] != datalist["test"] or other["validation"] != datalist["validation"]


def test_loader_reads_case_files_and_radiograph_pairs(prepared, tmp_path):
    root, datalist = prepared
    h5 = root / "ds" / datalist["test"][0]["h5"]
    item = LoadBiplanarInputd(size=SIZE, require_label=True)({"h5": str(h5)})
    assert item["image"].shape == (2, SIZE, SIZE) and item["label"].shape == (1, SIZE, SIZE, SIZE)
    case = read_x2ct_case(h5)
    write_png(case.ap, tmp_path / "ap.png")
    write_png(case.lateral, tmp_path / "lat.png")
    pair = LoadBiplanarInputd(size=SIZE, pixel_spacing_mm=1.0)({"ap": str(tmp_path / "ap.png"),
                                                                "lateral": str(tmp_path / "lat.png")})
    assert pair["image"].shape == (2, SIZE, SIZE) and "label" not in pair
    assert np.abs(np.asarray(pair["image"][0]) - case.ap).mean() < 0.05
    affine = np.asarray(pair["image"].meta["affine"])
    assert np.allclose(affine @ np.array([(SIZE - 1) / 2] * 3 + [1.0]), [0, 0, 0, 1])  # centred cube


def test_bad_inputs_give_clear_errors(prepared, tmp_path):
    root, datalist = prepared
    loader = LoadBiplanarInputd(size=SIZE, require_label=True)
    case = read_x2ct_case(root / "ds" / datalist["test"][0]["h5"])
    write_png(case.ap, tmp_path / "ap.png")
    with pytest.raises(InputError, match="one view only.*lateral"):
        loader({"ap": str(tmp_path / "ap.png")})
    one_view = tmp_path / "one_view.h5"
    with h5py.File(one_view, "w") as f:
        f["xray1"] = case.ap
        f["ct"] = case.ct_hu
    with pytest.raises(InputError, match="one_view.h5.*xray2"):
        loader({"h5": str(one_view)})
    mismatched = tmp_path / "mismatched.h5"
    with h5py.File(mismatched, "w") as f:
        f["xray1"], f["xray2"], f["ct"] = case.ap, case.lateral[:8, :8], case.ct_hu
    with pytest.raises(InputError, match="mismatched view sizes"):
        loader({"h5": str(mismatched)})
    empty = tmp_path / "empty.h5"
    h5py.File(empty, "w").close()
    with pytest.raises(InputError, match="empty.h5.*empty"):
        loader({"h5": str(empty)})
    not_image = tmp_path / "notes.png"
    not_image.write_text("not a picture")
    with pytest.raises(InputError, match="notes.png"):
        LoadBiplanarInputd(size=SIZE)({"ap": str(not_image), "lateral": str(tmp_path / "ap.png")})
    with pytest.raises(InputError, match="at least 3 cases"):
        src = tmp_path / "two"
        for k in range(2):
            write_case(case.ct_hu, (case.ct_hu > 300).astype(np.uint8), case.affine, src, f"c{k}")
        prepare_x2ct_dataset(src, tmp_path / "out", X2CTPreparation(size=SIZE))


def _spacing_pair(tmp_path, case, spacing, **loader_args):
    write_png(case.ap, tmp_path / "ap.png")
    write_png(case.lateral, tmp_path / "lat.png")
    loader = LoadBiplanarInputd(size=SIZE, pixel_spacing_mm=spacing, **loader_args)
    return loader({"ap": str(tmp_path / "ap.png"), "lateral": str(tmp_path / "lat.png")})


def test_radiographs_without_spacing_stop_and_the_argument_sets_it(prepared, tmp_path):
    root, datalist = prepared
    case = read_x2ct_case(root / "ds" / datalist["test"][0]["h5"])
    with pytest.raises(InputError, match=r"ap.png: no pixel spacing .*--pixel_spacing"):
        _spacing_pair(tmp_path, case, None)
    # the argument is the detector spacing: the CT's voxels are it over the magnification
    item = _spacing_pair(tmp_path, case, 0.6, magnification=1.5)
    spacing = np.linalg.norm(np.asarray(item["image"].meta["affine"])[:3, :3], axis=0)
    crop = LoadBiplanarInputd(size=SIZE).preprocess(np.asarray(case.ap)[None]).meta["scale"]
    np.testing.assert_allclose(spacing, 0.6 / 1.5 / crop, rtol=1e-6)
    for bad in (0.0, -1.0, [1.0], "wide"):
        with pytest.raises(InputError, match="pixel_spacing"):
            _spacing_pair(tmp_path, case, bad)


def test_implausible_spacing_names_the_spacing_its_source_and_the_implied_size(prepared, tmp_path):
    root, datalist = prepared
    case = read_x2ct_case(root / "ds" / datalist["test"][0]["h5"])
    ok = _spacing_pair(tmp_path, case, 3.0, plausible_extent_mm=(40.0, 80.0))
    assert ok["image"].shape == (2, SIZE, SIZE)
    with pytest.raises(InputError, match=r"ap.png: implausible pixel spacing for this model: 30 x 30 mm "
                                         r"\(pixel_spacing argument\) makes the cropped ap view \d+ mm across, "
                                         r"but the model was trained on 40-80 mm; set .*--pixel_spacing"):
        _spacing_pair(tmp_path, case, 30.0, plausible_extent_mm=(40.0, 80.0))


def test_isocenter_spacing_divides_only_detector_spacings_by_the_magnification():
    from orthogen.data.biplanar_input import isocenter_spacing
    from orthogen.io import Radiograph

    image = np.zeros((4, 4), np.float32)
    for source, expected in (("PixelSpacing", 0.3),
                             ("ImagerPixelSpacing / EstimatedRadiographicMagnificationFactor 1.2", 0.3),
                             ("ImagerPixelSpacing (at the detector)", 0.2),
                             ("pixel_spacing argument", 0.2), ("sidecar ap.json", 0.2)):
        radiograph = Radiograph(image=image, pixel_spacing_mm=(0.3, 0.3), source="f", spacing_source=source)
        assert isocenter_spacing(radiograph, 1.5) == pytest.approx((expected, expected)), source
