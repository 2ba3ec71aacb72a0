"""Strict checks on a DICOM CT series folder, run before MONAI's ``PydicomReader`` stacks it.

MONAI's reader stacks whatever it finds in InstanceNumber order and only warns about mixed sizes or
spacings; these checks turn every way a folder can fail to be one clean volume into one
``orthogen.errors.InputError`` line that names the folder or file, what was expected and what came.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from orthogen.errors import InputError
from orthogen.io.dicom_file import decode_pixel_array, read_dicom_file
from orthogen.io.dicom_modality import CT_MODALITY, dicom_modality, modality_text

#: Largest allowed |difference| between direction cosines of two slices of one series.
ORIENTATION_TOLERANCE = 1e-4
#: Slice gaps may differ from their mean by this much (mm) or this fraction of it, whichever is larger.
GAP_TOLERANCE_MM, GAP_TOLERANCE_FRACTION = 0.01, 0.01


@dataclass(frozen=True)
class CheckedCTSeries:
    """One CT series that passed every check, in the order MONAI's ``PydicomReader`` will stack it.

    Attributes:
        files: the slice files, in stacking order (increasing InstanceNumber).
        datasets: their pydicom datasets (pixel data already decoded once, so pydicom's cache serves
            MONAI), same order.
        normal_lps: unit slice normal, ImageOrientationPatient row x column, in LPS.
        slice_gap_mm: distance between neighbouring slice planes (mm); for a one-slice series its
            SliceThickness (the slab the slice images), else SpacingBetweenSlices, else 1.
        modality: the slices' Modality ("CT"), or "" when the files do not give one.
    """

    files: list[Path]
    datasets: list[Dataset]
    normal_lps: np.ndarray
    slice_gap_mm: float
    modality: str = ""


def is_dicom_file_name(path: Path) -> bool:
    """Whether a file name looks like a DICOM slice: ``.dcm``, no extension, or a UID-like numeric suffix."""
    suffix = path.suffix.lower()
    return not path.name.startswith(".") and (suffix in ("", ".dcm") or suffix[1:].isdigit())


def dicom_series_files(folder: Path) -> list[Path]:
    """The slice files of ``folder`` by name: ``.dcm`` / extension-less / numeric suffix, no hidden files
    and no DICOMDIR. InputError naming the folder when there are none."""
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and is_dicom_file_name(p) and p.name.upper() != "DICOMDIR")
    if not files:
        raise InputError("no DICOM files (.dcm or without extension) in the folder; expected one CT series",
                         folder)
    return files


def read_checked_ct_series(folder: Path) -> CheckedCTSeries:
    """Read every slice file of ``folder`` and check that together they make one regular volume.

    Checks, each an InputError naming the folder or the offending file: readable DICOM; Modality CT
    (a file of another Modality, e.g. a CR film or an MR slice, is refused naming its Modality; an absent or
    empty Modality is let through, and the caller's value check decides); one SeriesInstanceUID; one
    Rows x Columns; ImageOrientationPatient, PixelSpacing and ImagePositionPatient
    present, finite and the same orientation / spacing on every slice; one 2D frame per file (no
    multi-frame files); decodable pixel data; no two slices at one position; uniform gaps between slice
    planes (a missing slice shows as a double gap).

    Stacking order: MONAI's ``PydicomReader`` stacks by InstanceNumber (and drops slices without one).
    When the InstanceNumbers are present, distinct and run monotonically along the slice positions (in
    either direction) that order is kept. Otherwise the datasets are renumbered 1..N in memory in order
    of position along the normal, so that MONAI stacks them by position (the files are not touched).
    """
    files = dicom_series_files(folder)
    datasets = [read_dicom_file(f) for f in files]
    for dataset, file in zip(datasets, files):
        modality = dicom_modality(dataset)
        if modality not in ("", CT_MODALITY):
            raise InputError(f"not a CT: Modality {modality_text(modality)}; expected a CT series "
                             f"(Modality {CT_MODALITY})", file)
    for dataset, file in zip(datasets, files):
        frames = int(dataset.get("NumberOfFrames") or 1)
        if frames > 1:
            raise InputError(f"multi-frame file ({frames} frames); expected one 2D slice per file "
                             "(enhanced multi-frame CT is not supported)", file)
    _require_one_value(datasets, files, folder, "SeriesInstanceUID", "series")
    _require_one_value(datasets, files, folder, ("Rows", "Columns"), "image sizes (Rows, Columns)")
    row_cosine, column_cosine = _in_plane_geometry(datasets, files, folder)
    normal = np.cross(row_cosine, column_cosine)

    positions = np.array([float_tag(ds, f, "ImagePositionPatient", 3) for ds, f in zip(datasets, files)])
    by_position = np.argsort(positions @ normal, kind="stable")
    datasets = [datasets[i] for i in by_position]
    files = [files[i] for i in by_position]
    slice_gap = _checked_slice_gap(datasets[0], positions[by_position] @ normal, files, folder)

    for dataset, file in zip(datasets, files):
        pixels = decode_pixel_array(dataset, file)
        if pixels.ndim != 2:
            raise InputError(f"expected one 2D slice per file, got pixel array of shape {pixels.shape}", file)

    numbers = [_instance_number(ds) for ds in datasets]
    if None not in numbers and len(set(numbers)) == len(numbers):
        steps = np.diff(numbers)
        if np.all(steps > 0) or np.all(steps < 0):
            order = np.argsort(numbers, kind="stable")
            return CheckedCTSeries([files[i] for i in order], [datasets[i] for i in order], normal, slice_gap,
                                   dicom_modality(datasets[0]))
    for k, dataset in enumerate(datasets):
        dataset.InstanceNumber = k + 1
    return CheckedCTSeries(files, datasets, normal, slice_gap, dicom_modality(datasets[0]))



def float_tag(dataset: Dataset, file: Path, keyword: str, length: int) -> np.ndarray:
    """A numeric multi-valued tag as float64 of ``length`` values; InputError naming the file otherwise."""
    value = dataset.get(keyword)
    try:
        array = np.asarray([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"missing or invalid {keyword} ({value!r}); expected {length} numbers",
                         file) from exc
    if array.shape != (length,) or not np.all(np.isfinite(array)):
        raise InputError(f"invalid {keyword} {value!r}; expected {length} finite numbers", file)
    return array


def _instance_number(dataset: Dataset) -> int | None:
    """InstanceNumber as int, None when absent, empty or not a number."""
    try:
        return int(dataset.get("InstanceNumber"))
    except (TypeError, ValueError):
        return None


def _require_one_value(datasets: list[Dataset], files: list[Path], folder: Path,
                       keywords: str | tuple[str, ...], what: str) -> None:
    """Raise InputError naming the folder when the datasets disagree on the value(s) of ``keywords``."""
    keywords = (keywords,) if isinstance(keywords, str) else keywords
    first_file_of: dict[tuple, Path] = {}
    for dataset, file in zip(datasets, files):
        first_file_of.setdefault(tuple(str(dataset.get(k, "")) for k in keywords), file)
    if len(first_file_of) > 1:
        found = "; ".join(f"{'x'.join(v)} (e.g. {f.name})" for v, f in first_file_of.items())
        raise InputError(f"slices of mixed {what}: {found}; expected one CT series per folder", folder)


def _in_plane_geometry(datasets: list[Dataset], files: list[Path],
                       folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Unit row and column direction cosines (LPS) shared by all slices; checks PixelSpacing too."""
    orientations = [float_tag(ds, f, "ImageOrientationPatient", 6) for ds, f in zip(datasets, files)]
    spacings = [float_tag(ds, f, "PixelSpacing", 2) for ds, f in zip(datasets, files)]
    for orientation, spacing, file in zip(orientations, spacings, files):
        if np.max(np.abs(orientation - orientations[0])) > ORIENTATION_TOLERANCE:
            raise InputError(f"slices of mixed ImageOrientationPatient: {orientations[0].tolist()} in "
                             f"{files[0].name}, {orientation.tolist()} in {file.name}", folder)
        if not np.allclose(spacing, spacings[0], rtol=1e-4, atol=1e-6):
            raise InputError(f"slices of mixed PixelSpacing: {spacings[0].tolist()} in {files[0].name}, "
                             f"{spacing.tolist()} in {file.name}", folder)
    row_cosine, column_cosine = orientations[0][:3], orientations[0][3:]
    if min(np.linalg.norm(row_cosine), np.linalg.norm(column_cosine)) < 0.5 or np.any(spacings[0] <= 0):
        raise InputError(f"degenerate ImageOrientationPatient {orientations[0].tolist()} or PixelSpacing "
                         f"{spacings[0].tolist()}", files[0])
    return row_cosine / np.linalg.norm(row_cosine), column_cosine / np.linalg.norm(column_cosine)


def _checked_slice_gap(first: Dataset, heights: np.ndarray, files: list[Path], folder: Path) -> float:
    """Mean distance (mm) between neighbouring slices, given their sorted positions along the normal."""
    if len(heights) == 1:  # one slice images a slab SliceThickness thick; SpacingBetweenSlices is its neighbours'
        return abs(float(first.get("SliceThickness") or first.get("SpacingBetweenSlices") or 1.0))
    gaps = np.diff(heights)
    if np.min(gaps) <= GAP_TOLERANCE_MM:
        i = int(np.argmin(gaps))
        raise InputError(f"two slices at the same position ({files[i].name}, {files[i + 1].name}); "
                         "expected one slice per position", folder)
    mean_gap = float(np.mean(gaps))
    if np.max(np.abs(gaps - mean_gap)) > max(GAP_TOLERANCE_MM, GAP_TOLERANCE_FRACTION * mean_gap):
        i = int(np.argmax(np.abs(gaps - mean_gap)))
        raise InputError(f"non-uniform slice spacing: gaps from {np.min(gaps):.4g} to {np.max(gaps):.4g} mm "
                         f"(e.g. {gaps[i]:.4g} mm between {files[i].name} and {files[i + 1].name}); "
                         "a slice may be missing", folder)
    return mean_gap
