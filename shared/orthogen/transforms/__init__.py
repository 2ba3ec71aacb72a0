"""MONAI transforms for OrthoGen, each as an array transform and its dictionary twin (suffix ``d``).

- ``intensity``: HU window to [0, 1] and back (:class:`ClipNormalizeHU`, :class:`DenormalizeHU`).
- ``spatial``: crop to a mask's box with a margin in mm (:class:`CropToMask`), resample to a spacing
  (:class:`ResampleToSpacing`) or to an exact shape (:class:`ResampleToShape`), affines kept right.
- ``radiograph``: X2CT-style radiograph preprocessing (:class:`XrayPreprocess`).
- ``radiograph_segmentation``: the knee radiograph segmentations (leg contour 0.5, bone 1.0) and their
  check (:class:`SegmentationLevels`).
"""
from orthogen.transforms.intensity import (
    HU_WINDOW_MAX,
    HU_WINDOW_MIN,
    ClipNormalizeHU,
    ClipNormalizeHUd,
    DenormalizeHU,
    DenormalizeHUd,
)
from orthogen.transforms.radiograph import XrayPreprocess, XrayPreprocessd
from orthogen.transforms.radiograph_segmentation import SEGMENTATION_KINDS, SegmentationLevels, SegmentationLevelsd
from orthogen.transforms.spatial import (
    CropToMask,
    CropToMaskd,
    ResampleToShape,
    ResampleToShaped,
    ResampleToSpacing,
    ResampleToSpacingd,
)

__all__ = [
    "HU_WINDOW_MAX",
    "HU_WINDOW_MIN",
    "ClipNormalizeHU",
    "ClipNormalizeHUd",
    "CropToMask",
    "CropToMaskd",
    "DenormalizeHU",
    "DenormalizeHUd",
    "ResampleToShape",
    "ResampleToShaped",
    "ResampleToSpacing",
    "ResampleToSpacingd",
    "SEGMENTATION_KINDS",
    "SegmentationLevels",
    "SegmentationLevelsd",
    "XrayPreprocess",
    "XrayPreprocessd",
]

# The affine of a prediction on another grid than its input (the knee CT diffusion cascade).
from orthogen.transforms.prediction_grid import PredictionGridAffined, affine_for_grid  # noqa: E402

__all__ += ["PredictionGridAffined", "affine_for_grid"]

# The (low, high) pair of the knee CT cascade's patch super-resolution model.
from orthogen.transforms.super_resolution_pair import SuperResolutionPair, SuperResolutionPaird  # noqa: E402

__all__ += ["SuperResolutionPair", "SuperResolutionPaird"]

# The mean and standard deviation of K samples, split for the writer.
from orthogen.transforms.sample_statistics import SplitSampleStatisticsd  # noqa: E402

__all__ += ["SplitSampleStatisticsd"]
