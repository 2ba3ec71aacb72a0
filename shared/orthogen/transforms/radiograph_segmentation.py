"""The segmentations a knee radiograph is generated from: the leg's silhouette, and the silhouette with bone.

As Mei et al. (segmentation-guided knee radiograph generation) make them from a DRR: ``contour`` is 0.5
where the radiograph is brighter than a threshold (the leg) and 0 elsewhere; ``contour+bone`` adds 0.5
where a ray crosses bone, so bone is 1.0. Both take values in exactly {0, 0.5, 1}.
"""
from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Resize, SpatialPad, Transform
from monai.utils import TransformBackends, convert_data_type, convert_to_dst_type

from orthogen.errors import InputError
from orthogen.transforms.input_checks import require_channel_first

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


def resample_segmentation_levels(segmentation: np.ndarray, spatial_size: Sequence[int]
                                 ) -> tuple[np.ndarray, tuple[float, float]]:
    """A {0, 0.5, 1} segmentation drawn on a radiograph's grid (any size), on the model's (H, W) grid.

    The image is padded with background, centred, to the target's aspect ratio (a portrait radiograph of a
    knee keeps the leg's shape instead of being stretched), then each output pixel takes the level that holds
    at least half of its area: bone where >= half of it is bone, else leg where >= half of it is leg (0.5 or
    1), else background (MONAI ``SpatialPad``, then ``Resize`` in ``"area"`` mode on the two masks). The
    training segmentations classify each of their pixels by one ray, its centre's; a majority over the drawn
    pixels an output pixel covers is that classification without the aliasing of picking one of them
    (nearest neighbour). An image already of the target size comes back unchanged.

    Returns:
        The (H, W) float32 levels and the input pixels per output pixel (row, col): multiply the input's
        pixel spacing by them for the output's.
    """
    image = np.asarray(segmentation, dtype=np.float32)
    if image.ndim != 2:
        raise InputError(f"expected a 2D (H, W) segmentation, got shape {image.shape}", "segmentation")
    rows, cols = image.shape
    target_rows, target_cols = (int(s) for s in spatial_size)
    if cols * target_rows > rows * target_cols:  # wider than the target: pad rows
        padded = (max(rows, round(cols * target_rows / target_cols)), cols)
    else:
        padded = (rows, max(cols, round(rows * target_cols / target_rows)))
    masks = np.stack([image >= 0.25, image >= 0.75]).astype(np.float32)  # leg (0.5 or 1), bone (1)
    masks = SpatialPad(padded, method="symmetric")(masks)
    fractions = np.asarray(convert_data_type(Resize((target_rows, target_cols), mode="area")(masks), np.ndarray)[0])
    levels = np.where(fractions[1] >= 0.5, 1.0, np.where(fractions[0] >= 0.5, 0.5, 0.0)).astype(np.float32)
    return levels, (padded[0] / target_rows, padded[1] / target_cols)


class SegmentationLevels(Transform):
    """Check a (1, H, W) segmentation and snap it to exactly {0, 0.5, 1} (see :func:`segmentation_levels`).

    Args:
        spatial_size: (H, W) the model needs; a segmentation of another size is refused, naming both
            sizes. None: any size.

    Input: numpy array, tensor or MetaTensor (1, H, W) in [0, 1]; output: the same type, float32,
    metadata kept. Errors name ``meta["filename_or_obj"]`` when the input carries it.
    """

    backend = [TransformBackends.NUMPY]

    def __init__(self, spatial_size: Sequence[int] | None = None):
        self.spatial_size = None if spatial_size is None else tuple(int(s) for s in spatial_size)

    def __call__(self, img: NdarrayOrTensor, source: str | None = None) -> NdarrayOrTensor:
        if source is None:
            source = str(getattr(img, "meta", {}).get("filename_or_obj", "segmentation"))
        require_channel_first(img, (2,), source, channels=(1,))
        if self.spatial_size is not None and tuple(img.shape[1:]) != self.spatial_size:
            raise InputError(f"expected a {self.spatial_size[0]}x{self.spatial_size[1]} segmentation (the model's "
                             f"size), got {img.shape[1]}x{img.shape[2]}", source)
        snapped = segmentation_levels(convert_data_type(img, np.ndarray)[0], source)
        return convert_to_dst_type(snapped, img, dtype=np.float32)[0]


class SegmentationLevelsd(MapTransform):
    """Dictionary form of :class:`SegmentationLevels`."""

    backend = SegmentationLevels.backend

    def __init__(self, keys: KeysCollection, spatial_size: Sequence[int] | None = None,
                 allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.levels = SegmentationLevels(spatial_size)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.levels(d[key], str(getattr(d[key], "meta", {}).get("filename_or_obj", key)))
        return d
