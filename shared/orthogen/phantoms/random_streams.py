"""The independent random streams of one phantom, all derived from its seed."""
from __future__ import annotations

from numbers import Integral
from typing import NamedTuple

import numpy as np

from orthogen.errors import InputError


class PhantomRandomStreams(NamedTuple):
    """Generators for the anatomy parameters, the cancellous texture and the CT noise."""

    anatomy: np.random.Generator
    texture: np.random.Generator
    noise: np.random.Generator


def random_streams(seed: int) -> PhantomRandomStreams:
    """Three independent generators from ``seed`` (a non-negative integer); same seed, same streams.

    Raises:
        InputError: ``seed`` is not a non-negative integer.
    """
    if not isinstance(seed, Integral) or isinstance(seed, bool) or seed < 0:
        raise InputError(f"expected a non-negative integer, got {seed!r}", "seed")
    anatomy, texture, noise = np.random.SeedSequence(int(seed)).spawn(3)
    return PhantomRandomStreams(*(np.random.default_rng(stream) for stream in (anatomy, texture, noise)))
