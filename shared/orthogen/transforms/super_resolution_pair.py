"""The (low, high) training pair of the patch super-resolution model, made from one CT cube.

The low-resolution cube is the high one average-pooled by the factor: exactly how the knee CT cascade
makes its low resolutions (:func:`orthogen.diffusion.downsample_pyramid`), so the super-resolution
model is trained on the kind of low-resolution CT the cascade hands it. What the network is given is
that cube upsampled back (trilinear) to the high grid, in the cube's own units; the training crops take
it together with the high cube (and MONAI's ``AddCoordinateChannelsd`` adds the positions).
"""
from __future__ import annotations

from collections.abc import Hashable, Mapping

import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform

from orthogen.errors import InputError

#: The low-resolution cube's edge is multiplied by this per super-resolution pass.
SUPER_RESOLUTION_FACTOR = 4


def upsample_volume(low: torch.Tensor, factor: int = SUPER_RESOLUTION_FACTOR) -> torch.Tensor:
    """(B, C, r, r, r) -> (B, C, factor r, ...), trilinear (``align_corners=False``: voxel centres kept)."""
    return F.interpolate(low, scale_factor=factor, mode="trilinear", align_corners=False)


class SuperResolutionPair(Transform):
    """(C, R, R, R) cube -> (C, R, R, R): the cube average-pooled by ``factor``, upsampled back trilinearly.

    Raises:
        InputError: not a cube (C, R, R, R) with R divisible by ``factor``.
    """

    def __init__(self, factor: int = SUPER_RESOLUTION_FACTOR):
        self.factor = int(factor)

    def __call__(self, cube: torch.Tensor) -> torch.Tensor:
        cube = torch.as_tensor(cube)
        if cube.ndim != 4 or len(set(cube.shape[1:])) != 1 or cube.shape[-1] % self.factor:
            raise InputError(f"expected a cube (C, R, R, R) with R divisible by {self.factor}, got "
                             f"{tuple(cube.shape)}", "label")
        low = F.avg_pool3d(cube[None].float(), self.factor)
        return upsample_volume(low, self.factor)[0].to(cube.dtype)


class SuperResolutionPaird(MapTransform):
    """Writes :class:`SuperResolutionPair` of ``keys`` (the high cube) under ``output_key``."""

    def __init__(self, keys: KeysCollection = "label", output_key: str = "upsampled",
                 factor: int = SUPER_RESOLUTION_FACTOR):
        super().__init__(keys)
        self.output_key, self.pair = output_key, SuperResolutionPair(factor)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[self.output_key] = self.pair(d[key])
        return d
