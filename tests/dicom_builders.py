"""Small uncompressed DICOM radiograph files built by the tests themselves (pydicom), in one place.

``dx_dataset`` gives the dataset, ``write_dx`` writes it: a DX (Digital X-Ray For Presentation) image by
default, grayscale (MONOCHROME1/2, PALETTE COLOR ...), RGB or multi-frame, of unsigned pixels already in the
stored dtype (uint8 or uint16; BitsAllocated follows the dtype). Any other tag is given by keyword."""
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
