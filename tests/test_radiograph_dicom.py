"""orthogen.io.read_radiograph on DICOM: compressed transfer syntaxes, the pixel spacing rules, refusals.

Compressed fixtures: the files inside the pydicom 2.4.4 wheel (``get_testdata_file(..., download=False)``,
never a download), and DX files made here, transcoded by python-gdcm's ImageChangeTransferSyntax
(JPEG Lossless process 14 selection value 1 among them). Every lossless decode is compared exactly with
uncompressed pixels, once per installed decoder that claims the transfer syntax.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import gdcm
import numpy as np
import pydicom
import pydicom.config
import pytest
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate, generate_pixel_data_frame
from pydicom.uid import UID, JPEG2000Lossless, JPEGLosslessP14, JPEGLosslessSV1, JPEGLSLossless, RLELossless

from orthogen.errors import InputError
from orthogen.io import Radiograph, read_radiograph
from orthogen.io.dicom_file import decode_pixel_array, decoders_for, read_dicom_file

from dicom_builders import write_dx

#: transfer syntax -> the name of gdcm.TransferSyntax's constant that encodes it (all lossless).
GDCM_SYNTAXES = {
    JPEGLosslessSV1: "JPEGLosslessProcess14_1",
    JPEGLosslessP14: "JPEGLosslessProcess14",
    JPEGLSLossless: "JPEGLSLossless",
    JPEG2000Lossless: "JPEG2000Lossless",
    RLELossless: "RLELossless",
}


# --------------------------------------------------------------------------- helpers


def pydicom_file(name: str) -> Path:
    """A test file shipped inside the pydicom wheel (no download)."""
    path = get_testdata_file(name, download=False)
    assert path is not None, f"{name} is not in the pydicom wheel"
    return Path(path)


def copied(name: str, folder: Path) -> Path:
    """The pydicom test file as a radiograph would come: its pixel data untouched (compressed as shipped), its
    Modality DX (the wheel's files are MR, NM and RTDOSE images, which the reader refuses as radiographs)."""
    dataset = pydicom.dcmread(pydicom_file(name))
    dataset.Modality = "DX"
    dataset.save_as(folder / name)
    return folder / name


def test_the_pydicom_files_as_they_ship_are_refused_as_radiographs(tmp_path):
    path = Path(shutil.copy(pydicom_file("MR_small.dcm"), tmp_path / "MR_small.dcm"))
    one_line_error(read_radiograph, path, match=r"MR_small\.dcm: not a radiograph: Modality MR")


def handler_module_names(transfer_syntax) -> list[str]:
    """Names convert_pixel_data(handler_name=...) takes, for every installed decoder of the syntax."""
    names = [handler.__name__.rsplit(".", 1)[-1] for handler in pydicom.config.pixel_data_handlers
             if handler.supports_transfer_syntax(UID(transfer_syntax)) and handler.is_available()]
    assert names, f"no decoder for {transfer_syntax}"
    return names


def decode_with_each_decoder(path: Path) -> dict[str, np.ndarray]:
    """{handler: pixel array} decoded by each installed handler alone; a handler that declines the file
    by design (NotImplementedError, e.g. Pillow on 12-bit JPEG) is left out; at least one must decode."""
    transfer_syntax = pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
    arrays = {}
    for name in handler_module_names(transfer_syntax):
        dataset = pydicom.dcmread(path)
        try:
            dataset.convert_pixel_data(handler_name=name)
        except NotImplementedError:
            continue
        arrays[name] = dataset.pixel_array
    assert arrays, f"no decoder decoded {path.name}"
    return arrays


def gdcm_transcode(source: Path, target: Path, transfer_syntax) -> Path:
    """``source`` re-encoded by python-gdcm in ``transfer_syntax`` (a key of GDCM_SYNTAXES)."""
    reader = gdcm.ImageReader()
    reader.SetFileName(str(source))
    assert reader.Read()
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(getattr(gdcm.TransferSyntax, GDCM_SYNTAXES[transfer_syntax])))
    change.SetInput(reader.GetImage())
    assert change.Change()
    writer = gdcm.ImageWriter()
    writer.SetFileName(str(target))
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    assert writer.Write()
    assert pydicom.dcmread(target, stop_before_pixels=True).file_meta.TransferSyntaxUID == transfer_syntax
    return target


