"""Counting network evaluations (NFE) of a score function, with a check of what it returns.

Every sampler wraps the caller's ``score_fn`` in :class:`ScoreEvaluationCounter`: one call on a batch
counts once, as score_sde_pytorch counts (its PC sampler reports N (corrector steps + 1)).
"""
from __future__ import annotations

import torch

from orthogen.diffusion.conditioned_score import ScoreFunction
from orthogen.errors import InputError


class ScoreEvaluationCounter:
    """``score_fn`` that counts its calls in ``count`` and checks the score's shape.

    Args:
        score_fn: a callable (x (B, C, *spatial), sigma (B,)) -> score shaped like x.
    """

    def __init__(self, score_fn: ScoreFunction):
        if not callable(score_fn):
            raise InputError(f"expected a callable score_fn(x, sigma), got {type(score_fn).__name__}", "score_fn")
        self.score_fn = score_fn
        self.count = 0

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        self.count += 1
        score = self.score_fn(x, sigma)
        if not isinstance(score, torch.Tensor) or score.shape != x.shape:
            got = tuple(score.shape) if isinstance(score, torch.Tensor) else type(score).__name__
            raise InputError(f"returned {got}; expected a score shaped like x, {tuple(x.shape)}", "score_fn")
        return score
