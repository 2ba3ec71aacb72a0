"""Reading a DICOM SEG drawn on one radiograph: its "contour" and "bone" segments as knee segmentation levels.

A viewer (OHIF 3.x with its segmentation tools) saves what a user drew on a radiograph (DX / CR, or a
generated Secondary Capture) as a DICOM Segmentation: one frame per segment on the radiograph's pixel grid
(BINARY: 1-bit; FRACTIONAL: 8-bit fractions), or one frame of segment numbers (LABELMAP, Supplement 243),
each frame referencing the radiograph's SOPInstanceUID; frames without content may be left out. The
segments are found by their SegmentLabel, "contour" (the leg's silhouette: what the knee radiograph bundle's
contour condition marks 0.5, the DRR above its threshold) and "bone" (case-insensitive), else by their
SegmentedPropertyTypeCodeSequence (SNOMED CT 87784001 "Soft tissue" -> contour, 272673000 "Bone structure"
or 3138006 "Bone tissue" -> bone). The levels are 0 background, 0.5 where contour or bone, 1 where bone:
bone wins where the segments overlap, and a bone pixel outside the drawn contour is still inside the leg.

Read with pydicom, not highdicom: highdicom 0.22 (the last release for pydicom 2.4, which this project pins)
builds such a SEG but cannot read it back (``Segmentation.from_dataset`` requires SliceThickness in the
PixelMeasuresSequence, which a projection radiograph's SEG does not have) and predates LABELMAP.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import UID

from orthogen.errors import InputError
from orthogen.io.dicom_file import decode_pixel_array
from orthogen.io.radiograph import NO_SPACING, check_image_size, header_int

logger = logging.getLogger(__name__)

__all__ = ["LABEL_MAP_SEGMENTATION_STORAGE", "SEGMENTATION_STORAGE", "SEGMENT_ROLES", "DicomSegmentation",
           "is_dicom_segmentation", "read_dicom_segmentation"]

#: Segmentation Storage (BINARY / FRACTIONAL) and Label Map Segmentation Storage (LABELMAP, Supplement 243).
SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
LABEL_MAP_SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.7"
_SEGMENTATION_CLASSES = (SEGMENTATION_STORAGE, LABEL_MAP_SEGMENTATION_STORAGE)
#: The segments read, by SegmentLabel (case-insensitive).
SEGMENT_ROLES = ("contour", "bone")
#: SegmentedPropertyType codes that name a segment's role when its label does not.
_ROLE_CODES = {("SCT", "87784001"): "contour", ("SCT", "272673000"): "bone", ("SCT", "3138006"): "bone"}
#: SOP classes of the images a knee segmentation may be drawn on: CR, DX (for presentation / processing),
#: Secondary Capture (orthogen's generated radiographs) and its multi-frame grayscale forms.
RADIOGRAPH_CLASSES = ("1.2.840.10008.5.1.4.1.1.1", "1.2.840.10008.5.1.4.1.1.1.1", "1.2.840.10008.5.1.4.1.1.1.1.1",
                      "1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.7.2", "1.2.840.10008.5.1.4.1.1.7.3")
#: Where the spacing of a SEG comes from (its PixelMeasuresSequence copies the radiograph's PixelSpacing).
SEG_SPACING_SOURCE = "PixelSpacing of the DICOM SEG's PixelMeasuresSequence"
_EXPECTED_SEGMENTS = ("segments labelled 'contour' (the leg's silhouette) and 'bone' (case-insensitive), or with "
                      "SegmentedPropertyType SNOMED CT 87784001 Soft tissue / 272673000 Bone structure")


@dataclass(frozen=True)
class DicomSegmentation:
    """A DICOM SEG of one radiograph, read.

    Attributes:
        contour: (H, W) bool, the union of the segments whose role is "contour", on the radiograph's grid.
        bone: (H, W) bool, the union of the "bone" segments.
        segments: "<number> '<label>'" of every segment in the file, followed by "(contour)" / "(bone)" when
            its property type code (not its label) gave its role and "(empty)" when it has no pixels: what
            error messages show.
        drawn: the roles with pixels, in :data:`SEGMENT_ROLES` order (always "contour" first).
        pixel_spacing_mm: (row, col) in mm from the SEG's PixelMeasuresSequence, or None.
        spacing_source: :data:`SEG_SPACING_SOURCE`, or "none in the file".
        referenced_instance: the SOPInstanceUID of the radiograph the SEG was drawn on.
        source: the file.
    """

    contour: np.ndarray
    bone: np.ndarray
    segments: tuple[str, ...]
    drawn: tuple[str, ...]
    pixel_spacing_mm: tuple[float, float] | None
    spacing_source: str
    referenced_instance: str
    source: str

    def levels(self) -> np.ndarray:
        """(H, W) float32: 0 background, 0.5 leg (contour or bone), 1 bone."""
        return (0.5 * (self.contour | self.bone) + 0.5 * self.bone).astype(np.float32)


def is_dicom_segmentation(dataset: Dataset) -> bool:
    """Whether ``dataset`` is a DICOM SEG (by SOPClassUID or Modality)."""
    return str(dataset.get("SOPClassUID", "")) in _SEGMENTATION_CLASSES or str(dataset.get("Modality", "")) == "SEG"


def read_dicom_segmentation(dataset: Dataset, file: str | Path) -> DicomSegmentation:
    """The contour and bone masks of a DICOM SEG (``dataset``, read from ``file``, pixels included).

    Raises InputError naming ``file`` (one line) when it is not a Segmentation (SOP class and Modality SEG),
    has a SegmentationType other than BINARY, FRACTIONAL or LABELMAP, references no image or more than one,
    segments an image that is not a radiograph (CT, MR, ...: by the referenced SOP class), has no segment
    labelled contour or bone (naming the labels found and those expected), has no pixels in its contour, or
    has frames the header does not describe.
    """
    file = Path(file)
    sop_class, modality = str(dataset.get("SOPClassUID", "")), str(dataset.get("Modality", ""))
    if sop_class not in _SEGMENTATION_CLASSES or modality != "SEG":
        raise InputError(f"SOPClassUID {_class_name(sop_class)} with Modality {modality or 'not given'}; expected a "
                         "DICOM SEG (Segmentation Storage, Modality SEG) drawn on one radiograph", file)
    kind = str(dataset.get("SegmentationType", "")).upper()
    if kind not in ("BINARY", "FRACTIONAL", "LABELMAP"):
        raise InputError(f"SegmentationType {kind or 'not given'}; expected BINARY, FRACTIONAL or LABELMAP", file)
    referenced = _referenced_instance(dataset, file)
    roles, segments = _segment_roles(dataset, file)
    rows, cols = header_int(dataset, "Rows", 0, file), header_int(dataset, "Columns", 0, file)
    check_image_size(rows, cols, file)
    masks = {role: np.zeros((rows, cols), dtype=bool) for role in SEGMENT_ROLES}
    drawn_numbers = set()
    for number, mask in _segment_frames(dataset, kind, rows, cols, file):
        if mask.any():
            drawn_numbers.add(number)
        if number in roles:
            masks[roles[number]] |= mask
    drawn = tuple(role for role in SEGMENT_ROLES if masks[role].any())
    shown = tuple(f"{text}{'' if number in drawn_numbers else ' (empty)'}" for number, text in segments)
    if not any(role in roles.values() for role in SEGMENT_ROLES):
        raise InputError(f"DICOM SEG with segments {', '.join(shown) or 'none'}; expected {_EXPECTED_SEGMENTS}", file)
    if "contour" not in drawn:
        raise InputError(f"DICOM SEG with no contour drawn (segments {', '.join(shown)}); expected a segment "
                         "labelled 'contour' holding the leg's silhouette (both conditions start from it)", file)
    try:
        spacing = _seg_pixel_spacing(dataset, file)
        spacing_source = SEG_SPACING_SOURCE if spacing else NO_SPACING
    except InputError as error:  # the levels do not need a spacing: an unusable one is read as none
        logger.warning(f"{file}: unusable pixel spacing, ignored (a segmentation does not need it): {error.problem}")
        spacing, spacing_source = None, f"none usable in the file ({error.problem})"
    return DicomSegmentation(contour=masks["contour"], bone=masks["bone"], segments=shown, drawn=drawn,
                             pixel_spacing_mm=spacing, spacing_source=spacing_source,
                             referenced_instance=referenced, source=str(file))


def _class_name(uid: str) -> str:
    """A SOP class UID as a user reads it: "CT Image Storage (1.2.840.10008.5.1.4.1.1.2)"."""
    if not uid:
        return "not given"
    name = UID(uid).name
    return f"{name} ({uid})" if name and name != uid else uid


def _items(dataset: Dataset | None, *path: str) -> Iterable[Dataset]:
    """The items reached by following the sequence keywords ``path`` from ``dataset`` (all branches)."""
    if dataset is None:
        return []
    level = [dataset]
    for keyword in path:
        level = [item for parent in level for item in (parent.get(keyword) or [])]
    return level


def _shared(dataset: Dataset) -> Dataset | None:
    groups = dataset.get("SharedFunctionalGroupsSequence") or []
    return groups[0] if groups else None


def _per_frame(dataset: Dataset) -> list[Dataset]:
    return list(dataset.get("PerFrameFunctionalGroupsSequence") or [])


def _referenced_instance(dataset: Dataset, file: Path) -> str:
    """The SOPInstanceUID of the one image the SEG's frames (else its ReferencedSeriesSequence) reference;
    InputError when none or several, or when that image is not a radiograph."""
    sources = [item for group in [*_per_frame(dataset), _shared(dataset)]
               for item in _items(group, "DerivationImageSequence", "SourceImageSequence")]
    if not sources:
        sources = list(_items(dataset, "ReferencedSeriesSequence", "ReferencedInstanceSequence"))
    uids = {str(item.get("ReferencedSOPInstanceUID", "")) for item in sources} - {""}
    if not uids:
        raise InputError("DICOM SEG that references no image (no ReferencedSOPInstanceUID in its frames' "
                         "SourceImageSequence or its ReferencedSeriesSequence); expected the segmentation of one "
                         "radiograph, referencing its SOPInstanceUID", file)
    if len(uids) > 1:
        raise InputError(f"DICOM SEG that references {len(uids)} images; expected the segmentation of one "
                         "radiograph (a SEG of a CT series or of several views cannot condition one radiograph)",
                         file)
    classes = {str(item.get("ReferencedSOPClassUID", "")) for item in sources} - {""}
    wrong = sorted(classes - set(RADIOGRAPH_CLASSES))
    if wrong:
        raise InputError(f"DICOM SEG of a {_class_name(wrong[0])} image; expected the segmentation of a radiograph "
                         "(CR, DX or Secondary Capture)", file)
    return uids.pop()


def _segment_roles(dataset: Dataset, file: Path) -> tuple[dict[int, str], list[tuple[int, str]]]:
    """({segment number: role} of the segments that are contour or bone, [(number, "<number> '<label>'")])."""
    roles, segments = {}, []
    for item in dataset.get("SegmentSequence") or []:
        number = header_int(item, "SegmentNumber", -1, file)
        label = str(item.get("SegmentLabel", "") or "").strip()
        role = label.lower() if label.lower() in SEGMENT_ROLES else None
        if role is None:
            for code in _items(item, "SegmentedPropertyTypeCodeSequence"):
                key = (str(code.get("CodingSchemeDesignator", "")).upper(), str(code.get("CodeValue", "")))
                role = role or _ROLE_CODES.get(key)
        if role is not None:
            roles[number] = role
        segments.append((number, f"{number} {label!r}" + (f" ({role})" if role and role != label.lower() else "")))
    return roles, segments


def _frame_segment(dataset: Dataset, index: int, file: Path) -> int:
    """The ReferencedSegmentNumber of frame ``index`` (its own functional group, else the shared one)."""
    frames = _per_frame(dataset)
    for group in ([frames[index]] if index < len(frames) else []) + [_shared(dataset)]:
        for item in _items(group, "SegmentIdentificationSequence"):
            if "ReferencedSegmentNumber" in item:
                return header_int(item, "ReferencedSegmentNumber", -1, file)
    raise InputError(f"frame {index + 1} of the DICOM SEG names no segment (no SegmentIdentificationSequence); "
                     "expected every frame to name its ReferencedSegmentNumber", file)


def _segment_frames(dataset: Dataset, kind: str, rows: int, cols: int, file: Path):
    """(segment number, (H, W) bool mask) for each frame (BINARY / FRACTIONAL) or segment (LABELMAP)."""
    pixels = np.asarray(decode_pixel_array(dataset, file))
    frames = header_int(dataset, "NumberOfFrames", 1, file)
    pixels = pixels.reshape(-1, rows, cols) if pixels.size == frames * rows * cols else None
    if pixels is None or header_int(dataset, "SamplesPerPixel", 1, file) != 1:
        raise InputError(f"DICOM SEG pixel data does not hold {frames} frames of {rows} x {cols} single-sample "
                         "pixels; expected one frame per segment on the radiograph's grid", file)
    if kind == "LABELMAP":
        if frames != 1:
            raise InputError(f"LABELMAP DICOM SEG with {frames} frames; expected one frame (the radiograph's)", file)
        return [(int(number), pixels[0] == number) for number in np.unique(pixels[0]) if number != 0]
    if kind == "FRACTIONAL":
        top = float(header_int(dataset, "MaximumFractionalValue", 255, file) or 255)
        masks = pixels.astype(np.float64) / top >= 0.5
    else:
        masks = pixels != 0
    return [(_frame_segment(dataset, index, file), masks[index]) for index in range(frames)]


def _seg_pixel_spacing(dataset: Dataset, file: Path) -> tuple[float, float] | None:
    """(row, col) PixelSpacing of the SEG's shared (else first per-frame) PixelMeasuresSequence, or None."""
    groups = [_shared(dataset), *_per_frame(dataset)[:1]]
    for item in (m for group in groups for m in _items(group, "PixelMeasuresSequence")):
        value = item.get("PixelSpacing")
        if value:
            try:
                row, col = (float(v) for v in value)
            except (TypeError, ValueError) as exc:
                raise InputError(f"PixelMeasuresSequence PixelSpacing is {value!r}; expected two numbers (row, col) "
                                 "in mm", file) from exc
            if not (np.isfinite([row, col]).all() and row > 0 and col > 0):
                raise InputError(f"PixelMeasuresSequence PixelSpacing is {value!r}; expected two positive spacings "
                                 "(row, col) in mm", file)
            return row, col
    return None