def jpeg_lossless_predictor(path: Path) -> int:
    """The predictor (selection value) of the first scan of the file's first frame; asserts SOF3."""
    dataset = pydicom.dcmread(path)
    frame = next(generate_pixel_data_frame(dataset.PixelData))
    assert frame[:2] == b"\xff\xd8" and b"\xff\xc3" in frame  # SOI, SOF3 = lossless Huffman
    sos = frame.index(b"\xff\xda")
    components = frame[sos + 4]
    return frame[sos + 5 + 2 * components]  # Ss after the component list


def twelve_bit_pattern(shape=(48, 40), seed=0) -> np.ndarray:
    """A 12-bit radiograph-like image: a ramp, a bright block, noise, and both extremes."""
    rows, cols = np.mgrid[:shape[0], :shape[1]]
    image = 600 + 1500 * cols / (shape[1] - 1) + np.random.default_rng(seed).integers(0, 200, shape)
    image[10:30, 12:28] = 3900
    image[0, 0], image[-1, -1] = 0, 4095
    return image.astype(np.uint16)


def one_line_error(call, *args, match: str, **kwargs) -> InputError:
    with pytest.raises(InputError, match=match) as caught:
        call(*args, **kwargs)
    assert "\n" not in str(caught.value)
    return caught.value


# --------------------------------------------------------------------------- pydicom's compressed files


@pytest.mark.parametrize("compressed,reference", [
    ("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm"),   # JPEG-LS lossless, signed 16 bit
    ("MR_small_jp2klossless.dcm", "MR_small.dcm"),       # JPEG 2000 lossless
    ("MR_small_RLE.dcm", "MR_small.dcm"),                # RLE
    ("rtdose_rle_1frame.dcm", "rtdose_1frame.dcm"),      # RLE, 32 bit
    ("rtdose_rle.dcm", "rtdose.dcm"),                    # RLE, 15 frames
    ("SC_rgb_jpeg_gdcm.dcm", "SC_rgb_rle.dcm"),          # JPEG Lossless SV1 (RGB) vs RLE of the same image
    ("SC_rgb_gdcm_KY.dcm", "SC_rgb_rle.dcm"),            # JPEG 2000 (RGB) vs RLE of the same image
])
def test_lossless_pydicom_files_decode_exactly_with_every_decoder(compressed, reference):
    path = pydicom_file(compressed)
    expected = pydicom.dcmread(pydicom_file(reference)).pixel_array
    arrays = decode_with_each_decoder(path)
    for handler, array in arrays.items():
        assert array.dtype == expected.dtype, handler
        np.testing.assert_array_equal(array, expected, err_msg=handler)
    np.testing.assert_array_equal(decode_pixel_array(read_dicom_file(path), path), expected)


@pytest.mark.parametrize("name,shape", [
    ("JPEG-lossy.dcm", (1024, 256)),                # JPEG extended 12 bit (libjpeg refuses it; GDCM decodes)
    ("JPGExtended.dcm", (1024, 256)),               # JPEG extended 12 bit
    ("JPEG2000.dcm", (1024, 256)),                  # JPEG 2000 (lossy allowed)
    ("693_J2KI.dcm", (512, 512)),                   # JPEG 2000, signed 14 bit
    ("SC_jpeg_no_color_transform.dcm", (256, 256, 3)),  # JPEG baseline RGB
    ("SC_rgb_jpeg_dcmtk.dcm", (100, 100, 3)),       # JPEG baseline YBR
    ("SC_rgb_small_odd_jpeg.dcm", (3, 3, 3)),       # JPEG baseline, odd size
])
def test_lossy_pydicom_files_decode(name, shape):
    path = pydicom_file(name)
    array = decode_pixel_array(read_dicom_file(path), path)
    assert array.shape == shape and np.ptp(array) > 0


def test_jpeg_extended_files_agree_across_decoders():
    """JPEG-lossy.dcm and JPGExtended.dcm hold the same 12-bit image; decoders differ by IDCT rounding."""
    lossy = decode_pixel_array(read_dicom_file(pydicom_file("JPEG-lossy.dcm")), "JPEG-lossy.dcm")
    arrays = decode_with_each_decoder(pydicom_file("JPGExtended.dcm"))
    assert {"gdcm_handler", "pylibjpeg_handler"} <= set(arrays)
    for handler, array in arrays.items():
        assert np.abs(array.astype(np.int32) - lossy).max() <= 1, handler


@pytest.mark.parametrize("compressed", ["MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm",
                                        "MR_small_RLE.dcm"])
