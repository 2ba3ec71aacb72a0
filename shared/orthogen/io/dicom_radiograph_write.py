"""Writing a generated radiograph as one DICOM Secondary Capture image, joining the input's study when known.

Why Secondary Capture (SOP class 1.2.840.10008.5.1.4.1.1.7, Modality OT) and not Digital X-Ray (DX):

- The image is computed by a network, not acquired. The DX IOD describes an acquisition: its DX Series,
  DX Detector, DX Positioning and X-Ray Acquisition Dose modules (PresentationIntentType, detector and
  exposure attributes, ImagerPixelSpacing as Type 1) would have to be made up. Secondary Capture is the
  IOD for images that no modality acquired, and its ConversionType "SYN" (Synthetic Image) says so.
- highdicom 0.22 (the last release for pydicom 2.4) builds it: :class:`highdicom.sc.SCImage` fills the
  SC Equipment, SC Image and General modules and encodes the pixels; it has no DX class.
- Viewers show it: Orthanc stores any SOP class, and OHIF / Cornerstone display single-frame grayscale
  Secondary Capture (MONOCHROME2, 16-bit) like any image, measuring in mm from PixelSpacing (the SC Image
  module's Basic Pixel Spacing Calibration Macro).

Spacing tags follow DICOM's rule for projection images (PS3.3 10.7.1.3): PixelSpacing equal to
ImagerPixelSpacing means "measured at the detector"; PixelSpacing alone is a spacing in the patient plane.
"""
from __future__ import annotations

import copy
import datetime
from pathlib import Path

import numpy as np
from highdicom.sc import SCImage
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pydicom.valuerep import format_number_as_ds

from orthogen.errors import InputError
from orthogen.io.array_argument import numpy_array
from orthogen.io.atomic_write import atomic_file
from orthogen.io.dicom_ct_series import reference_dataset, set_patient_and_study
from orthogen.io.radiograph import checked_pixel_spacing

__all__ = ["SYNTHETIC_RADIOGRAPH_DERIVATION", "spacing_is_at_patient", "write_dicom_radiograph"]

#: Default DerivationDescription: the image is computed, not acquired.
SYNTHETIC_RADIOGRAPH_DERIVATION = "Synthetic radiograph computed by OrthoGen; not an acquired image"
#: Values this far outside [0,1] (floating-point noise) are clipped; farther ones are an error.
_RANGE_TOLERANCE = 1e-6
_TOP = 65535
#: Series-level tags of the reference that still describe the generated image (same pixel grid, same leg).
_SAME_IMAGE_KEYWORDS = ("BodyPartExamined", "Laterality", "PatientOrientation")


def spacing_is_at_patient(spacing_source: str) -> bool:
    """Whether a spacing read by :func:`orthogen.io.read_radiograph` (or ``read_segmentation_image``) is in
    the patient plane: PixelSpacing, or ImagerPixelSpacing corrected by the magnification factor. Every
    other source (ImagerPixelSpacing alone, a DRR sidecar, a NIfTI affine, an argument) is at the detector,
    as orthogen's DRRs are."""
    return spacing_source == "PixelSpacing" or spacing_source.startswith("ImagerPixelSpacing / ")


