"""Reading a knee segmentation (background 0, leg 0.5, bone 1) from PNG, .npy, 2D NIfTI, a DICOM image or a
DICOM SEG drawn on a radiograph (:mod:`orthogen.io.dicom_segmentation`: segments "contour" and "bone").

The values are read, not snapped: :class:`orthogen.transforms.radiograph_segmentation.SegmentationLevels`
checks them against the levels {0, 0.5, 1} and snaps them (an 8-bit PNG holds 0.5 as 128/255).
Pixel spacing follows :func:`orthogen.io.read_radiograph` (its DICOM, .npy-sidecar and NIfTI helpers are
reused here), so a segmentation and a radiograph of the same file type report spacing the same way.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from orthogen.errors import InputError
from orthogen.io.ct_series_checks import is_dicom_file_name
from orthogen.io.dicom_file import decode_pixel_array, read_dicom_file
from orthogen.io.dicom_segmentation import DicomSegmentation, is_dicom_segmentation, read_dicom_segmentation
from orthogen.io.input_file import existing_file
from orthogen.io.radiograph import (NO_SPACING, check_image_size, dicom_pixel_spacing, header_int, open_picture,
                                    read_nifti_image, read_npy_image, require_2d)

__all__ = ["SEGMENTATION_SUFFIXES", "SegmentationImage", "read_segmentation_image", "segmentation_stem"]

logger = logging.getLogger(__name__)

#: File name endings :func:`read_segmentation_image` reads (DICOM files may also have no extension).
SEGMENTATION_SUFFIXES = (".png", ".npy", ".nii.gz", ".nii", ".dcm")
#: A DICOM image whose largest stored value is at most this holds class indices 0, 1, 2.
_MAX_CLASS_INDEX = 2


@dataclass(frozen=True)
class SegmentationImage:
    """A segmentation image as read from a file, before its values are checked against the levels.

    Attributes:
        image: (H, W) float32 in [0, 1] (nominally 0 background, 0.5 leg, 1 bone).
        pixel_spacing_mm: (row, col) in mm, or None when the file gives none.
        spacing_source: where the spacing came from, as :class:`orthogen.io.Radiograph` says it
            ("PixelSpacing", "ImagerPixelSpacing (at the detector)", "sidecar x.json", "NIfTI affine",
            "none in the file", ...).
        source: the file it was read from.
        dicom_seg: the DICOM SEG it was read from (its segments, the radiograph it references), else None.
            A SEG lies on its radiograph's pixel grid, not the model's: the bundle's loader
            (:class:`orthogen.data.segmentation_input.LoadSegmentationd`) resamples it instead of refusing
            its size, and checks that it has the segments the model's condition needs.
    """

    image: np.ndarray
    pixel_spacing_mm: tuple[float, float] | None
    spacing_source: str
    source: str
    dicom_seg: DicomSegmentation | None = None


def segmentation_stem(path: str | Path) -> str:
    """The file's name without its segmentation suffix: ``knee_seg.nii.gz`` -> ``knee_seg``."""
    name = Path(str(path)).name
    for suffix in SEGMENTATION_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def read_segmentation_image(path: str | Path) -> SegmentationImage:
    """Read one segmentation image as (H, W) float32 in [0, 1] with its pixel spacing.

    - PNG: 8-bit grayscale divided by 255 (0 / 128 / 255 -> 0 / 0.502 / 1), 16-bit by 65535, 1-bit as
      0 / 1. Palette, RGB(A) and gray+alpha images are accepted only when every pixel's colour channels are
      equal (a gray picture saved in colour); alpha is ignored. No spacing in the file.
    - ``.npy``: a 2D array in [0, 1], as is; spacing from a sidecar ``<name>.json``
      ``{"pixel_spacing_mm": [row, col]}`` when present (as orthogen's DRR files write it).
    - NIfTI ``.nii`` / ``.nii.gz``: 2D, values in [0, 1], as is; spacing from the affine.
    - DICOM (``.dcm`` or no extension): a single-frame grayscale image (Secondary Capture, a label image,
      ...), its stored values (no rescale, no window): when the largest is <= 2 they are class indices
      0 / 1 / 2 -> 0 / 0.5 / 1; else they are divided by 2^BitsStored - 1 (MONOCHROME1 is then inverted, so
      bone is what a viewer shows bright). Spacing from PixelSpacing, else ImagerPixelSpacing (/
      EstimatedRadiographicMagnificationFactor), as :func:`orthogen.io.read_radiograph` reads it; a
      segmentation does not need it (the model reads its pixels only; the spacing goes into the generated
      radiograph's DICOM), so a zero, negative or malformed spacing tag is not refused: the spacing is then
      None, ``spacing_source`` says why, and a warning is logged.
    - DICOM SEG (SOP class Segmentation Storage or Label Map Segmentation Storage, Modality SEG) of one
      radiograph, on that radiograph's grid (any size): 0 background, 0.5 where its "contour" segment (or
      "bone"), 1 where its "bone" segment (:func:`orthogen.io.dicom_segmentation.read_dicom_segmentation`);
      spacing from its PixelMeasuresSequence (an unusable one: None, as for a DICOM image); ``dicom_seg`` holds
      what the file said.

    Raises:
        InputError: one line naming the file when it is missing, empty, truncated, not an image, not 2D,
            multi-frame, in colour, out of [0, 1] (negative stored DICOM values), has a bad spacing
            sidecar, or has an unknown extension (JPEG is refused: lossy compression blurs the levels); a
            DICOM SEG without contour / bone segments, referencing no radiograph or several images.
    """
    file = existing_file(path)
    name = file.name.lower()
    if name.endswith(".png"):
        image, spacing, spacing_source = _read_png(file), None, NO_SPACING
    elif name.endswith(".npy"):
        image, spacing, spacing_source = read_npy_image(file)
    elif name.endswith((".nii", ".nii.gz")):
        image, spacing, spacing_source = read_nifti_image(file)
    elif is_dicom_file_name(file):
        dataset = read_dicom_file(file)
        if is_dicom_segmentation(dataset):
            seg = read_dicom_segmentation(dataset, file)
            return SegmentationImage(image=seg.levels(), pixel_spacing_mm=seg.pixel_spacing_mm,
                                     spacing_source=seg.spacing_source, source=str(file), dicom_seg=seg)
        image, spacing, spacing_source = _read_dicom_segmentation(dataset, file)
    else:
        raise InputError(f"unknown segmentation file type {file.suffix!r}; expected .png, .npy, .nii, .nii.gz or "
                         ".dcm (or no extension); JPEG is lossy and blurs the levels 0 / 0.5 / 1", file)
    return SegmentationImage(image=np.asarray(image, dtype=np.float32), pixel_spacing_mm=spacing,
                             spacing_source=spacing_source, source=str(file))