def test_read_radiograph_reads_compressed_pydicom_files_like_the_uncompressed_one(tmp_path, compressed):
    reference = read_radiograph(copied("MR_small.dcm", tmp_path))
    radiograph = read_radiograph(copied(compressed, tmp_path))
    np.testing.assert_array_equal(radiograph.image, reference.image)
    assert radiograph.pixel_spacing_mm == reference.pixel_spacing_mm == (0.3125, 0.3125)
    assert radiograph.spacing_source == "PixelSpacing"


def test_read_radiograph_reads_a_lossy_jpeg_extended_file(tmp_path):
    radiograph = read_radiograph(copied("JPGExtended.dcm", tmp_path))
    assert radiograph.image.shape == (1024, 256)
    assert radiograph.image.min() == 0.0 and radiograph.image.max() == 1.0


# --------------------------------------------------------------------------- compressed files made here


@pytest.mark.parametrize("transfer_syntax", list(GDCM_SYNTAXES), ids=lambda uid: uid.name)
def test_dx_compressed_here_reads_exactly_like_the_uncompressed_file(tmp_path, transfer_syntax):
    stored = twelve_bit_pattern()
    plain = write_dx(tmp_path / "plain.dcm", stored, bits_stored=12, photometric="MONOCHROME1",
                     ImagerPixelSpacing=[0.139, 0.14], EstimatedRadiographicMagnificationFactor=1.1)
    compressed = gdcm_transcode(plain, tmp_path / "compressed.dcm", transfer_syntax)
    if transfer_syntax == JPEGLosslessSV1:
        assert jpeg_lossless_predictor(compressed) == 1

    arrays = decode_with_each_decoder(compressed)
    assert "pylibjpeg_handler" in arrays and (transfer_syntax == RLELossless or "gdcm_handler" in arrays)
    for handler, array in arrays.items():
        np.testing.assert_array_equal(array, stored, err_msg=handler)
    np.testing.assert_array_equal(decode_pixel_array(read_dicom_file(compressed), compressed), stored)

    expected, radiograph = read_radiograph(plain), read_radiograph(compressed)
    np.testing.assert_array_equal(radiograph.image, expected.image)
    np.testing.assert_allclose(radiograph.image, (4095 - stored) / 4095, atol=1e-6)  # MONOCHROME1 inverted
    assert radiograph.pixel_spacing_mm == pytest.approx((0.139 / 1.1, 0.14 / 1.1))
    assert radiograph.spacing_source == "ImagerPixelSpacing / EstimatedRadiographicMagnificationFactor 1.1"


def test_jpeg_lossless_sv1_has_two_decoders():
    """Process 14 SV1 is the common CR/DX archive syntax: both GDCM and pylibjpeg must decode it."""
    assert decoders_for(JPEGLosslessSV1) == ["GDCM", "pylibjpeg"]
    assert "pylibjpeg" in decoders_for(JPEGLSLossless) and "pylibjpeg" in decoders_for(JPEG2000Lossless)
    assert "pylibjpeg" in decoders_for(RLELossless)


# --------------------------------------------------------------------------- what cannot be read


@pytest.mark.parametrize("uid,shown", [
    ("1.2.840.10008.1.2.4.100", r"MPEG2 Main Profile / Main Level \(1\.2\.840\.10008\.1\.2\.4\.100\)"),
    ("1.2.840.10008.1.2.4.201", r"High-Throughput JPEG 2000 Image Compression \(Lossless Only\) "
                                r"\(1\.2\.840\.10008\.1\.2\.4\.201\)"),
    ("1.2.3.4.5", r"unknown transfer syntax 1\.2\.3\.4\.5"),
])
def test_transfer_syntax_without_decoder_is_one_line_naming_it(tmp_path, uid, shown):
    path = copied("MR_small.dcm", tmp_path)
    dataset = pydicom.dcmread(path)
    dataset.file_meta.TransferSyntaxUID = uid
    error = one_line_error(decode_pixel_array, dataset, path, match=shown + ", which no installed decoder")
    assert str(error).startswith(f"{path}: pixel data is in ")

    dataset.PixelData = encapsulate([bytes(64)])
    dataset["PixelData"].is_undefined_length = True
    mpeg2 = "1.2.840.10008.1.2.4.100"  # pydicom 2.4 cannot write syntaxes it does not know: patch the UID
    writable = uid if UID(uid).name != uid or UID(uid).is_private else mpeg2
    dataset.file_meta.TransferSyntaxUID = writable
    dataset.save_as(path, write_like_original=False)
    if writable != uid:
        place_text(path, writable, uid)
    assert pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID == uid
    one_line_error(read_radiograph, path, match=shown)


