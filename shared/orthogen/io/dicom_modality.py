"""What a DICOM file says it is (its Modality), and which Modalities each kind of input accepts.

A CT input must be Modality CT (:mod:`orthogen.io.ct_series_checks`); a radiograph must be a projection
X-ray or a grey secondary capture (:func:`require_radiograph_modality`). Anything else is refused in one line
naming its Modality, e.g. "not a CT: Modality CR (computed radiography)".
"""
from __future__ import annotations

from pathlib import Path

from pydicom.dataset import Dataset

from orthogen.errors import InputError

#: The one Modality a CT series may have.
CT_MODALITY = "CT"
#: Modalities of a projection radiograph: computed / digital radiography, radio fluoroscopy, X-ray angiography.
#: Mammography (MG) is a projection X-ray too, but of the breast, which no OrthoGen model reads: refused.
RADIOGRAPH_MODALITIES = ("CR", "DX", "RF", "XA")
#: Modalities of a picture that may hold a radiograph (a scanned film, a DRR saved by OrthoGen as "OT"):
#: accepted when grey (the radiograph reader refuses colour for every Modality).
SECONDARY_CAPTURE_MODALITIES = ("SC", "OT")
#: Names of the Modalities a user may hand over by mistake (DICOM PS3.3 C.7.3.1.1.1), for the messages.
MODALITY_NAMES = {
    "CT": "computed tomography", "MR": "magnetic resonance", "CR": "computed radiography",
    "DX": "digital radiography", "RF": "radio fluoroscopy", "XA": "X-ray angiography", "MG": "mammography",
    "US": "ultrasound", "PT": "PET", "NM": "nuclear medicine", "SC": "secondary capture", "OT": "other",
    "SEG": "segmentation", "RTSTRUCT": "RT structure set", "RTDOSE": "RT dose", "RTIMAGE": "RT image",
    "SR": "structured report", "PR": "presentation state", "IO": "intra-oral radiograph", "PX": "panoramic X-ray",
    "XC": "photograph", "ES": "endoscopy", "OP": "ophthalmic photograph", "SM": "slide microscopy",
    "KO": "key object selection", "DOC": "document",
}


def dicom_modality(dataset: Dataset) -> str:
    """The dataset's Modality, upper case and stripped; "" when absent or empty."""
    return str(dataset.get("Modality", "") or "").strip().upper()


def modality_text(modality: str) -> str:
    """A Modality as a user reads it: "MR (magnetic resonance)", "XYZ" when unknown, "not given" when empty."""
    if not modality:
        return "not given"
    name = MODALITY_NAMES.get(modality)
    return f"{modality} ({name})" if name else modality


def require_radiograph_modality(dataset: Dataset, file: str | Path) -> None:
    """InputError naming ``file`` unless its Modality is a radiograph's (:data:`RADIOGRAPH_MODALITIES`), a
    secondary capture's (:data:`SECONDARY_CAPTURE_MODALITIES`) or absent (older exports leave it out)."""
    modality = dicom_modality(dataset)
    if modality and modality not in RADIOGRAPH_MODALITIES + SECONDARY_CAPTURE_MODALITIES:
        raise InputError(f"not a radiograph: Modality {modality_text(modality)}; expected a projection radiograph "
                         f"(Modality {', '.join(RADIOGRAPH_MODALITIES)}) or a grey secondary capture "
                         f"({' / '.join(SECONDARY_CAPTURE_MODALITIES)})", file)
