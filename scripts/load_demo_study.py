"""Upload a phantom knee study to Orthanc: AP and lateral radiographs (DRRs) as DICOM DX, the CT as a DICOM
CT series and a DICOM SEG of the AP view (segments "contour" and "bone", the knee radiograph models' input),
one study of one patient, sent by DICOMweb STOW-RS.

    python scripts/load_demo_study.py [--url http://127.0.0.1:8042] [--seed 0] [--size 128] [--out DIR]

The knee is ``KneePhantom.from_seed(seed)`` on a size^3 grid over the demo's 128 mm field of view (128^3 at
1 mm by default), its DRRs are ``orthogen demo``'s (``fit_detector`` + ``render_drr``, cone beam, SID 1000 mm,
SDD 1500 mm) on a (2 size)^2 detector. Procedural phantom data, not patient data; every series says so.
Prints the StudyInstanceUID and one line per series.
"""
from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pydicom
import requests
import torch
from dicomweb_client import DICOMwebClient
from pydicom.dataset import Dataset
from pydicom.uid import DigitalXRayImageStorageForPresentation
from pydicom.valuerep import format_number_as_ds

from orthogen.data.knee_radiograph_prepare import KneeRadiographPreparation
from orthogen.drr import fit_detector, project_labels, render_drr
from orthogen.drr.files import view_name
from orthogen.errors import OrthoGenError
from orthogen.io import write_dicom_ct_series, write_dicom_radiograph
from orthogen.io.atomic_write import atomic_file
from orthogen.phantoms import KneePhantom
from orthogen.transforms.radiograph_segmentation import leg_contour_and_bone

DEFAULT_URL = "http://127.0.0.1:8042"
FIELD_OF_VIEW_MM = 128.0  # the demo knee's: 128^3 voxels of 1 mm
SIZE_RANGE = (16, 256)
PATIENT_NAME = "OrthoGen^Phantom Knee"
#: DICOM for each DRR view of orthogen.drr.geometry's detector frame: ViewPosition (AP: source anterior;
#: lateral: source at the patient's right, detector at the left) and PatientOrientation (the patient
#: directions along a row and down a column: rows of the image run superior -> inferior, columns patient
#: right -> left for AP and posterior -> anterior for the lateral view).
VIEW_POSITION = {"ap": "AP", "lateral": "LL"}
PATIENT_ORIENTATION = {"ap": ["L", "F"], "lateral": ["A", "F"]}
KNEE_CODE = ("72696002", "SCT", "Knee")  # AnatomicRegionSequence (SNOMED CT, DICOM CID 4031)
TISSUE_CODE = ("85756007", "SCT", "Tissue")  # a SEG segment's category and type when drawn by hand


class UploadError(OrthoGenError):
    """The DICOMweb server cannot be reached or refused an instance (one line, naming the URL)."""


@dataclass
class DemoSeries:
    """One written series: its UID, Modality, SeriesDescription and files (sorted by InstanceNumber)."""

    series_instance_uid: str
    modality: str
    description: str
    files: list[Path]


@dataclass
class DemoStudy:
    """The written study: its UID, PatientID, the knee's side and the series (CT, DX AP, SEG of the AP view,
    DX lateral)."""

    study_instance_uid: str
    patient_id: str
    side: str
    series: list[DemoSeries]

    @property
    def files(self) -> list[Path]:
        """Every written file, series by series."""
        return [path for series in self.series for path in series.files]


