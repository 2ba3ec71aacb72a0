"""Denoising score matching loss for the VE-SDE, weighted by sigma^2.

score_sde_pytorch ``losses.get_sde_loss_fn`` with ``reduce_mean=True``, ``continuous=True`` and
``likelihood_weighting=False`` (Song et al. 2021, eq. 7 with lambda(t) = sigma(t)^2): for clean data x,
t ~ U(eps, 1), z ~ N(0, I),

    loss = mean over samples of  mean over pixels of  (sigma(t) score(x + sigma(t) z, sigma(t)) + z)^2.

The exact score of the perturbed data attains the minimum; for data N(mu, s^2 I) that minimum is
E_t[s^2 / (s^2 + sigma(t)^2)] per pixel (see :func:`gaussian_data_loss_minimum`). A condition (the
segmentation of the conditional model) is concatenated after the noisy image channels and never noised.

Beyond the seed, ``sigma_data`` (the data's std) multiplies each sample's term by (sigma^2 + sigma_data^2) /
sigma_data^2: the loss becomes Karras et al.'s (2022) lambda(sigma) ||D - x||^2 with lambda = 1 / c_out^2,
the unit-weighted error of a :class:`~orthogen.networks.preconditioned_score.PreconditionedScore`'s
backbone at every noise level. Under the seed's sigma^2 weighting the denoised image's error at sigma
counts 1 / sigma^2, so high noise levels, where a conditional model must learn the condition's mean
image, would barely be trained.
"""
from __future__ import annotations

import math

import torch

from orthogen.diffusion.arguments import end_time, positive_number
from orthogen.diffusion.conditioned_score import ScoreFunction, conditioned
from orthogen.diffusion.score_evaluation_counter import ScoreEvaluationCounter
from orthogen.diffusion.ve_sde import VESDE
from orthogen.errors import InputError


class DenoisingScoreMatchingLoss(torch.nn.Module):
    """sigma^2-weighted denoising score matching on the VE-SDE.

    Args:
        sde: the VE-SDE whose sigma(t) perturbs the data.
        eps: the smallest training time (t ~ U(eps, 1)); score_sde uses 1e-5.
        sigma_data: None: the seed's sigma^2 weighting (score_sde's); the data's std (that of the
            preconditioned network being trained): Karras et al.'s weighting (see the module docstring).
    """

    def __init__(self, sde: VESDE, eps: float = 1e-5, sigma_data: float | None = None):
        super().__init__()
        if not isinstance(sde, VESDE):
            raise InputError(f"expected a VESDE, got {type(sde).__name__}", "sde")
        self.sde = sde
        self.eps = end_time(eps, "eps")
        self.sigma_data = None if sigma_data is None else positive_number(sigma_data, "sigma_data")

    def forward(self, model: ScoreFunction, x: torch.Tensor, condition: torch.Tensor | None = None,
                generator: torch.Generator | None = None, t: torch.Tensor | None = None) -> torch.Tensor:
        """The loss of ``model`` on a batch.

        Args:
            model: (x (B, C, *spatial), sigma (B,)) -> score; with ``condition``, a network taking
                (B, C + Cc, *spatial).
            x: clean images (B, C, *spatial), data units.
            condition: optional condition channels (B, Cc, *spatial), given to the model unchanged.
            generator: random stream for t and z.
            t: times (B,) to use instead of drawing them (evaluation at fixed noise levels).

        Returns:
            the scalar loss (dimensionless: noise units).
        """
        if not isinstance(x, torch.Tensor) or x.ndim < 3 or not x.is_floating_point():
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise InputError(f"expected a float tensor (batch, channels, *spatial), got {got}", "x")
        batch = x.shape[0]
        if t is None:
            u = torch.rand(batch, generator=generator, device=x.device, dtype=torch.float64)
            t = u * (self.sde.T - self.eps) + self.eps
        mean, std = self.sde.marginal_prob(x, t)
        z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        std = std.reshape(-1, *([1] * (x.ndim - 1)))
        score = ScoreEvaluationCounter(conditioned(model, condition))(mean + std * z, std.reshape(-1))
        per_sample = (std * score + z).pow(2).reshape(batch, -1).mean(dim=1)
        if self.sigma_data is not None:
            per_sample = per_sample * (std.reshape(-1) ** 2 + self.sigma_data ** 2) / self.sigma_data ** 2
        return per_sample.mean()


def gaussian_data_loss_minimum(sde: VESDE, data_std: float, eps: float = 1e-5) -> float:
    """The loss's minimum for data N(mu, s^2 I), reached by the exact score: E_{t~U(eps,1)}[s^2/(s^2+sigma(t)^2)].

    Closed form: with u = sigma(t)^2, du = 2 log(sigma_max/sigma_min) u dt, the integrand
    s^2 / (s^2 + u) dt integrates to log(u / (s^2 + u)) / (2 log(sigma_max / sigma_min)).
    """
    s2 = positive_number(data_std, "data_std") ** 2

    def antiderivative(t: float) -> float:
        u = sde.sigma(t).item() ** 2
        return math.log(u / (s2 + u)) / (2.0 * sde.log_sigma_ratio)

    return (antiderivative(sde.T) - antiderivative(eps)) / (sde.T - eps)
