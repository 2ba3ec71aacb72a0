"""The README's geometry conventions written out on their own, for tests to hold the code against.

World coordinates are RAS mm. Gantry angle 0 is AP (source anterior), 90 is lateral (source at the
patient's right). Images are seen from the source: rows run superior -> inferior; AP columns run
patient right -> left, lateral columns posterior -> anterior. Nothing here comes from ``orthogen.drr``
except the parameters a ``ProjectionGeometry`` is documented to hold (detector shape, pixel spacing,
source-to-isocenter and source-to-detector distance, parallel).
"""
import numpy as np

RIGHT, ANTERIOR, SUPERIOR = np.eye(3)  # RAS unit vectors
#: view -> (gantry angle, direction toward the source, column direction, row direction), all RAS
VIEWS = {
    "ap": (0.0, ANTERIOR, -RIGHT, -SUPERIOR),  # source anterior; columns patient right -> left
    "lateral": (90.0, RIGHT, ANTERIOR, -SUPERIOR),  # source at the patient's right; columns posterior -> anterior
}


def frame(angle_deg: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(toward the source, column direction, row direction) at a gantry angle: the AP frame turned about
    the superior axis, the way that turns it into the lateral frame at 90 deg."""
    a = np.radians(angle_deg)
    turn = np.array([[np.cos(a), np.sin(a), 0.0], [-np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    _, to_source, column, row = VIEWS["ap"]
    return turn @ to_source, turn @ column, turn @ row


assert all(np.allclose(frame(a), (t, c, r)) for a, t, c, r in VIEWS.values())


def pixel_offsets(geometry, column: np.ndarray, row: np.ndarray) -> np.ndarray:
    """(R, C, 3) mm from the detector centre to each pixel centre, the detector centre being between the
    middle pixels and pixels ``pixel_spacing_mm`` (row, col) apart."""
    rows, cols = geometry.detector_shape
    r = (np.arange(rows) - (rows - 1) / 2) * geometry.pixel_spacing_mm[0]
    c = (np.arange(cols) - (cols - 1) / 2) * geometry.pixel_spacing_mm[1]
    return r[:, None, None] * row + c[None, :, None] * column


def rays(geometry, angle_deg: float, isocenter_mm) -> tuple[np.ndarray, np.ndarray]:
    """(start, end), (R, C, 3) RAS mm, of every pixel's ray. Cone beam: from the source, SID from the
    isocenter towards the source, to the pixel centre on the detector plane SDD from the source.
    Parallel beam: the pixel's line along the view direction through the plane of the isocenter, from
    1 m before it to 1 m after it."""
    to_source, column, row = frame(angle_deg)
    offsets = np.asarray(isocenter_mm, dtype=np.float64) + pixel_offsets(geometry, column, row)
    if geometry.parallel:
        return offsets + 1000.0 * to_source, offsets - 1000.0 * to_source
    source = np.asarray(isocenter_mm, dtype=np.float64) + geometry.source_to_isocenter_mm * to_source
    detector = offsets + (geometry.source_to_isocenter_mm - geometry.source_to_detector_mm) * to_source
    return np.broadcast_to(source, detector.shape), detector


def detector_position(geometry, angle_deg: float, isocenter_mm, point_mm) -> np.ndarray:
    """(row, col), in pixels from the first pixel's centre, where the ray through ``point_mm`` (RAS)
    meets the detector: magnified by SDD / (source-to-point distance along the beam) in cone beam."""
    to_source, column, row = frame(angle_deg)
    relative = np.asarray(point_mm, dtype=np.float64) - np.asarray(isocenter_mm, dtype=np.float64)
    scale = 1.0 if geometry.parallel else geometry.source_to_detector_mm / (
        geometry.source_to_isocenter_mm - relative @ to_source)
    rows, cols = geometry.detector_shape
    return np.array([(rows - 1) / 2 + scale * (relative @ row) / geometry.pixel_spacing_mm[0],
                     (cols - 1) / 2 + scale * (relative @ column) / geometry.pixel_spacing_mm[1]])