def write_dicom_radiograph(image, path: str | Path, *, pixel_spacing_mm=None, spacing_at_detector: bool = True,
                           reference: Dataset | str | Path | None = None,
                           series_description: str = "OrthoGen synthetic radiograph", series_number: int = 1001,
                           derivation_description: str = SYNTHETIC_RADIOGRAPH_DERIVATION) -> str:
    """Write ``image`` (H, W) in [0, 1], bone bright, as a 16-bit MONOCHROME2 Secondary Capture file.

    Args:
        image: (H, W) numpy or torch, finite, in [0, 1]; stored as round(value * 65535), row 0 at the top.
        path: the ``.dcm`` file; written to a temporary sibling and renamed into place.
        pixel_spacing_mm: (row, col) in mm, or None (then the file has no spacing tags and viewers measure
            in pixels).
        spacing_at_detector: True (orthogen's DRR spacings, ImagerPixelSpacing without a magnification):
            PixelSpacing and ImagerPixelSpacing both hold ``pixel_spacing_mm``, DICOM's way to say
            "measured at the detector". False (a PixelSpacing calibrated to the patient): PixelSpacing only.
        reference: a DICOM dataset (or file path) of the study to join, e.g. the segmentation the image was
            generated from. Its StudyInstanceUID, patient and study tags and SpecificCharacterSet are copied
            (:func:`orthogen.io.dicom_ct_series.write_dicom_ct_series`'s rules), its SOP instance is listed
            in SourceImageSequence, and BodyPartExamined, Laterality and PatientOrientation are kept (the
            generated image is on the reference's pixel grid). None: a new study (PatientID "ORTHOGEN").
        series_description: SeriesDescription, e.g. "Knee radiograph diffusion synthetic radiograph
            (phantom-trained)".
        series_number: SeriesNumber.
        derivation_description: DerivationDescription (the method, e.g. "CTM, PC sampler, 1000 NFE"); the
            image is also marked ImageType DERIVED\\SECONDARY, ConversionType SYN, BurnedInAnnotation NO.

    Returns:
        The new SOPInstanceUID (the SeriesInstanceUID is new too).

    Raises:
        InputError: naming the argument for a non-2D, non-finite or out-of-range image, a bad spacing, a
            reference without StudyInstanceUID; naming the path when it does not end in ``.dcm``.
    """
    target = Path(path)
    if target.suffix.lower() != ".dcm":
        raise InputError(f"expected a .dcm file name, got {target.name!r}", target)
    array = numpy_array(image, "image").astype(np.float64)
    if array.ndim != 2:
        raise InputError(f"expected a 2D (H, W) image, got shape {array.shape}", "image")
    if array.min() < -_RANGE_TOLERANCE or array.max() > 1 + _RANGE_TOLERANCE:
        raise InputError(f"expected values in [0, 1], got [{array.min():.6g}, {array.max():.6g}]", "image")
    spacing = None if pixel_spacing_mm is None else checked_pixel_spacing(pixel_spacing_mm, "pixel_spacing_mm")
    reference = reference_dataset(reference)
    pixels = np.rint(np.clip(array, 0.0, 1.0) * _TOP).astype(np.uint16)

    sop_instance_uid = generate_uid()
    dataset = SCImage(pixel_array=pixels, photometric_interpretation="MONOCHROME2", bits_allocated=16,
                      coordinate_system="PATIENT", patient_orientation=("L", "F"),  # replaced below
                      study_instance_uid=generate_uid(), series_instance_uid=generate_uid(),
                      series_number=series_number, sop_instance_uid=sop_instance_uid, instance_number=1,
                      manufacturer="OrthoGen", series_description=series_description)
    set_patient_and_study(dataset, reference, study_instance_uid=None, patient_id=None, patient_name=None)
    now = datetime.datetime.now()
    dataset.SeriesDate, dataset.SeriesTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    if not dataset.get("StudyDate"):  # a new study (or a reference without a date) starts now
        dataset.StudyDate, dataset.StudyTime = dataset.SeriesDate, dataset.SeriesTime
    dataset.PatientOrientation = ""  # Type 2: unknown unless the reference says it
    for keyword in _SAME_IMAGE_KEYWORDS:
        if reference is not None and keyword in reference:
            dataset.add(copy.deepcopy(reference.data_element(keyword)))
    dataset.ImageType = ["DERIVED", "SECONDARY"]
    dataset.ConversionType = "SYN"
    dataset.DerivationDescription = derivation_description
    dataset.BurnedInAnnotation = "NO"
    dataset.WindowCenter, dataset.WindowWidth = format_number_as_ds(_TOP / 2), format_number_as_ds(_TOP + 1.0)
    if spacing is not None:
        values = [format_number_as_ds(float(v)) for v in spacing]
        dataset.PixelSpacing = values
        if spacing_at_detector:
            dataset.ImagerPixelSpacing = values
    with atomic_file(target) as temporary:
        dataset.save_as(temporary, write_like_original=False)
    return sop_instance_uid
