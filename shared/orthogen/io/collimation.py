"""The exposed field of a radiograph: from its DICOM Shutter / Collimator tags, else found in the image as
uniform unexposed bands along its edges; and the largest axis-aligned rectangle inside that field.

An unexposed band (collimator leaves, a shutter) measured no attenuation... of anything: after the
Modality / VOI LUTs and the MONOCHROME1 inversion it is the brightest, flattest part of a bone-bright
film, straight-edged, along a whole side, possibly turned by a few degrees. A DRR has nothing of the
kind (its background air is dark, its edges show tissue), and that is what tells the two apart.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from scipy import ndimage
from skimage.draw import polygon2mask
from skimage.measure import LineModelND, ransac
from skimage.transform import resize

SIDES = ("top", "bottom", "left", "right")
#: The largest side the image is searched at (a film is shrunk, anti-aliased, to this first).
DETECTION_SIDE = 512
#: Edges turned by more than this from the image axes are not looked for (collimators are aligned with
#: the detector to within a few degrees).
MAX_ANGLE_DEG = 12.0
#: Pixels (at the detection size) from the end of a band's run to the field it is compared with: the pixels
#: between are its blurred edge.
_INSIDE = 4


@dataclass(frozen=True)
class CollimatorEdge:
    """One straight edge of the exposed field: the band between ``side`` of the image and the line is
    unexposed. ``depth_px`` is the band's depth (pixels of the image given, pixel k spanning [k, k + 1))
    at the middle of that side, ``slope`` how much the depth grows per pixel along the side (left to
    right, top to bottom)."""

    side: str
    depth_px: float
    slope: float

    @property
    def angle_deg(self) -> float:
        return math.degrees(math.atan(self.slope))


@dataclass(frozen=True)
class ExposedField:
    """Where a film was exposed: ``mask`` (H, W) bool; ``source`` in words ("detected in the image",
    "ShutterShape RECTANGULAR", ...); ``edges`` the straight edges found in the image (empty for tags)."""

    mask: np.ndarray
    source: str
    edges: tuple[CollimatorEdge, ...] = ()

    @property
    def angle_deg(self) -> float:
        """The field's turn, degrees clockwise as displayed (rows down), the mean over the edges found (0
        for tags: their shutters are drawn on the pixel grid). A clockwise turn deepens the top band to
        the right, the right band downwards, the bottom band to the left and the left band upwards."""
        turn = {"top": 1.0, "right": 1.0, "bottom": -1.0, "left": -1.0}
        return float(np.mean([turn[edge.side] * edge.angle_deg for edge in self.edges])) if self.edges else 0.0


# --- from the DICOM tags -------------------------------------------------------------------------------

def field_from_tags(dataset: Dataset, shape: tuple[int, int]) -> tuple[ExposedField | None, str | None]:
    """The exposed field the Shutter (ShutterShape ...) and Collimator (CollimatorShape ...) tags draw on
    the stored pixel grid (intersected when both are given), or None.

    Returns (field, problem): ``problem`` is one sentence when tags are present but not usable (missing or
    malformed values, a non-convex polygon, an empty field); the caller then falls back to detection.
    Tag positions are 1-based pixel rows / columns, as DICOM gives them; the edges are inclusive.
    """
    mask, names = np.ones(shape, dtype=bool), []
    for prefix, shape_keyword in (("Shutter", "ShutterShape"), ("Collimator", "CollimatorShape")):
        try:
            value = dataset.get(shape_keyword)
        except Exception as exc:  # pydicom cannot convert the value
            return None, f"{shape_keyword} not readable ({exc}); looked for in the image instead"
        if value is None or value == "":
            continue
        shapes = [str(v).strip().upper() for v in (value if isinstance(value, MultiValue) else [value])]
        for kind in shapes:
            try:
                part = _tag_shape(dataset, prefix, kind, shape)
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                return None, f"{shape_keyword} {kind} not usable ({exc}); looked for in the image instead"
            if part is None:
                return None, (f"{shape_keyword} {kind}: not a convex field or not a shape known here; "
                              "looked for in the image instead")
            mask &= part
            names.append(f"{shape_keyword} {kind}")
    if not names:
        return None, None
    if not mask.any():
        return None, f"{' + '.join(names)} leave no pixel exposed; looked for in the image instead"
    return ExposedField(mask, " + ".join(names)), None


def _numbers(dataset: Dataset, keyword: str, count: int | None = None) -> list[float]:
    if keyword not in dataset or dataset[keyword].value in (None, ""):
        raise KeyError(f"{keyword} missing")
    value = dataset[keyword].value
    values = [float(v) for v in (value if isinstance(value, (MultiValue, list, tuple)) else [value])]
    if (count is not None and len(values) != count) or not all(math.isfinite(v) for v in values):
        raise ValueError(f"{keyword} is {values}")
    return values


def _tag_shape(dataset: Dataset, prefix: str, kind: str, shape: tuple[int, int]) -> np.ndarray | None:
    rows, cols = np.arange(shape[0])[:, None], np.arange(shape[1])[None, :]
    if kind == "RECTANGULAR":
        left, = _numbers(dataset, f"{prefix}LeftVerticalEdge", 1)
        right, = _numbers(dataset, f"{prefix}RightVerticalEdge", 1)
        upper, = _numbers(dataset, f"{prefix}UpperHorizontalEdge", 1)
        lower, = _numbers(dataset, f"{prefix}LowerHorizontalEdge", 1)
        return (cols >= left - 1) & (cols <= right - 1) & (rows >= upper - 1) & (rows <= lower - 1)
    if kind == "CIRCULAR":
        centre = _numbers(dataset, f"CenterOfCircular{prefix}", 2)
        radius, = _numbers(dataset, f"RadiusOfCircular{prefix}", 1)
        return (rows - (centre[0] - 1)) ** 2 + (cols - (centre[1] - 1)) ** 2 <= radius ** 2
    if kind == "POLYGONAL":
        vertices = np.array(_numbers(dataset, f"VerticesOfThePolygonal{prefix}")).reshape(-1, 2) - 1.0
        edges = np.roll(vertices, -1, axis=0) - vertices
        turns = edges[:, 0] * np.roll(edges, -1, axis=0)[:, 1] - edges[:, 1] * np.roll(edges, -1, axis=0)[:, 0]
        convex = len(vertices) >= 3 and (np.all(turns >= 0) or np.all(turns <= 0))
        return polygon2mask(shape, vertices) if convex else None
    return None


# --- found in the image --------------------------------------------------------------------------------

def detect_field(image: np.ndarray) -> ExposedField | None:
    """The exposed field bounded by unexposed bands found along the sides of ``image`` (bone-bright, any
    range), or None when no side has one.

    Per side, on a copy shrunk to at most DETECTION_SIDE pixels and median-filtered (3 x 3, edges kept):
    the side's outer strip must be mostly (>= 40 %) at one level, that level as bright as the top 0.5 %
    of the image; the band is then the run of pixels at that level (within a few noise sigmas) from the
    side inwards, one depth per column (row), to sub-pixel precision from the partly covered pixels where
    the run ends (their share of band level, summed); a straight line through those depths, turned at
    most MAX_ANGLE_DEG, is fitted by RANSAC (skimage) and kept when it carries at least 30 % of the side,
    the band is at least 2 % of the image (and 5 pixels) deep and clearly brighter than the field just
    inside it. The run lengths and shares are numpy array operations over all columns at once.
    """
    image = np.asarray(image, dtype=np.float64)
    height, width = image.shape
    scale = max(height, width) / DETECTION_SIDE
    small = resize(image, (max(round(height / scale), 8), max(round(width / scale), 8)), anti_aliasing=True) \
        if scale > 1 else image
    low, high = float(small.min()), float(small.max())
    if high - low <= 0:
        return None
    small = (small - low) / (high - low)
    noise = _pixel_noise(small)
    smooth = ndimage.median_filter(small, size=3, mode="nearest")
    tolerance = max(0.03, 4.0 * noise)
    bright = float(np.quantile(smooth, 0.995))
    edges = []
    for side in SIDES:
        found = _band_edge(_side_view(small, side), _side_view(smooth, side), tolerance, bright)
        if found is not None:
            along_full, across_full = (width, height) if side in ("top", "bottom") else (height, width)
            along_small, across_small = _side_view(small, side).shape[::-1]
            along_scale, across_scale = along_full / along_small, across_full / across_small
            edges.append(CollimatorEdge(side, found[0] * across_scale, found[1] * across_scale / along_scale))
    if not edges:
        return None
    return ExposedField(field_mask(edges, (height, width)), "detected in the image", tuple(edges))


def _pixel_noise(image: np.ndarray) -> float:
    """The pixel noise's sigma, robustly: median absolute second difference (blind to smooth gradients),
    the quieter of the two axes."""
    return min(1.4826 * float(np.median(np.abs(np.diff(image, n=2, axis=axis)))) / math.sqrt(6)
               for axis in (0, 1))


def _side_view(image: np.ndarray, side: str) -> np.ndarray:
    """``image`` turned so that ``side`` is row 0 and positions along it run with the column index."""
    return {"top": image, "bottom": image[::-1], "left": image.T, "right": image.T[::-1]}[side]


def _band_edge(raw: np.ndarray, view: np.ndarray, tolerance: float, bright: float) -> tuple[float, float] | None:
    """(depth at the middle of the side, slope) of the band along row 0 of ``view`` (median-filtered;
    ``raw`` unfiltered), in its pixels, or None. Depths are continuous: pixel k spans [k, k + 1)."""
    rows, cols = view.shape
    strip = view[:2].ravel()
    level = float(np.quantile(strip, 0.75))
    if level < bright - tolerance or np.mean(np.abs(strip - level) <= tolerance) < 0.4:
        return None
    at_level = np.abs(view - level) <= tolerance
    run = np.where(at_level.all(axis=0), rows, np.argmin(at_level, axis=0))
    along = np.arange(cols)
    present = (run >= 1) & (run + _INSIDE < rows)
    if present.sum() < 0.3 * cols:
        return None
    # the pixels where the run ends are partly band (blurred edge): each adds its share of band, the share
    # between the band's level and the field's just inside
    inside = view[np.minimum(run + _INSIDE, rows - 1), along]
    partial = raw[np.minimum(run[None] + np.arange(_INSIDE - 1)[:, None], rows - 1), along[None]]
    contrast = level - inside
    fraction = np.clip((partial - inside) / np.where(contrast > 0, contrast, 1.0), 0.0, 1.0).sum(axis=0)
    depth = run + np.where(contrast > tolerance, fraction, 0.5)
    points = np.column_stack([along[present] + 0.5, depth[present]])
    model, inliers = ransac(points, LineModelND, min_samples=2, residual_threshold=1.5, max_trials=300, rng=0)
    if model is None or inliers is None or inliers.sum() < 0.3 * cols:
        return None
    direction = np.asarray(model.direction, dtype=np.float64)
    if abs(direction[0]) < 1e-9 or abs(direction[1] / direction[0]) > math.tan(math.radians(MAX_ANGLE_DEG)):
        return None
    slope = float(direction[1] / direction[0])
    mid_depth = float(model.origin[1] + slope * (cols / 2 - model.origin[0]))
    # a flat band deeper than its rim is wide: a slope never stays within the tolerance that long and
    # then drops by twice it within _INSIDE pixels
    if np.median(points[inliers, 1]) < max(_INSIDE + 1.0, 0.02 * rows):
        return None
    # the field just inside the band must be clearly darker than the band: a step, not a bright rim
    if np.median(inside[present][inliers]) > level - 2 * tolerance:
        return None
    return mid_depth, slope


def field_mask(edges: tuple[CollimatorEdge, ...] | list[CollimatorEdge], shape: tuple[int, int]) -> np.ndarray:
    """(H, W) bool: pixel centres on the exposed side of every edge (pixel k spans [k, k + 1))."""
    height, width = shape
    rows, cols = np.arange(height)[:, None] + 0.5, np.arange(width)[None, :] + 0.5
    mask = np.ones(shape, dtype=bool)
    for edge in edges:
        if edge.side in ("top", "bottom"):
            depth = edge.depth_px + edge.slope * (cols - width / 2)
            inward = rows if edge.side == "top" else height - rows
        else:
            depth = edge.depth_px + edge.slope * (rows - height / 2)
            inward = cols if edge.side == "left" else width - cols
        mask &= inward >= depth
    return mask


# --- the crop ------------------------------------------------------------------------------------------

def inscribed_rectangle(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right), inclusive, of the largest axis-aligned rectangle of pixels inside the
    convex ``mask``; None when the mask is empty.

    Hand-written (no library has it): a rectangle lies in a convex set when its four corners do, so over
    every pair of rows (r0, r1) the widest rectangle spans the overlap of the two rows' extents; all pairs
    are scored at once with numpy, a block of first rows at a time.
    """
    rows_with = np.flatnonzero(mask.any(axis=1))
    if rows_with.size == 0:
        return None
    sub = mask[rows_with[0]:rows_with[-1] + 1]
    first = np.argmax(sub, axis=1)
    last = sub.shape[1] - 1 - np.argmax(sub[:, ::-1], axis=1)
    n, best, found = sub.shape[0], 0, None
    block = max(1, 2 ** 22 // n)
    for start in range(0, n, block):
        r0 = np.arange(start, min(start + block, n))[:, None]
        r1 = np.arange(n)[None, :]
        width = np.minimum(last[r0], last[r1]) - np.maximum(first[r0], first[r1]) + 1
        area = np.where(r1 >= r0, np.clip(width, 0, None) * (r1 - r0 + 1), 0)
        index = int(np.argmax(area))
        if area.flat[index] > best:
            best = int(area.flat[index])
            i, j = divmod(index, n)
            a, b = start + i, j
            found = (a, b, int(max(first[a], first[b])), int(min(last[a], last[b])))
    if found is None:
        return None
    top, bottom, left, right = found
    return top + int(rows_with[0]), bottom + int(rows_with[0]), left, right
