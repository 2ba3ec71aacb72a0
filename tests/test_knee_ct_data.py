"""Knee CT preparation (``orthogen prepare knee-ct``): view-aligned CT cube + AP/lateral DRRs, slice thickness,
the seeded split by case, parallel workers, and bad inputs answered in one line."""
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pydicom
import pytest

from orthogen.data.case_layout import write_case
from orthogen.data.knee_ct_prepare import (
    KneeCTPreparation,
    parse_split,
    prepare_knee_ct,
    split_cases,
    split_counts,
)
from orthogen.data.x2ct_hdf5 import X2CTCase, read_x2ct_case, write_x2ct_case
from orthogen.errors import InputError
from orthogen.io import read_ct, write_dicom_ct_series
from orthogen.phantoms import KneePhantom

SIZE = 32
PREP = KneeCTPreparation(size=SIZE, split=(1, 1, 1), seed=3)
#: case -> (shape, spacing mm): four slice thicknesses; knee_0100's leg runs through its whole z extent.
GRIDS = {
    "knee_0100": ((32, 32, 32), (5.0, 5.0, 5.0)),
    "knee_0101": ((32, 32, 40), (5.0, 5.0, 4.0)),
    "knee_0102": ((36, 36, 27), (4.5, 4.5, 6.0)),
    "knee_0103": ((32, 32, 48), (5.0, 5.0, 3.0)),
}


@pytest.fixture(scope="module")
def knee_cts(tmp_path_factory):
    """Four small knee phantoms of different slice thicknesses, as ``orthogen phantom knee`` writes them."""
    root = tmp_path_factory.mktemp("knee_cts")
    for name, (shape, spacing) in GRIDS.items():
        p = KneePhantom.from_seed(int(name[-3:])).render(shape=shape, spacing=spacing)
        write_case(p.volume_hu, p.labels, p.affine, root, name)
    return root


@pytest.fixture(scope="module")
def prepared(knee_cts, tmp_path_factory):
    out = tmp_path_factory.mktemp("knee_ct")
    return out, prepare_knee_ct(knee_cts, out, PREP)


def _items(datalist):
    return [item for split in ("training", "validation", "test") for item in datalist[split]]


def _expected_cube(ct_path, margin_mm=PREP.margin_mm, body_hu=PREP.body_hu):
    """Edge (mm) and world centre of the cube: the body's box + margin, clipped to the scan, computed here
    on the source grid (the phantoms' affines are diagonal)."""
    volume = read_ct(ct_path)
    values, affine = volume.numpy(), volume.affine.numpy()
    spacing = np.abs(np.diag(affine)[:3])
    lo, hi = [], []
    for axis in range(3):
        present = np.flatnonzero((values > body_hu).any(axis=tuple(a for a in range(3) if a != axis)))
        margin = int(np.ceil(margin_mm / spacing[axis] - 1e-6))
        lo.append(max(0, present[0] - margin))
        hi.append(min(values.shape[axis], present[-1] + 1 + margin))
    lo, hi = np.array(lo), np.array(hi)
    edge = float(((hi - lo) * spacing).max())
    centre = affine[:3, :3] @ ((lo + hi - 1) / 2.0) + affine[:3, 3]
    return edge, centre, (values, affine)


def test_ct_cube_is_view_aligned_isotropic_and_keeps_the_physical_extent(prepared, knee_cts):
    out, datalist = prepared
    assert len(_items(datalist)) == 4
    for item in _items(datalist):
        case = read_x2ct_case(out / item["h5"])
        source = knee_cts / "data" / f"{item['case']}.nii.gz"
        edge, centre, (values, source_affine) = _expected_cube(source)
        assert case.ct_hu.shape == (SIZE,) * 3 and case.ct_hu.dtype == np.float32
        assert values.min() - 1 <= case.ct_hu.min() < -900 and 700 < case.ct_hu.max() <= values.max() + 1  # HU
        voxel = edge / SIZE
        # view-aligned "IAL": D toward inferior, H anterior, W patient left; isotropic voxels (not stretched)
        np.testing.assert_allclose(case.affine[:3, :3], [[0, 0, -voxel], [0, voxel, 0], [-voxel, 0, 0]], atol=1e-9)
        np.testing.assert_allclose(case.affine[:3, :3] @ np.full(3, (SIZE - 1) / 2) + case.affine[:3, 3], centre,
                                   atol=1e-6)
        assert item["cube_edge_mm"] == pytest.approx(edge)
        # the cube holds the source's HU where it overlaps the scan (nearest source voxel, r > 0.9)
        world = case.affine @ np.c_[np.indices((SIZE,) * 3).reshape(3, -1).T, np.ones(SIZE ** 3)].T
        index = np.round(np.linalg.solve(source_affine, world)[:3]).astype(int)
        inside = np.all((index >= 0) & (index < np.array(values.shape)[:, None]), axis=0)
        r = np.corrcoef(case.ct_hu.ravel()[inside], values[tuple(index[:, inside])])[0, 1]
        assert r > 0.9, (item["case"], r)
        assert (case.ct_hu.ravel()[~inside] == -1000.0).all()  # outside the scan: air
    # the leg runs through knee_0100's whole scan along z: the cube's edge is the scan's 160 mm z extent
    first = next(i for i in _items(datalist) if i["case"] == "knee_0100")
    assert first["cube_edge_mm"] == pytest.approx(32 * 5.0)


