"""A DICOM SEG drawn on a radiograph (as OHIF saves one: segments "contour" and "bone", one frame each on the
radiograph's grid, empty frames left out) as the knee radiograph bundle's segmentation: read by
orthogen.io.read_segmentation_image, resampled to the model's grid by LoadSegmentationd, and run through the
bundle's inference with the shipped U-Net. The SEGs are built by highdicom (tests/dicom_builders.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from orthogen.data.segmentation_input import LoadSegmentationd
from orthogen.errors import InputError, first_orthogen_error
from orthogen.io import read_segmentation_image
from orthogen.io.dicom_segmentation import LABEL_MAP_SEGMENTATION_STORAGE

from bundle_runs import bundle_log
from dicom_builders import dx_dataset, seg_dataset, write_seg

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "knee_radiograph_diffusion"
SOFT_TISSUE, BONE = ("87784001", "SCT", "Soft tissue"), ("272673000", "SCT", "Bone structure")
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def radiograph(rows: int, cols: int, spacing=(0.4, 0.4)) -> pydicom.Dataset:
    """A DX radiograph of ``rows`` x ``cols`` pixels in a study of its own (the SEG's source)."""
    return dx_dataset(np.zeros((rows, cols), np.uint16), pixel_spacing=spacing, study_uid=pydicom.uid.generate_uid())


def knee_masks(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """(contour, bone) on a rows x cols grid: a leg band down the image, with a bone marker in its upper left
    quadrant only (so a flip of rows or columns moves it); bounds on even pixels (a 2x reduction is exact)."""
    def even(value: float) -> int:
        return int(value) // 2 * 2

    contour = np.zeros((rows, cols), bool)
    contour[even(rows / 8): even(rows * 0.94), even(cols / 4): even(cols * 3 / 4)] = True
    bone = np.zeros((rows, cols), bool)
    bone[even(rows / 8) + 4: even(rows / 2), even(cols / 4) + 2: even(cols / 2)] = True
    return contour, bone


def levels_of(contour: np.ndarray, bone: np.ndarray) -> np.ndarray:
    return (0.5 * (contour | bone) + 0.5 * bone).astype(np.float32)


def load(path, condition="contour_bone", spatial_size=(64, 64)):
    return LoadSegmentationd(spatial_size=spatial_size, condition=condition)({"image": str(path)})["image"]


def one_line_error(call, *fragments: str) -> str:
    """The InputError ``call()`` raises, checked to be one line holding every fragment."""
    with pytest.raises(InputError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and all(fragment in message for fragment in fragments), message
    return message


# --------------------------------------------------------------------------- read on the radiograph's grid


def test_a_128_px_seg_reads_as_the_levels_on_its_radiographs_grid(tmp_path):
    source = radiograph(128, 128)
    contour, bone = knee_masks(128, 128)
    path = write_seg(tmp_path / "seg.dcm", source, {"contour": contour, "bone": bone})
    read = read_segmentation_image(path)
    np.testing.assert_array_equal(read.image, levels_of(contour, bone))
    assert read.pixel_spacing_mm == (0.4, 0.4) and read.dicom_seg.drawn == ("contour", "bone")
    assert read.dicom_seg.referenced_instance == source.SOPInstanceUID


def test_it_is_resampled_to_the_model_grid_with_its_marker_in_place_and_spacing_scaled(tmp_path):
    contour, bone = knee_masks(128, 128)
    path = write_seg(tmp_path / "seg.dcm", radiograph(128, 128), {"contour": contour, "bone": bone})
    image = load(path)
    assert tuple(image.shape) == (1, 64, 64)
    expected = levels_of(contour, bone)[::2, ::2]  # even bounds: each 2x2 block is uniform
    np.testing.assert_array_equal(image[0].numpy(), expected)
    rows, cols = np.nonzero(image[0].numpy() == 1.0)
    assert rows.max() < 32 and cols.max() < 32  # the bone marker stays in the upper left quadrant
    assert image.meta["pixel_spacing_mm"] == pytest.approx((0.8, 0.8))
    assert image.meta["source_spatial_shape"] == (128, 128)


def test_a_non_square_seg_is_padded_to_square_then_resampled_keeping_top_bottom_left_right(tmp_path):
    """75 x 101 pixels (odd, its 1-bit frames not byte-aligned): 13 background rows above and below make it
    101 x 101, then 64 x 64 by majority; the bone marker lands where its centre maps."""
    rows, cols = 75, 101
    contour = np.zeros((rows, cols), bool)
    contour[5:70, 5:90] = True
    bone = np.zeros((rows, cols), bool)
    bone[5:25, 5:30] = True  # upper left
    path = write_seg(tmp_path / "wide.dcm", radiograph(rows, cols, spacing=(0.5, 0.5)),
                     {"contour": contour, "bone": bone})
    image = load(path)[0].numpy()
    scale = 64 / 101
    bone_rows, bone_cols = np.nonzero(image == 1.0)
    assert bone_rows.mean() == pytest.approx((14.5 + 13 + 0.5) * scale - 0.5, abs=0.75)
    assert bone_cols.mean() == pytest.approx((17 + 0.5) * scale - 0.5, abs=0.75)
    leg_rows, leg_cols = np.nonzero(image > 0)
    assert (leg_rows.min(), leg_rows.max()) == (round((5 + 13) * scale), round((70 + 13) * scale) - 1)
    assert (leg_cols.min(), leg_cols.max()) == (round(5 * scale), round(90 * scale) - 1)
    assert not image[:8].any() and not image[-8:].any()  # the padding rows are background


def test_overlapping_or_not_fractional_or_labelmap_and_coded_segments_give_the_same_levels(tmp_path):
    source = radiograph(96, 80)
    contour, bone = knee_masks(96, 80)
    expected = levels_of(contour, bone)
    variants = {
        "overlapping": write_seg(tmp_path / "a.dcm", source, {"contour": contour, "bone": bone}),
        "apart": write_seg(tmp_path / "b.dcm", source, {"Bone": bone, "CONTOUR": contour & ~bone}),
        "fractional": write_seg(tmp_path / "c.dcm", source, {"contour": contour, "bone": bone},
                                segmentation_type="FRACTIONAL"),
        "coded": write_seg(tmp_path / "d.dcm", source, {"Segment 1": contour, "Segment 2": bone},
                           property_types={"Segment 1": SOFT_TISSUE, "Segment 2": BONE}),
        "labelmap": _labelmap(tmp_path / "e.dcm", source, contour & ~bone, bone),
    }
    for name, path in variants.items():
        np.testing.assert_array_equal(read_segmentation_image(path).image, expected, err_msg=name)


def _labelmap(path: Path, source, contour: np.ndarray, bone: np.ndarray) -> Path:
    """A LABELMAP SEG (Supplement 243; highdicom 0.22 predates it): the BINARY one made one 8-bit frame of
    segment numbers, contour 1 and bone 2 (a label map cannot overlap)."""
    seg = seg_dataset(source, {"contour": contour, "bone": bone})
    seg.SOPClassUID = seg.file_meta.MediaStorageSOPClassUID = LABEL_MAP_SEGMENTATION_STORAGE
    seg.SegmentationType = "LABELMAP"
    seg.NumberOfFrames = 1
    seg.BitsAllocated, seg.BitsStored, seg.HighBit = 8, 8, 7
    seg.PerFrameFunctionalGroupsSequence = seg.PerFrameFunctionalGroupsSequence[:1]
    del seg.PerFrameFunctionalGroupsSequence[0].SegmentIdentificationSequence
    seg.PixelData = (contour * 1 + bone * 2).astype(np.uint8).tobytes()
    seg.save_as(path, write_like_original=False)
    return path


def test_the_condition_decides_bone_contour_models_merge_it_contour_bone_models_need_it(tmp_path):
    source = radiograph(128, 128)
    contour, bone = knee_masks(128, 128)
    both = write_seg(tmp_path / "both.dcm", source, {"contour": contour, "bone": bone})
    np.testing.assert_array_equal(load(both, "contour")[0].numpy(), 0.5 * contour[::2, ::2])
    only_contour = write_seg(tmp_path / "contour_only.dcm", source, {"contour": contour, "bone": np.zeros_like(bone)})
    np.testing.assert_array_equal(load(only_contour, "contour")[0].numpy(), 0.5 * contour[::2, ::2])
    one_line_error(lambda: load(only_contour, "contour_bone"), str(only_contour), "no bone drawn",
                   "2 'bone' (empty)", "expected a segment labelled 'bone' for a contour+bone model")


# --------------------------------------------------------------------------- refused, one line each


def test_bad_segs_are_refused_in_one_line_naming_the_file(tmp_path):
    source = radiograph(64, 48)
    contour, bone = knee_masks(64, 48)

    unlabelled = write_seg(tmp_path / "unlabelled.dcm", source, {"Segment 1": contour, "Segment 2": bone})
    one_line_error(lambda: read_segmentation_image(unlabelled), str(unlabelled), "1 'Segment 1', 2 'Segment 2'",
                   "expected segments labelled 'contour'", "'bone'")

    bone_only = write_seg(tmp_path / "bone_only.dcm", source, {"bone": bone})
    one_line_error(lambda: read_segmentation_image(bone_only), str(bone_only), "no contour drawn")

    of_a_ct = seg_dataset(source, {"contour": contour, "bone": bone})
    for frame in of_a_ct.PerFrameFunctionalGroupsSequence:
        frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPClassUID = CT_IMAGE_STORAGE
    of_a_ct.save_as(tmp_path / "of_a_ct.dcm", write_like_original=False)
    one_line_error(lambda: read_segmentation_image(tmp_path / "of_a_ct.dcm"), "of_a_ct.dcm", "CT Image Storage",
                   "expected the segmentation of a radiograph")

    not_seg_modality = seg_dataset(source, {"contour": contour, "bone": bone})
    not_seg_modality.Modality = "OT"
    not_seg_modality.save_as(tmp_path / "modality_ot.dcm", write_like_original=False)
    one_line_error(lambda: read_segmentation_image(tmp_path / "modality_ot.dcm"), "modality_ot.dcm",
                   "Modality OT", "expected a DICOM SEG")

    unreferenced = seg_dataset(source, {"contour": contour, "bone": bone})
    for frame in unreferenced.PerFrameFunctionalGroupsSequence:
        del frame.DerivationImageSequence
    del unreferenced.ReferencedSeriesSequence
    unreferenced.save_as(tmp_path / "unreferenced.dcm", write_like_original=False)
    one_line_error(lambda: read_segmentation_image(tmp_path / "unreferenced.dcm"), "unreferenced.dcm",
                   "references no image", "expected the segmentation of one radiograph")


# --------------------------------------------------------------------------- through the bundle


def test_the_bundle_turns_a_seg_into_a_radiograph_in_the_segs_study(tmp_path):
    """The shipped U-Net (one forward pass) on a 128 px SEG: a 64 px radiograph, its DICOM in the SEG's study
    with the spacing of the model's grid, brighter where the SEG has bone; a contour-only SEG stops at the
    bundle's own input check (its datalist) for the contour+bone model."""
    from monai.bundle import ConfigParser

    contour, bone = knee_masks(128, 128)
    path = write_seg(tmp_path / "knee_seg.dcm", radiograph(128, 128), {"contour": contour, "bone": bone})
    out = tmp_path / "out"
    bundle_log(BUNDLE / "configs", "inference", ["inference.json"], BUNDLE, "--method", "unet", "--input_segmentation",
               str(path), "--output_format", "dicom", "--output_dir", str(out))
    seg = pydicom.dcmread(path, stop_before_pixels=True)
    generated = pydicom.dcmread(out / "knee_seg_radiograph.dcm")
    assert (generated.Rows, generated.Columns) == (64, 64)
    assert generated.StudyInstanceUID == seg.StudyInstanceUID and generated.PatientID == seg.PatientID
    assert generated.SourceImageSequence[0].ReferencedSOPInstanceUID == seg.SOPInstanceUID
    assert [float(v) for v in generated.PixelSpacing] == pytest.approx([0.8, 0.8])
    pixels = generated.pixel_array / 65535.0
    levels = levels_of(contour, bone)[::2, ::2]
    assert pixels[levels == 1.0].mean() > pixels[levels == 0.5].mean() > pixels[levels == 0.0].mean()

    only_contour = write_seg(tmp_path / "contour_only.dcm", radiograph(128, 128), {"contour": contour})
    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "inference.json"))
    parser.update({"bundle_root": str(BUNDLE), "method": "unet", "input_segmentation": str(only_contour)})
    with pytest.raises(Exception) as caught:
        parser.get_parsed_content("datalist")
    assert "contour_only.dcm: DICOM SEG with no bone drawn" in str(first_orthogen_error(caught.value))
