"""DICOM CT series: one CT Image Storage file per axial slice, read into and written from (X, Y, Z) HU.

Array axes map to DICOM as: X = column index (along a row, ImageOrientationPatient[:3]),
Y = row index (down a column, ImageOrientationPatient[3:]), Z = slice order. DICOM positions are LPS;
the affines here are RAS (see ``patient_space``). Reading is :class:`orthogen.io.CTImageReader`'s (MONAI's
PydicomReader after :mod:`orthogen.io.ct_series_checks`). highdicom 0.22 builds only
multi-frame/derived objects, so the single-frame CT files are made with pydicom.
"""
from __future__ import annotations

import copy
import datetime
import math
from pathlib import Path

import numpy as np
import pydicom
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, io_orientation, ornt_transform
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, CTImageStorage, ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import format_number_as_ds

from orthogen.errors import InputError
from orthogen.io.array_argument import numpy_array
from orthogen.io.atomic_write import atomic_folder
from orthogen.io.ct_image_reader import CTImageReader
from orthogen.io.ct_series_checks import is_dicom_file_name
from orthogen.io.input_file import existing_file
from orthogen.io.patient_space import LPS_TO_RAS

__all__ = ["DICOM_AXIAL_AXCODES", "SYNTHETIC_CT_DERIVATION", "is_dicom_file_name", "read_dicom_ct_series",
           "reorient_to_dicom_axial", "write_dicom_ct_series"]

#: RAS axis codes of the written layout: columns toward patient Left, rows toward Posterior, slices
#: toward Superior, i.e. ImageOrientationPatient ~ [1, 0, 0, 0, 1, 0] (the usual axial display).
DICOM_AXIAL_AXCODES = ("L", "P", "S")
#: Default DerivationDescription: the series is computed, not acquired.
SYNTHETIC_CT_DERIVATION = "Synthetic CT computed by OrthoGen; not an acquired image"
#: Patient-level tags copied from a reference dataset (Patient module).
PATIENT_KEYWORDS = ("PatientName", "PatientID", "IssuerOfPatientID", "TypeOfPatientID", "OtherPatientIDsSequence",
                    "PatientBirthDate", "PatientBirthTime", "PatientSex", "EthnicGroup", "PatientComments",
                    "PatientIdentityRemoved", "DeidentificationMethod", "DeidentificationMethodCodeSequence")
#: Study-level tags copied from a reference dataset (General Study and Patient Study modules).
STUDY_KEYWORDS = ("StudyInstanceUID", "StudyDate", "StudyTime", "StudyID", "AccessionNumber",
                  "IssuerOfAccessionNumberSequence", "ReferringPhysicianName", "StudyDescription",
                  "PhysiciansOfRecord", "NameOfPhysiciansReadingStudy", "ProcedureCodeSequence", "PatientAge",
                  "PatientSize", "PatientWeight")
_INT16_MIN, _INT16_MAX = -32768, 32767
#: Display window stored in the files: a bone window, as OrthoGen's volumes are about bone.
_BONE_WINDOW_CENTER_HU, _BONE_WINDOW_WIDTH_HU = 500, 2000