def test_drrs_are_normalised_aligned_and_their_spacing_is_the_geometrys(prepared):
    out, datalist = prepared
    for item in _items(datalist):
        case = read_x2ct_case(out / item["h5"])
        detector_mm = item["cube_edge_mm"] / SIZE * PREP.magnification  # a cube voxel at the detector
        for image, spacing in ((case.ap, case.ap_pixel_spacing_mm), (case.lateral, case.lateral_pixel_spacing_mm)):
            assert image.shape == (SIZE, SIZE) and image.dtype == np.float32
            assert image.min() >= 0.0 and image.max() == pytest.approx(1.0)
            # cropped to the leg and padded square: square pixels, at most the uncropped detector's
            assert spacing[0] == pytest.approx(spacing[1]) and 0.5 * detector_mm <= spacing[0] <= detector_mm + 1e-9
        assert case.magnification == pytest.approx(1.5)
        assert item["ap_pixel_spacing_mm"] == list(case.ap_pixel_spacing_mm)
    case = read_x2ct_case(out / "knee_0100.h5")  # the leg fills the scan's z: no rescaling, aligned views
    assert case.ap_pixel_spacing_mm == pytest.approx((160.0 / SIZE * 1.5,) * 2)
    attenuation = np.clip(case.ct_hu + 1000.0, 0, None)
    for image, projection in ((case.ap, attenuation.sum(axis=1)), (case.lateral, attenuation.sum(axis=2))):
        assert np.corrcoef(image.ravel(), projection.ravel())[0, 1] > 0.85
    assert np.corrcoef(case.ap.ravel(), attenuation.sum(axis=1).T.ravel())[0, 1] < 0.85  # transposed: no match


def test_back_projected_views_meet_the_ct_where_its_own_projections_are(prepared):
    """The knee CT network's back-projection (orthogen.networks.view_geometry) against every prepared case:
    each view, repeated along its axis, lines up with the CT's own parallel projection along that axis to
    within 2 of 32 voxels (the cone beam and the crop to the leg move it)."""
    import torch

    from orthogen.networks.view_geometry import backprojected_views

    out, datalist = prepared
    for item in _items(datalist):
        case = read_x2ct_case(out / item["h5"])
        views = torch.from_numpy(np.stack([case.ap, case.lateral]))[None]
        volume = backprojected_views(views, SIZE)[0].numpy()
        attenuation = np.clip(case.ct_hu + 1000.0, 0, None)
        for view, axis in ((volume[0].mean(axis=1), 1), (volume[1].mean(axis=2), 2)):
            projection = attenuation.sum(axis=axis)
            shifts = {(dy, dx): np.corrcoef(view.ravel(), np.roll(projection, (dy, dx), (0, 1)).ravel())[0, 1]
                      for dy in range(-3, 4) for dx in range(-3, 4)}
            best = max(shifts, key=shifts.get)
            assert shifts[(0, 0)] > 0.9 and max(abs(best[0]), abs(best[1])) <= 2, (item["case"], axis, best, shifts[best])


def test_slice_thickness_comes_from_the_source(prepared):
    out, datalist = prepared
    for item in _items(datalist):
        shape, spacing = GRIDS[item["case"]]
        case = read_x2ct_case(out / item["h5"])
        assert case.slice_thickness_mm == pytest.approx(spacing[2]) == item["slice_thickness_mm"]
        assert case.source_spacing_mm == pytest.approx(spacing)
        assert item["slice_thickness_from"] == "slice spacing"
        with h5py.File(out / item["h5"]) as f:
            assert f.attrs["axcodes"] == "IAL" and float(f.attrs["slice_thickness_mm"]) == pytest.approx(spacing[2])


