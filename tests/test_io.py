"""orthogen.io: CT and radiograph readers/writers, their geometry, and their errors on bad input.

Every fixture is built in tmp_path by the tests themselves (pydicom, pynrrd, nibabel, Pillow).
"""
from __future__ import annotations

import json
import shutil
import warnings

import nibabel as nib
import nrrd
import numpy as np
import pydicom
import pytest
import torch
from monai.transforms import EnsureChannelFirst, Orientation
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGLSLossless

from orthogen.errors import InputError
from orthogen.io import (Radiograph, read_ct, read_radiograph, reorient_to_dicom_axial, write_dicom_ct_series,
                         write_nifti, write_png)

from dicom_builders import write_dx

SPACING = (0.8, 0.7, 2.5)
ORIGIN = (-12.3, 45.6, -78.9)


def ras_affine(spacing=SPACING, origin=ORIGIN, rotation=np.eye(3)) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag(spacing)
    affine[:3, 3] = origin
    return affine


def rotation_xyz(ax: float, ay: float, az: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def hu_volume(shape=(24, 20, 12), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1000.0, 2000.0, shape).astype(np.float32)


def series_files(folder) -> list:
    return sorted(folder.iterdir())


# --------------------------------------------------------------------------- DICOM CT series


def test_dicom_series_round_trip_values_affine_and_tags(tmp_path):
    volume, affine = hu_volume(), ras_affine()
    out = tmp_path / "series"
    series_uid = write_dicom_ct_series(volume, affine, out, series_number=7)

    files = series_files(out)
    assert len(files) == 12
    # read_ct must sort by position, not by file name: give the files names in reverse spatial order
    for i, f in enumerate(files):
        f.rename(out / f"img{len(files) - i:03d}")
    assert not any(f.name.startswith(".") for f in tmp_path.iterdir())  # no temporary left

    ct = read_ct(out)
    assert tuple(ct.shape) == (24, 20, 12) and ct.dtype == torch.float32
    assert ct.affine.dtype == torch.float64
    # written in the axial LPS layout: the RAS-diagonal volume comes back with X and Y flipped
    stored_volume, stored_affine = reorient_to_dicom_axial(volume, affine)
    np.testing.assert_array_equal(stored_volume, volume[::-1, ::-1, :])
    np.testing.assert_allclose(ct.affine.numpy(), stored_affine, atol=1e-4)
    assert np.max(np.abs(ct.numpy() - stored_volume)) <= 0.5 + 1e-4  # slope 1: rounding to whole HU
    np.testing.assert_allclose(ct.meta["spacing"], SPACING, atol=1e-6)
    assert ct.meta["filename_or_obj"] == str(out)

    datasets = [pydicom.dcmread(f) for f in series_files(out)]
    assert {ds.SeriesInstanceUID for ds in datasets} == {series_uid}
    assert len({ds.SOPInstanceUID for ds in datasets}) == 12
    assert len({ds.FrameOfReferenceUID for ds in datasets}) == 1
    assert sorted(int(ds.InstanceNumber) for ds in datasets) == list(range(1, 13))
    first = min(datasets, key=lambda ds: int(ds.InstanceNumber))
    assert first.SOPClassUID == pydicom.uid.CTImageStorage and first.Modality == "CT"
    assert (first.Rows, first.Columns) == (20, 24)
    assert [float(v) for v in first.PixelSpacing] == pytest.approx([0.7, 0.8])
    assert float(first.SliceThickness) == pytest.approx(2.5)
    assert float(first.SpacingBetweenSlices) == pytest.approx(2.5)
    assert (float(first.RescaleSlope), float(first.RescaleIntercept)) == (1.0, 0.0)
    # the first stored voxel is voxel (23, 19, 0): RAS (-12.3 + 23 * 0.8, 45.6 + 19 * 0.7, -78.9),
    # LPS (-6.1, -58.9, -78.9); rows run to the patient's left, columns to posterior
    assert [float(v) for v in first.ImagePositionPatient] == pytest.approx([-6.1, -58.9, -78.9])
    assert [float(v) for v in first.ImageOrientationPatient] == pytest.approx([1, 0, 0, 0, 1, 0])
    assert first.pixel_array.dtype == np.int16
    assert int(first.SeriesNumber) == 7 and first.PatientID == "ORTHOGEN"


def test_dicom_series_oblique_wide_range_uses_rescale_slope(tmp_path):
    volume = np.random.default_rng(1).uniform(-30000.0, 60000.0, (10, 9, 5)).astype(np.float32)
    affine = ras_affine(spacing=(0.6, 0.9, 1.7), origin=(100.0, -50.0, 20.0),
                        rotation=rotation_xyz(0.3, -0.2, 0.5))
    write_dicom_ct_series(torch.from_numpy(volume), torch.from_numpy(affine), tmp_path / "s")
    slope = float(pydicom.dcmread(series_files(tmp_path / "s")[0]).RescaleSlope)
    hu_range = float(volume.max()) - float(volume.min())  # ~90000 HU: more than int16 holds at slope 1
    assert hu_range / 65535 <= slope < 1.001 * hu_range / 65535

    ct = read_ct(tmp_path / "s")
    stored_volume, stored_affine = reorient_to_dicom_axial(volume, affine)
    np.testing.assert_allclose(ct.affine.numpy(), stored_affine, atol=1e-4)
    assert np.max(np.abs(ct.numpy() - stored_volume)) <= slope / 2 + 1e-3


def test_lps_reoriented_volume_is_written_in_the_usual_axial_layout(tmp_path):
    volume, affine = hu_volume((6, 5, 4)), ras_affine()
    write_nifti(volume, affine, tmp_path / "ct.nii.gz")
    to_lps = Orientation(axcodes="LPS", labels=None)
    lps = to_lps(EnsureChannelFirst()(read_ct(tmp_path / "ct.nii.gz")))
    write_dicom_ct_series(lps[0], lps.affine, tmp_path / "s")
    first = pydicom.dcmread(series_files(tmp_path / "s")[0])
    assert [float(v) for v in first.ImageOrientationPatient] == pytest.approx([1, 0, 0, 0, 1, 0])

    back = Orientation(axcodes="RAS", labels=None)(EnsureChannelFirst()(read_ct(tmp_path / "s")))
    np.testing.assert_allclose(back.affine.numpy(), affine, atol=1e-4)
    assert np.max(np.abs(back[0].numpy() - volume)) <= 0.5 + 1e-4


def test_second_series_joins_the_first_study(tmp_path):
    volume, affine = hu_volume((6, 5, 3)), ras_affine()
    first_uid = write_dicom_ct_series(volume, affine, tmp_path / "a")
    study_uid = pydicom.dcmread(series_files(tmp_path / "a")[0]).StudyInstanceUID
    second_uid = write_dicom_ct_series(volume, affine, tmp_path / "b", study_instance_uid=study_uid,
                                       series_description="generated")
    second = pydicom.dcmread(series_files(tmp_path / "b")[0])
    assert second.StudyInstanceUID == study_uid
    assert second.SeriesInstanceUID == second_uid != first_uid
    assert second.SeriesDescription == "generated"
    write_dicom_ct_series(volume, affine, tmp_path / "c")  # no study given: a new study
    assert pydicom.dcmread(series_files(tmp_path / "c")[0]).StudyInstanceUID != study_uid


# --------------------------------------------------------------------------- NIfTI and NRRD


@pytest.mark.parametrize("name", ["ct.nii", "ct.nii.gz"])
def test_nifti_round_trip_keeps_oblique_affine(tmp_path, name):
    volume = hu_volume((7, 6, 5))
    affine = ras_affine(rotation=rotation_xyz(0.1, 0.4, -0.3))
    path = write_nifti(torch.from_numpy(volume), affine, tmp_path / "sub" / name)
    assert path == tmp_path / "sub" / name and path.is_file()
    ct = read_ct(path)
    np.testing.assert_array_equal(ct.numpy(), volume)
    np.testing.assert_allclose(ct.affine.numpy(), affine, atol=1e-4)
    np.testing.assert_allclose(ct.meta["spacing"], SPACING, atol=1e-5)
    assert ct.meta["original_channel_dim"] == "no_channel"


def test_nifti_keeps_integer_label_maps(tmp_path):
    labels = np.random.default_rng(2).integers(0, 5, (4, 4, 3))  # int64
    write_nifti(labels, np.eye(4), tmp_path / "labels.nii.gz")
    stored = nib.load(tmp_path / "labels.nii.gz")
    assert np.issubdtype(stored.get_data_dtype(), np.integer)
    np.testing.assert_array_equal(np.asarray(stored.dataobj), labels)


def test_nrrd_in_lps_gives_the_ras_affine(tmp_path):
    data = np.arange(5 * 4 * 3, dtype=np.int16).reshape(5, 4, 3) - 20
    header = {"space": "left-posterior-superior",
              "space directions": np.array([[0.8, 0.0, 0.0], [0.0, 0.7, 0.0], [0.0, 0.3, 2.5]]),
              "space origin": np.array([10.0, 20.0, 30.0])}
    nrrd.write(str(tmp_path / "ct.nrrd"), data, header)
    ct = read_ct(tmp_path / "ct.nrrd")
    np.testing.assert_array_equal(ct.numpy(), data.astype(np.float32))
    expected = np.array([[-0.8, 0.0, 0.0, -10.0],
                         [0.0, -0.7, -0.3, -20.0],
                         [0.0, 0.0, 2.5, 30.0],
                         [0.0, 0.0, 0.0, 1.0]])
    np.testing.assert_allclose(ct.affine.numpy(), expected, atol=1e-9)


def test_detached_nrrd_in_ras_keeps_its_affine(tmp_path):
    data = np.random.default_rng(3).normal(size=(3, 4, 5)).astype(np.float32)
    header = {"space": "RAS", "space directions": np.diag([1.5, 2.0, 3.0]),
              "space origin": np.array([-1.0, -2.0, -3.0])}
    nrrd.write(str(tmp_path / "ct.nhdr"), data, header, detached_header=True)
    ct = read_ct(tmp_path / "ct.nhdr")
    np.testing.assert_array_equal(ct.numpy(), data)
    np.testing.assert_allclose(ct.affine.numpy(), ras_affine((1.5, 2.0, 3.0), (-1.0, -2.0, -3.0)))


# --------------------------------------------------------------------------- radiographs


def bone_pattern(shape=(16, 20)) -> np.ndarray:
    """Attenuation-like pattern in [0,1]: a soft-tissue ramp with a bright 'bone' block."""
    rows, cols = np.mgrid[:shape[0], :shape[1]]
    pattern = 0.2 + 0.3 * cols / (shape[1] - 1)
    pattern[5:11, 8:14] = 1.0
    pattern[0, 0] = 0.0
    return pattern


@pytest.mark.parametrize("dtype,bits_stored", [(np.uint8, 8), (np.uint16, 12), (np.uint16, 16)])
def test_monochrome1_and_monochrome2_give_the_same_bone_bright_image(tmp_path, dtype, bits_stored):
    top = 2 ** bits_stored - 1
    attenuation = np.rint(bone_pattern() * top).astype(dtype)
    spacing = {"ImagerPixelSpacing": [0.2, 0.3]}
    mono2 = write_dx(tmp_path / "m2.dcm", attenuation, photometric="MONOCHROME2",
                     bits_stored=bits_stored, **spacing)
    mono1 = write_dx(tmp_path / "m1.dcm", (top - attenuation).astype(dtype),
                     photometric="MONOCHROME1", bits_stored=bits_stored, **spacing)
    expected = attenuation / top
    for path in (mono1, mono2):
        radiograph = read_radiograph(path)
        assert isinstance(radiograph, Radiograph) and radiograph.source == str(path)
        assert radiograph.image.dtype == np.float32 and radiograph.image.shape == (16, 20)
        np.testing.assert_allclose(radiograph.image, expected, atol=1e-6)
        assert radiograph.image[8, 10] == 1.0 > radiograph.image[8, 2]  # bone brighter than soft tissue
        assert radiograph.pixel_spacing_mm == (0.2, 0.3)


def test_rescale_then_window_are_applied(tmp_path):
    stored = np.arange(16 * 20, dtype=np.uint16).reshape(16, 20) * 10  # 0..3190
    center, width, slope, intercept = 1500.0, 2001.0, 2.0, -1000.0
    path = write_dx(tmp_path / "w.dcm", stored, bits_stored=12, RescaleSlope=slope,
                    RescaleIntercept=intercept, WindowCenter=center, WindowWidth=width,
                    PixelSpacing=[0.5, 0.5])
    values = slope * stored + intercept  # -1000..5380: below and above the window [500, 2500]
    expected = np.clip((values - (center - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)  # DICOM linear VOI
    radiograph = read_radiograph(path)
    np.testing.assert_allclose(radiograph.image, expected, atol=1e-6)
    assert radiograph.image[6, 5] == pytest.approx(0.50025)  # stored 1250 -> 1500 HU-like, the centre
    assert radiograph.pixel_spacing_mm == (0.5, 0.5)


def test_pixel_spacing_wins_and_missing_spacing_is_none(tmp_path):
    image = np.rint(bone_pattern() * 255).astype(np.uint8)
    both = write_dx(tmp_path / "both.dcm", image, ImagerPixelSpacing=[0.15, 0.16],
                    PixelSpacing=[0.1, 0.1])
    assert read_radiograph(both).pixel_spacing_mm == (0.1, 0.1)
    zero_imager = write_dx(tmp_path / "zero.dcm", image, ImagerPixelSpacing=[0, 0],
                           PixelSpacing=[0.12, 0.13])
    assert read_radiograph(zero_imager).pixel_spacing_mm == (0.12, 0.13)

    none = write_dx(tmp_path / "nospacing.dcm", image)
    assert read_radiograph(none).pixel_spacing_mm is None
    radiograph = read_radiograph(none, pixel_spacing_mm=(0.25, 0.4))
    assert radiograph.pixel_spacing_mm == (0.25, 0.4)
    with pytest.raises(InputError, match="pixel_spacing_mm"):
        read_radiograph(none, pixel_spacing_mm=(0.0, 1.0))


#: SOP classes of what may be handed over as a radiograph by mistake, or by right.
_SOP_CLASSES = {"MR": "1.2.840.10008.5.1.4.1.1.4", "CT": "1.2.840.10008.5.1.4.1.1.2",
                "US": "1.2.840.10008.5.1.4.1.1.6.1", "MG": "1.2.840.10008.5.1.4.1.1.1.2",
                "CR": "1.2.840.10008.5.1.4.1.1.1", "RF": "1.2.840.10008.5.1.4.1.1.12.2",
                "XA": "1.2.840.10008.5.1.4.1.1.12.1", "SC": "1.2.840.10008.5.1.4.1.1.7", "OT": "1.2.840.10008.5.1.4.1.1.7"}


@pytest.mark.parametrize("modality, name", [("MR", "magnetic resonance"), ("CT", "computed tomography"),
                                            ("US", "ultrasound"), ("MG", "mammography")])
def test_an_image_of_another_modality_is_not_a_radiograph(tmp_path, modality, name):
    path = write_dx(tmp_path / f"{modality}.dcm", np.full((16, 16), 300, np.uint16), modality=modality,
                    sop_class=_SOP_CLASSES[modality], pixel_spacing=(0.5, 0.5))
    with pytest.raises(InputError) as caught:
        read_radiograph(path)
    assert str(caught.value) == (f"{path}: not a radiograph: Modality {modality} ({name}); expected a projection "
                                 "radiograph (Modality CR, DX, RF, XA) or a grey secondary capture (SC / OT)")
    with pytest.raises(InputError, match="not a radiograph"):  # a spacing given by hand does not make it one
        read_radiograph(path, pixel_spacing_mm=(0.5, 0.5))


@pytest.mark.parametrize("modality", ["CR", "DX", "RF", "XA", "SC", "OT", None])
def test_radiograph_modalities_and_grey_secondary_captures_are_read(tmp_path, modality):
    pixels = np.arange(256, dtype=np.uint16).reshape(16, 16)
    path = write_dx(tmp_path / "film.dcm", pixels, modality=modality or "DX",
                    sop_class=_SOP_CLASSES.get(modality or "CR"), pixel_spacing=(0.5, 0.5))
    if modality is None:  # older exports leave Modality out
        ds = pydicom.dcmread(path)
        del ds.Modality
        ds.save_as(path)
    radiograph = read_radiograph(path)
    assert radiograph.image.ndim == 2 and radiograph.pixel_spacing_mm == (0.5, 0.5)



@pytest.mark.parametrize("bit_depth,mode,top", [(8, "L", 255), (16, "I;16", 65535)])
def test_png_round_trip(tmp_path, bit_depth, mode, top):
    image = bone_pattern()
    path = write_png(torch.from_numpy(image), tmp_path / "out" / "x.png", bit_depth=bit_depth)
    with Image.open(path) as png:
        assert png.mode == mode
        np.testing.assert_array_equal(np.asarray(png), np.rint(image * top))
    radiograph = read_radiograph(path, pixel_spacing_mm=(0.3, 0.3))
    np.testing.assert_allclose(radiograph.image, image, atol=0.5 / top + 1e-7)
    assert radiograph.pixel_spacing_mm == (0.3, 0.3)


def test_rgb_png_is_read_as_luminance(tmp_path):
    rgb = np.zeros((2, 3, 3), dtype=np.uint8)
    rgb[0, 0] = (255, 0, 0)
    rgb[0, 1] = (0, 255, 0)
    rgb[0, 2] = (0, 0, 255)
    rgb[1, :] = (102, 102, 102)
    Image.fromarray(rgb, mode="RGB").save(tmp_path / "rgb.png")
    image = read_radiograph(tmp_path / "rgb.png").image
    np.testing.assert_allclose(image, [[0.299, 0.587, 0.114], [0.4, 0.4, 0.4]], atol=1e-6)


def test_jpeg_grayscale(tmp_path):
    image = np.rint(np.tile(np.linspace(0, 255, 32), (24, 1))).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "x.jpg", quality=95)
    radiograph = read_radiograph(tmp_path / "x.jpg")
    assert radiograph.image.shape == (24, 32)
    np.testing.assert_allclose(radiograph.image, image / 255.0, atol=4 / 255)


def test_npy_with_and_without_sidecar_spacing(tmp_path):
    drr = bone_pattern().astype(np.float32)
    np.save(tmp_path / "drr_ap.npy", drr)
    (tmp_path / "drr_ap.json").write_text(json.dumps({"pixel_spacing_mm": [0.6, 0.7]}))
    radiograph = read_radiograph(tmp_path / "drr_ap.npy")
    np.testing.assert_array_equal(radiograph.image, drr)
    assert radiograph.pixel_spacing_mm == (0.6, 0.7)

    np.save(tmp_path / "drr_lateral.npy", drr)
    assert read_radiograph(tmp_path / "drr_lateral.npy").pixel_spacing_mm is None

    (tmp_path / "drr_ap.json").write_text("{not json")
    with pytest.raises(InputError, match="drr_ap.json"):
        read_radiograph(tmp_path / "drr_ap.npy")


def test_2d_nifti_radiograph_takes_spacing_from_affine(tmp_path):
    image = bone_pattern()
    write_nifti(image, np.diag([0.5, 0.25, 1.0, 1.0]), tmp_path / "drr.nii.gz")
    radiograph = read_radiograph(tmp_path / "drr.nii.gz")
    np.testing.assert_allclose(radiograph.image, image, atol=1e-7)
    assert radiograph.pixel_spacing_mm == pytest.approx((0.5, 0.25))


# --------------------------------------------------------------------------- bad input


def truncated_copy(source, target, keep_fraction=0.6):
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * keep_fraction)])
    return target


