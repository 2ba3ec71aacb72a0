"""A conditional score network seen as an unconditional score function ``(x, sigma) -> score``.

The conditional knee model (CTM) takes the segmentation as a second input channel: its network maps
``[noisy image, condition]`` (B, C + Cc, *spatial) and sigma (B,) to the score of the image channels
(B, C, *spatial). :class:`ConditionedScore` holds the condition and does the concatenation, so the
samplers and the score-matching loss only ever call ``score_fn(x, sigma)`` and never learn that a
condition exists; only the image channels are noised and denoised.
"""
from __future__ import annotations

from typing import Callable

import torch

from orthogen.errors import InputError

ScoreFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class ConditionedScore:
    """``score_fn(x, sigma) = model(torch.cat([x, condition], dim=1), sigma)``.

    Args:
        model: a callable (network) mapping (B, C + Cc, *spatial) and sigma (B,) to a score
            (B, C, *spatial).
        condition: the condition channels, (B, Cc, *spatial) or (1, Cc, *spatial) (then shared by
            every sample of the batch). It is not noised.
    """

    def __init__(self, model: ScoreFunction, condition: torch.Tensor):
        if not callable(model):
            raise InputError(f"expected a callable model(x, sigma), got {type(model).__name__}", "model")
        if not isinstance(condition, torch.Tensor) or condition.ndim < 3:
            got = tuple(condition.shape) if isinstance(condition, torch.Tensor) else type(condition).__name__
            raise InputError(f"expected a tensor (batch, channels, *spatial), got {got}", "condition")
        self.model = model
        self.condition = condition

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        c = self.condition
        if c.ndim != x.ndim or c.shape[2:] != x.shape[2:] or c.shape[0] not in (1, x.shape[0]):
            raise InputError(
                f"shape {tuple(c.shape)} does not fit the image {tuple(x.shape)}; expected batch "
                f"{x.shape[0]} or 1 and spatial size {tuple(x.shape[2:])}", "condition")
        c = c.to(device=x.device, dtype=x.dtype).expand(x.shape[0], *c.shape[1:])
        return self.model(torch.cat([x, c], dim=1), sigma)


def conditioned(model: ScoreFunction, condition: torch.Tensor | None) -> ScoreFunction:
    """``model`` itself without a condition, else ``ConditionedScore(model, condition)``."""
    return model if condition is None else ConditionedScore(model, condition)
