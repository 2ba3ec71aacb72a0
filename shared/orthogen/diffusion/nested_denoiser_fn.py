"""The denoise function the nested diffusion's loss and sampler call, and a call counter for it.

The loss (:class:`orthogen.diffusion.NestedDiffusionLoss`) and the sampler
(:class:`orthogen.diffusion.NestedDDIMSampler`) never see a network: they call
``denoise_fn(x_t, t) -> predictions`` with ``x_t`` a list of noisy volumes (B, C, r, r, r), lowest
resolution first, and ``t`` (B,) the diffusion time in [0, 1]; it returns one prediction shaped like
each volume. :class:`NestedConditionedDenoiser` makes such a function from a
:class:`orthogen.networks.NestedUNet3D` and the case's conditioning (radiograph tokens, pixel spacing,
slice thickness), mapping t to MONAI's timestep scale (``time_scale * t``, 0-1000).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from orthogen.errors import InputError

NestedDenoiseFunction = Callable[[Sequence[torch.Tensor], torch.Tensor], Sequence[torch.Tensor]]


class NestedConditionedDenoiser:
    """``denoise_fn(x_t, t)`` of a nested network with bound conditioning.

    Args:
        network: called as ``network(x_t, timesteps, context, pixel_spacing, slice_thickness)``
            (:class:`orthogen.networks.NestedUNet3D`).
        context: radiograph tokens (B, T, C).
        pixel_spacing, slice_thickness: (B,) or a number, mm.
        time_scale: network timesteps per unit of t (1000: MONAI's DDPM timestep convention).
    """

    def __init__(self, network: torch.nn.Module, context: torch.Tensor, pixel_spacing, slice_thickness,
                 time_scale: float = 1000.0):
        self.network, self.context = network, context
        self.pixel_spacing, self.slice_thickness = pixel_spacing, slice_thickness
        self.time_scale = float(time_scale)

    def __call__(self, x_t: Sequence[torch.Tensor], t: torch.Tensor) -> list[torch.Tensor]:
        return self.network(list(x_t), t * self.time_scale, self.context, self.pixel_spacing, self.slice_thickness)


class NestedDenoiseCounter:
    """Counts calls of a ``denoise_fn`` in ``count`` and checks that it returns one prediction per volume."""

    def __init__(self, denoise_fn: NestedDenoiseFunction):
        if not callable(denoise_fn):
            raise InputError(f"expected a callable denoise_fn(x_t, t), got {type(denoise_fn).__name__}", "denoise_fn")
        self.denoise_fn, self.count = denoise_fn, 0

    def __call__(self, x_t: Sequence[torch.Tensor], t: torch.Tensor) -> list[torch.Tensor]:
        self.count += 1
        predictions = self.denoise_fn(x_t, t)
        if isinstance(predictions, torch.Tensor) or len(predictions) != len(x_t) or any(
                not isinstance(p, torch.Tensor) or p.shape != x.shape for p, x in zip(predictions, x_t)):
            got = ([tuple(p.shape) if isinstance(p, torch.Tensor) else type(p).__name__ for p in predictions]
                   if not isinstance(predictions, torch.Tensor) else tuple(predictions.shape))
            raise InputError(f"returned {got}; expected predictions shaped {[tuple(x.shape) for x in x_t]}",
                             "denoise_fn")
        return list(predictions)
