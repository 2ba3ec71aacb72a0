"""The nested diffusion training loss: one time t, every resolution noised at its own level, a weighted sum.

After ml-mdm's ``NestedDiffusion.get_loss`` (apple/ml-mdm ``ml_mdm/diffusion.py``, ``use_double_loss`` with
``multi_res_weights``): for clean volumes x0_r at every resolution (lowest first;
:func:`orthogen.diffusion.downsample_pyramid` makes them from the highest), draw one t ~ U(0, 1) per
case, shared by all resolutions, and independent standard normal noise eps_r per resolution (ml-mdm
draws fresh noise for each resolution too); noise each with its shifted schedule,
``x_t,r = alpha_r(t) x0_r + sigma_r(t) eps_r`` (:class:`orthogen.diffusion.ShiftedCosineSchedule`); one
call of the denoiser gives all predictions, and

    loss = sum_r w_r * mean over cases and voxels of (prediction_r - target_r)^2,

target_r the noise or v_r = alpha_r eps_r - sigma_r x0_r. The weights default to 1 for every
resolution (ml-mdm's default); ml-mdm's optional VDM per-time weights are not used.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from orthogen.diffusion.nested_denoiser_fn import NestedDenoiseCounter, NestedDenoiseFunction
from orthogen.diffusion.nested_diffusion import ShiftedCosineSchedule, check_prediction_type
from orthogen.errors import InputError


class NestedDiffusionLoss:
    """Weighted sum over resolutions of the per-resolution diffusion MSE (see the module docstring).

    Args:
        schedule: the per-resolution noise schedule.
        prediction_type: "v" (velocity) or "epsilon" (noise).
        weights: per-resolution weights, a mapping ``{resolution: weight}`` or a sequence aligned with the
            volumes (lowest first); None: 1 each.
    """

    def __init__(self, schedule: ShiftedCosineSchedule, prediction_type: str = "v",
                 weights: Mapping[int, float] | Sequence[float] | None = None):
        self.schedule, self.prediction_type = schedule, check_prediction_type(prediction_type)
        self.weights = weights

    def _weights(self, resolutions: list[int]) -> list[float]:
        if self.weights is None:
            return [1.0] * len(resolutions)
        if isinstance(self.weights, Mapping):
            missing = [r for r in resolutions if r not in self.weights]
            if missing:
                raise InputError(f"expected a weight for every resolution {resolutions}, got none for {missing}",
                                 "weights")
            return [float(self.weights[r]) for r in resolutions]
        if len(self.weights) != len(resolutions):
            raise InputError(f"expected {len(resolutions)} weights (resolutions {resolutions}), "
                             f"got {len(self.weights)}", "weights")
        return [float(w) for w in self.weights]

    def __call__(self, denoise_fn: NestedDenoiseFunction, x0: Sequence[torch.Tensor], t: torch.Tensor | None = None,
                 generator: torch.Generator | None = None, return_terms: bool = False):
        """The loss (a scalar tensor) for clean volumes ``x0`` (B, C, r, r, r), lowest resolution first.

        Args:
            denoise_fn: ``(x_t list, t (B,)) -> predictions list``.
            x0: clean volumes in the diffusion's data units (about [-1, 1]).
            t: (B,) times in [0, 1]; None: drawn uniformly (with ``generator``).
            generator: the random source for t and the noise (None: torch's global one).
            return_terms: also return ``{resolution: weighted-less MSE}`` (floats).
        """
        if isinstance(x0, torch.Tensor) or not isinstance(x0, Sequence) or not x0:
            raise InputError(f"expected a list of volumes, lowest resolution first, got {type(x0).__name__}", "x0")
        batch = x0[0].shape[0]
        for i, volume in enumerate(x0):
            if not isinstance(volume, torch.Tensor) or volume.ndim != 5 or volume.shape[0] != batch:
                got = tuple(volume.shape) if isinstance(volume, torch.Tensor) else type(volume).__name__
                raise InputError(f"expected ({batch}, C, r, r, r), got {got}", f"x0[{i}]")
        resolutions = [v.shape[-1] for v in x0]
        weights = self._weights(resolutions)
        device, dtype = x0[0].device, x0[0].dtype
        if t is None:
            t = torch.rand(batch, generator=generator, device=device, dtype=dtype)
        elif not isinstance(t, torch.Tensor) or t.shape != (batch,):
            raise InputError(f"expected ({batch},) times in [0, 1], got {getattr(t, 'shape', t)}", "t")
        noise = [torch.randn(v.shape, generator=generator, device=device, dtype=dtype) for v in x0]
        x_t = [self.schedule.add_noise(v, n, t) for v, n in zip(x0, noise)]
        predictions = NestedDenoiseCounter(denoise_fn)(x_t, t)
        total = torch.zeros((), device=device, dtype=dtype)
        terms = {}
        for r, w, v, n, p in zip(resolutions, weights, x0, noise, predictions):
            mse = torch.mean((p - self.schedule.target(v, n, t, self.prediction_type)) ** 2)
            terms[r] = float(mse.detach())
            total = total + w * mse
        return (total, terms) if return_terms else total
