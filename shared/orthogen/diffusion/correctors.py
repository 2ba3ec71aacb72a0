"""Correctors of the predictor-corrector (PC) sampler: MCMC steps at a fixed noise level.

Learned from yang-song/score_sde_pytorch ``sampling.py`` (``LangevinCorrector``, ``NoneCorrector``;
Song et al. 2021, Algorithm 4 for VE). One difference: the Langevin step size uses each sample's own
gradient and noise norms, where score_sde averages the norms over the batch; so a sample does not
depend on which other samples share its batch (identical for a batch of one).
"""
from __future__ import annotations

import torch

from orthogen.diffusion.arguments import choice, positive_number, step_count
from orthogen.diffusion.conditioned_score import ScoreFunction


def _per_sample(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return values.reshape(-1, *([1] * (x.ndim - 1)))


class Corrector:
    """MCMC steps at one noise level; subclasses define :meth:`update`.

    Attributes:
        n_steps: score evaluations per :meth:`update` (the sampler counts them in its NFE).
    """

    n_steps = 0

    def update(self, score_fn: ScoreFunction, x: torch.Tensor, sigma: torch.Tensor,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Correct x (B, C, *spatial) towards p_sigma, the data perturbed by noise of std sigma (B,).

        Returns:
            x: the corrected state; x_mean: the last step without its noise.
        """
        raise NotImplementedError


class LangevinCorrector(Corrector):
    """Langevin MCMC with a step size set by a signal-to-noise ratio::

        eps = 2 (snr ||z|| / ||score||)^2,   x_mean = x + eps score(x, sigma),   x = x_mean + sqrt(2 eps) z

    with the norms taken per sample over all its pixels.

    Args:
        snr: target signal-to-noise ratio r of Algorithm 4 (0.16 for score_sde's CIFAR-10 VE models;
            0.4 in the knee radiograph seed).
        n_steps: Langevin steps per noise level (1 in the seed).
    """

    def __init__(self, snr: float = 0.4, n_steps: int = 1):
        self.snr = positive_number(snr, "snr")
        self.n_steps = step_count(n_steps, "corrector_steps")

    def update(self, score_fn, x, sigma, generator=None):
        x_mean = x
        for _ in range(self.n_steps):
            grad = score_fn(x, sigma)
            noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            grad_norm = grad.reshape(grad.shape[0], -1).norm(dim=1)
            noise_norm = noise.reshape(noise.shape[0], -1).norm(dim=1)
            ratio = torch.where(grad_norm > 0, noise_norm / grad_norm.clamp_min(torch.finfo(x.dtype).tiny),
                                torch.zeros_like(grad_norm))
            step = _per_sample(2.0 * (self.snr * ratio) ** 2, x)
            x_mean = x + step * grad
            x = x_mean + (2.0 * step).sqrt() * noise
        return x, x_mean


class NoneCorrector(Corrector):
    """No corrector: predictor-only sampling (score_sde's "reverse diffusion" sampler)."""

    def update(self, score_fn, x, sigma, generator=None):
        return x, x


CORRECTORS = ("langevin", "none")


def corrector_by_name(name: str, snr: float = 0.4, n_steps: int = 1) -> Corrector:
    """A corrector from its name: "langevin" (with ``snr`` and ``n_steps``) or "none"."""
    name = choice(name, CORRECTORS, "corrector")
    return LangevinCorrector(snr, n_steps) if name == "langevin" else NoneCorrector()
