"""DICOM CT series: one CT Image Storage file per axial slice, read into and written from (X, Y, Z) HU.

Array axes map to DICOM as: X = column index (along a row, ImageOrientationPatient[:3]),
Y = row index (down a column, ImageOrientationPatient[3:]), Z = slice order along the row x column
normal. DICOM positions are LPS; the affines here are RAS (see ``patient_space``).
highdicom 0.22 builds only multi-frame/derived objects, so the single-frame CT files are made with pydicom.
"""
from __future__ import annotations

import copy
import datetime
import math
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.pixel_data_handlers.util import apply_modality_lut
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, CTImageStorage, ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import format_number_as_ds

from orthogen.errors import InputError
from orthogen.io.array_argument import numpy_array
from orthogen.io.atomic_write import atomic_folder
from orthogen.io.dicom_file import decode_pixel_array, read_dicom_file
from orthogen.io.patient_space import LPS_TO_RAS

#: Largest allowed |difference| between direction cosines of two slices of one series.
_ORIENTATION_TOLERANCE = 1e-4
#: Slice gaps may differ from their mean by this much (mm) or this fraction of it, whichever is larger.
_GAP_TOLERANCE_MM, _GAP_TOLERANCE_FRACTION = 0.01, 0.01
_INT16_MIN, _INT16_MAX = -32768, 32767
#: Display window stored in the files: a bone window, as OrthoGen's volumes are about bone.
_BONE_WINDOW_CENTER_HU, _BONE_WINDOW_WIDTH_HU = 500, 2000


def is_dicom_file_name(path: Path) -> bool:
    """Whether a file name looks like a DICOM slice: ``.dcm``, no extension, or a UID-like numeric suffix."""
    suffix = path.suffix.lower()
    return not path.name.startswith(".") and (suffix in ("", ".dcm") or suffix[1:].isdigit())