def test_dicom_slice_thickness_tag_wins_and_drr_size_sets_the_detector(knee_cts, tmp_path):
    source = tmp_path / "src"
    volume = read_ct(knee_cts / "data" / "knee_0101.nii.gz")  # 4 mm slices
    write_dicom_ct_series(volume.numpy(), volume.affine.numpy(), source / "knee_dicom")
    for path in (source / "knee_dicom").glob("*.dcm"):
        ds = pydicom.dcmread(path)
        ds.SliceThickness = "2.5"  # thinner reconstructed slices than their 4 mm spacing
        ds.save_as(path)
    for name in ("knee_0100", "knee_0102"):
        (source / f"{name}.nii.gz").write_bytes((knee_cts / "data" / f"{name}.nii.gz").read_bytes())
    datalist = prepare_knee_ct(source, tmp_path / "out", KneeCTPreparation(size=16, drr_size=24, split=(1, 1, 1)))
    item = next(i for i in _items(datalist) if i["case"] == "knee_dicom")
    assert item["slice_thickness_mm"] == 2.5 and item["slice_thickness_from"] == "SliceThickness"
    case = read_x2ct_case(tmp_path / "out" / "knee_dicom.h5")
    assert case.ct_hu.shape == (16,) * 3 and case.ap.shape == case.lateral.shape == (24, 24)
    assert case.slice_thickness_mm == 2.5 and case.source_spacing_mm[2] == pytest.approx(4.0)
    full = next(i for i in _items(datalist) if i["case"] == "knee_0100")
    assert full["ap_pixel_spacing_mm"] == pytest.approx([160.0 / 24 * 1.5] * 2)


def test_split_is_by_case_seeded_and_workers_give_the_same_files(prepared, knee_cts, tmp_path):
    out, datalist = prepared
    cases = {split: {item["case"] for item in datalist[split]} for split in ("training", "validation", "test")}
    assert all(cases.values()) and sum(map(len, cases.values())) == 4
    assert not (cases["training"] & cases["validation"] or cases["training"] & cases["test"]
                or cases["validation"] & cases["test"])
    assert json.loads((out / "datalist.json").read_text())["test"] == datalist["test"]
    assert {k: sorted(v) for k, v in cases.items()} == split_cases(list(GRIDS), (1, 1, 1), 3)
    again = prepare_knee_ct(knee_cts, tmp_path, PREP, workers=2)
    assert again == datalist  # same seed, same split and items
    for item in _items(datalist):
        a, b = read_x2ct_case(out / item["h5"]), read_x2ct_case(tmp_path / item["h5"])
        for field in ("ct_hu", "ap", "lateral", "affine"):
            np.testing.assert_allclose(getattr(b, field), getattr(a, field), rtol=0, atol=1e-4)
        assert (b.ap_pixel_spacing_mm, b.slice_thickness_mm) == (a.ap_pixel_spacing_mm, a.slice_thickness_mm)


def test_split_counts_and_seeds():
    names = [f"case_{i:02d}" for i in range(20)]
    first = split_cases(names, (8, 1, 1), seed=0)
    assert [len(first[s]) for s in ("training", "validation", "test")] == [16, 2, 2]
    assert sorted(sum(first.values(), [])) == names
    assert split_cases(list(reversed(names)), (8, 1, 1), seed=0) == first  # order of discovery does not matter
    assert any(split_cases(names, (8, 1, 1), seed=s)["test"] != first["test"] for s in range(1, 4))
    assert split_counts(4, (8, 1, 1)) == (2, 1, 1)
    assert split_counts(5, (1, 0, 0)) == (5, 0, 0)
    assert split_counts(10, (7, 0, 3)) == (7, 0, 3)
    with pytest.raises(InputError, match="expected at least 3 CTs to split into training : validation : test, found 2"):
        split_counts(2, (8, 1, 1))
    assert parse_split("8:1:1") == parse_split((8, 1, 1)) == parse_split("8,1,1") == (8.0, 1.0, 1.0)


def test_old_case_files_without_the_new_fields_still_read(tmp_path):
    old = X2CTCase(np.zeros((8, 8), np.float32), np.ones((8, 8), np.float32), np.zeros((8,) * 3, np.float32),
                   np.eye(4), (1.0, 1.0), (1.0, 1.0), source="x")
    case = read_x2ct_case(write_x2ct_case(tmp_path / "old.h5", old))
    assert case.slice_thickness_mm is None and case.source_spacing_mm is None and case.magnification is None
    with h5py.File(tmp_path / "old.h5") as f:
        assert "slice_thickness_mm" not in f.attrs