def expect_input_error(call, path, match=None):
    with pytest.raises(InputError) as caught:
        call(path)
    assert path.name in str(caught.value)
    if match:
        assert caught.match(match)
    return caught.value


def test_missing_empty_and_unknown_files(tmp_path):
    expect_input_error(read_ct, tmp_path / "nope.nii.gz", "not found")
    expect_input_error(read_radiograph, tmp_path / "nope.png", "not found")
    for name in ("empty.nii.gz", "empty.nrrd"):
        (tmp_path / name).write_bytes(b"")
        expect_input_error(read_ct, tmp_path / name, "empty")
    for name in ("empty.dcm", "empty.png", "empty.npy"):
        (tmp_path / name).write_bytes(b"")
        expect_input_error(read_radiograph, tmp_path / name, "empty")
    (tmp_path / "ct.mha").write_bytes(b"ObjectType = Image\n")
    expect_input_error(read_ct, tmp_path / "ct.mha", "unknown")
    (tmp_path / "x.bmp").write_bytes(b"BM" + bytes(64))
    expect_input_error(read_radiograph, tmp_path / "x.bmp", "unknown")


def test_truncated_or_corrupt_files(tmp_path):
    volume = hu_volume((8, 8, 8))
    for name in ("full.nii", "full.nii.gz"):
        write_nifti(volume, np.eye(4), tmp_path / name)
        expect_input_error(read_ct, truncated_copy(tmp_path / name, tmp_path / f"cut_{name}"),
                           "NIfTI")
    nrrd.write(str(tmp_path / "full.nrrd"), volume, {"encoding": "raw"})
    expect_input_error(read_ct, truncated_copy(tmp_path / "full.nrrd", tmp_path / "cut.nrrd"), "NRRD")

    write_png(bone_pattern(), tmp_path / "full.png")
    expect_input_error(read_radiograph, truncated_copy(tmp_path / "full.png", tmp_path / "cut.png"))

    write_dx(tmp_path / "full.dcm", np.zeros((64, 64), np.uint16), bits_stored=12)
    expect_input_error(read_radiograph, truncated_copy(tmp_path / "full.dcm", tmp_path / "cut.dcm", 0.9),
                       "pixel data")
    (tmp_path / "junk.dcm").write_bytes(b"this is not a DICOM file" * 10)
    expect_input_error(read_radiograph, tmp_path / "junk.dcm", "DICOM")

    np.save(tmp_path / "full.npy", bone_pattern())
    expect_input_error(read_radiograph, truncated_copy(tmp_path / "full.npy", tmp_path / "cut.npy"))


