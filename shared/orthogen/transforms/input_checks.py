"""Checks every OrthoGen transform runs on its input before touching it.

Each check raises :class:`orthogen.errors.InputError` naming the argument or dictionary key and what
was expected, so that a wrong array never surfaces as a traceback from deep inside torch or MONAI.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from orthogen.errors import InputError

_AXIS_NAMES = {1: "(C, N)", 2: "(C, H, W)", 3: "(C, X, Y, Z)"}


def require_array(img: object, source: str) -> None:
    """Check that ``img`` is a numpy array or torch tensor of numbers (or booleans)."""
    if not isinstance(img, (np.ndarray, torch.Tensor)) or (
        isinstance(img, np.ndarray) and not (np.issubdtype(img.dtype, np.number) or img.dtype == np.bool_)
    ):
        got = f"{type(img).__name__} of {img.dtype}" if hasattr(img, "dtype") else type(img).__name__
        raise InputError(f"expected a numeric numpy array or torch tensor, got {got}", source)


def require_channel_first(
    img: object, spatial_dims: Sequence[int], source: str, channels: Sequence[int] | None = None
) -> None:
    """Check that ``img`` is a numpy array or tensor of shape (C, spatial...) with an allowed rank.

    Args:
        img: the array to check.
        spatial_dims: the allowed numbers of spatial dimensions (e.g. ``(3,)`` for a CT volume).
        source: the argument or key name to report.
        channels: the allowed channel counts C; ``None`` allows any.
    """
    require_array(img, source)
    expected = " or ".join(_AXIS_NAMES.get(n, f"(C, {n} spatial axes)") for n in spatial_dims)
    if img.ndim - 1 not in spatial_dims:
        raise InputError(f"expected a channel-first array of shape {expected}, got shape {tuple(img.shape)}", source)
    if channels is not None and img.shape[0] not in channels:
        allowed = " or ".join(str(c) for c in channels)
        raise InputError(f"expected {allowed} channel(s) in axis 0, got shape {tuple(img.shape)}", source)
    if any(n == 0 for n in img.shape):
        raise InputError(f"expected a non-empty array, got shape {tuple(img.shape)}", source)


def require_same_spatial_shape(img: np.ndarray | torch.Tensor, other: np.ndarray | torch.Tensor, source: str) -> None:
    """Check that ``other`` (named ``source``) covers the same voxel grid as ``img``."""
    if tuple(img.shape[1:]) != tuple(other.shape[1:]):
        raise InputError(
            f"expected the spatial shape of the image {tuple(img.shape[1:])}, got {tuple(other.shape[1:])}", source
        )


def require_finite_in_range(img: np.ndarray, low: float, high: float, source: str) -> None:
    """Check that every value of ``img`` is finite and within [low, high] (a 1e-6 tolerance)."""
    if not np.all(np.isfinite(img)):
        raise InputError("expected finite values, got NaN or infinity", source)
    found_min, found_max = float(img.min()), float(img.max())
    if found_min < low - 1e-6 or found_max > high + 1e-6:
        raise InputError(f"expected values in [{low}, {high}], got [{found_min:.4g}, {found_max:.4g}]", source)