def write_demo_study(out_dir: str | Path, seed: int = 0, size: int = 128) -> DemoStudy:
    """Write the phantom knee of ``seed`` as a CT series (``out_dir``/ct/), its AP and lateral DRRs as DX
    files (``out_dir``/dx_ap.dcm, dx_lateral.dcm) and the AP view's segmentation as a DICOM SEG
    (``out_dir``/seg_ap.dcm), all in one new study.

    Args:
        out_dir: a new or empty folder.
        seed: the knee's seed (``KneePhantom.from_seed``).
        size: CT voxels per side over ``FIELD_OF_VIEW_MM`` (spacing 128/size mm); the detector is 2 size
            pixels per side.
    """
    out_dir = Path(out_dir)
    knee = KneePhantom.from_seed(seed)
    spacing = FIELD_OF_VIEW_MM / size
    ct = knee.render((size,) * 3, (spacing,) * 3)
    geometry = fit_detector(ct.volume_hu.shape, ct.affine, 2 * size)
    drr = render_drr(torch.from_numpy(ct.volume_hu), ct.affine, geometry, "ap,lateral")
    preparation = KneeRadiographPreparation()  # the knee radiograph models' training data: bone above 200 HU
    bone = (torch.from_numpy(ct.volume_hu) > preparation.bone_hu).to(torch.int64)
    bone_path = project_labels(bone, ct.affine, geometry, list(drr.angles_deg), label_values=[1]).sum(dim=1)
    patient_id = f"ORTHOGEN-KNEE-{seed:04d}"
    note = f"phantom knee seed {seed}, not patient data"
    ct_description = f"CT ({note})"
    ct_series = write_dicom_ct_series(ct.volume_hu, ct.affine, out_dir / "ct", series_description=ct_description,
                                      series_number=1, patient_id=patient_id, patient_name=PATIENT_NAME,
                                      derivation_description="Procedural knee phantom CT computed by OrthoGen; "
                                                             "not an acquired image")
    ct_files = sorted((out_dir / "ct").glob("*.dcm"))
    study = DemoStudy(pydicom.dcmread(ct_files[0], stop_before_pixels=True).StudyInstanceUID, patient_id,
                      knee.side, [DemoSeries(ct_series, "CT", ct_description, ct_files)])
    with tempfile.TemporaryDirectory() as scratch:
        for number, angle in enumerate(drr.angles_deg, start=2):
            view = view_name(angle)
            description = f"{view.upper() if view == 'ap' else view.capitalize()} radiograph, DRR ({note})"
            secondary_capture = Path(scratch) / f"{view}.dcm"
            write_dicom_radiograph(drr.image[number - 2], secondary_capture, pixel_spacing_mm=drr.pixel_spacing_mm,
                                   reference=ct_files[0], series_description=description, series_number=number,
                                   derivation_description=f"Digitally reconstructed radiograph of the {note}")
            dx = as_digital_xray(pydicom.dcmread(secondary_capture), view, knee.side,
                                 source_to_isocenter_mm=geometry.source_to_isocenter_mm,
                                 source_to_detector_mm=geometry.source_to_detector_mm)
            path = out_dir / f"dx_{view}.dcm"
            with atomic_file(path) as temporary:
                dx.save_as(temporary, write_like_original=False)
            study.series.append(DemoSeries(dx.SeriesInstanceUID, "DX", description, [path]))
            if view == "ap":
                segments = knee_segments(drr.image[number - 2].numpy(), bone_path[number - 2].numpy(),
                                         preparation.contour_threshold)
                seg = segmentation_of(dx, segments, f"Knee segmentation ({note})")
                seg_path = out_dir / "seg_ap.dcm"
                with atomic_file(seg_path) as temporary:
                    seg.save_as(temporary, write_like_original=False)
                study.series.append(DemoSeries(seg.SeriesInstanceUID, "SEG", seg.SeriesDescription, [seg_path]))
    return study


def knee_segments(radiograph, bone_path_mm, threshold: float) -> dict[str, object]:
    """The segments a user draws for the knee radiograph models, exactly as their training data has them
    (``orthogen.transforms.radiograph_segmentation``): "contour" (the leg) and "bone" (rays through bone)."""
    levels = leg_contour_and_bone(radiograph, bone_path_mm, threshold)
    return {"contour": levels > 0, "bone": levels == 1.0}


def segmentation_of(dx: Dataset, segments: dict[str, object], description: str) -> Dataset:
    """A binary DICOM SEG of the DX image ``dx`` (highdicom), one segment per item of ``segments``
    (SegmentLabel -> (rows, cols) bool mask), as a viewer saves one: SegmentedPropertyType "Tissue"."""
    import highdicom as hd
    import numpy as np

    tissue = hd.sr.CodedConcept(*TISSUE_CODE)
    descriptions = [hd.seg.SegmentDescription(segment_number=number, segment_label=label, algorithm_type="MANUAL",
                                              segmented_property_category=tissue, segmented_property_type=tissue)
                    for number, label in enumerate(segments, start=1)]
    masks = np.stack([np.asarray(mask, dtype=np.uint8) for mask in segments.values()], axis=-1)[None]
    return hd.seg.Segmentation([dx], masks, "BINARY", descriptions, series_instance_uid=hd.UID(), series_number=10,
                               sop_instance_uid=hd.UID(), instance_number=1, manufacturer="OrthoGen",
                               manufacturer_model_name="load_demo_study", software_versions="1",
                               device_serial_number="0", series_description=description)


def as_digital_xray(secondary_capture: Dataset, view: str, side: str, *, source_to_isocenter_mm: float,
                    source_to_detector_mm: float) -> Dataset:
    """A copy of ``write_dicom_radiograph``'s Secondary Capture image as a DX (For Presentation) image.

    Hand-written: orthogen.io writes synthetic radiographs as Secondary Capture on purpose and highdicom has
    no DX class; the demo study stands in for what a modality sends, so its radiographs are DX. The pixels,
    spacing tags (PixelSpacing = ImagerPixelSpacing: at the detector), patient, study and SourceImageSequence
    stay; the DX Series, DX Image, DX Detector, DX Anatomy Imaged and DX Positioning modules are added.
    Pixel values are the clipped, normalised line integral, bone bright: LOG, sign -1.
    """
    dx = copy.deepcopy(secondary_capture)
    dx.file_meta.MediaStorageSOPClassUID = dx.SOPClassUID = DigitalXRayImageStorageForPresentation
    dx.Modality = "DX"
    for keyword in ("ConversionType", "DateOfSecondaryCapture", "TimeOfSecondaryCapture"):  # SC modules only
        dx.pop(keyword, None)
    dx.PresentationIntentType = "FOR PRESENTATION"
    dx.PixelIntensityRelationship, dx.PixelIntensityRelationshipSign = "LOG", -1
    dx.RescaleIntercept, dx.RescaleSlope, dx.RescaleType = "0", "1", "US"
    dx.PresentationLUTShape = "IDENTITY"
    dx.LossyImageCompression = "00"
    dx.DetectorType = ""
    dx.BodyPartExamined = "KNEE"
    dx.ImageLaterality = side[0].upper()
    region = Dataset()
    region.CodeValue, region.CodingSchemeDesignator, region.CodeMeaning = KNEE_CODE
    dx.AnatomicRegionSequence = [region]
    dx.ViewPosition = VIEW_POSITION[view]
    dx.PatientOrientation = PATIENT_ORIENTATION[view]
    dx.DistanceSourceToPatient = format_number_as_ds(float(source_to_isocenter_mm))
    dx.DistanceSourceToDetector = format_number_as_ds(float(source_to_detector_mm))
    return dx


