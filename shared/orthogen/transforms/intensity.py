"""CT intensity windowing: Hounsfield units (HU) to the [0, 1] range networks see, and back.

The default window is [-1024, 1476] HU, 2500 HU wide. It is the window X2CT-GAN uses: that work adds
1024 to the HU values and clips them to [0, 2500] before scaling to [0, 1]; -1024 HU is air as scanners
store it, 1476 HU covers cortical bone.

Both transforms are MONAI's :class:`~monai.transforms.ScaleIntensityRange` with clipping always on;
what this module adds is the HU parameter names, the defaults and the checks on them.
"""
from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
from monai.config import DtypeLike, KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, ScaleIntensityRange, Transform

from orthogen.errors import InputError
from orthogen.transforms.input_checks import require_array

HU_WINDOW_MIN = -1024.0
"""Lower end of the default HU window: air as stored by CT scanners (X2CT's 0 after adding 1024)."""
HU_WINDOW_MAX = 1476.0
"""Upper end of the default HU window: X2CT's 2500 after adding 1024."""


def _check_window(hu_min: float, hu_max: float) -> None:
    """Raise InputError unless hu_min < hu_max, both finite."""
    if not (np.isfinite(hu_min) and np.isfinite(hu_max)) or hu_max <= hu_min:
        raise InputError(f"expected finite hu_min < hu_max, got hu_min={hu_min}, hu_max={hu_max}", "hu_min/hu_max")


class ClipNormalizeHU(ScaleIntensityRange):
    """Clip a CT to the HU window [hu_min, hu_max] and map it linearly to [0, 1].

    ``hu_min`` maps to 0 and ``hu_max`` to 1; values outside the window are clipped first.
    Works on numpy arrays, torch tensors and MetaTensors of any shape (channel-first by convention,
    e.g. (1, X, Y, Z)); the result is a float32 tensor (a MetaTensor keeping the metadata when MONAI
    tracks meta), as MONAI's ScaleIntensityRange returns.

    Args:
        hu_min: lower end of the window in HU (default -1024, see the module docstring).
        hu_max: upper end of the window in HU (default 1476).
        dtype: output data type (default float32).
    """

    def __init__(self, hu_min: float = HU_WINDOW_MIN, hu_max: float = HU_WINDOW_MAX, dtype: DtypeLike = np.float32):
        _check_window(hu_min, hu_max)
        super().__init__(a_min=hu_min, a_max=hu_max, b_min=0.0, b_max=1.0, clip=True, dtype=dtype)
        self.hu_min = hu_min
        self.hu_max = hu_max

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        require_array(img, "img")
        return super().__call__(img)


class DenormalizeHU(ScaleIntensityRange):
    """Map a [0, 1] intensity back to HU: 0 becomes ``hu_min``, 1 becomes ``hu_max``.

    The inverse of :class:`ClipNormalizeHU` with the same window. Input values outside [0, 1] (a
    network's overshoot) are clipped to the window, so the output always lies in [hu_min, hu_max] HU.
    Any shape; returns a float32 tensor (MetaTensor when MONAI tracks meta).

    Args:
        hu_min: HU value that 0 maps to (default -1024).
        hu_max: HU value that 1 maps to (default 1476).
        dtype: output data type (default float32).
    """

    def __init__(self, hu_min: float = HU_WINDOW_MIN, hu_max: float = HU_WINDOW_MAX, dtype: DtypeLike = np.float32):
        _check_window(hu_min, hu_max)
        super().__init__(a_min=0.0, a_max=1.0, b_min=hu_min, b_max=hu_max, clip=True, dtype=dtype)
        self.hu_min = hu_min
        self.hu_max = hu_max

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        require_array(img, "img")
        return super().__call__(img)


class _HUWindowd(MapTransform):
    """A dictionary form that applies one HU-window transform to each of ``keys`` (shared by the two below)."""

    def __init__(self, keys: KeysCollection, transform: Transform, allow_missing_keys: bool):
        super().__init__(keys, allow_missing_keys)
        self.transform = transform

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.transform(d[key])
        return d


class ClipNormalizeHUd(_HUWindowd):
    """Dictionary form of :class:`ClipNormalizeHU`: HU window to [0, 1] on each of ``keys``."""

    backend = ClipNormalizeHU.backend

    def __init__(
        self,
        keys: KeysCollection,
        hu_min: float = HU_WINDOW_MIN,
        hu_max: float = HU_WINDOW_MAX,
        dtype: DtypeLike = np.float32,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, ClipNormalizeHU(hu_min=hu_min, hu_max=hu_max, dtype=dtype), allow_missing_keys)


class DenormalizeHUd(_HUWindowd):
    """Dictionary form of :class:`DenormalizeHU`: [0, 1] back to HU on each of ``keys``."""

    backend = DenormalizeHU.backend

    def __init__(
        self,
        keys: KeysCollection,
        hu_min: float = HU_WINDOW_MIN,
        hu_max: float = HU_WINDOW_MAX,
        dtype: DtypeLike = np.float32,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, DenormalizeHU(hu_min=hu_min, hu_max=hu_max, dtype=dtype), allow_missing_keys)