def read_dicom_ct_series(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read the one CT series in ``folder``.

    Slices are sorted by ImagePositionPatient projected on the slice normal; each slice's Modality LUT
    (RescaleSlope / RescaleIntercept) is applied. Other files than ``.dcm`` / extension-less / numeric
    suffix ones, hidden files and DICOMDIR are ignored.

    Returns:
        (volume, affine): volume (X=Columns, Y=Rows, Z=slices) float32 HU; affine 4x4 float64 voxel ->
        RAS mm, with the slice step taken from the first and last positions (gantry tilt shows as shear).

    Raises:
        InputError: no DICOM files, a file that is not readable DICOM, mixed SeriesInstanceUID, mixed
            Rows x Columns, orientation or pixel spacing, missing geometry tags, multi-frame files, two
            slices at one position, non-uniform slice gaps, undecodable pixel data.
    """
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and is_dicom_file_name(p) and p.name.upper() != "DICOMDIR")
    if not files:
        raise InputError("no DICOM files (.dcm or without extension) in the folder; expected one CT series",
                         folder)
    datasets = [read_dicom_file(f) for f in files]
    _require_one_value(datasets, files, folder, "SeriesInstanceUID", "series")
    _require_one_value(datasets, files, folder, ("Rows", "Columns"), "image sizes (Rows, Columns)")
    row_cosine, column_cosine, pixel_spacing = _in_plane_geometry(datasets, files, folder)
    normal = np.cross(row_cosine, column_cosine)

    positions = np.array([_float_tag(ds, f, "ImagePositionPatient", 3) for ds, f in zip(datasets, files)])
    order = np.argsort(positions @ normal, kind="stable")
    datasets = [datasets[i] for i in order]
    files = [files[i] for i in order]
    positions = positions[order]
    step = _slice_step(datasets[0], positions, normal, files, folder)

    slices = []
    for dataset, file in zip(datasets, files):
        pixels = decode_pixel_array(dataset, file)
        if pixels.ndim != 2:
            raise InputError(f"expected one 2D slice per file, got pixel array of shape {pixels.shape}", file)
        slices.append(np.asarray(apply_modality_lut(pixels, dataset), dtype=np.float32).T)
    volume = np.stack(slices, axis=-1)

    affine_lps = np.eye(4)
    affine_lps[:3, 0] = row_cosine * pixel_spacing[1]
    affine_lps[:3, 1] = column_cosine * pixel_spacing[0]
    affine_lps[:3, 2] = step
    affine_lps[:3, 3] = positions[0]
    return volume, LPS_TO_RAS @ affine_lps


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


def _float_tag(dataset: Dataset, file: Path, keyword: str, length: int) -> np.ndarray:
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


def _in_plane_geometry(datasets: list[Dataset], files: list[Path],
                       folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit row and column direction cosines (LPS) and PixelSpacing (row spacing, column spacing) mm."""
    orientations = [_float_tag(ds, f, "ImageOrientationPatient", 6) for ds, f in zip(datasets, files)]
    spacings = [_float_tag(ds, f, "PixelSpacing", 2) for ds, f in zip(datasets, files)]
    for orientation, spacing, file in zip(orientations, spacings, files):
        if np.max(np.abs(orientation - orientations[0])) > _ORIENTATION_TOLERANCE:
            raise InputError(f"slices of mixed ImageOrientationPatient: {orientations[0].tolist()} in "
                             f"{files[0].name}, {orientation.tolist()} in {file.name}", folder)
        if not np.allclose(spacing, spacings[0], rtol=1e-4, atol=1e-6):
            raise InputError(f"slices of mixed PixelSpacing: {spacings[0].tolist()} in {files[0].name}, "
                             f"{spacing.tolist()} in {file.name}", folder)
    row_cosine, column_cosine = orientations[0][:3], orientations[0][3:]
    if min(np.linalg.norm(row_cosine), np.linalg.norm(column_cosine)) < 0.5 or np.any(spacings[0] <= 0):
        raise InputError(f"degenerate ImageOrientationPatient {orientations[0].tolist()} or PixelSpacing "
                         f"{spacings[0].tolist()}", files[0])
    return (row_cosine / np.linalg.norm(row_cosine), column_cosine / np.linalg.norm(column_cosine),
            spacings[0])


def _slice_step(first: Dataset, positions: np.ndarray, normal: np.ndarray, files: list[Path],
                folder: Path) -> np.ndarray:
    """LPS vector (mm) from one slice to the next; checks slices are distinct and evenly spaced."""
    if len(positions) == 1:
        thickness = float(first.get("SpacingBetweenSlices") or first.get("SliceThickness") or 1.0)
        return normal * abs(thickness)
    gaps = np.diff(positions @ normal)
    if np.min(gaps) <= _GAP_TOLERANCE_MM:
        i = int(np.argmin(gaps))
        raise InputError(f"two slices at the same position ({files[i].name}, {files[i + 1].name}); "
                         "expected one slice per position", folder)
    mean_gap = float(np.mean(gaps))
    if np.max(np.abs(gaps - mean_gap)) > max(_GAP_TOLERANCE_MM, _GAP_TOLERANCE_FRACTION * mean_gap):
        i = int(np.argmax(np.abs(gaps - mean_gap)))
        raise InputError(f"non-uniform slice spacing: gaps from {np.min(gaps):.4g} to {np.max(gaps):.4g} mm "
                         f"(e.g. {gaps[i]:.4g} mm between {files[i].name} and {files[i + 1].name}); "
                         "a slice may be missing", folder)
    return (positions[-1] - positions[0]) / (len(positions) - 1)


def write_dicom_ct_series(volume_hu, affine, out_dir: str | Path, *, study_instance_uid: str | None = None,
                          patient_id: str = "ORTHOGEN", patient_name: str = "OrthoGen^Phantom",
                          series_description: str = "OrthoGen CT", series_number: int = 1000) -> str:
    """Write a CT volume as a new DICOM series, one CT Image Storage file per slice.

    Args:
        volume_hu: (X, Y, Z) HU, numpy or torch. X becomes DICOM columns, Y rows, Z slices.
        affine: 4x4 voxel -> RAS mm (numpy or torch); its first two columns must be orthogonal.
        out_dir: new (or empty) folder; files ``slice_0001.dcm``... are built in a temporary sibling folder
            and renamed into place, so no partial series is ever left.
        study_instance_uid: join this existing study; a new StudyInstanceUID when None.
        patient_id, patient_name, series_description, series_number: written as given.

    Returns:
        The new SeriesInstanceUID.

    Pixels are int16 with one RescaleSlope / RescaleIntercept for the series: slope 1 (stored values are
    HU, rounded) when the HU range spans < 65535, else the smallest slope that fits the range. So
    ``read_ct(out_dir)`` returns the volume to within slope / 2 HU and the same affine, provided the
    slice axis points along row x column (true for RAS-diagonal affines); otherwise it comes back with the
    slice order reversed and the matching affine. A RAS-diagonal volume is stored with columns running
    to the patient's right and rows to anterior (a 180-degree in-plane turn from the usual axial display
    in viewers that show stored pixels); reorient it to LPS first (MONAI ``Orientation(axcodes="LPS")``)
    for the conventional layout.
    """
    volume = numpy_array(volume_hu, "volume_hu")
    if volume.ndim != 3:
        raise InputError(f"expected a 3D volume (X, Y, Z), got shape {volume.shape}", "volume_hu")
    affine_lps = LPS_TO_RAS @ _checked_affine(affine)
    spacing = np.linalg.norm(affine_lps[:3, :3], axis=0)
    row_cosine, column_cosine = affine_lps[:3, 0] / spacing[0], affine_lps[:3, 1] / spacing[1]
    normal = np.cross(row_cosine, column_cosine)
    step = affine_lps[:3, 2]
    slice_gap = abs(float(step @ normal))

    slope, intercept = _rescale_for_int16(float(volume.min()), float(volume.max()))

    study_instance_uid = study_instance_uid or generate_uid()
    series_instance_uid = generate_uid()
    template = _series_template(
        study_instance_uid=study_instance_uid, series_instance_uid=series_instance_uid,
        frame_of_reference_uid=generate_uid(), patient_id=patient_id, patient_name=patient_name,
        series_description=series_description, series_number=series_number)
    template.Rows, template.Columns = volume.shape[1], volume.shape[0]
    template.ImageOrientationPatient = [format_number_as_ds(float(v)) for v in (*row_cosine, *column_cosine)]
    template.PixelSpacing = [format_number_as_ds(float(spacing[1])), format_number_as_ds(float(spacing[0]))]
    template.SliceThickness = format_number_as_ds(slice_gap)
    template.SpacingBetweenSlices = format_number_as_ds(slice_gap)
    template.RescaleSlope = format_number_as_ds(slope)
    template.RescaleIntercept = format_number_as_ds(intercept)

    with atomic_folder(out_dir) as folder:
        digits = max(4, len(str(volume.shape[2])))
        for k in range(volume.shape[2]):
            dataset = copy.deepcopy(template)
            instance_uid = generate_uid()
            dataset.file_meta.MediaStorageSOPInstanceUID = instance_uid
            dataset.SOPInstanceUID = instance_uid
            dataset.InstanceNumber = k + 1
            position = affine_lps[:3, 3] + k * step
            dataset.ImagePositionPatient = [format_number_as_ds(float(v)) for v in position]
            dataset.SliceLocation = format_number_as_ds(float(position @ normal))
            stored = np.rint((volume[:, :, k].T.astype(np.float64) - intercept) / slope)
            dataset.PixelData = np.clip(stored, _INT16_MIN, _INT16_MAX).astype("<i2").tobytes()
            dataset.save_as(folder / f"slice_{k + 1:0{digits}d}.dcm", write_like_original=False)
    return series_instance_uid


def _checked_affine(affine) -> np.ndarray:
    """The 4x4 RAS affine as float64; InputError when DICOM slices cannot describe it."""
    matrix = numpy_array(affine, "affine").astype(np.float64)
    if matrix.shape != (4, 4) or not np.allclose(matrix[3], [0, 0, 0, 1]):
        raise InputError(f"expected a 4x4 affine with last row [0, 0, 0, 1], got {matrix.tolist()}", "affine")
    columns = matrix[:3, :3]
    norms = np.linalg.norm(columns, axis=0)
    if np.any(norms == 0) or abs(columns[:, 0] @ columns[:, 1]) > 1e-6 * norms[0] * norms[1]:
        raise InputError("expected orthogonal, non-zero in-plane axes (columns 0 and 1) for DICOM slices, "
                         f"got {columns.tolist()}", "affine")
    if abs(np.linalg.det(columns)) < 1e-9 * np.prod(norms):
        raise InputError(f"slice axis (column 2) lies in the image plane: {columns.tolist()}", "affine")
    return matrix


def _rescale_for_int16(low: float, high: float) -> tuple[float, float]:
    """(RescaleSlope, RescaleIntercept) mapping HU in [low, high] onto int16, exactly as written (DS)."""
    if high - low <= _INT16_MAX - _INT16_MIN - 1:
        if round(low) >= _INT16_MIN and round(high) <= _INT16_MAX:
            return 1.0, 0.0
        return 1.0, float(math.floor(low) - _INT16_MIN)
    slope = float(format_number_as_ds((high - low) / (_INT16_MAX - _INT16_MIN - 1) * (1 + 1e-9)))
    intercept = float(format_number_as_ds(low - (_INT16_MIN + 1) * slope))
    return slope, intercept


def _series_template(*, study_instance_uid: str, series_instance_uid: str, frame_of_reference_uid: str,
                     patient_id: str, patient_name: str, series_description: str,
                     series_number: int) -> FileDataset:
    """Attributes shared by every slice of the series (all but position, instance and pixels)."""
    file_meta = FileMetaDataset()
    file_meta.MediaStorageSOPClassUID = CTImageStorage
    file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    dataset = FileDataset("", {}, file_meta=file_meta, preamble=b"\0" * 128)
    dataset.is_little_endian, dataset.is_implicit_VR = True, False
    now = datetime.datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")

    dataset.SOPClassUID = CTImageStorage
    dataset.StudyInstanceUID = study_instance_uid
    dataset.SeriesInstanceUID = series_instance_uid
    dataset.FrameOfReferenceUID = frame_of_reference_uid
    dataset.PatientName, dataset.PatientID = patient_name, patient_id
    dataset.PatientBirthDate, dataset.PatientSex = "", ""
    dataset.StudyDate = dataset.SeriesDate = dataset.ContentDate = date
    dataset.StudyTime = dataset.SeriesTime = dataset.ContentTime = time
    dataset.StudyID, dataset.AccessionNumber, dataset.ReferringPhysicianName = "", "", ""
    dataset.Modality = "CT"
    dataset.Manufacturer = "OrthoGen"
    dataset.SeriesDescription = series_description
    dataset.SeriesNumber = series_number
    dataset.AcquisitionNumber = 1
    dataset.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
    dataset.PositionReferenceIndicator = ""
    dataset.KVP = ""
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 16, 16, 15
    dataset.PixelRepresentation = 1
    dataset.RescaleType = "HU"
    dataset.WindowCenter, dataset.WindowWidth = _BONE_WINDOW_CENTER_HU, _BONE_WINDOW_WIDTH_HU
    return dataset