def test_corrupt_compressed_data_is_one_line_naming_the_syntax(tmp_path):
    path = write_dx(tmp_path / "corrupt.dcm", twelve_bit_pattern(), bits_stored=12)
    dataset = pydicom.dcmread(path)
    dataset.file_meta.TransferSyntaxUID = JPEGLosslessSV1
    dataset.PixelData = encapsulate([b"\xff\xd8\xff\xc3" + bytes(64)])
    dataset["PixelData"].is_undefined_length = True
    dataset.save_as(path, write_like_original=False)
    error = one_line_error(read_radiograph, path, match=r"cannot decode the pixel data in JPEG Lossless, "
                           r"Non-Hierarchical, First-Order Prediction .*\(1\.2\.840\.10008\.1\.2\.4\.70\)")
    assert "corrupt" in str(error) and str(error).startswith(str(path))


def test_truncated_compressed_file_is_one_line(tmp_path):
    data = copied("MR_small_jpeg_ls_lossless.dcm", tmp_path).read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: int(len(data) * 0.9)])
    one_line_error(read_radiograph, cut, match=r"cut\.dcm: no pixel data; expected an image")


def test_rgb_dicom_is_refused_in_one_line(tmp_path):
    error = one_line_error(read_radiograph, copied("SC_rgb_jpeg_dcmtk.dcm", tmp_path),
                           match=r"colour DICOM \(SamplesPerPixel 3, PhotometricInterpretation YBR_FULL\); "
                                 r"expected a grayscale radiograph")
    assert "SC_rgb_jpeg_dcmtk.dcm" in str(error)
    rgb = write_dx(tmp_path / "rgb.dcm", np.zeros((8, 8, 3), np.uint8), photometric="RGB")
    one_line_error(read_radiograph, rgb, match=r"rgb\.dcm: colour DICOM \(SamplesPerPixel 3, "
                                               r"PhotometricInterpretation RGB\)")


def test_palette_colour_dicom_is_refused_in_one_line(tmp_path):
    path = write_dx(tmp_path / "palette.dcm", np.zeros((8, 8), np.uint8), photometric="PALETTE COLOR")
    one_line_error(read_radiograph, path, match=r"palette\.dcm: PhotometricInterpretation PALETTE COLOR; "
                                                r"expected a grayscale radiograph")


def test_multi_frame_dicom_is_refused_in_one_line(tmp_path):
    one_line_error(read_radiograph, copied("rtdose_rle.dcm", tmp_path),
                   match=r"rtdose_rle\.dcm: multi-frame DICOM \(NumberOfFrames 15\); expected a single-frame")
    frames = write_dx(tmp_path / "frames.dcm", np.zeros((3, 8, 8), np.uint16), bits_stored=12,
                      PixelSpacing=[0.2, 0.2])
    one_line_error(read_radiograph, frames, match=r"multi-frame DICOM \(NumberOfFrames 3\)")
    one_frame = write_dx(tmp_path / "one_frame.dcm", np.zeros((1, 8, 8), np.uint16), bits_stored=12)
    assert read_radiograph(one_frame).image.shape == (8, 8)  # NumberOfFrames 1 is a single image


# --------------------------------------------------------------------------- pixel spacing


def small_dx(path: Path, **tags) -> Path:
    return write_dx(path, twelve_bit_pattern((8, 6)), bits_stored=12, **tags)


def test_pixel_spacing_wins_over_imager_pixel_spacing(tmp_path):
    path = small_dx(tmp_path / "both.dcm", PixelSpacing=[0.1, 0.11], ImagerPixelSpacing=[0.15, 0.16],
                    EstimatedRadiographicMagnificationFactor=1.2)
    radiograph = read_radiograph(path)
    assert isinstance(radiograph, Radiograph)
    assert radiograph.pixel_spacing_mm == (0.1, 0.11) and radiograph.spacing_source == "PixelSpacing"


def test_imager_pixel_spacing_divided_by_magnification_or_at_the_detector(tmp_path):
    magnified = read_radiograph(small_dx(tmp_path / "mag.dcm", ImagerPixelSpacing=[0.15, 0.2],
                                         EstimatedRadiographicMagnificationFactor=1.25))
    assert magnified.pixel_spacing_mm == pytest.approx((0.12, 0.16))
    assert magnified.spacing_source == "ImagerPixelSpacing / EstimatedRadiographicMagnificationFactor 1.25"

    detector = read_radiograph(small_dx(tmp_path / "det.dcm", ImagerPixelSpacing=[0.15, 0.2]))
    assert detector.pixel_spacing_mm == (0.15, 0.2)
    assert detector.spacing_source == "ImagerPixelSpacing (at the detector)"


