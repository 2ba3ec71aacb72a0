"""Segmentation images in (read_segmentation_image, LoadSegmentationd), their datalist, the label radiographs."""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from PIL import Image
from pydicom.uid import SecondaryCaptureImageStorage, generate_uid

from orthogen.data.segmentation_input import LoadRadiographImaged, LoadSegmentationd, segmentation_datalist
from orthogen.errors import InputError
from orthogen.io import read_segmentation_image, segmentation_stem, write_png

from dicom_builders import write_dx

SIZE = (8, 12)


def levels() -> np.ndarray:
    """(8, 12) segmentation with all three levels: background, a leg band, bone inside it."""
    image = np.zeros(SIZE, dtype=np.float32)
    image[:, 3:9] = 0.5
    image[2:6, 5:7] = 1.0
    return image


def dicom_image(path: Path, stored: np.ndarray, *, bits: int = 8, **tags) -> Path:
    """An uncompressed single- or multi-frame grayscale Secondary Capture file of unsigned ``stored``."""
    return write_dx(path, stored.astype(np.uint8 if bits == 8 else "<u2"), sop_class=SecondaryCaptureImageStorage,
                    modality="OT", study_uid=generate_uid(), PatientID="KNEE01", PatientName="Knee^Test", **tags)


def load(path, spatial_size=SIZE) -> MetaTensor:
    return LoadSegmentationd(keys="image", spatial_size=spatial_size)({"image": str(path)})["image"]


# --------------------------------------------------------------------------- each reader gives the levels


def test_png_8_and_16_bit_give_the_levels_exactly(tmp_path):
    for bits in (8, 16):
        path = write_png(levels(), tmp_path / f"seg{bits}.png", bit_depth=bits)
        image = load(path)
        assert isinstance(image, MetaTensor) and image.shape == (1, *SIZE) and image.dtype == torch.float32
        np.testing.assert_array_equal(image[0].numpy(), levels())
        assert image.meta["filename_or_obj"] == str(path)
        assert image.meta["spacing_source"] == "none in the file" and "pixel_spacing_mm" not in image.meta
    assert read_segmentation_image(tmp_path / "seg8.png").image.max() == 1.0  # read as is, not snapped
    assert read_segmentation_image(tmp_path / "seg8.png").image[0, 4] == pytest.approx(128 / 255)


def test_gray_png_saved_in_colour_is_accepted(tmp_path):
    gray = np.rint(levels() * 255).astype(np.uint8)
    Image.fromarray(np.stack([gray] * 3, axis=-1)).save(tmp_path / "rgb_gray.png")
    np.testing.assert_array_equal(load(tmp_path / "rgb_gray.png")[0].numpy(), levels())


def test_npy_with_sidecar_spacing(tmp_path):
    np.save(tmp_path / "seg.npy", levels())
    (tmp_path / "seg.json").write_text(json.dumps({"pixel_spacing_mm": [0.4, 0.5]}))
    image = load(tmp_path / "seg.npy")
    np.testing.assert_array_equal(image[0].numpy(), levels())
    assert image.meta["pixel_spacing_mm"] == (0.4, 0.5) and image.meta["spacing_source"] == "sidecar seg.json"


def test_nifti_2d_with_affine_spacing(tmp_path):
    nib.save(nib.Nifti1Image(levels(), np.diag([0.7, 0.8, 1.0, 1.0])), tmp_path / "seg.nii.gz")
    image = load(tmp_path / "seg.nii.gz")
    np.testing.assert_array_equal(image[0].numpy(), levels())
    assert image.meta["pixel_spacing_mm"] == pytest.approx((0.7, 0.8))
    assert image.meta["spacing_source"] == "NIfTI affine"


def test_dicom_class_indices_and_8_bit(tmp_path):
    indices = dicom_image(tmp_path / "indices.dcm", np.rint(levels() * 2), PixelSpacing=[0.3, 0.3])
    image = load(indices)
    np.testing.assert_array_equal(image[0].numpy(), levels())
    assert image.meta["pixel_spacing_mm"] == (0.3, 0.3) and image.meta["spacing_source"] == "PixelSpacing"
    grey = dicom_image(tmp_path / "grey.dcm", np.rint(levels() * 255), ImagerPixelSpacing=[0.2, 0.25])
    image = load(grey)
    np.testing.assert_array_equal(image[0].numpy(), levels())
    assert image.meta["pixel_spacing_mm"] == (0.2, 0.25)
    assert image.meta["spacing_source"] == "ImagerPixelSpacing (at the detector)"
    grey12 = dicom_image(tmp_path / "grey12", np.rint(levels() * 4095), bits=16, BitsStored=12, HighBit=11)
    np.testing.assert_array_equal(load(grey12)[0].numpy(), levels())


