"""Reading a radiograph (DICOM CR/DX, PNG/JPEG, .npy or 2D NIfTI) as a bone-bright [0,1] image."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixel_data_handlers.util import apply_modality_lut, apply_voi_lut

from orthogen.errors import InputError
from orthogen.io.dicom_ct_series import is_dicom_file_name
from orthogen.io.dicom_file import decode_pixel_array, read_dicom_file
from orthogen.io.dicom_modality import require_radiograph_modality
from orthogen.io.film_preparation import FilmPreparation, prepare_film
from orthogen.io.input_file import existing_file
from orthogen.io.patient_space import voxel_spacing

_PIL_SUFFIXES = (".png", ".jpg", ".jpeg")
_NIFTI_SUFFIXES = (".nii", ".nii.gz")
#: ITU-R BT.601 luma weights (R, G, B), as Pillow's own "L" conversion uses.
_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])


@dataclass(frozen=True)
class Radiograph:
    """A projection radiograph.

    Attributes:
        image: (H, W) float32 in [0,1]; larger = more attenuation (bone bright).
        pixel_spacing_mm: (row, col) pixel spacing in mm, or None when neither the file nor the caller
            gives one (the caller must then ask the user for it). For DICOM it is PixelSpacing (at the
            patient, as the modality calibrated it), else ImagerPixelSpacing divided by
            EstimatedRadiographicMagnificationFactor (at the patient), else ImagerPixelSpacing (at the
            detector); ``spacing_source`` says which.
        source: the file it was read from.
        spacing_source: where ``pixel_spacing_mm`` came from, in words a user understands:
            "PixelSpacing", "ImagerPixelSpacing / EstimatedRadiographicMagnificationFactor 1.1",
            "ImagerPixelSpacing (at the detector)", "sidecar knee_ap.json", "NIfTI affine",
            "pixel_spacing argument" or "none in the file".
        preparation: what :func:`orthogen.io.film_preparation.prepare_film` did to a DICOM or PNG / JPEG
            film (collimation crop, mirroring into the models' view convention, and why); None for .npy /
            NIfTI (DRRs, taken as rendered).
    """

    image: np.ndarray
    pixel_spacing_mm: tuple[float, float] | None
    source: str
    spacing_source: str
    preparation: FilmPreparation | None = None


#: ``spacing_source`` when the file has no pixel spacing and the caller gave none.
NO_SPACING = "none in the file"
#: ``spacing_source`` when the caller's ``pixel_spacing_mm`` was used.
SPACING_ARGUMENT = "pixel_spacing argument"


def read_radiograph(path: str | Path, pixel_spacing_mm: tuple[float, float] | None = None,
                    prepare: bool = True) -> Radiograph:
    """Read one radiograph as a bone-bright [0,1] image with its pixel spacing in mm.

    - DICOM (``.dcm``, no extension; Modality CR, DX, RF, XA, a grey secondary capture SC / OT or none:
      anything else (MR, CT, US, MG, SEG, ...) is refused naming its Modality; a single-frame grayscale
      image, uncompressed or
      compressed with any syntax an installed decoder handles: JPEG baseline/extended/lossless, JPEG-LS,
      JPEG 2000, RLE): Modality LUT / rescale, then VOI LUT or window (when present), MONOCHROME1
      inverted, then min-max to [0,1] (a constant image gives zeros). Spacing (row, col) in mm from
      PixelSpacing; else ImagerPixelSpacing / EstimatedRadiographicMagnificationFactor (when the factor is
      given); else ImagerPixelSpacing as is (at the detector). An empty tag counts as absent; a tag with
      zero, negative, non-finite or malformed values raises InputError naming it (no falling through to
      the next tag). RGB (SamplesPerPixel 3) and multi-frame files are refused.
    - PNG / JPEG (8 or 16 bit, grayscale or RGB -> BT.601 luminance): divided by 255 or 65535, no
      inversion (bone is already bright in radiograph PNGs). No spacing in the file.
    - ``.npy`` (2D array in [0,1], e.g. a DRR): as is; spacing from a sidecar ``<name>.json``
      ``{"pixel_spacing_mm": [row, col]}`` when present.
    - NIfTI ``.nii`` / ``.nii.gz`` (2D, values in [0,1]): as is; spacing from the affine.

    DICOM and PNG / JPEG films are then prepared (:func:`orthogen.io.film_preparation.prepare_film`):
    cropped to the exposed field (Shutter / Collimator tags, else unexposed bands found in the image; a
    DICOM is min-maxed to [0, 1] again after a crop; the spacing is unchanged) and, for DICOM, mirrored /
    flipped into the models' view convention by PatientOrientation / ViewPosition. ``preparation`` says
    what was done and why.

    Args:
        path: the radiograph file.
        pixel_spacing_mm: (row, col) pixel spacing in mm, two positive numbers. When given it overrides
            whatever the file says (the file's spacing tags are then not read, so a broken tag does not
            stop the read) and ``spacing_source`` is "pixel_spacing argument".
        prepare: film preparation on (the default for a film that comes from outside); off where the file is
            a DRR of our own paired pixel for pixel with something else (a training target and its
            segmentation), so that no crop can ever misalign the two.

    Returns:
        A :class:`Radiograph`; its ``pixel_spacing_mm`` is None (``spacing_source`` "none in the file")
        when neither the file nor ``pixel_spacing_mm`` gives a spacing: no default is assumed.

    Raises InputError naming the file (one line) for a missing, empty, corrupt, not-2D, RGB DICOM,
    multi-frame DICOM or undecodable file (naming the transfer syntax), a bad spacing tag, or an unknown
    extension; naming ``pixel_spacing_mm`` for a bad argument.
    """
    override = None if pixel_spacing_mm is None else checked_pixel_spacing(pixel_spacing_mm, "pixel_spacing_mm")
    file = existing_file(path)
    name = file.name.lower()
    if name.endswith(_PIL_SUFFIXES):
        image, spacing, spacing_source = _read_pil_image(file), None, NO_SPACING
        image, preparation = prepare_film(image, file) if prepare else (image, None)
    elif name.endswith(".npy"):
        image, spacing, spacing_source = read_npy_image(file, read_sidecar=override is None)
        preparation = None
    elif name.endswith(_NIFTI_SUFFIXES):
        image, spacing, spacing_source = read_nifti_image(file)
        preparation = None
    elif is_dicom_file_name(file):
        image, spacing, spacing_source, preparation = _read_dicom_radiograph(file, read_spacing=override is None,
                                                                             prepare=prepare)
    else:
        raise InputError(f"unknown radiograph file type {file.suffix!r}; expected .dcm (or no extension), "
                         ".png, .jpg, .jpeg, .npy, .nii or .nii.gz", file)
    if override is not None:
        spacing, spacing_source = override, SPACING_ARGUMENT
    return Radiograph(image=image.astype(np.float32), pixel_spacing_mm=spacing, source=str(file),
                      spacing_source=spacing_source, preparation=preparation)


def checked_pixel_spacing(value, source: str | Path) -> tuple[float, float]:
    """``value`` as (row, col) floats in mm; InputError naming ``source`` unless two positive numbers."""
    try:
        row, col = (float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"got {value!r}; expected two numbers (row, col) in mm", source) from exc
    if not (math.isfinite(row) and math.isfinite(col) and row > 0 and col > 0):
        raise InputError(f"got {value!r}; expected two positive pixel spacings (row, col) in mm", source)
    return row, col


#: The largest radiograph or segmentation image read, in pixels per side: a detector's full image is at most
#: ~4300 x 4300 (43 cm at 0.1 mm); anything larger is refused before its pixels are decoded.
MAX_IMAGE_SIDE = 8192


def check_image_size(rows: int, cols: int, file: Path) -> None:
    """InputError naming ``file`` when an image of ``rows`` x ``cols`` pixels is larger than MAX_IMAGE_SIDE."""
    if rows > MAX_IMAGE_SIDE or cols > MAX_IMAGE_SIDE:
        raise InputError(f"image of {rows} x {cols} pixels; expected at most {MAX_IMAGE_SIDE} x {MAX_IMAGE_SIDE}",
                         file)


def open_picture(file: Path) -> Image.Image:
    """``Image.open`` with its size checked before the pixels are decoded (Pillow refuses > 179 M pixels
    itself, as a possible decompression bomb: that is one InputError too)."""
    try:
        picture = Image.open(file)
    except Image.DecompressionBombError as exc:
        raise InputError(f"image too large ({exc}); expected at most {MAX_IMAGE_SIDE} x {MAX_IMAGE_SIDE} pixels",
                         file) from exc
    check_image_size(picture.height, picture.width, file)
    return picture


def require_2d(array: np.ndarray, file: Path) -> np.ndarray:
    if array.ndim != 2:
        raise InputError(f"image has shape {array.shape}; expected a single 2D image (H, W)", file)
    return array


def _require_unit_range(array: np.ndarray, file: Path) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise InputError("image has NaN or infinite values; expected finite values in [0, 1]", file)
    if array.min() < 0 or array.max() > 1:
        raise InputError(f"values span [{array.min():.6g}, {array.max():.6g}]; expected values in [0, 1]", file)
    return array


def _min_max(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    return np.zeros_like(values) if high == low else (values - low) / (high - low)


def _read_dicom_radiograph(file: Path, *, read_spacing: bool, prepare: bool = True
                           ) -> tuple[np.ndarray, tuple[float, float] | None, str, FilmPreparation | None]:
    dataset = read_dicom_file(file)
    require_radiograph_modality(dataset, file)  # CR / DX / RF / XA, SC / OT, or none; an MR or CT slice is refused
    samples = header_int(dataset, "SamplesPerPixel", 1, file)
    if samples != 1:
        photometric = str(dataset.get("PhotometricInterpretation", "")).strip() or "not given"
        raise InputError(f"colour DICOM (SamplesPerPixel {samples}, PhotometricInterpretation {photometric}); "
                         "expected a grayscale radiograph (SamplesPerPixel 1, MONOCHROME1 or MONOCHROME2)",
                         file)
    photometric = str(dataset.get("PhotometricInterpretation", "")).strip()
    if photometric not in ("", "MONOCHROME1", "MONOCHROME2"):
        raise InputError(f"PhotometricInterpretation {photometric}; expected a grayscale radiograph "
                         "(MONOCHROME1 or MONOCHROME2)", file)
    frames = header_int(dataset, "NumberOfFrames", 1, file)
    if frames != 1:
        raise InputError(f"multi-frame DICOM (NumberOfFrames {frames}); expected a single-frame 2D image",
                         file)
    spacing, spacing_source = dicom_pixel_spacing(dataset, file) if read_spacing else (None, NO_SPACING)
    check_image_size(header_int(dataset, "Rows", 0, file), header_int(dataset, "Columns", 0, file), file)
    pixels = require_2d(decode_pixel_array(dataset, file), file)
    values = np.asarray(apply_voi_lut(apply_modality_lut(pixels, dataset), dataset), dtype=np.float64)
    if photometric == "MONOCHROME1":
        values = -values
    if not prepare:
        return _min_max(values), spacing, spacing_source, None
    image, preparation = prepare_film(_min_max(values), file, dataset)
    if preparation.cropped:  # the unexposed band was the maximum: [0, 1] over the exposed field again
        image = _min_max(image)
    return image, spacing, spacing_source, preparation


def header_int(dataset: Dataset, keyword: str, default: int, file: Path) -> int:
    """An integer header value (empty or absent -> ``default``); InputError naming the tag if malformed."""
    try:
        value = dataset.get(keyword)
        return default if value is None or value == "" else int(value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{keyword} is {_shown(dataset, keyword)}; expected a whole number", file) from exc


def dicom_pixel_spacing(dataset: Dataset, file: Path) -> tuple[tuple[float, float] | None, str]:
    """(row, col) spacing in mm and where it came from (see :class:`Radiograph`).

    PixelSpacing, else ImagerPixelSpacing / EstimatedRadiographicMagnificationFactor, else
    ImagerPixelSpacing at the detector, else (None, "none in the file"). Only the tags consulted are
    checked; an empty one counts as absent; a bad one raises InputError naming it.
    """
    spacing = _spacing_tag(dataset, "PixelSpacing", file)
    if spacing is not None:
        return spacing, "PixelSpacing"
    spacing = _spacing_tag(dataset, "ImagerPixelSpacing", file)
    if spacing is None:
        return None, NO_SPACING
    factor = _magnification(dataset, file)
    if factor is None:
        return spacing, "ImagerPixelSpacing (at the detector)"
    return ((spacing[0] / factor, spacing[1] / factor),
            f"ImagerPixelSpacing / EstimatedRadiographicMagnificationFactor {factor:g}")


def _tag_value(dataset: Dataset, keyword: str, file: Path, expected: str):
    """The value of ``keyword``; None when absent or empty; InputError when pydicom cannot parse it."""
    if keyword not in dataset:
        return None
    try:
        value = dataset[keyword].value
    except Exception as exc:  # pydicom raises ValueError / TypeError on a value it cannot convert
        raise InputError(f"{keyword} is {_shown(dataset, keyword)}; expected {expected}", file) from exc
    if value is None or value == "" or (isinstance(value, (list, tuple, MultiValue)) and len(value) == 0):
        return None
    return value


def _spacing_tag(dataset: Dataset, keyword: str, file: Path) -> tuple[float, float] | None:
    """(row, col) in mm from a two-valued spacing tag; None when absent or empty; InputError if bad."""
    expected = "two positive numbers in mm"
    value = _tag_value(dataset, keyword, file, expected)
    if value is None:
        return None
    try:
        numbers = [float(v) for v in value] if isinstance(value, (list, tuple, MultiValue)) else None
    except (TypeError, ValueError):
        numbers = None
    if numbers is None or len(numbers) != 2 or not all(math.isfinite(v) and v > 0 for v in numbers):
        raise InputError(f"{keyword} is {_shown(dataset, keyword)}; expected {expected}", file)
    return numbers[0], numbers[1]


def _magnification(dataset: Dataset, file: Path) -> float | None:
    """EstimatedRadiographicMagnificationFactor; None when absent or empty; InputError if not positive."""
    keyword, expected = "EstimatedRadiographicMagnificationFactor", "one positive number"
    value = _tag_value(dataset, keyword, file, expected)
    if value is None:
        return None
    try:
        factor = float(value)
    except (TypeError, ValueError):
        factor = math.nan
    if not (math.isfinite(factor) and factor > 0):
        raise InputError(f"{keyword} is {_shown(dataset, keyword)}; expected {expected}", file)
    return factor


def _shown(dataset: Dataset, keyword: str) -> str:
    """A tag's value as a user reads it: [0.0, 0.0] for numbers, else the text stored in the file."""
    try:
        value = dataset[keyword].value
        if isinstance(value, (list, tuple, MultiValue)):
            return "[" + ", ".join(_number_text(v) for v in value) + "]"
        return _number_text(value)
    except Exception:  # the value does not convert: show the raw bytes as text
        raw = dataset.get_item(keyword).value
        text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else str(raw)
        return repr(text.strip(" \x00"))


def _number_text(value) -> str:
    try:
        return repr(float(value))
    except (TypeError, ValueError):
        return repr(str(value))


def _read_pil_image(file: Path) -> np.ndarray:
    try:
        with open_picture(file) as picture:
            picture.load()
            if getattr(picture, "n_frames", 1) != 1:
                raise InputError(f"{picture.n_frames} frames; expected a single 2D image", file)
            mode = picture.mode
            if mode.startswith("I;16") or mode == "I":
                return np.asarray(picture, dtype=np.float64) / 65535.0
            if mode == "L":
                return np.asarray(picture, dtype=np.float64) / 255.0
            if mode == "LA":
                return np.asarray(picture.getchannel("L"), dtype=np.float64) / 255.0
            rgb = np.asarray(picture.convert("RGB"), dtype=np.float64)
            return rgb @ _LUMA_WEIGHTS / 255.0
    except InputError:
        raise
    except Exception as exc:  # Pillow raises UnidentifiedImageError, OSError (truncated), SyntaxError, ...
        raise InputError(f"not a readable image, or truncated ({type(exc).__name__}: {exc})",
                         file) from exc


def read_npy_image(file: Path, *, read_sidecar: bool = True
              ) -> tuple[np.ndarray, tuple[float, float] | None, str]:
    try:
        array = np.load(file, allow_pickle=False)
    except Exception as exc:  # numpy raises ValueError / EOFError / OSError on bad files
        raise InputError(f"not a readable .npy array, or truncated ({type(exc).__name__}: {exc})",
                         file) from exc
    image = _require_unit_range(require_2d(np.asarray(array), file), file)
    sidecar = file.with_suffix(".json")
    if not read_sidecar or not sidecar.exists():
        return image, None, NO_SPACING
    try:
        spacing = json.loads(existing_file(sidecar).read_text())["pixel_spacing_mm"]
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise InputError('not the expected sidecar; expected JSON {"pixel_spacing_mm": [row, col]} in mm',
                         sidecar) from exc
    return image, checked_pixel_spacing(spacing, sidecar), f"sidecar {sidecar.name}"


def read_nifti_image(file: Path) -> tuple[np.ndarray, tuple[float, float], str]:
    try:
        nifti = nib.load(file)
        shape = nifti.shape
        if len(shape) < 2 or any(size != 1 for size in shape[2:]):
            raise InputError(f"image has shape {shape}; expected a single 2D image (H, W)", file)
        image = np.asarray(nifti.get_fdata(dtype=np.float64)).reshape(shape[:2])
        spacing = voxel_spacing(nifti.affine)[:2]
    except InputError:
        raise
    except Exception as exc:  # nibabel raises ImageFileError, EOFError, OSError, zlib errors, ...
        raise InputError(f"not a readable NIfTI file, or truncated ({type(exc).__name__}: {exc})",
                         file) from exc
    return _require_unit_range(image, file), spacing, "NIfTI affine"
