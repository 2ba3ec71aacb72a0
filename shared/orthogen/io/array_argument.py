"""Turning an array argument (numpy array, torch tensor or MONAI MetaTensor, any device) into numpy."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from orthogen.errors import InputError


def numpy_array(value: Any, name: str) -> np.ndarray:
    """``value`` as a numpy array (torch tensors are detached and copied to the CPU).

    Raises InputError naming the argument ``name`` when the value is not numeric or has non-finite
    entries.
    """
    array = value.detach().cpu().numpy() if torch.is_tensor(value) else np.asarray(value)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise InputError(f"expected a numeric array, got dtype {array.dtype}", name)
    if array.size == 0:
        raise InputError(f"expected a non-empty array, got shape {array.shape}", name)
    if not np.all(np.isfinite(array)):
        raise InputError(f"has {int(np.sum(~np.isfinite(array)))} NaN or infinite values", name)
    return array