def check_dicomweb(url: str = DEFAULT_URL) -> None:
    """Raise UploadError (one line) unless ``url``/dicom-web answers a QIDO-RS study search."""
    target = f"{url.rstrip('/')}/dicom-web/studies?limit=1"
    try:
        response = requests.get(target, headers={"Accept": "application/dicom+json"}, timeout=10)
    except requests.RequestException as exc:
        raise UploadError(f"{url}: cannot connect ({type(exc).__name__}); expected a running Orthanc "
                          "(`make orthanc`)") from exc
    if not response.ok:
        raise UploadError(f"{target}: answered HTTP {response.status_code} {response.reason}; expected a "
                          "DICOMweb server (Orthanc with its DICOMweb plugin on /dicom-web/)")


def upload_study(files: list[Path], url: str = DEFAULT_URL) -> int:
    """STOW-RS ``files`` to ``url``/dicom-web (one multipart/related request); returns the instances stored.

    Raises:
        UploadError: the server cannot be reached, answers with an HTTP error, or lists failed instances.
    """
    client = DICOMwebClient(f"{url.rstrip('/')}/dicom-web")
    client.set_http_retry_params(retry=False)  # its default retries any error for ~30 s: say it now
    try:
        response = client.store_instances([pydicom.dcmread(path) for path in files])
    except requests.ConnectionError as exc:
        raise UploadError(f"{url}: cannot connect ({type(exc).__name__}); expected a running Orthanc "
                          "(`make orthanc`)") from exc
    except requests.HTTPError as exc:
        raise UploadError(f"{url}/dicom-web/studies: STOW-RS answered {exc}") from exc
    failed = response.get("FailedSOPSequence", [])
    if failed:
        reasons = sorted({str(item.get("FailureReason", "?")) for item in failed})
        raise UploadError(f"{url}/dicom-web/studies: {len(failed)} of {len(files)} instances refused "
                          f"(FailureReason {', '.join(reasons)})")
    return len(response.get("ReferencedSOPSequence", []))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Upload a phantom knee study (CT + AP/lateral DX + SEG of the AP view) to Orthanc.")
    parser.add_argument("--url", default=DEFAULT_URL, help="Orthanc's REST root (DICOMweb under /dicom-web)")
    parser.add_argument("--seed", type=int, default=0, help="the phantom knee's seed (a whole number >= 0)")
    parser.add_argument("--size", type=int, default=128,
                        help=f"CT voxels per side over {FIELD_OF_VIEW_MM:g} mm ({SIZE_RANGE[0]}-{SIZE_RANGE[1]}); "
                             "the radiographs are twice that")
    parser.add_argument("--out", default=None, help="keep the DICOM files in this new folder (default: discarded)")
    args = parser.parse_args(argv)
    if not SIZE_RANGE[0] <= args.size <= SIZE_RANGE[1]:
        parser.error(f"argument --size: expected {SIZE_RANGE[0]}-{SIZE_RANGE[1]}, got {args.size}")
    if args.seed < 0:
        parser.error(f"argument --seed: expected a whole number >= 0, got {args.seed}")
    if args.out and Path(args.out).exists() and any(Path(args.out).iterdir()):
        parser.error(f"argument --out: {args.out} is not empty; expected a new or empty folder")
    try:
        check_dicomweb(args.url)  # before the phantom is rendered
        with tempfile.TemporaryDirectory() as scratch:
            study = write_demo_study(Path(args.out) if args.out else Path(scratch) / "study", args.seed, args.size)
            start = time.perf_counter()
            stored = upload_study(study.files, args.url)
            seconds = time.perf_counter() - start
    except OrthoGenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"StudyInstanceUID {study.study_instance_uid} (patient {study.patient_id}, {study.side} knee) "
          f"on {args.url}: {stored} instances in {seconds:.2f} s")
    for series in study.series:
        print(f"  {series.modality} {series.series_instance_uid}  {series.description}, "
              f"{len(series.files)} instance{'s' if len(series.files) > 1 else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
