"""Splitting a K-sample prediction's per-voxel mean and standard deviation into two keys.

:class:`orthogen.diffusion.NestedCTInferer` with ``samples`` K > 1 returns (2, *spatial) per case:
channel 0 the mean of the K CTs, channel 1 their standard deviation. The writer wants the CT under
``pred`` and the uncertainty map beside it.
"""
from __future__ import annotations

from collections.abc import Hashable, Mapping

from monai.config import KeysCollection
from monai.transforms import MapTransform

from orthogen.errors import InputError


class SplitSampleStatisticsd(MapTransform):
    """``pred`` (2, ...) -> ``pred`` (1, ...) the mean and ``std_key`` (1, ...) the std; (1, ...) passes unchanged."""

    def __init__(self, keys: KeysCollection = "pred", std_key: str = "pred_std"):
        super().__init__(keys)
        self.std_key = std_key

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            channels = d[key].shape[0]
            if channels == 2:
                d[key], d[self.std_key] = d[key][:1], d[key][1:]
            elif channels != 1:
                raise InputError(f"expected 1 channel (a CT) or 2 (mean, std), got {channels}", str(key))
        return d