def test_a_segmentation_of_another_size_is_resampled_to_the_model_grid(tmp_path):
    twice = np.kron(levels(), np.ones((2, 2), np.float32))  # drawn at twice the model's resolution
    np.save(tmp_path / "seg.npy", twice)
    (tmp_path / "seg.json").write_text(json.dumps({"pixel_spacing_mm": [0.4, 0.5]}))
    nib.save(nib.Nifti1Image(twice, np.diag([0.4, 0.5, 1.0, 1.0])), tmp_path / "seg.nii.gz")
    files = {"png": write_png(twice, tmp_path / "seg.png"), "npy": tmp_path / "seg.npy",
             "nifti": tmp_path / "seg.nii.gz",
             "dicom": dicom_image(tmp_path / "seg.dcm", np.rint(twice * 2), PixelSpacing=[0.4, 0.5])}
    for kind, path in files.items():
        image = load(path)
        assert image.shape == (1, *SIZE), kind
        np.testing.assert_array_equal(image[0].numpy(), levels(), err_msg=kind)
        assert image.meta["source_spatial_shape"] == (16, 24), kind
        if kind != "png":  # the spacing follows the pixels: x2 rows, x2 columns
            assert image.meta["pixel_spacing_mm"] == pytest.approx((0.8, 1.0)), kind
            assert "resampled to the model's grid (x2 rows, x2 columns)" in image.meta["spacing_source"], kind
    assert "source_spatial_shape" not in load(write_png(levels(), tmp_path / "model_size.png")).meta


def test_a_segmentation_is_not_refused_for_a_pixel_spacing_it_does_not_need(tmp_path):
    for name, tags in (("zero", {"PixelSpacing": [0.0, 0.0]}), ("negative", {"ImagerPixelSpacing": [-1.0, 0.2]})):
        image = load(dicom_image(tmp_path / f"{name}.dcm", np.rint(levels() * 2), **tags))
        np.testing.assert_array_equal(image[0].numpy(), levels())
        assert "pixel_spacing_mm" not in image.meta
        assert image.meta["spacing_source"].startswith("none usable in the file ("), image.meta["spacing_source"]
    assert "PixelSpacing is [0.0, 0.0]" in read_segmentation_image(tmp_path / "zero.dcm").spacing_source


def test_stem_strips_the_segmentation_suffix():
    assert [segmentation_stem(n) for n in ("a/knee.png", "knee.nii.gz", "knee.NII", "knee.dcm", "knee.npy", "IM0001")] \
        == ["knee", "knee", "knee", "knee", "knee", "IM0001"]


