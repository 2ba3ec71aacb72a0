"""Opening one DICOM file and decoding its pixels, with errors that name the file and the problem."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from orthogen.errors import InputError
from orthogen.io.input_file import existing_file


def read_dicom_file(path: str | Path) -> Dataset:
    """Read a DICOM Part-10 file (header and pixel data); InputError if missing, empty or not DICOM."""
    file = existing_file(path)
    try:
        return pydicom.dcmread(file)
    except Exception as exc:  # pydicom raises InvalidDicomError, EOFError, struct.error, ... on bad bytes
        raise InputError(f"not a readable DICOM file ({type(exc).__name__}: {exc})", file) from exc


def decode_pixel_array(dataset: Dataset, path: str | Path) -> np.ndarray:
    """The stored pixel values of ``dataset`` (before any rescale), as pydicom's ``pixel_array``.

    Raises InputError naming the file and the transfer syntax when there is no pixel data, the data is
    truncated, or it is compressed with a syntax no installed decoder handles.
    """
    if "PixelData" not in dataset:
        raise InputError("no pixel data: the file is truncated or not an image", path)
    transfer_syntax = dataset.file_meta.get("TransferSyntaxUID") if hasattr(dataset, "file_meta") else None
    syntax_name = f"{transfer_syntax.name} ({transfer_syntax})" if transfer_syntax else "unknown"
    try:
        return dataset.pixel_array
    except Exception as exc:  # pydicom raises RuntimeError / NotImplementedError / ValueError here
        hint = ""
        if transfer_syntax is not None and transfer_syntax.is_compressed:
            hint = "; compressed pixel data needs a decoder such as pylibjpeg or python-gdcm"
        raise InputError(f"cannot decode pixel data with transfer syntax {syntax_name}: {exc}{hint}",
                         path) from exc