def read_dicom_ct_series(folder: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read the one CT series in ``folder`` with :class:`orthogen.io.CTImageReader`.

    Returns:
        (volume, affine): volume (X=Columns, Y=Rows, Z=slices in InstanceNumber order) float32 HU;
        affine 4x4 float64 voxel -> RAS mm, the slice step taken from the first and last positions
        (gantry tilt shows as shear).

    Raises:
        InputError: see :func:`orthogen.io.ct_series_checks.read_checked_ct_series`; also when ``folder``
            is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("expected a DICOM series folder", folder)
    reader = CTImageReader()
    volume, meta = reader.get_data(reader.read(folder))
    return volume, meta["affine"]


def reorient_to_dicom_axial(volume: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The volume with its axes flipped / permuted to :data:`DICOM_AXIAL_AXCODES`, and its new affine.

    Args:
        volume: (X, Y, Z) numpy array, any axis order.
        affine: 4x4 voxel -> RAS mm of ``volume`` (numpy).

    Returns:
        (volume', affine'): the same voxels with axis 0 nearest patient Left, axis 1 nearest Posterior,
        axis 2 nearest Superior (nibabel ``io_orientation`` / ``apply_orientation``); affine' =
        affine @ ``inv_ornt_aff`` describes them. This is what ``write_dicom_ct_series`` stores and
        ``read_ct`` of the written folder returns.
    """
    volume, affine = np.asarray(volume), np.asarray(affine, dtype=np.float64)
    transform = ornt_transform(io_orientation(affine), axcodes2ornt(DICOM_AXIAL_AXCODES))
    return apply_orientation(volume, transform), affine @ inv_ornt_aff(transform, volume.shape)


def write_dicom_ct_series(volume_hu, affine, out_dir: str | Path, *,
                          reference: Dataset | str | Path | None = None,
                          series_description: str = "OrthoGen CT", series_number: int = 1000,
                          derivation_description: str = SYNTHETIC_CT_DERIVATION,
                          study_instance_uid: str | None = None, patient_id: str | None = None,
                          patient_name: str | None = None) -> str:
    """Write a CT volume as a new DICOM series in the usual axial layout, one CT Image file per slice.

    Whatever the input affine (RAS-diagonal, oblique, view-aligned "IAL", ...) the volume is first
    reoriented with :func:`reorient_to_dicom_axial` to the axis codes nearest L, P, S: rows of each image
    run toward the patient's left (ImageOrientationPatient[:3] ~ +x LPS), columns toward posterior
    (ImageOrientationPatient[3:] ~ +y LPS), so a viewer showing the stored pixels (rows top to bottom)
    shows anterior at the top and the patient's right on the image left (radiological convention).
    Slices go from inferior to superior: InstanceNumber 1..N increase along row x column.

    Args:
        volume_hu: (X, Y, Z) HU, numpy or torch, finite.
        affine: 4x4 voxel -> RAS mm of ``volume_hu`` (numpy or torch). After reorientation the two
            in-plane axes must be orthogonal (a shear along the slice axis, e.g. gantry tilt, is fine).
        out_dir: new (or empty) folder; files ``slice_0001.dcm``... are built in a temporary sibling folder
            and renamed into place, so no partial series is ever left.
        reference: a DICOM dataset (pydicom ``Dataset``, or the path of a DICOM file) of the study to
            join, e.g. the radiograph the CT was generated from. Its StudyInstanceUID, patient tags
            (:data:`PATIENT_KEYWORDS`), study tags (:data:`STUDY_KEYWORDS`) and SpecificCharacterSet are
            copied, and its SOP instance is listed in SourceImageSequence. ``None``: a new study.
        series_description: SeriesDescription, e.g. "Spine X2CT-GAN synthetic CT (phantom-trained)".
        series_number: SeriesNumber.
        derivation_description: DerivationDescription; the series is also marked ImageType
            DERIVED\\SECONDARY\\AXIAL and BurnedInAnnotation NO.
        study_instance_uid: join this study without a reference dataset (patient tags then come from
            ``patient_id`` / ``patient_name``); with a reference it must equal the reference's.
        patient_id, patient_name: without a reference, written as given (default "ORTHOGEN",
            "OrthoGen^Phantom"); with a reference they must equal the reference's or be None.

    Returns:
        The new SeriesInstanceUID. Every SOPInstanceUID is new, and so is the FrameOfReferenceUID: the
        volume's coordinates are not registered to the reference's patient space.

    Pixels are int16 with one RescaleSlope / RescaleIntercept for the series: slope 1 (stored values are
    HU, rounded) when the HU range spans < 65535, else the smallest slope that fits the range. So
    ``read_ct(out_dir)`` returns ``reorient_to_dicom_axial(volume_hu, affine)``: the reoriented volume to
    within slope / 2 HU and its affine exactly (to DS precision); ``Orientation`` to the input's axis
    codes gives back the input's array and affine.

    Raises:
        InputError: naming the argument for a non-3D or non-finite volume, an affine DICOM slices cannot
            describe, a reference without StudyInstanceUID or conflicting with the given UID / patient;
            naming the folder when it exists and is not empty.
    """
    volume = numpy_array(volume_hu, "volume_hu")
    if volume.ndim != 3:
        raise InputError(f"expected a 3D volume (X, Y, Z), got shape {volume.shape}", "volume_hu")
    volume, affine_ras = reorient_to_dicom_axial(volume, _checked_affine(affine))
    affine_lps = LPS_TO_RAS @ _checked_in_plane_axes(affine_ras)
    spacing = np.linalg.norm(affine_lps[:3, :3], axis=0)
    row_cosine, column_cosine = affine_lps[:3, 0] / spacing[0], affine_lps[:3, 1] / spacing[1]
    normal = np.cross(row_cosine, column_cosine)
    step = affine_lps[:3, 2]
    slice_gap = float(step @ normal)

    slope, intercept = _rescale_for_int16(float(volume.min()), float(volume.max()))

    template = _series_template(series_description=series_description, series_number=series_number,
                                derivation_description=derivation_description)
    set_patient_and_study(template, reference_dataset(reference), study_instance_uid=study_instance_uid,
                           patient_id=patient_id, patient_name=patient_name)
    series_instance_uid = template.SeriesInstanceUID
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
    """The 4x4 RAS affine as float64; InputError when it is not one or its axes are degenerate."""
    matrix = numpy_array(affine, "affine").astype(np.float64)
    if matrix.shape != (4, 4) or not np.allclose(matrix[3], [0, 0, 0, 1]):
        raise InputError(f"expected a 4x4 affine with last row [0, 0, 0, 1], got {matrix.tolist()}", "affine")
    columns = matrix[:3, :3]
    norms = np.linalg.norm(columns, axis=0)
    if np.any(norms == 0) or abs(np.linalg.det(columns)) < 1e-9 * np.prod(norms):
        raise InputError(f"expected three independent, non-zero voxel axes, got {columns.tolist()}", "affine")
    return matrix


def _checked_in_plane_axes(matrix: np.ndarray) -> np.ndarray:
    """``matrix`` (already in the axial layout); InputError unless its first two axes are orthogonal."""
    columns = matrix[:3, :3]
    norms = np.linalg.norm(columns, axis=0)
    if abs(columns[:, 0] @ columns[:, 1]) > 1e-6 * norms[0] * norms[1]:
        raise InputError("expected orthogonal in-plane axes for DICOM slices (the axes nearest left-right and "
                         f"anterior-posterior), got {columns.T.tolist()} as (left, posterior, superior) axes",
                         "affine")
    normal = np.cross(columns[:, 0], columns[:, 1])
    if columns[:, 2] @ normal <= 1e-9 * np.prod(norms):
        raise InputError(f"slice axis does not point out of the image plane: {columns.T.tolist()}", "affine")
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


def reference_dataset(reference: Dataset | str | Path | None) -> Dataset | None:
    """The reference as a pydicom Dataset (a path is read without pixel data); checks StudyInstanceUID."""
    if reference is None:
        return None
    source = "reference"
    if not isinstance(reference, Dataset):
        source = existing_file(reference)
        try:
            reference = pydicom.dcmread(source, stop_before_pixels=True)
        except Exception as exc:  # pydicom raises InvalidDicomError, EOFError, struct.error, ...
            raise InputError(f"not a readable DICOM file ({type(exc).__name__}: {exc}); expected a DICOM "
                             "dataset of the study to join", source) from exc
    if not reference.get("StudyInstanceUID"):
        raise InputError("has no StudyInstanceUID; expected a DICOM dataset of the study to join", source)
    return reference


def set_patient_and_study(template: Dataset, reference: Dataset | None, *, study_instance_uid: str | None,
                           patient_id: str | None, patient_name: str | None) -> None:
    """Patient and study tags: copied from ``reference``, else from the arguments (a new study if no UID)."""
    if reference is None:
        template.StudyInstanceUID = study_instance_uid or generate_uid()
        template.PatientID = "ORTHOGEN" if patient_id is None else patient_id
        template.PatientName = "OrthoGen^Phantom" if patient_name is None else patient_name
        return
    for argument, keyword, value in (("study_instance_uid", "StudyInstanceUID", study_instance_uid),
                                     ("patient_id", "PatientID", patient_id),
                                     ("patient_name", "PatientName", patient_name)):
        if value is not None and str(value) != str(reference.get(keyword, "")):
            raise InputError(f"{value!r} differs from the reference's {keyword} {str(reference.get(keyword))!r}; "
                             "pass one or the other", argument)
    for keyword in ("SpecificCharacterSet", *PATIENT_KEYWORDS, *STUDY_KEYWORDS):
        if keyword in reference:
            template.add(copy.deepcopy(reference.data_element(keyword)))
    if "SOPInstanceUID" in reference and "SOPClassUID" in reference:
        source = Dataset()
        source.ReferencedSOPClassUID = reference.SOPClassUID
        source.ReferencedSOPInstanceUID = reference.SOPInstanceUID
        template.SourceImageSequence = [source]


def _series_template(*, series_description: str, series_number: int, derivation_description: str) -> Dataset:
    """Attributes shared by every slice of a new series (patient and study tags set empty: Type 2).

    A plain ``Dataset`` with ``file_meta``, not a ``FileDataset``: pydicom 2.4's ``FileDataset.__deepcopy__``
    drops the memo and recurses forever on a dataset holding a sequence (SourceImageSequence).
    """
    dataset = Dataset()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.MediaStorageSOPClassUID = CTImageStorage
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    dataset.is_little_endian, dataset.is_implicit_VR = True, False
    now = datetime.datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")

    dataset.SOPClassUID = CTImageStorage
    dataset.SeriesInstanceUID = generate_uid()
    dataset.FrameOfReferenceUID = generate_uid()
    dataset.PatientName, dataset.PatientID = "", ""
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
    dataset.DerivationDescription = derivation_description
    dataset.BurnedInAnnotation = "NO"
    dataset.PositionReferenceIndicator = ""
    dataset.KVP = ""
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 16, 16, 15
    dataset.PixelRepresentation = 1
    dataset.RescaleType = "HU"
    dataset.WindowCenter, dataset.WindowWidth = _BONE_WINDOW_CENTER_HU, _BONE_WINDOW_WIDTH_HU
    return dataset
