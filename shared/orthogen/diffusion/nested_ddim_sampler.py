"""DDIM sampling of all resolutions of a nested diffusion at once, seeded, with a step-count knob.

DDIM (Song et al. 2021) in the variance-preserving log-SNR form that ml-mdm's ``NestedSampler`` uses
(apple/ml-mdm ``ml_mdm/samplers.py``, ``get_prediction_xt_last`` with ``ddim_eta``): the times
``t_0 = 1 > t_1 > ... > t_N = 0`` are evenly spaced (N = ``num_steps``); at each step one call of the
denoiser on all resolutions' current volumes gives the predictions, each resolution's x0 and noise
follow from its own shifted schedule (:class:`orthogen.diffusion.ShiftedCosineSchedule`), x0 is
clipped to ``x0_range`` (ml-mdm clips to [-1, 1]) and the noise recomputed from the clipped x0, and

    x_s = alpha_s x0 + sqrt(sigma_s^2 - s_eta^2) eps + s_eta z,
    s_eta = eta * sqrt(sigma_s^2 / sigma_t^2) * sqrt(1 - alpha_t^2 / alpha_s^2),

with z standard normal (eta = 0: deterministic DDIM; eta = 1: DDPM-like). The last step returns the
clipped x0 (t = 0 is taken as clean). The start is independent standard normal noise per resolution
(ml-mdm: ``x_t_low.normal_()``), all random numbers from one ``torch.Generator`` seeded with ``seed``,
so a seed gives the same volumes on the same device. The number of denoiser calls is exactly
``num_steps``. An ``x0_correction(x0 list, t) -> x0 list`` may move the clipped predictions before each
step (projection guidance, :class:`orthogen.diffusion.ProjectionGuidance`). A tqdm bar shows on a terminal only (``disable=None``).

MONAI's ``DDIMScheduler`` is not used: its fixed beta schedule cannot hold the per-resolution shift
and its step drifts off its own timesteps (see :mod:`orthogen.diffusion.nested_diffusion`).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from orthogen import progress
from orthogen.diffusion.nested_denoiser_fn import NestedDenoiseCounter, NestedDenoiseFunction
from orthogen.diffusion.nested_diffusion import ShiftedCosineSchedule, per_case, check_prediction_type
from orthogen.errors import InputError


class NestedDDIMSampler:
    """Seeded DDIM over every resolution of a nested diffusion (see the module docstring).

    Args:
        schedule: the per-resolution noise schedule the denoiser was trained with.
        num_steps: denoiser calls (DDIM steps), >= 1.
        prediction_type: "v" or "epsilon", as trained.
        eta: DDIM's stochasticity, >= 0 (0: deterministic given the start noise).
        x0_range: (low, high) the predicted clean volumes are clipped to (data units), or None.
    """

    def __init__(self, schedule: ShiftedCosineSchedule, num_steps: int = 50, prediction_type: str = "v",
                 eta: float = 0.0, x0_range: tuple[float, float] | None = (-1.0, 1.0)):
        if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
            raise InputError(f"expected an integer >= 1, got {num_steps!r}", "num_steps")
        if not eta >= 0:
            raise InputError(f"expected a number >= 0, got {eta!r}", "eta")
        if x0_range is not None and not (len(x0_range) == 2 and x0_range[0] < x0_range[1]):
            raise InputError(f"expected (low, high) with low < high or None, got {x0_range!r}", "x0_range")
        self.schedule, self.num_steps = schedule, num_steps
        self.prediction_type, self.eta, self.x0_range = check_prediction_type(prediction_type), float(eta), x0_range
        self.last_evaluations = 0

    @torch.no_grad()
    def __call__(self, denoise_fn: NestedDenoiseFunction, resolutions: Sequence[int], batch_size: int = 1,
                 channels: int = 1, seed: int = 0, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32, x0_correction=None) -> list[torch.Tensor]:
        """Samples (batch_size, channels, r, r, r) at each of ``resolutions`` (lowest first), data units.

        ``denoise_fn(x_t list, t (B,)) -> predictions list`` is called ``num_steps`` times (the count is
        left in ``last_evaluations``); ``x0_correction(x0 list, t) -> x0 list``, if given, moves the clipped
        clean predictions before each step.
        """
        resolutions = list(resolutions)
        if not resolutions or any(not isinstance(r, int) or r <= 0 for r in resolutions):
            raise InputError(f"expected positive cube sizes, lowest first, got {resolutions}", "resolutions")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"expected an integer >= 1, got {batch_size!r}", "batch_size")
        counted = NestedDenoiseCounter(denoise_fn)
        generator = torch.Generator(device=device).manual_seed(int(seed))
        x = [torch.randn((batch_size, channels, r, r, r), generator=generator, device=device, dtype=dtype)
             for r in resolutions]
        times = torch.linspace(1.0, 0.0, self.num_steps + 1, dtype=torch.float64)
        for i in progress.steps(range(self.num_steps), self.num_steps, "nested DDIM sampling"):
            t = torch.full((batch_size,), float(times[i]), device=device, dtype=dtype)
            s = float(times[i + 1])
            x0 = [self._clean(x_t, p, t) for x_t, p in zip(x, counted(x, t))]
            if x0_correction is not None:
                x0 = list(x0_correction(x0, t))
            x = [self._step(x_t, x0_r, t, s, generator) for x_t, x0_r in zip(x, x0)]
        self.last_evaluations = counted.count
        return x

    def _clean(self, x_t: torch.Tensor, prediction: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x0, _ = self.schedule.x0_and_noise(x_t, prediction, t, self.prediction_type)
        return x0.clamp(*self.x0_range) if self.x0_range is not None else x0

    def _step(self, x_t: torch.Tensor, x0: torch.Tensor, t: torch.Tensor, s: float,
              generator: torch.Generator) -> torch.Tensor:
        if s <= 0.0:
            return x0
        resolution = x_t.shape[-1]
        alpha_t, sigma_t = (per_case(v, x_t) for v in self.schedule.alpha_sigma(t, resolution))
        alpha_s, sigma_s = (per_case(v, x_t) for v in self.schedule.alpha_sigma(torch.full_like(t, s), resolution))
        eps = (x_t - alpha_t * x0) / sigma_t
        if self.eta == 0.0:
            return alpha_s * x0 + sigma_s * eps
        s_eta = self.eta * (sigma_s / sigma_t) * (1.0 - (alpha_t / alpha_s) ** 2).clamp(min=0.0).sqrt()
        s_eta = torch.minimum(s_eta, sigma_s)
        z = torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype)
        return alpha_s * x0 + (sigma_s**2 - s_eta**2).clamp(min=0.0).sqrt() * eps + s_eta * z
