"""Predictors of the predictor-corrector (PC) sampler: one step of the reverse-time process.

A predictor moves the state from noise level sigma to the next, lower level sigma_next (both per
sample, (B,)). Learned from yang-song/score_sde_pytorch ``sampling.py`` (``ReverseDiffusionPredictor``,
``NonePredictor``); here the step takes the two noise levels from the sampler's grid instead of a time,
so the step is right for any grid (a full run, an SDEdit run from t0, a different step count).
"""
from __future__ import annotations

import torch

from orthogen.diffusion.arguments import choice
from orthogen.diffusion.conditioned_score import ScoreFunction


def _per_sample(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return values.reshape(-1, *([1] * (x.ndim - 1)))


class Predictor:
    """One reverse step; subclasses define :meth:`update`."""

    def update(self, score_fn: ScoreFunction, x: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Step x (B, C, *spatial) from noise level sigma (B,) to sigma_next (B,), sigma_next < sigma.

        Returns:
            x: the new state (with the step's noise); x_mean: the same step without noise (the
            sampler returns it after the last step when it denoises).
        """
        raise NotImplementedError


class ReverseDiffusionPredictor(Predictor):
    """The reverse of the SMLD discretisation (Song et al. 2021, eq. 46 / appendix E)::

        G^2 = sigma^2 - sigma_next^2,   x_mean = x + G^2 score(x, sigma),   x = x_mean + G z.

    On the SDE's own N levels (sigma = sigma_i, sigma_next = sigma_{i-1}) this is exactly
    ``x - f + G^2 score + G z`` with ``f, G = sde.discretize(x, t_i)``. With sigma_next = 0 (the last
    step) x_mean is Tweedie's denoised estimate x + sigma^2 score.
    """

    def update(self, score_fn, x, sigma, sigma_next, generator=None):
        g2 = _per_sample(sigma ** 2 - sigma_next ** 2, x)
        x_mean = x + g2 * score_fn(x, sigma)
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return x_mean + g2.sqrt() * noise, x_mean


class NonePredictor(Predictor):
    """No predictor: the state stays (a corrector-only sampler, annealed Langevin dynamics)."""

    def update(self, score_fn, x, sigma, sigma_next, generator=None):
        return x, x


PREDICTORS: dict[str, type[Predictor]] = {"reverse_diffusion": ReverseDiffusionPredictor, "none": NonePredictor}


def predictor_by_name(name: str) -> Predictor:
    """A predictor from its name: "reverse_diffusion" or "none"."""
    return PREDICTORS[choice(name, tuple(PREDICTORS), "predictor")]()
