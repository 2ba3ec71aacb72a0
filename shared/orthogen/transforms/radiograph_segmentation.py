"""The segmentations a knee radiograph is generated from: the leg's silhouette, and the silhouette with bone.

As Mei et al. (segmentation-guided knee radiograph generation) make them from a DRR: ``contour`` is 0.5
where the radiograph is brighter than a threshold (the leg) and 0 elsewhere; ``contour+bone`` adds 0.5
where a ray crosses bone, so bone is 1.0. Both take values in exactly {0, 0.5, 1}.
"""
from __future__ import annotations

import numpy as np

from orthogen.errors import InputError

SEGMENTATION_KINDS = ("contour", "contour+bone")
SEGMENTATION_LEVELS = (0.0, 0.5, 1.0)
#: How far (in [0, 1] units) a stored value may be from a level: 8-bit PNGs store 0.5 as 128/255.
LEVEL_TOLERANCE = 1.0 / 255.0


def leg_contour(radiograph: np.ndarray, threshold: float = 0.1) -> np.ndarray:
    """(H, W) radiograph in [0, 1] -> (H, W) float32: 0.5 where ``radiograph > threshold``, else 0."""
    image = np.asarray(radiograph, dtype=np.float32)
    return np.where(image > threshold, 0.5, 0.0).astype(np.float32)


def leg_contour_and_bone(radiograph: np.ndarray, bone_path_mm: np.ndarray, threshold: float = 0.1) -> np.ndarray:
    """The contour plus 0.5 where a ray inside it crosses bone (``bone_path_mm > 0``): {0, 0.5, 1}."""
    contour = leg_contour(radiograph, threshold)
    bone = (np.asarray(bone_path_mm) > 0) & (contour > 0)
    return (contour + 0.5 * bone).astype(np.float32)


def segmentation_levels(segmentation: np.ndarray, source: str) -> np.ndarray:
    """``segmentation`` snapped to exactly {0, 0.5, 1}; InputError naming ``source`` if a value is off-level.

    Values within :data:`LEVEL_TOLERANCE` of a level are accepted (an 8-bit PNG holds 0.5 as 128/255).
    """
    values = np.asarray(segmentation, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise InputError("segmentation has NaN or infinite values; expected only 0, 0.5 and 1", source)
    levels = np.asarray(SEGMENTATION_LEVELS)
    nearest = levels[np.abs(values[..., None] - levels).argmin(axis=-1)]
    off = np.abs(values - nearest) > LEVEL_TOLERANCE
    if off.any():
        found = np.unique(np.round(values[off], 4))[:5].tolist()
        raise InputError(f"{int(off.sum())} pixels are not 0, 0.5 or 1 (e.g. {found}); expected a segmentation "
                         "with background 0, leg 0.5 and bone 1", source)
    return nearest.astype(np.float32)