def test_no_spacing_tag_gives_none_and_the_argument_overrides(tmp_path, recwarn):
    path = small_dx(tmp_path / "nospacing.dcm")
    radiograph = read_radiograph(path)
    assert radiograph.pixel_spacing_mm is None and radiograph.spacing_source == "none in the file"
    assert not recwarn.list  # no silent (or noisy) default: the caller decides

    given = read_radiograph(path, pixel_spacing_mm=(0.25, 0.4))
    assert given.pixel_spacing_mm == (0.25, 0.4) and given.spacing_source == "pixel_spacing argument"
    np.testing.assert_array_equal(given.image, radiograph.image)

    tagged = small_dx(tmp_path / "tagged.dcm", PixelSpacing=[0.1, 0.1])
    assert read_radiograph(tagged, (0.3, 0.3)).pixel_spacing_mm == (0.3, 0.3)
    for bad in ((0.0, 1.0), (-0.2, 0.2), (float("nan"), 0.2), (0.2,), "0.2"):
        one_line_error(read_radiograph, path, pixel_spacing_mm=bad, match=r"^pixel_spacing_mm: got .*; expected")


def place_text(path: Path, placeholder: str, text: str) -> Path:
    """Overwrite a tag's ``placeholder`` value bytes with ``text`` (space-padded): values pydicom would
    refuse to write."""
    data = path.read_bytes()
    assert data.count(placeholder.encode()) == 1 and len(text) <= len(placeholder)
    path.write_bytes(data.replace(placeholder.encode(), text.encode().ljust(len(placeholder))))
    return path


PLACEHOLDER = "9.87654321\\9.87654321"


@pytest.mark.parametrize("keyword", ["PixelSpacing", "ImagerPixelSpacing"])
@pytest.mark.parametrize("text,shown", [
    ("0\\0", "[0.0, 0.0]"),
    ("0.0\\0.0", "[0.0, 0.0]"),
    ("-0.1\\0.1", "[-0.1, 0.1]"),
    ("0.1\\0", "[0.1, 0.0]"),
    ("nan\\0.1", "[nan, 0.1]"),
    ("inf\\0.1", "[inf, 0.1]"),
    ("0.5", "0.5"),
    ("0.1\\0.1\\0.1", "[0.1, 0.1, 0.1]"),
    ("abc\\0.1", "['abc', 0.1]"),
])
def test_bad_spacing_tag_is_refused_naming_it(tmp_path, keyword, text, shown):
    tags = {keyword: PLACEHOLDER.split("\\")}
    if keyword == "PixelSpacing":
        tags["ImagerPixelSpacing"] = [0.2, 0.2]  # a good fallback is not used: no falling through
    path = place_text(small_dx(tmp_path / "bad.dcm", **tags), PLACEHOLDER, text)
    error = one_line_error(read_radiograph, path, match=f"{keyword} is ")
    assert str(error) == f"{path}: {keyword} is {shown}; expected two positive numbers in mm"
    assert read_radiograph(path, pixel_spacing_mm=(0.2, 0.2)).pixel_spacing_mm == (0.2, 0.2)  # the way out


def test_empty_spacing_tag_counts_as_absent(tmp_path):
    path = place_text(small_dx(tmp_path / "empty.dcm", PixelSpacing=PLACEHOLDER.split("\\"),
                               ImagerPixelSpacing=[0.2, 0.3]), PLACEHOLDER, "")
    radiograph = read_radiograph(path)
    assert radiograph.pixel_spacing_mm == (0.2, 0.3)
    assert radiograph.spacing_source == "ImagerPixelSpacing (at the detector)"


@pytest.mark.parametrize("text,shown", [("0", "0.0"), ("-1.1", "-1.1"), ("nan", "nan")])
def test_bad_magnification_factor_is_refused_naming_it(tmp_path, text, shown):
    path = place_text(small_dx(tmp_path / "mag.dcm", ImagerPixelSpacing=[0.2, 0.2],
                               EstimatedRadiographicMagnificationFactor="9.87654321"), "9.87654321", text)
    error = one_line_error(read_radiograph, path, match="EstimatedRadiographicMagnificationFactor")
    assert str(error) == f"{path}: EstimatedRadiographicMagnificationFactor is {shown}; expected one positive number"