@pytest.mark.parametrize("kwargs, match", [
    ({"size": 0}, "size: expected a whole number from 8 to 512, got 0"),
    ({"drr_size": 4}, "drr_size: expected a whole number from 8 to 512, got 4"),
    ({"split": (0, 1, 1)}, r"split: expected three ratios training:validation:test"),
    ({"split": "8:1"}, r"split: expected three ratios .*, got '8:1'"),
    ({"margin_mm": -1.0}, "margin_mm: expected a margin in mm, 0 or more"),
])
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(InputError, match=match):
        KneeCTPreparation(**kwargs)


def test_bad_sources_are_refused_before_anything_is_written(knee_cts, tmp_path):
    with pytest.raises(InputError, match="no CT found"):
        prepare_knee_ct(tmp_path, tmp_path / "out", PREP)
    few = tmp_path / "few"
    few.mkdir()
    (few / "a.nii.gz").write_bytes((knee_cts / "data" / "knee_0100.nii.gz").read_bytes())
    with pytest.raises(InputError, match=r"few: expected at least 3 CTs to split into training : validation : test, "
                                         r"found 1"):
        prepare_knee_ct(few, tmp_path / "out", PREP)
    assert not (tmp_path / "out").exists()
    air = read_ct(knee_cts / "data" / "knee_0100.nii.gz")
    from orthogen.io import write_nifti

    write_nifti(np.full(air.shape, -1000.0, np.float32), air.affine.numpy(), few / "b.nii.gz")
    with pytest.raises(InputError, match=r"b.nii.gz: no body in the CT: no voxel above -500 HU"):
        prepare_knee_ct(few, tmp_path / "out", KneeCTPreparation(size=16, split=(1, 0, 0)))
    assert not (tmp_path / "out" / "datalist.json").exists()


def _orthogen(*args):
    script = Path(sys.executable).with_name("orthogen")
    prefix = [str(script)] if script.exists() else [sys.executable, "-m", "orthogen.cli"]
    return subprocess.run(prefix + [str(a) for a in args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, message", [
    (["{missing}", "--out", "{out}"], r"missing: folder not found"),
    (["{empty}", "--out", "{out}"], r"empty: no CT found; expected .nii/.nii.gz/.nrrd files or DICOM series folders"),
    (["{cts}", "--out", "{out}", "--size", "0"], r"--size: expected a whole number of voxels per cube edge from 8 to "
                                                  r"512, got 0"),
    (["{cts}", "--out", "{out}", "--split", "8:1"], r"--split: expected three ratios training:validation:test such "
                                                     r"as 8:1:1 .*, got '8:1'"),
    (["{cts}", "--out", "{out}", "--workers", "0"], r"--workers: expected a whole number of parallel workers"),
])
def test_command_line_errors_are_one_line(knee_cts, tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    paths = {"missing": tmp_path / "missing", "empty": tmp_path / "empty", "cts": knee_cts, "out": tmp_path / "out"}
    result = _orthogen("prepare", "knee-ct", *[a.format(**paths) for a in args])
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert lines[0].startswith("orthogen: error: ") and __import__("re").search(message, lines[0]), lines[0]
    assert not (tmp_path / "out").exists()


def test_command_line_prepares_phantoms(knee_cts, tmp_path):
    result = _orthogen("prepare", "knee-ct", knee_cts, "--out", tmp_path, "--size", 16, "--split", "2:1:1",
                       "--seed", 5)
    assert result.returncode == 0, result.stderr
    assert "2 training, 1 validation, 1 test cases of 16^3 from 4 CTs" in result.stdout
    datalist = json.loads((tmp_path / "datalist.json").read_text())
    assert datalist["preparation"]["split"] == [2.0, 1.0, 1.0] and datalist["preparation"]["seed"] == 5
    assert read_x2ct_case(tmp_path / datalist["test"][0]["h5"]).ct_hu.shape == (16,) * 3


_HEAVY_AFTER = """
import sys
from orthogen.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exit:
    print("exit:", exit.code)
print("heavy:", ",".join(m for m in ("torch", "monai", "scipy", "orthogen.io") if m in sys.modules))
"""


@pytest.mark.parametrize("flags", [["--size", "0"], ["--split", "1:x:1"], ["--drr-size", "4"]])
def test_bad_flags_are_answered_before_torch_is_imported(knee_cts, tmp_path, flags):
    done = subprocess.run([sys.executable, "-c", _HEAVY_AFTER, "prepare", "knee-ct", str(knee_cts), "--out",
                           str(tmp_path / "out"), *flags], capture_output=True, text=True)
    assert "heavy: \n" in done.stdout + "\n", done.stdout + done.stderr
    assert "exit: orthogen: error: " + flags[0] + ": expected" in done.stdout, done.stdout
