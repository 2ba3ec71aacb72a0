"""Opening one DICOM file and decoding its pixels, with errors that name the file and the problem.

Compressed pixel data is decoded by the pydicom 2.4 pixel data handlers whose packages are installed
(pinned in pyproject.toml): python-gdcm (JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000), Pillow
(JPEG baseline, JPEG 2000), pylibjpeg with pylibjpeg-libjpeg (JPEG baseline/extended/lossless incl.
process 14 selection value 1, JPEG-LS), pylibjpeg-openjpeg (JPEG 2000) and pylibjpeg-rle (RLE Lossless).
pydicom tries them in the order of ``pydicom.config.pixel_data_handlers``; when one fails on a file the
next one that supports the transfer syntax gets it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pydicom.config
from pydicom.dataset import Dataset
from pydicom.uid import UID

from orthogen.errors import InputError
from orthogen.io.input_file import existing_file


def read_dicom_file(path: str | Path) -> Dataset:
    """Read a DICOM Part-10 file (header and pixel data); InputError if missing, empty or not DICOM."""
    file = existing_file(path)
    try:
        return pydicom.dcmread(file)
    except Exception as exc:  # pydicom raises InvalidDicomError, EOFError, struct.error, ... on bad bytes
        raise InputError(f"not a readable DICOM file ({type(exc).__name__}: {_one_line(exc)})", file) from exc


#: Transfer syntaxes newer than pydicom 2.4's UID dictionary (names from DICOM PS3.6), so that an error
#: can name them.
_NEWER_SYNTAX_NAMES = {
    "1.2.840.10008.1.2.4.201": "High-Throughput JPEG 2000 Image Compression (Lossless Only)",
    "1.2.840.10008.1.2.4.202": "High-Throughput JPEG 2000 with RPCL Options Image Compression (Lossless Only)",
    "1.2.840.10008.1.2.4.203": "High-Throughput JPEG 2000 Image Compression",
    "1.2.840.10008.1.2.4.110": "JPEG XL Lossless",
    "1.2.840.10008.1.2.4.111": "JPEG XL JPEG Recompression",
    "1.2.840.10008.1.2.4.112": "JPEG XL",
    "1.2.840.10008.1.2.8.1": "Deflated Image Frame Compression",
}


def transfer_syntax_text(transfer_syntax: UID | str | None) -> str:
    """A transfer syntax as a user reads it: "JPEG-LS Lossless Image Compression (1.2.840.10008.1.2.4.80)"."""
    if not transfer_syntax:
        return "an unknown transfer syntax (no TransferSyntaxUID in the file meta)"
    uid = UID(str(transfer_syntax).strip())
    name = _NEWER_SYNTAX_NAMES.get(str(uid)) or (uid.name if uid.name != str(uid) else "")
    return f"{name} ({uid})" if name else f"unknown transfer syntax {uid}"


def decoders_for(transfer_syntax: UID | str) -> list[str]:
    """Names of the installed pydicom pixel data handlers that decode ``transfer_syntax``, in the order
    pydicom tries them (e.g. ["GDCM", "pylibjpeg"] for JPEG Lossless)."""
    uid = UID(str(transfer_syntax))
    return [handler.HANDLER_NAME for handler in pydicom.config.pixel_data_handlers
            if handler is not None and handler.supports_transfer_syntax(uid) and handler.is_available()]


def decode_pixel_array(dataset: Dataset, path: str | Path) -> np.ndarray:
    """The stored pixel values of ``dataset`` (before any rescale), as pydicom's ``pixel_array``:
    (rows, cols) for one grayscale frame, (frames, rows, cols) for several, a last axis of samples for
    colour.

    Raises a one-line InputError naming the file (``path``) and the transfer syntax (name and UID) when
    there is no pixel data, the data is truncated or corrupt, or it is compressed with a syntax that no
    installed decoder handles.
    """
    if "PixelData" not in dataset:
        raise InputError("no pixel data; expected an image (the file may be truncated, or not an image)", path)
    file_meta = getattr(dataset, "file_meta", None)
    transfer_syntax = file_meta.get("TransferSyntaxUID") if file_meta is not None else None
    syntax = transfer_syntax_text(transfer_syntax)
    if transfer_syntax and not decoders_for(transfer_syntax):
        raise InputError(f"pixel data is in {syntax}, which no installed decoder handles; expected "
                         "uncompressed, RLE Lossless, JPEG baseline/extended/lossless, JPEG-LS or JPEG 2000 "
                         "pixel data (decoded by pydicom with python-gdcm, Pillow or pylibjpeg)", path)
    try:
        return dataset.pixel_array
    except Exception as exc:  # pydicom and the decoders raise RuntimeError / ValueError / AttributeError ...
        raise InputError(f"cannot decode the pixel data in {syntax} ({type(exc).__name__}: {_one_line(exc)}); "
                         "expected complete, valid pixel data (the file may be truncated or corrupt)",
                         path) from exc


def _one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's message on one line, at most ``limit`` characters."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
