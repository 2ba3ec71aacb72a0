"""The mean-training-volume baseline: the best an X-ray -> CT model can do that ignores its X-rays.

It predicts, for every case, the voxel-wise mean of the training CTs (in the network's [0, 1] window).
A model that does not beat it has learnt nothing from the radiographs.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from orthogen.data.x2ct_hdf5 import read_x2ct_case
from orthogen.errors import InputError
from orthogen.transforms import ClipNormalizeHU


def mean_training_volume(datalist: Sequence[dict], hu_min: float, hu_max: float) -> np.ndarray:
    """Voxel-wise mean (D, H, W) in [0, 1] of the CTs of ``datalist`` items ``{"h5": path}``.

    Each CT is mapped from HU to [0, 1] by the window [hu_min, hu_max] first.
    """
    if not datalist:
        raise InputError("expected at least one training case for the mean-volume baseline", "datalist")
    window = ClipNormalizeHU(hu_min, hu_max)
    total = None
    for item in datalist:
        ct = np.asarray(window(read_x2ct_case(item["h5"]).ct_hu[None])[0], dtype=np.float64)
        if total is not None and ct.shape != total.shape:
            raise InputError(f"expected CTs of shape {total.shape}, got {ct.shape}", item["h5"])
        total = ct if total is None else total + ct
    return (total / len(datalist)).astype(np.float32)
