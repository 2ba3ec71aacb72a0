"""Condition channels for segmentation-guided radiograph generation: bone contours and bone masks.

A 2D label map of bones (0 = background, 1, 2, ... = one bone each) becomes the image a diffusion model
is conditioned on: the outline of every bone, and optionally the filled bones as a second channel.
The boundaries come from scikit-image's ``find_boundaries``.
"""
from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_data_type, convert_to_dst_type
from skimage.morphology import dilation, disk
from skimage.segmentation import find_boundaries

from orthogen.errors import InputError
from orthogen.transforms.input_checks import require_channel_first

CONDITION_MODES = ("contour", "contour+bone")
"""``"contour"``: one channel of bone outlines; ``"contour+bone"``: outlines, then the filled bones."""


class SegmentationCondition(Transform):
    """Turn a 2D bone label map into condition channels: bone contours (and filled bones).

    The contour channel is 1 on every pixel of a bone that touches a pixel of another label
    (background or another bone; 4-connectivity), i.e. ``find_boundaries(mode="inner")``: where two
    bones touch, both sides are marked. ``thickness_px`` > 1 widens the contour by dilating it with a
    disk of radius ``thickness_px - 1``. The bone channel is 1 wherever the label is > 0.

    Args:
        mode: ``"contour"`` -> output (1, H, W); ``"contour+bone"`` -> (2, H, W), contour first.
        thickness_px: contour width parameter, >= 1 (1 gives the one-pixel inner boundary).

    Input (1, H, W) label map with integer values >= 0 (numpy, tensor or MetaTensor). Output float32
    {0, 1} of the same array type (metadata kept).
    """

    backend = [TransformBackends.NUMPY]

    def __init__(self, mode: str = "contour", thickness_px: int = 1):
        if mode not in CONDITION_MODES:
            raise InputError(f"expected one of {list(CONDITION_MODES)}, got {mode!r}", "mode")
        if not isinstance(thickness_px, (int, np.integer)) or thickness_px < 1:
            raise InputError(f"expected an integer >= 1, got {thickness_px!r}", "thickness_px")
        self.mode = mode
        self.thickness_px = int(thickness_px)

    def make_condition(self, labels: NdarrayOrTensor, source: str = "labels") -> NdarrayOrTensor:
        """The condition channels of ``labels`` (named ``source`` in errors); see the class docstring."""
        require_channel_first(labels, (2,), source, channels=(1,))
        values = convert_data_type(labels, np.ndarray)[0][0]
        if not np.all(np.isfinite(values)) or np.any(values < 0) or np.any(values != np.round(values)):
            raise InputError("expected a label map of integers >= 0 (0 = background)", source)
        label_map = values.astype(np.int64)
        contour = find_boundaries(label_map, connectivity=1, mode="inner")
        if self.thickness_px > 1:
            contour = dilation(contour, disk(self.thickness_px - 1))
        channels = [contour] if self.mode == "contour" else [contour, label_map > 0]
        condition = np.stack(channels).astype(np.float32)
        return convert_to_dst_type(condition, labels, dtype=np.float32)[0]

    def __call__(self, labels: NdarrayOrTensor) -> NdarrayOrTensor:
        """(1, H, W) labels -> (1, H, W) or (2, H, W) float32 condition, see the class docstring."""
        return self.make_condition(labels)


class SegmentationConditiond(MapTransform):
    """Dictionary form of :class:`SegmentationCondition`.

    Each key's label map is turned into its condition; with ``output_key`` set (one key only) the
    condition goes there and the label map stays.
    """

    backend = SegmentationCondition.backend

    def __init__(
        self,
        keys: KeysCollection,
        mode: str = "contour",
        thickness_px: int = 1,
        output_key: str | None = None,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        if output_key is not None and len(self.keys) != 1:
            raise InputError(f"output_key needs exactly one key, got keys {list(self.keys)}", "output_key")
        self.output_key = output_key
        self.conditioner = SegmentationCondition(mode=mode, thickness_px=thickness_px)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            condition = self.conditioner.make_condition(d[key], source=str(key))
            d[key if self.output_key is None else self.output_key] = condition
        return d
