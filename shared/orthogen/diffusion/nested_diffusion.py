"""The nested (Matryoshka) diffusion process in 3D: a cosine log-SNR schedule shifted per resolution.

Matryoshka Diffusion Models (Gu et al., ICLR 2024; apple/ml-mdm ``ml_mdm/samplers.py``,
``NestedSampler.get_gammas`` / ``Sampler.get_schedule_shifted``) diffuse an image at several
resolutions at once, with one time t for all, and give each resolution its own noise level: the
signal-to-noise ratio of resolution r is the base resolution's divided by (r / base)**p. This module
holds that forward process for CT cubes (B, C, r, r, r), lowest resolution first:

- :class:`ShiftedCosineSchedule`: continuous t in [0, 1] (0 = clean, 1 = noise), the cosine log-SNR
  schedule of ml-mdm's ``schedule_cosine`` (Kingma et al. 2021 / Salimans & Ho 2022:
  ``logsnr(t) = -2 log tan(a t + b)``, from ``logsnr_max`` at t = 0 to ``logsnr_min`` at t = 1) at the base
  resolution, shifted per resolution ("shifted cosine", Hoogeboom et al. 2023, simple diffusion):

      logsnr_r(t) = logsnr_base(t) + shift_power * log(base / r),  shift_power = 3 for volumes,

  and ``alpha_r^2 = sigmoid(logsnr_r)``, ``sigma_r^2 = sigmoid(-logsnr_r)`` (variance preserving:
  ``x_t = alpha x0 + sigma eps``). The noise targets (``"epsilon"``, or ``"v"`` = alpha eps - sigma x0,
  Salimans & Ho 2022) and their inverses are here too.
- :func:`downsample_pyramid`: the clean volumes at every resolution from the highest one, by average
  pooling (as ml-mdm's ``NestedDiffusion.get_loss`` makes its low resolutions).

**Why 3 log(base / r) in 3D.** The shift keeps what the coarse structure sees equally noisy at every
resolution. Average-pooling a volume at resolution r down to the base averages n = (r / base)^3 voxels:
the (smooth) signal stays, the independent noise's variance drops by n, so the pooled SNR is n times
the per-voxel SNR. Choosing ``logsnr_r = logsnr_base - log n = logsnr_base + 3 log(base / r)`` makes the
high-resolution volume, pooled to the base, exactly as noisy as the base volume at the same t (tested).
In 2D the same argument gives n = (r / base)^2, i.e. the 2 log(base / r) of ml-mdm (its
``schedule_shifted_power``) and simple diffusion; the exponent is the number of spatial dimensions
(``shift_power`` can be set otherwise). For 32 -> 64 -> 128: shifts 0, -2.08, -4.16.

**Why not MONAI's schedulers.** MONAI's ``DDPMScheduler`` / ``DDIMScheduler`` hold one discrete beta
schedule each (``NoiseSchedules``), so the per-resolution shift would need one scheduler per
resolution with a hand-registered shifted schedule, discretised to 1000 betas; and MONAI 1.6.1's
``DDIMScheduler.step`` moves to ``t - num_train_timesteps // num_inference_steps`` while ``set_timesteps``
spaces the steps by ``(num_train_timesteps - 1) / (num_inference_steps - 1)`` (10 steps: it evaluates at
999, 888, ... but steps to 899, 788, ...), so its iterates drift off the evaluated noise levels. The
continuous schedule is a few lines in log-SNR form, exact at any t, and makes the shift a formula.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from orthogen.errors import InputError

PREDICTION_TYPES = ("epsilon", "v")
"""What the denoiser predicts: the noise, or the velocity v = alpha eps - sigma x0."""


def check_prediction_type(prediction_type: str) -> str:
    if prediction_type not in PREDICTION_TYPES:
        raise InputError(f"expected one of {PREDICTION_TYPES}, got {prediction_type!r}", "prediction_type")
    return prediction_type


def per_case(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, 1, ...) matching ``like``'s dimensions."""
    return value.reshape(-1, *([1] * (like.ndim - 1))).to(dtype=like.dtype, device=like.device)