def test_wrong_dimensionality(tmp_path):
    write_nifti(bone_pattern(), np.eye(4), tmp_path / "image2d.nii.gz")
    expect_input_error(read_ct, tmp_path / "image2d.nii.gz", "3D")
    write_nifti(hu_volume((4, 4, 4)), np.eye(4), tmp_path / "ct3d.nii.gz")
    expect_input_error(read_radiograph, tmp_path / "ct3d.nii.gz", "2D")
    np.save(tmp_path / "stack.npy", np.zeros((2, 8, 8)))
    expect_input_error(read_radiograph, tmp_path / "stack.npy", "2D")
    frames = write_dx(tmp_path / "frames.dcm", np.zeros((3, 8, 8), np.uint8), NumberOfFrames=3)
    expect_input_error(read_radiograph, frames, "2D")
    np.save(tmp_path / "bright.npy", np.full((4, 4), 2.0))
    expect_input_error(read_radiograph, tmp_path / "bright.npy", r"\[0, 1\]")


def test_compressed_dicom_without_decoder_names_the_transfer_syntax(tmp_path):
    path = write_dx(tmp_path / "jpegls.dcm", np.zeros((8, 8), np.uint16),
                    transfer_syntax=JPEGLSLossless)
    expect_input_error(read_radiograph, path, "JPEG-LS")

    write_dicom_ct_series(hu_volume((6, 5, 4)), ras_affine(), tmp_path / "series")
    slice_file = series_files(tmp_path / "series")[2]
    ds = pydicom.dcmread(slice_file)
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xf7" + bytes(64)])
    ds["PixelData"].is_undefined_length = True
    ds.save_as(slice_file, write_like_original=False)
    error = expect_input_error(read_ct, tmp_path / "series", "JPEG-LS")
    assert slice_file.name in str(error)


