"""Small uncompressed DICOM radiograph files built by the tests themselves (pydicom), in one place.

``dx_dataset`` gives the dataset, ``write_dx`` writes it: a DX (Digital X-Ray For Presentation) image by
default, grayscale (MONOCHROME1/2, PALETTE COLOR ...), RGB or multi-frame, of unsigned pixels already in the
stored dtype (uint8 or uint16; BitsAllocated follows the dtype). Any other tag is given by keyword.
``seg_dataset`` / ``write_seg`` give a DICOM SEG of such a radiograph, built by highdicom as a viewer saves
one (segments by label, empty frames left out)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

DX_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation


def dx_dataset(pixels: np.ndarray, *, photometric: str = "MONOCHROME2", bits_stored: int | None = None,
               pixel_spacing=None, study_uid: str | None = None, sop_class: str = DX_FOR_PRESENTATION,
               modality: str = "DX", transfer_syntax: UID = ExplicitVRLittleEndian, **tags) -> Dataset:
    """A dataset of unsigned ``pixels``: (rows, cols), (frames, rows, cols) (NumberOfFrames set) or, with
    ``photometric="RGB"``, (rows, cols, 3) (interleaved). ``bits_stored`` defaults to the dtype's bits
    (HighBit follows it). ``pixel_spacing`` (row, col) mm sets PixelSpacing; ``study_uid`` sets
    StudyInstanceUID and a new SeriesInstanceUID (neither is set without it). A compressed
    ``transfer_syntax`` gets one undecodable encapsulated JPEG-LS-like frame instead of ``pixels``.
    ``tags`` (DICOM keywords) are set last, so they override any of the above."""
    file_meta = FileMetaDataset()
    file_meta.MediaStorageSOPClassUID = sop_class
    file_meta.MediaStorageSOPInstanceUID = generate_uid()
    file_meta.TransferSyntaxUID = transfer_syntax
    ds = Dataset()
    ds.file_meta = file_meta
    ds.is_little_endian, ds.is_implicit_VR = True, UID(transfer_syntax).is_implicit_VR  # little endian only
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, file_meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    if study_uid is not None:
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, generate_uid()
    rgb = photometric == "RGB" and pixels.ndim == 3 and pixels.shape[-1] == 3
    ds.Rows, ds.Columns = pixels.shape[:2] if rgb else pixels.shape[-2:]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = (3, "RGB") if rgb else (1, photometric)
    if rgb:
        ds.PlanarConfiguration = 0
    elif pixels.ndim == 3:
        ds.NumberOfFrames = pixels.shape[0]
    bits = pixels.dtype.itemsize * 8
    ds.BitsAllocated, ds.BitsStored = bits, bits_stored or bits
    ds.HighBit, ds.PixelRepresentation = ds.BitsStored - 1, 0
    if pixel_spacing is not None:
        ds.PixelSpacing = list(pixel_spacing)
    if UID(transfer_syntax).is_compressed:
        ds.PixelData = encapsulate([b"\xff\xd8\xff\xf7" + bytes(64)])
        ds["PixelData"].is_undefined_length = True
    else:
        ds.PixelData = pixels.tobytes()
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    return ds


def write_dx(path, pixels: np.ndarray, **kwargs) -> Path:
    """``dx_dataset(pixels, **kwargs)`` written to ``path`` (with the 128-byte preamble); returns ``path``."""
    dx_dataset(pixels, **kwargs).save_as(path, write_like_original=False)
    return Path(path)


#: SegmentedPropertyType of a segment drawn in OHIF and not coded otherwise: SNOMED CT 85756007 "Tissue".
TISSUE = ("85756007", "SCT", "Tissue")
#: highdicom's Segmentation needs these patient / study tags on its source image.
_SEG_SOURCE_TAGS = {"PatientID": "KNEE01", "PatientName": "Knee^Test", "PatientBirthDate": "", "PatientSex": "",
                    "StudyDate": "20260101", "StudyTime": "120000", "StudyID": "1", "AccessionNumber": "",
                    "ReferringPhysicianName": "", "SeriesNumber": 1, "InstanceNumber": 1}


def seg_dataset(source: Dataset, segments: dict[str, np.ndarray], *, segmentation_type: str = "BINARY",
                property_types: dict[str, tuple[str, str, str]] | None = None) -> Dataset:
    """A DICOM SEG built by highdicom (as a viewer saves one) of the radiograph ``source``: one segment per
    item of ``segments`` (SegmentLabel -> (rows, cols) bool mask on the source's grid, or fractions in [0, 1]
    for FRACTIONAL), numbered 1, 2, ... in order, each of SegmentedPropertyType ``property_types[label]``
    (value, scheme, meaning; default :data:`TISSUE`). Frames without content are left out. The patient and
    study tags highdicom needs are added to (a copy of) ``source`` when it lacks them."""
    import copy

    import highdicom as hd

    source = copy.deepcopy(source)
    for keyword, value in _SEG_SOURCE_TAGS.items():
        if keyword not in source:
            setattr(source, keyword, value)
    if "StudyInstanceUID" not in source:
        source.StudyInstanceUID, source.SeriesInstanceUID = generate_uid(), generate_uid()
    descriptions = [hd.seg.SegmentDescription(
        segment_number=number, segment_label=label, algorithm_type="MANUAL",
        segmented_property_category=hd.sr.CodedConcept(*TISSUE),
        segmented_property_type=hd.sr.CodedConcept(*(property_types or {}).get(label, TISSUE)))
        for number, label in enumerate(segments, start=1)]
    masks = np.stack(list(segments.values()), axis=-1)[None]
    pixels = masks.astype(np.float32) if segmentation_type == "FRACTIONAL" else masks.astype(np.uint8)
    return hd.seg.Segmentation([source], pixels, segmentation_type, descriptions, series_instance_uid=generate_uid(),
                               series_number=300, sop_instance_uid=generate_uid(), instance_number=1,
                               manufacturer="OHIF", manufacturer_model_name="viewer", software_versions="3.13",
                               device_serial_number="0")


def write_seg(path, source: Dataset, segments: dict[str, np.ndarray], **kwargs) -> Path:
    """``seg_dataset(source, segments, **kwargs)`` written to ``path``; returns ``path``."""
    seg_dataset(source, segments, **kwargs).save_as(path, write_like_original=False)
    return Path(path)