class ShiftedCosineSchedule:
    """Cosine log-SNR schedule at ``base_resolution``, shifted by ``shift_power * log(base / r)`` at resolution r.

    Args:
        base_resolution: the unshifted (lowest) resolution, voxels per cube edge (32).
        logsnr_min, logsnr_max: the base log-SNR at t = 1 and t = 0 (ml-mdm's ``schedule_cosine`` uses
            -5 / 5 in 2D; simple diffusion -15 / 15; with a -4.16 shift at 128^3 a range of +-15 keeps
            t = 0 nearly clean (logsnr 10.8) and t = 1 pure noise at every resolution).
        shift_power: exponent p of the resolution ratio (3: the number of spatial dimensions, see the
            module docstring).
    """

    def __init__(self, base_resolution: int = 32, logsnr_min: float = -15.0, logsnr_max: float = 15.0,
                 shift_power: float = 3.0):
        if not (isinstance(base_resolution, int) and base_resolution > 0):
            raise InputError(f"expected a positive integer, got {base_resolution!r}", "base_resolution")
        if not (math.isfinite(logsnr_min) and math.isfinite(logsnr_max) and logsnr_min < logsnr_max):
            raise InputError(f"expected finite logsnr_min < logsnr_max, got {logsnr_min}, {logsnr_max}", "logsnr_min")
        self.base_resolution, self.shift_power = int(base_resolution), float(shift_power)
        self.logsnr_min, self.logsnr_max = float(logsnr_min), float(logsnr_max)
        self._b = math.atan(math.exp(-0.5 * self.logsnr_max))
        self._a = math.atan(math.exp(-0.5 * self.logsnr_min)) - self._b

    def shift(self, resolution: int) -> float:
        """The log-SNR shift of ``resolution``: ``shift_power * log(base / resolution)`` (0 at the base)."""
        if not (isinstance(resolution, int) and resolution > 0):
            raise InputError(f"expected a positive integer cube size, got {resolution!r}", "resolution")
        return self.shift_power * math.log(self.base_resolution / resolution)

    def logsnr(self, t: torch.Tensor, resolution: int) -> torch.Tensor:
        """log(alpha^2 / sigma^2) at times t (any shape, in [0, 1]) for ``resolution``."""
        t = torch.as_tensor(t, dtype=torch.float64)
        return (-2.0 * torch.log(torch.tan(self._a * t + self._b)) + self.shift(resolution)).float()

    def alpha_sigma(self, t: torch.Tensor, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(alpha, sigma) at times t for ``resolution``; alpha^2 + sigma^2 = 1."""
        logsnr = self.logsnr(t, resolution)
        return torch.sigmoid(logsnr).sqrt(), torch.sigmoid(-logsnr).sqrt()

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t = alpha x0 + sigma noise; x0, noise (B, C, r, r, r), t (B,) in [0, 1]."""
        alpha, sigma = self.alpha_sigma(t, x0.shape[-1])
        return per_case(alpha, x0) * x0 + per_case(sigma, x0) * noise

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, prediction_type: str = "v"):
        """What the network should predict for (x0, noise, t): the noise, or v = alpha noise - sigma x0."""
        if check_prediction_type(prediction_type) == "epsilon":
            return noise
        alpha, sigma = self.alpha_sigma(t, x0.shape[-1])
        return per_case(alpha, x0) * noise - per_case(sigma, x0) * x0

    def x0_and_noise(self, x_t: torch.Tensor, prediction: torch.Tensor, t: torch.Tensor,
                     prediction_type: str = "v") -> tuple[torch.Tensor, torch.Tensor]:
        """(x0, noise) implied by a prediction at x_t, t (the inverse of :meth:`add_noise` / :meth:`target`)."""
        alpha, sigma = self.alpha_sigma(t, x_t.shape[-1])
        alpha, sigma = per_case(alpha, x_t), per_case(sigma, x_t)
        if check_prediction_type(prediction_type) == "epsilon":
            return (x_t - sigma * prediction) / alpha, prediction
        return alpha * x_t - sigma * prediction, sigma * x_t + alpha * prediction


def downsample_pyramid(volume: torch.Tensor, resolutions: Sequence[int]) -> list[torch.Tensor]:
    """The volume (B, C, R, R, R) at each of ``resolutions`` (lowest first, the last = R), by average pooling.

    Intensities keep their units (average pooling: HU stay HU, [-1, 1] stays [-1, 1]).
    """
    if not isinstance(volume, torch.Tensor) or volume.ndim != 5 or len(set(volume.shape[2:])) != 1:
        got = tuple(volume.shape) if isinstance(volume, torch.Tensor) else type(volume).__name__
        raise InputError(f"expected a cube (B, C, R, R, R), got {got}", "volume")
    size = volume.shape[-1]
    out = []
    for r in resolutions:
        if not isinstance(r, int) or r <= 0 or size % r:
            raise InputError(f"expected sizes dividing {size}, got {tuple(resolutions)}", "resolutions")
        out.append(volume if r == size else F.avg_pool3d(volume, size // r))
    return out