# --------------------------------------------------------------------------- bad files: one line naming the file


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, a phrase the message must hold)."""
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "text.png"
    text.write_text("not a picture\n")
    colour = np.zeros((*SIZE, 3), dtype=np.uint8)
    colour[..., 0] = 255
    Image.fromarray(colour).save(tmp_path / "colour.png")
    nib.save(nib.Nifti1Image(np.zeros((*SIZE, 3), np.float32), np.eye(4)), tmp_path / "volume.nii.gz")
    dicom_image(tmp_path / "frames.dcm", np.zeros((2, *SIZE)), NumberOfFrames=2)
    small_off = np.zeros((4, 4))
    small_off[1, 1] = 0.25
    write_png(small_off, tmp_path / "small_off.png", bit_depth=16)
    off = levels()
    off[0, 0] = 0.25
    write_png(off, tmp_path / "off.png", bit_depth=16)
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(dicom_image(tmp_path / "whole.dcm", np.zeros(SIZE)).read_bytes()[:-40])
    return {"missing": (tmp_path / "missing.png", "file not found"),
            "empty": (empty, "file is empty"),
            "text as png": (text, "not a readable image"),
            "colour png": (tmp_path / "colour.png", "expected a grayscale segmentation"),
            "3d nifti": (tmp_path / "volume.nii.gz", "expected a single 2D image"),
            "multi-frame dicom": (tmp_path / "frames.dcm", "multi-frame DICOM"),
            "truncated dicom": (truncated, "pixel data"),
            "other size, off-level": (tmp_path / "small_off.png", "1 pixels are not 0, 0.5 or 1"),  # before resampling
            "off-level": (tmp_path / "off.png", "are not 0, 0.5 or 1")}


def test_bad_files_give_one_line_naming_the_file(tmp_path):
    for name, (path, phrase) in _bad_files(tmp_path).items():
        with pytest.raises(InputError) as error:
            load(path)
        message = str(error.value)
        assert "\n" not in message, name
        assert str(path) in message and phrase in message, (name, message)
    (tmp_path / "x.jpg").write_bytes(b"\xff\xd8 jpeg")
    with pytest.raises(InputError, match="JPEG is lossy"):
        load(tmp_path / "x.jpg")


# --------------------------------------------------------------------------- datalist and label loader


def test_datalist_from_command_line_file_runs_the_check(tmp_path):
    seen = []
    items = segmentation_datalist(str(tmp_path / "seg.png"), check=seen.append)
    assert items == [{"image": str(tmp_path / "seg.png")}] and seen == items
    with pytest.raises(InputError, match="not found"):
        segmentation_datalist(str(tmp_path / "seg.png"), check=LoadSegmentationd(spatial_size=SIZE))
    with pytest.raises(InputError, match="^condition: expected one of contour, contour_bone"):
        segmentation_datalist(str(tmp_path / "seg.png"), condition="bone")


def test_datalist_of_a_prepared_split_and_its_labels(tmp_path):
    case = tmp_path / "leg01"
    case.mkdir()
    radiograph = np.linspace(0, 1, SIZE[0] * SIZE[1]).reshape(SIZE)
    write_png(radiograph, case / "leg01_a000_radiograph.png", bit_depth=16)
    write_png(levels(), case / "leg01_a000_contour_bone.png")
    write_png(np.minimum(levels(), 0.5), case / "leg01_a000_contour.png")
    item = {"image": "leg01/leg01_a000_radiograph.png", "contour": "leg01/leg01_a000_contour.png",
            "contour_bone": "leg01/leg01_a000_contour_bone.png", "case": "leg01", "angle_deg": 0.0,
            "pixel_spacing_mm": [0.5, 0.5]}
    (tmp_path / "datalist.json").write_text(json.dumps({"training": [], "validation": [], "test": [item]}))
    items = segmentation_datalist(dataset_dir=tmp_path)
    assert items == [{"image": str(case / "leg01_a000_contour_bone.png"),
                      "label": str(case / "leg01_a000_radiograph.png"),
                      "case": "leg01", "angle_deg": 0.0, "pixel_spacing_mm": [0.5, 0.5]}]
    contour = segmentation_datalist(dataset_dir=tmp_path, condition="contour")[0]["image"]
    assert contour == str(case / "leg01_a000_contour.png")
    loaded = LoadRadiographImaged(keys="label")(LoadSegmentationd(spatial_size=SIZE)(items[0]))
    np.testing.assert_array_equal(loaded["image"][0].numpy(), levels())
    assert loaded["label"].shape == (1, *SIZE) and loaded["label"].dtype == torch.float32
    np.testing.assert_allclose(loaded["label"][0].numpy(), radiograph, atol=0.5 / 65535)
    assert loaded["label"].meta["pixel_spacing_mm"] == (0.5, 0.5)
    assert loaded["label"].meta["spacing_source"] == "pixel_spacing argument"
    with pytest.raises(InputError, match="'training' split is empty"):
        segmentation_datalist(dataset_dir=tmp_path, split="training")
    with pytest.raises(InputError, match="^split: "):
        segmentation_datalist(dataset_dir=tmp_path, split="train")
    with pytest.raises(InputError, match="no datalist.json"):
        segmentation_datalist(dataset_dir=case)
    (tmp_path / "datalist.json").write_text(json.dumps({"test": [{"image": "x.png"}]}))
    with pytest.raises(InputError, match="datalist.json: expected a 'test' list of items"):
        segmentation_datalist(dataset_dir=tmp_path)


def test_an_evenly_spaced_subset_of_the_split_spans_its_first_and_last_items(tmp_path):
    item = {"image": "r.png", "contour": "c.png", "contour_bone": "b.png", "angle_deg": 0.0, "pixel_spacing_mm": [1, 1]}
    test = [{**item, "case": f"leg{i // 10}", "angle_deg": float(i % 10) * 36} for i in range(30)]
    (tmp_path / "datalist.json").write_text(json.dumps({"test": test}))
    picked = segmentation_datalist(dataset_dir=tmp_path, images=4)
    assert [(p["case"], p["angle_deg"]) for p in picked] == [("leg0", 0.0), ("leg1", 0.0), ("leg1", 324.0),
                                                             ("leg2", 324.0)]  # items 0, 10, 19, 29
    assert len(segmentation_datalist(dataset_dir=tmp_path, images=50)) == 30
    with pytest.raises(InputError, match="^images: expected a whole number >= 1 or null, got 0"):
        segmentation_datalist(dataset_dir=tmp_path, images=0)
