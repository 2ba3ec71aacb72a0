"""Reading a radiograph (DICOM CR/DX, PNG/JPEG, .npy or 2D NIfTI) as a bone-bright [0,1] image."""
from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixel_data_handlers.util import apply_modality_lut, apply_voi_lut

from orthogen.errors import InputError
from orthogen.io.dicom_ct_series import is_dicom_file_name
from orthogen.io.dicom_file import decode_pixel_array, read_dicom_file
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
        pixel_spacing_mm: (row, col) spacing in mm (for DICOM: at the detector when ImagerPixelSpacing
            is given).
        source: the file it was read from.
    """

    image: np.ndarray
    pixel_spacing_mm: tuple[float, float]
    source: str


def read_radiograph(path: str | Path, *,
                    fallback_pixel_spacing_mm: tuple[float, float] = (1.0, 1.0)) -> Radiograph:
    """Read one radiograph as a bone-bright [0,1] image with its pixel spacing.

    - DICOM (``.dcm``, no extension; CR, DX or any single-frame grayscale image): Modality LUT /
      rescale, then VOI LUT or window (when present), MONOCHROME1 inverted, then min-max to [0,1]
      (a constant image gives zeros). Spacing from ImagerPixelSpacing, else PixelSpacing.
    - PNG / JPEG (8 or 16 bit, grayscale or RGB -> BT.601 luminance): divided by 255 or 65535, no
      inversion (bone is already bright in radiograph PNGs). No spacing in the file.
    - ``.npy`` (2D array in [0,1], e.g. a DRR): as is; spacing from a sidecar ``<name>.json``
      ``{"pixel_spacing_mm": [row, col]}`` when present.
    - NIfTI ``.nii`` / ``.nii.gz`` (2D, values in [0,1]): as is; spacing from the affine.

    When a file gives no usable spacing, ``fallback_pixel_spacing_mm`` is used and a warning names the
    file. Raises InputError naming the file for a missing, empty, corrupt, not-2D or undecodable file,
    or an unknown extension.
    """
    fallback = _checked_spacing(fallback_pixel_spacing_mm, "fallback_pixel_spacing_mm")
    file = existing_file(path)
    name = file.name.lower()
    if name.endswith(_PIL_SUFFIXES):
        image, spacing = _read_pil_image(file), None
    elif name.endswith(".npy"):
        image, spacing = _read_npy(file)
    elif name.endswith(_NIFTI_SUFFIXES):
        image, spacing = _read_nifti_image(file)
    elif is_dicom_file_name(file):
        image, spacing = _read_dicom_radiograph(file)
    else:
        raise InputError(f"unknown radiograph file type {file.suffix!r}; expected .dcm (or no extension), "
                         ".png, .jpg, .jpeg, .npy, .nii or .nii.gz", file)
    if spacing is None:
        warnings.warn(f"{file}: no pixel spacing in the file; using the fallback {fallback} mm (row, col)",
                      stacklevel=2)
        spacing = fallback
    return Radiograph(image=image.astype(np.float32), pixel_spacing_mm=spacing, source=str(file))


def _checked_spacing(value, source: str | Path) -> tuple[float, float]:
    try:
        row, col = (float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"expected two numbers (row, col) in mm, got {value!r}", source) from exc
    if not (math.isfinite(row) and math.isfinite(col) and row > 0 and col > 0):
        raise InputError(f"expected two positive pixel spacings in mm, got {value!r}", source)
    return row, col


def _require_2d(array: np.ndarray, file: Path) -> np.ndarray:
    if array.ndim != 2:
        raise InputError(f"expected a single 2D image (H, W), got shape {array.shape}", file)
    return array


def _require_unit_range(array: np.ndarray, file: Path) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise InputError("image has NaN or infinite values", file)
    if array.min() < 0 or array.max() > 1:
        raise InputError(f"expected values in [0, 1], got [{array.min():.6g}, {array.max():.6g}]", file)
    return array


def _min_max(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    return np.zeros_like(values) if high == low else (values - low) / (high - low)


def _read_dicom_radiograph(file: Path) -> tuple[np.ndarray, tuple[float, float] | None]:
    dataset = read_dicom_file(file)
    samples = int(dataset.get("SamplesPerPixel", 1))
    if samples != 1:
        raise InputError(f"expected a grayscale image (SamplesPerPixel 1), got {samples} samples per pixel",
                         file)
    pixels = _require_2d(decode_pixel_array(dataset, file), file)
    values = np.asarray(apply_voi_lut(apply_modality_lut(pixels, dataset), dataset), dtype=np.float64)
    if str(dataset.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1":
        values = -values
    return _min_max(values), _dicom_pixel_spacing(dataset)


def _dicom_pixel_spacing(dataset: Dataset) -> tuple[float, float] | None:
    """ImagerPixelSpacing, else PixelSpacing; None when neither holds two positive numbers."""
    for keyword in ("ImagerPixelSpacing", "PixelSpacing"):
        value = dataset.get(keyword)
        try:
            row, col = (float(v) for v in value)
        except (TypeError, ValueError):
            continue
        if row > 0 and col > 0:
            return row, col
    return None


def _read_pil_image(file: Path) -> np.ndarray:
    try:
        with Image.open(file) as picture:
            picture.load()
            if getattr(picture, "n_frames", 1) != 1:
                raise InputError(f"expected a single 2D image, got {picture.n_frames} frames", file)
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


def _read_npy(file: Path) -> tuple[np.ndarray, tuple[float, float] | None]:
    try:
        array = np.load(file, allow_pickle=False)
    except Exception as exc:  # numpy raises ValueError / EOFError / OSError on bad files
        raise InputError(f"not a readable .npy array, or truncated ({type(exc).__name__}: {exc})",
                         file) from exc
    image = _require_unit_range(_require_2d(np.asarray(array), file), file)
    sidecar = file.with_suffix(".json")
    if not sidecar.exists():
        return image, None
    try:
        spacing = json.loads(existing_file(sidecar).read_text())["pixel_spacing_mm"]
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise InputError('expected JSON {"pixel_spacing_mm": [row, col]}', sidecar) from exc
    return image, _checked_spacing(spacing, sidecar)


def _read_nifti_image(file: Path) -> tuple[np.ndarray, tuple[float, float]]:
    try:
        nifti = nib.load(file)
        shape = nifti.shape
        if len(shape) < 2 or any(size != 1 for size in shape[2:]):
            raise InputError(f"expected a single 2D image (H, W), got shape {shape}", file)
        image = np.asarray(nifti.get_fdata(dtype=np.float64)).reshape(shape[:2])
        spacing = voxel_spacing(nifti.affine)[:2]
    except InputError:
        raise
    except Exception as exc:  # nibabel raises ImageFileError, EOFError, OSError, zlib errors, ...
        raise InputError(f"not a readable NIfTI file, or truncated ({type(exc).__name__}: {exc})",
                         file) from exc
    return _require_unit_range(image, file), spacing
