"""The variance-exploding SDE (VE-SDE) of score-based generative models, with its SMLD discretisation.

Forward process on t in [0, 1] (Song et al. 2021, "Score-Based Generative Modeling through Stochastic
Differential Equations", eq. 30; learned from yang-song/score_sde_pytorch ``sde_lib.VESDE``)::

    dx = sqrt(d[sigma^2(t)]/dt) dw,   sigma(t) = sigma_min (sigma_max / sigma_min)^t,

so x(t) = x(0) + sigma(t) z with z ~ N(0, I): the perturbation kernel is N(x(0), sigma(t)^2 I) and the
prior is N(0, sigma_max^2 I). ``discretize`` is the SMLD/NCSN discretisation on N geometric noise levels
that the reverse-diffusion predictor uses. Units: x in the data's units (radiographs in [0, 1]),
sigma in the same units, t dimensionless.

Differences from score_sde's VESDE: defaults sigma_max = 128 and N = 500 (the knee radiograph seed);
``prior_sampling`` takes a ``torch.Generator``; ``discretize`` maps t to the *nearest* of the N levels
(score_sde floors ``t (N - 1)``, which drops a level when float rounding puts a grid time just below
it); all per-sample reductions work for any number of spatial dimensions (2D radiographs, 3D CT).
"""
from __future__ import annotations

import math

import torch

from orthogen.diffusion.arguments import batch_times, positive_number, sample_shape, step_count
from orthogen.errors import InputError


class VESDE:
    """Variance-exploding SDE with a geometric noise schedule.

    Args:
        sigma_min: noise std at t = 0 (data units); the smallest level the sampler reaches before
            its final denoising step.
        sigma_max: noise std at t = 1; should be about the largest distance between two training
            images (Song & Ermon 2020, technique 1) so that the prior covers the data.
        N: number of discrete noise levels (the reverse-diffusion discretisation; the PC sampler's
            default step count), at least 2.

    Attributes:
        T: end time of the forward process (1).
    """

    T = 1.0

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 128.0, N: int = 500):
        self.sigma_min = positive_number(sigma_min, "sigma_min")
        self.sigma_max = positive_number(sigma_max, "sigma_max")
        if self.sigma_max <= self.sigma_min:
            raise InputError(f"expected sigma_max > sigma_min = {self.sigma_min:g}, got {sigma_max!r}", "sigma_max")
        self.N = step_count(N, "N", minimum=2)

    def __repr__(self) -> str:
        return f"VESDE(sigma_min={self.sigma_min:g}, sigma_max={self.sigma_max:g}, N={self.N})"

    @property
    def log_sigma_ratio(self) -> float:
        """log(sigma_max / sigma_min)."""
        return math.log(self.sigma_max / self.sigma_min)

    def sigma(self, t) -> torch.Tensor:
        """Noise std sigma(t) = sigma_min (sigma_max / sigma_min)^t.

        Args:
            t: time(s) in [0, 1], a number or a tensor of any shape.

        Returns:
            a tensor of t's shape; float64 for a number or an integer tensor, else t's dtype.
        """
        t = t if isinstance(t, torch.Tensor) else torch.tensor(t, dtype=torch.float64)
        if not t.is_floating_point():
            t = t.to(torch.float64)
        return self.sigma_min * torch.exp(t * self.log_sigma_ratio)

    def sde(self, x: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
        """Drift and diffusion of the forward SDE at x (B, C, *spatial), time t (number or (B,)).

        Returns:
            drift: zeros shaped like x; diffusion g(t) = sigma(t) sqrt(2 log(sigma_max / sigma_min)),
            shape (B,), x's dtype.
        """
        t = batch_times(t, x)
        diffusion = self.sigma(t) * math.sqrt(2.0 * self.log_sigma_ratio)
        return torch.zeros_like(x), diffusion.to(x.dtype)

    def marginal_prob(self, x: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std of the perturbation kernel p_t(x(t) | x(0) = x): N(x, sigma(t)^2 I).

        Args:
            x: clean data x(0), (B, C, *spatial).
            t: time(s), a number or (B,).

        Returns:
            mean: x itself; std: sigma(t), shape (B,), x's dtype.
        """
        t = batch_times(t, x)
        return x, self.sigma(t).to(x.dtype)

    def prior_sampling(self, shape, generator: torch.Generator | None = None, device=None,
                       dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """A sample of the prior N(0, sigma_max^2 I) of the given shape (B, C, *spatial).

        ``device`` defaults to the generator's device (CPU without one).
        """
        shape = sample_shape(shape)
        if device is None:
            device = generator.device if generator is not None else "cpu"
        return self.sigma_max * torch.randn(shape, generator=generator, device=device, dtype=dtype)

    def prior_logp(self, z: torch.Tensor) -> torch.Tensor:
        """Log-density of the prior N(0, sigma_max^2 I) at z (B, C, *spatial), summed per sample: (B,)."""
        d = z[0].numel()
        sum_sq = z.reshape(z.shape[0], -1).pow(2).sum(dim=1)
        return -0.5 * d * math.log(2.0 * math.pi * self.sigma_max ** 2) - sum_sq / (2.0 * self.sigma_max ** 2)

    @property
    def discrete_sigmas(self) -> torch.Tensor:
        """The N noise levels, ascending: sigma_i = sigma(i / (N - 1)), i = 0..N-1, float64 (N,)."""
        return self.sigma(torch.arange(self.N, dtype=torch.float64) / (self.N - 1))

    def discretize(self, x: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
        """SMLD discretisation x_i = x_{i-1} + f_i + G_i z of the forward process on the N levels.

        With i the level nearest t (i = round(t (N - 1))), f = 0 and G = sqrt(sigma_i^2 - sigma_{i-1}^2),
        with sigma_{-1} = 0, so the lowest level's step adds the whole sigma_min noise. The reverse-
        diffusion predictor steps x_{i-1} = x_i + G^2 score + G z (see ``ReverseDiffusionPredictor``).

        Args:
            x: the state, (B, C, *spatial).
            t: time(s) in [0, 1], a number or (B,).

        Returns:
            f: zeros shaped like x; G: shape (B,), x's dtype.
        """
        t = batch_times(t, x)
        level = torch.round(t * (self.N - 1)).long().clamp(0, self.N - 1)
        sigmas = self.discrete_sigmas.to(x.device)
        sigma = sigmas[level]
        adjacent = torch.where(level == 0, torch.zeros_like(sigma), sigmas[(level - 1).clamp(min=0)])
        return torch.zeros_like(x), torch.sqrt(sigma ** 2 - adjacent ** 2).to(x.dtype)