def test_bad_dicom_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    expect_input_error(read_ct, tmp_path / "empty", "no DICOM")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no images here")
    expect_input_error(read_ct, tmp_path / "notes", "no DICOM")

    affine = ras_affine()
    write_dicom_ct_series(hu_volume((6, 5, 4)), affine, tmp_path / "a")
    write_dicom_ct_series(hu_volume((6, 5, 4)), affine, tmp_path / "b")
    write_dicom_ct_series(hu_volume((7, 5, 4)), affine, tmp_path / "c")

    mixed_series = tmp_path / "mixed_series"
    shutil.copytree(tmp_path / "a", mixed_series)
    shutil.copy(series_files(tmp_path / "b")[0], mixed_series / "from_b.dcm")
    expect_input_error(read_ct, mixed_series, "mixed series")

    mixed_sizes = tmp_path / "mixed_sizes"
    shutil.copytree(tmp_path / "a", mixed_sizes)
    other = pydicom.dcmread(series_files(tmp_path / "c")[0])
    other.SeriesInstanceUID = pydicom.dcmread(series_files(mixed_sizes)[0]).SeriesInstanceUID
    other.save_as(mixed_sizes / "bigger.dcm")
    expect_input_error(read_ct, mixed_sizes, "image sizes")

    gap = tmp_path / "gap"
    shutil.copytree(tmp_path / "a", gap)
    series_files(gap)[1].unlink()
    expect_input_error(read_ct, gap, "non-uniform slice spacing")

    broken = tmp_path / "broken"
    shutil.copytree(tmp_path / "a", broken)
    (broken / "slice_0002.dcm").write_bytes(b"garbage" * 50)
    error = expect_input_error(read_ct, broken, "not a readable DICOM")
    assert "slice_0002.dcm" in str(error)

    expect_input_error(read_ct, series_files(tmp_path / "a")[0], "folder")