def _read_png(file: Path) -> np.ndarray:
    try:
        with open_picture(file) as picture:
            picture.load()
            if getattr(picture, "n_frames", 1) != 1:
                raise InputError(f"{picture.n_frames} frames; expected a single 2D segmentation image", file)
            mode = picture.mode
            if mode == "1":
                return np.asarray(picture, dtype=np.float64)
            if mode == "L":
                return np.asarray(picture, dtype=np.float64) / 255.0
            if mode.startswith("I;16") or mode == "I":
                return np.asarray(picture, dtype=np.float64) / 65535.0
            if mode == "LA":
                return np.asarray(picture.getchannel("L"), dtype=np.float64) / 255.0
            if mode in ("P", "PA", "RGB", "RGBA"):
                return _gray_from_colour(np.asarray(picture.convert("RGB")), mode, file)
            raise InputError(f"PNG mode {mode}; expected a grayscale image (8-bit, 16-bit or 1-bit)", file)
    except InputError:
        raise
    except Exception as exc:  # Pillow raises UnidentifiedImageError, OSError (truncated), SyntaxError, ...
        raise InputError(f"not a readable image, or truncated ({type(exc).__name__}: {exc})", file) from exc


def _gray_from_colour(rgb: np.ndarray, mode: str, file: Path) -> np.ndarray:
    """The one channel of an (H, W, 3) uint8 picture whose channels are all equal, / 255; else InputError."""
    differ = np.any(rgb != rgb[..., :1], axis=-1)
    if differ.any():
        kind = "palette" if mode.startswith("P") else mode
        raise InputError(f"{kind} PNG with colours ({int(differ.sum())} pixels whose red, green and blue differ); "
                         "expected a grayscale segmentation (0 background, 0.5 leg, 1 bone)", file)
    return rgb[..., 0].astype(np.float64) / 255.0


def _read_dicom_segmentation(dataset, file: Path) -> tuple[np.ndarray, tuple[float, float] | None, str]:
    samples = header_int(dataset, "SamplesPerPixel", 1, file)
    photometric = str(dataset.get("PhotometricInterpretation", "")).strip()
    if samples != 1 or photometric not in ("", "MONOCHROME1", "MONOCHROME2"):
        raise InputError(f"colour DICOM (SamplesPerPixel {samples}, PhotometricInterpretation "
                         f"{photometric or 'not given'}); expected a grayscale segmentation image "
                         "(SamplesPerPixel 1, MONOCHROME2)", file)
    frames = header_int(dataset, "NumberOfFrames", 1, file)
    if frames != 1:
        raise InputError(f"multi-frame DICOM (NumberOfFrames {frames}); expected a single-frame 2D segmentation "
                         "image or a DICOM SEG", file)
    spacing, spacing_source = _optional_dicom_spacing(dataset, file)
    check_image_size(header_int(dataset, "Rows", 0, file), header_int(dataset, "Columns", 0, file), file)
    stored = np.asarray(require_2d(decode_pixel_array(dataset, file), file), dtype=np.float64)
    low, high = float(stored.min()), float(stored.max())
    if low < 0:
        raise InputError(f"stored values span [{low:g}, {high:g}]; expected non-negative values: class indices "
                         "0 / 1 / 2 or grey levels 0 .. 2^BitsStored - 1", file)
    if high <= _MAX_CLASS_INDEX:
        return stored / _MAX_CLASS_INDEX, spacing, spacing_source
    bits = header_int(dataset, "BitsStored", header_int(dataset, "BitsAllocated", 16, file), file)
    top = float(2 ** bits - 1)
    if bits < 1 or high > top:
        raise InputError(f"stored values reach {high:g} with BitsStored {bits}; expected values up to "
                         f"2^BitsStored - 1", file)
    values = stored / top
    return (1.0 - values if photometric == "MONOCHROME1" else values), spacing, spacing_source


def _optional_dicom_spacing(dataset, file: Path) -> tuple[tuple[float, float] | None, str]:
    """:func:`orthogen.io.radiograph.dicom_pixel_spacing`, with an unusable tag (zero, negative, malformed) read as
    no spacing: a segmentation's pixels do not need it. The tag's problem goes into ``spacing_source`` and a warning."""
    try:
        return dicom_pixel_spacing(dataset, file)
    except InputError as error:
        problem = error.problem
        logger.warning(f"{file}: unusable pixel spacing, ignored (a segmentation does not need it): {problem}")
        return None, f"none usable in the file ({problem})"
