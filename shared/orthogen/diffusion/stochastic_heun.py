"""A fast stochastic sampler: Heun steps on the VE probability-flow ODE with noise "churn" between them.

Karras et al. 2022 ("Elucidating the Design Space of Diffusion-Based Generative Models"), Algorithm 2:
before the Heun step at level sigma_i (inside ``churn_range``) the state is lifted to the higher level

    sigma_hat = sigma_i (1 + gamma),  gamma = min(churn / n, sqrt(2) - 1),
    x_hat = x + sqrt(sigma_hat^2 - sigma_i^2) * churn_noise * z,   z ~ N(0, I),

and the Heun step then runs from (x_hat, sigma_hat) down to sigma_{i+1}. Added noise and the ODE's
denoising together are a Langevin-like move at each level, which corrects errors the deterministic ODE
would carry to the end; ``churn = 0`` is exactly :class:`ProbabilityFlowHeunSampler` (Algorithm 1). The
grid, the clipped denoiser and the network-evaluation count (2 n - 1) are those of the ODE sampler.
"""
from __future__ import annotations

import math

import torch

from orthogen.diffusion.arguments import number_in_range, positive_number
from orthogen.diffusion.probability_flow import ProbabilityFlowHeunSampler
from orthogen.diffusion.ve_sde import VESDE
from orthogen.errors import InputError

MAX_CHURN_FACTOR = math.sqrt(2.0) - 1.0
"""Karras et al.'s cap on gamma: sigma_hat at most sqrt(2) sigma_i, never more noise than is already there."""


class StochasticHeunSampler(ProbabilityFlowHeunSampler):
    """VE sampling by Karras et al.'s stochastic Heun sampler (their Algorithm 2).

    Args:
        sde, steps, rho, eps, data_range, progress: as :class:`ProbabilityFlowHeunSampler`.
        churn: S_churn, the total noise added over the run; each level inside ``churn_range`` gets
            gamma = min(churn / steps, sqrt(2) - 1). 0: the deterministic ODE sampler.
        churn_range: (S_tmin, S_tmax), the noise levels (data units) at which churn is added; Karras et
            al. keep it off at the highest levels, where the prior is already pure noise.
        churn_noise: S_noise, the std of the added noise relative to N(0, 1) (slightly above 1 offsets a
            denoiser that removes a little too much).

    The generator given to :meth:`sample` draws the initial noise and then the churn, so a seed fixes
    the sample.
    """

    def __init__(self, sde: VESDE, steps: int = 50, rho: float = 7.0, eps: float = 1e-5,
                 data_range: tuple[float, float] | None = None, progress: bool | None = None,
                 churn: float = 40.0, churn_range: tuple[float, float] = (0.01, 10.0), churn_noise: float = 1.0):
        super().__init__(sde, steps=steps, rho=rho, eps=eps, data_range=data_range, progress=progress)
        try:
            low, high = (float(v) for v in churn_range)
        except (TypeError, ValueError):
            raise InputError(f"expected (S_tmin, S_tmax) noise levels, got {churn_range!r}", "churn_range") from None
        if not 0 <= low <= high:
            raise InputError(f"expected 0 <= S_tmin <= S_tmax, got {churn_range!r}", "churn_range")
        self.churn = number_in_range(churn, "churn")
        self.churn_range = (low, high)
        self.churn_noise = positive_number(churn_noise, "churn_noise")

    progress_label = "stochastic Heun sampling"
    log_name = "stochastic Heun sampler"

    def churn_factor(self, sigma: float) -> float:
        """gamma at noise level ``sigma``: min(churn / steps, sqrt(2) - 1) inside ``churn_range``, else 0."""
        low, high = self.churn_range
        return min(self.churn / self.steps, MAX_CHURN_FACTOR) if low <= sigma <= high else 0.0

    def _churn(self, x: torch.Tensor, sigma: torch.Tensor, generator: torch.Generator | None):
        """Lift (x, sigma) to (x_hat, sigma_hat) with fresh noise; unchanged outside ``churn_range``."""
        gamma = self.churn_factor(float(sigma))
        if gamma == 0.0:
            return x, sigma
        sigma_hat = sigma * (1.0 + gamma)
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return x + torch.sqrt(sigma_hat ** 2 - sigma ** 2) * self.churn_noise * noise, sigma_hat
