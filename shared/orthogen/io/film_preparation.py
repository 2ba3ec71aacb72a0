"""Film preparation: a hospital's film made into what the models were trained on, in one place.

:func:`orthogen.io.read_radiograph` calls :func:`prepare_film` on every DICOM and PNG / JPEG radiograph
(not on .npy / NIfTI: those are DRRs, taken as rendered), so every bundle, the CLI and the app get it:

1. Collimation / shutters: the exposed field from the DICOM Shutter (ShutterShape RECTANGULAR /
   CIRCULAR / POLYGONAL) and Collimator (CollimatorShape ...) tags when present, else found in the image
   (uniform bright unexposed bands along the sides, straight or turned by up to ~10 degrees:
   :mod:`orthogen.io.collimation`); the film is cropped to the largest axis-aligned rectangle inside it.
   The pixel spacing is unchanged by a crop.
2. View and side (DICOM only): ViewPosition, ImageLaterality and PatientOrientation read; the film is
   mirrored / flipped into the models' convention (rows superior -> inferior; AP columns patient right ->
   left, PatientOrientation L\\F; lateral columns posterior -> anterior, A\\F). PatientOrientation decides
   when present; without it a PA (or RL) film is taken as seen from the source, behind the patient (on
   their left), and mirrored.

What was done and why is in the :class:`FilmPreparation` record the Radiograph carries, and logged (one
info line for a crop, one for the orientation of a film with view tags).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from orthogen.io.collimation import ExposedField, detect_field, field_from_tags, field_mask, inscribed_rectangle

logger = logging.getLogger(__name__)

#: ViewPosition values of a frontal and of a lateral view (DICOM defined terms, and "LAT" as some send).
FRONTAL_VIEWS = ("AP", "PA")
LATERAL_VIEWS = ("LL", "RL", "LAT", "LATERAL")
#: PatientOrientation's first value (the direction along a row, i.e. of increasing column) in the models'
#: convention, and its opposite, per view; the second value (down a column) is F (feet) in both.
_COLUMN_DIRECTION = {"frontal": ("L", "R"), "lateral": ("A", "P")}
_DIRECTION_WORDS = {"L": "towards the patient's left", "R": "towards the patient's right", "A": "anterior",
                    "P": "posterior", "H": "head", "F": "feet"}
#: A crop smaller than this fraction of either side of the film is not made (warned about instead).
MIN_FIELD_FRACTION = 0.1


@dataclass(frozen=True)
class FilmPreparation:
    """What :func:`prepare_film` did to a film, in the stored image's terms.

    Attributes:
        original_shape: (rows, columns) as stored in the file.
        crop_px: pixels cut from the stored image's (top, bottom, left, right) edges, before any mirroring.
        collimation: where the exposed field came from: "ShutterShape RECTANGULAR" (the tags named),
            "detected in the image", or "none found".
        collimation_angle_deg: the detected field's turn, degrees clockwise as displayed (0 for tags or none).
        collimation_edges: the edges found in the image, (side, band depth at the middle of the side in
            pixels, the edge's slope along its side in degrees: the band deepens towards the right /
            bottom when positive) each, before the crop's one-pixel safety margin; empty for tags.
        collimation_note: why tags present were not used, or why a field found was not cropped; else None.
        view_position, image_laterality: the DICOM tags as read (None when absent or not DICOM).
        patient_orientation: PatientOrientation's two values as read, or None.
        mirrored: columns were reversed (left-right); flipped: rows were reversed (top-bottom).
        orientation: what was done about view and side, and why, in one sentence naming the tags.
    """

    original_shape: tuple[int, int]
    crop_px: tuple[int, int, int, int] = (0, 0, 0, 0)
    collimation: str = "none found"
    collimation_angle_deg: float = 0.0
    collimation_edges: tuple[tuple[str, float, float], ...] = ()
    collimation_note: str | None = None
    view_position: str | None = None
    image_laterality: str | None = None
    patient_orientation: tuple[str, str] | None = None
    mirrored: bool = False
    flipped: bool = False
    orientation: str = "taken as given"

    @property
    def cropped(self) -> bool:
        return any(self.crop_px)

    def as_dict(self) -> dict:
        """The record as JSON-ready values (for an output's provenance)."""
        return {"original_shape": list(self.original_shape),
                "crop_px": dict(zip(("top", "bottom", "left", "right"), self.crop_px)),
                "collimation": self.collimation, "collimation_angle_deg": round(self.collimation_angle_deg, 2),
                "collimation_edges": [{"side": side, "depth_px": round(depth, 2), "angle_deg": round(angle, 2)}
                                      for side, depth, angle in self.collimation_edges],
                "collimation_note": self.collimation_note, "view_position": self.view_position,
                "image_laterality": self.image_laterality,
                "patient_orientation": None if self.patient_orientation is None else list(self.patient_orientation),
                "mirrored": self.mirrored, "flipped": self.flipped, "orientation": self.orientation}

    def crop_summary(self) -> str:
        top, bottom, left, right = self.crop_px
        angle = f", edges turned {self.collimation_angle_deg:+.1f} deg" if self.collimation_angle_deg else ""
        return (f"collimation {self.collimation}{angle}: cropped {top} top, {bottom} bottom, {left} left, "
                f"{right} right pixels of {self.original_shape[0]}x{self.original_shape[1]} "
                "(pixel spacing unchanged)")


def prepare_film(image: np.ndarray, file: str | Path, dataset: Dataset | None = None
                 ) -> tuple[np.ndarray, FilmPreparation]:
    """Crop ``image`` (bone-bright, (H, W)) to its exposed field and, for a DICOM ``dataset``, orient it.

    Args:
        image: the film as read (after LUTs and MONOCHROME1 inversion for DICOM), bone bright.
        file: named in the log lines.
        dataset: the film's DICOM header (Shutter / Collimator / view tags); None for PNG / JPEG.

    Returns:
        (prepared image, float64 (rows, cols); the record of what was done).
    """
    image = np.asarray(image, dtype=np.float64)
    record = FilmPreparation(original_shape=(int(image.shape[0]), int(image.shape[1])))
    image, record = _crop_to_exposed_field(image, record, file, dataset)
    if dataset is not None:
        record = _orientation(dataset, record)
        if record.mirrored:
            image = image[:, ::-1]
        if record.flipped:
            image = image[::-1]
        level = logging.INFO if (record.view_position or record.patient_orientation) else logging.DEBUG
        logger.log(level, f"{file}: {record.orientation}")
    return np.ascontiguousarray(image), record


def _crop_to_exposed_field(image: np.ndarray, record: FilmPreparation, file, dataset: Dataset | None
                           ) -> tuple[np.ndarray, FilmPreparation]:
    field, note = (None, None) if dataset is None else field_from_tags(dataset, image.shape)
    if note:
        logger.warning(f"{file}: {note}")
    crop_field = field
    if field is None:
        field = detect_field(image)
        if field is not None:  # the found edges moved inwards by a pixel: their blurred rim stays out
            margin = max(1.0, 0.005 * max(image.shape))
            crop_field = ExposedField(field_mask([replace(edge, depth_px=edge.depth_px + margin)
                                                  for edge in field.edges], image.shape), field.source, field.edges)
    if field is None:
        return image, replace(record, collimation_note=note)
    record = replace(record, collimation=field.source, collimation_angle_deg=field.angle_deg, collimation_note=note,
                     collimation_edges=tuple((edge.side, edge.depth_px, edge.angle_deg) for edge in field.edges))
    rectangle = inscribed_rectangle(crop_field.mask)
    rows, cols = image.shape
    if rectangle is None or (rectangle[1] - rectangle[0] + 1 < max(16, MIN_FIELD_FRACTION * rows)
                             or rectangle[3] - rectangle[2] + 1 < max(16, MIN_FIELD_FRACTION * cols)):
        why = (f"exposed field ({field.source}) too small to be the film's "
               f"(under {MIN_FIELD_FRACTION:.0%} of a side or 16 pixels); not cropped")
        logger.warning(f"{file}: {why}")
        return image, replace(record, crop_px=(0, 0, 0, 0), collimation_note=why)
    top, bottom, left, right = rectangle
    record = replace(record, crop_px=(top, rows - 1 - bottom, left, cols - 1 - right))
    if record.cropped:
        logger.info(f"{file}: {record.crop_summary()}")
    return image[top:bottom + 1, left:right + 1], record


def _text(dataset: Dataset, keyword: str) -> str | None:
    try:
        value = dataset.get(keyword)
    except Exception:  # an unparsable value counts as absent here
        return None
    text = "" if value is None else str(value).strip().upper()
    return text or None


def _patient_orientation(dataset: Dataset) -> tuple[str, str] | None:
    try:
        value = dataset.get("PatientOrientation")
    except Exception:  # an unparsable value counts as absent here
        return None
    values = list(value) if isinstance(value, (MultiValue, list, tuple)) else \
        ([] if value is None else str(value).split("\\"))
    values = [str(v).strip().upper() for v in values]
    return (values[0], values[1]) if len(values) == 2 and all(values) else None


def _orientation(dataset: Dataset, record: FilmPreparation) -> FilmPreparation:
    """The record with the view tags read and the mirror / flip decided (see the module's docstring)."""
    view, laterality = _text(dataset, "ViewPosition"), _text(dataset, "ImageLaterality")
    orientation = _patient_orientation(dataset)
    record = replace(record, view_position=view, image_laterality=laterality, patient_orientation=orientation)
    kind = "frontal" if view in FRONTAL_VIEWS else "lateral" if view in LATERAL_VIEWS else None
    if kind is None and view is None and orientation is not None:
        kind = {"L": "frontal", "R": "frontal", "A": "lateral", "P": "lateral"}.get(orientation[0][:1])
    named = ", ".join(part for part in (f"ViewPosition {view}" if view else None,
                                        f"ImageLaterality {laterality}" if laterality else None,
                                        f"PatientOrientation {orientation[0]}\\{orientation[1]}" if orientation
                                        else None) if part)
    convention = {"frontal": "AP convention (columns patient right -> left, rows head -> feet)",
                  "lateral": "lateral convention (columns posterior -> anterior, rows head -> feet)"}
    if kind is None:
        what = f"{named}: not an AP, PA or lateral view" if view else "no ViewPosition or PatientOrientation"
        return replace(record, orientation=f"{what}; taken as given")
    if orientation is None:
        if view in ("PA", "RL"):
            side = "behind the patient" if view == "PA" else "on the patient's left"
            return replace(record, mirrored=True, orientation=(
                f"{named}, no PatientOrientation: taken as seen from the source ({side}); mirrored left-right "
                f"into the {convention[kind]}"))
        return replace(record, orientation=f"{named}, no PatientOrientation: taken as given, in the {convention[kind]}")
    expected, opposite = _COLUMN_DIRECTION[kind]
    along, down = orientation[0][:1], orientation[1][:1]
    if along not in (expected, opposite) or down not in ("H", "F"):
        return replace(record, orientation=(
            f"{named}: PatientOrientation does not fit a {kind} view in the {convention[kind]} "
            f"(expected {expected}\\F or its mirror {opposite}\\F); taken as given"))
    mirrored, flipped = along == opposite, down == "H"
    done = [what for what, do in (("mirrored left-right", mirrored), ("flipped top-bottom", flipped)) if do]
    columns = f"columns run {_DIRECTION_WORDS[along]}, rows towards the {_DIRECTION_WORDS[down]}"
    action = (" and ".join(done) + f" into the {convention[kind]}") if done else f"already in the {convention[kind]}"
    return replace(record, mirrored=mirrored, flipped=flipped, orientation=f"{named}: {columns}; {action}")