# --------------------------------------------------------------------------- writers: atomic, checked


def test_failed_dicom_series_write_leaves_nothing(tmp_path, monkeypatch):
    calls = {"n": 0}
    original = pydicom.dataset.Dataset.save_as

    def failing_save_as(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pydicom.dataset.Dataset, "save_as", failing_save_as)
    with pytest.raises(OSError, match="disk full"):
        write_dicom_ct_series(hu_volume((6, 5, 4)), ras_affine(), tmp_path / "series")
    assert calls["n"] == 3
    assert list(tmp_path.iterdir()) == []


def test_dicom_series_writer_rejects_bad_arguments(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    expect_input_error(lambda p: write_dicom_ct_series(hu_volume((4, 4, 3)), ras_affine(), p),
                       tmp_path / "taken", "not empty")
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"

    with_nan = hu_volume((4, 4, 3))
    with_nan[1, 1, 1] = np.nan
    with pytest.raises(InputError, match="volume_hu"):
        write_dicom_ct_series(with_nan, ras_affine(), tmp_path / "nan")
    sheared = ras_affine()
    sheared[0, 1] = 0.5
    with pytest.raises(InputError, match="affine"):
        write_dicom_ct_series(hu_volume((4, 4, 3)), sheared, tmp_path / "sheared")
    with pytest.raises(InputError, match="volume_hu"):
        write_dicom_ct_series(np.zeros((4, 4)), ras_affine(), tmp_path / "flat")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_failed_nifti_and_png_writes_keep_the_old_file(tmp_path, monkeypatch):
    old_ct = hu_volume((4, 4, 4))
    write_nifti(old_ct, np.eye(4), tmp_path / "ct.nii.gz")
    write_png(bone_pattern(), tmp_path / "x.png")
    old_png = (tmp_path / "x.png").read_bytes()

    def half_write(path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"\x1f\x8b partial")
        raise OSError("disk full")

    monkeypatch.setattr(nib, "save", lambda image, path: half_write(path))
    with pytest.raises(OSError, match="disk full"):
        write_nifti(np.zeros((4, 4, 4)), np.eye(4), tmp_path / "ct.nii.gz")
    monkeypatch.setattr(Image.Image, "save", lambda self, path, **kwargs: half_write(path))
    with pytest.raises(OSError, match="disk full"):
        write_png(np.zeros((4, 4)), tmp_path / "x.png")

    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct.nii.gz", "x.png"]
    np.testing.assert_array_equal(read_ct(tmp_path / "ct.nii.gz").numpy(), old_ct)
    assert (tmp_path / "x.png").read_bytes() == old_png


def test_writers_reject_bad_images(tmp_path):
    with pytest.raises(InputError, match="image"):
        write_png(np.full((4, 4), 1.5), tmp_path / "x.png")
    with pytest.raises(InputError, match="bit_depth"):
        write_png(np.zeros((4, 4)), tmp_path / "x.png", bit_depth=12)
    with pytest.raises(InputError, match="x.jpg"):
        write_png(np.zeros((4, 4)), tmp_path / "x.jpg")
    with pytest.raises(InputError, match="ct.nrrd"):
        write_nifti(np.zeros((4, 4, 4)), np.eye(4), tmp_path / "ct.nrrd")
    with pytest.raises(InputError, match="volume"):
        write_nifti(np.zeros((2, 2, 2, 2, 2)), np.eye(4), tmp_path / "ct.nii")
    assert list(tmp_path.iterdir()) == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a valid write warns about nothing
        write_png(np.array([[0.0, 1.0 + 1e-9]]), tmp_path / "edge.png")
    with Image.open(tmp_path / "edge.png") as png:
        assert np.asarray(png).tolist() == [[0, 255]]
