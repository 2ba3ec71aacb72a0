"""Checks of the arguments the diffusion samplers and the SDE take: step counts, times, shapes, names.

Each check raises :class:`orthogen.errors.InputError` with one line naming the argument, what was
expected and what came, so a bad config entry stops before any network is evaluated.
"""
from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Sequence

import torch

from orthogen.errors import InputError


def step_count(value, name: str, minimum: int = 1) -> int:
    """``value`` as an int of at least ``minimum``; 1.5, True and "10" are refused."""
    if not isinstance(value, Integral) or isinstance(value, bool) or value < minimum:
        raise InputError(f"expected a whole number of at least {minimum}, got {value!r}", name)
    return int(value)


def positive_number(value, name: str) -> float:
    """``value`` as a finite float > 0."""
    if not isinstance(value, Real) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise InputError(f"expected a finite number > 0, got {value!r}", name)
    return float(value)


def number_in_range(value, name: str, low: float = 0.0, high: float = math.inf, meaning: str = "") -> float:
    """``value`` as a finite float with ``low <= value <= high``; ``meaning`` (e.g. " (0: off)") follows the range."""
    if (not isinstance(value, Real) or isinstance(value, bool) or not math.isfinite(value)
            or not low <= value <= high):
        bounds = f">= {low:g}" if math.isinf(high) else f"from {low:g} to {high:g}"
        raise InputError(f"expected a finite number {bounds}{meaning}, got {value!r}", name)
    return float(value)


def start_time(value, name: str, eps: float = 0.0) -> float:
    """``value`` as a float in (eps, 1]: a diffusion time to start the reverse process from."""
    if (not isinstance(value, Real) or isinstance(value, bool) or not math.isfinite(value)
            or not eps < value <= 1.0):
        raise InputError(f"expected a time in ({eps:g}, 1], got {value!r}", name)
    return float(value)


def end_time(value, name: str = "eps") -> float:
    """``value`` as a float in [0, 1): the diffusion time the reverse process stops at."""
    if (not isinstance(value, Real) or isinstance(value, bool) or not math.isfinite(value)
            or not 0.0 <= value < 1.0):
        raise InputError(f"expected a time in [0, 1), got {value!r}", name)
    return float(value)


def sample_shape(shape, name: str = "shape") -> tuple[int, ...]:
    """``shape`` as a tuple (B, C, *spatial) of positive ints, at least 2 entries."""
    if isinstance(shape, torch.Size):
        shape = tuple(shape)
    if (not isinstance(shape, Sequence) or isinstance(shape, str) or len(shape) < 2
            or not all(isinstance(n, Integral) and not isinstance(n, bool) and n > 0 for n in shape)):
        raise InputError(f"expected (batch, channels, *spatial) of positive whole numbers, got {shape!r}", name)
    return tuple(int(n) for n in shape)


def batch_times(t, x: torch.Tensor, name: str = "t") -> torch.Tensor:
    """Diffusion time(s) ``t`` (a number, a 0-d tensor or shape (B,)) as a float64 tensor (B,) on x's device."""
    t = (t if isinstance(t, torch.Tensor) else torch.tensor(t, dtype=torch.float64)).to(x.device)
    if t.ndim == 0:
        t = t.expand(x.shape[0])
    if t.shape != (x.shape[0],):
        raise InputError(f"expected a number or a tensor of shape ({x.shape[0]},), got shape {tuple(t.shape)}", name)
    return t.to(torch.float64)


def choice(value, options: Sequence[str], name: str) -> str:
    """``value`` as one of ``options`` (case-insensitive names)."""
    if not isinstance(value, str) or value.lower() not in options:
        raise InputError(f"expected one of {', '.join(options)}, got {value!r}", name)
    return value.lower()

