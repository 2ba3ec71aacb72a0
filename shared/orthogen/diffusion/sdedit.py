"""SDEdit: guided synthesis by noising a guide image to t0 and running the reverse process from there.

Meng et al. 2022, "SDEdit: Guided Image Synthesis and Editing with Stochastic Differential Equations":
x(t0) = y + sigma(t0) z for the VE-SDE, then the reverse SDE (or ODE) from t0 to eps with an
*unconditional* score model. In the knee radiograph seed (CSM) the guide y is the segmentation image
and t0 = 0.4: the sample keeps the guide's layout at coarse scales and gets radiograph texture.
"""
from __future__ import annotations

import torch

from orthogen.diffusion.arguments import start_time
from orthogen.diffusion.conditioned_score import ScoreFunction
from orthogen.errors import InputError


class SDEdit:
    """SDEdit with any sampler that has ``sde`` and ``sample(score_fn, shape, generator, x_init, t_start)``.

    Args:
        sampler: a :class:`PredictorCorrectorSampler` (the seed) or :class:`ProbabilityFlowHeunSampler`.
        t0: the time in (0, 1] the guide is noised to (0.4 in the seed; sigma(0.4) = 0.44 with the
            default schedule). Larger t0: more realism, less faithfulness to the guide.
    """

    def __init__(self, sampler, t0: float = 0.4):
        if not hasattr(sampler, "sample") or not hasattr(sampler, "sde"):
            raise InputError(f"expected a sampler with .sde and .sample(), got {type(sampler).__name__}", "sampler")
        self.sampler = sampler
        self.t0 = start_time(t0, "t0", getattr(sampler, "eps", 0.0))

    @property
    def nfe(self) -> int:
        """Network evaluations of the last :meth:`sample` call."""
        return self.sampler.nfe

    def initial_state(self, guide: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x(t0) = guide + sigma(t0) z, z ~ N(0, I) from ``generator``; shape and dtype of the guide."""
        if not isinstance(guide, torch.Tensor) or guide.ndim < 3 or not guide.is_floating_point():
            got = tuple(guide.shape) if isinstance(guide, torch.Tensor) else type(guide).__name__
            raise InputError(f"expected a float tensor (batch, channels, *spatial), got {got}", "guide")
        noise = torch.randn(guide.shape, generator=generator, device=guide.device, dtype=guide.dtype)
        return guide + self.sampler.sde.sigma(self.t0).item() * noise

    def sample(self, score_fn: ScoreFunction, guide: torch.Tensor,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Samples (B, C, *spatial) guided by ``guide`` (B, C, *spatial, data units, e.g. [0, 1])."""
        x_init = self.initial_state(guide, generator)
        return self.sampler.sample(score_fn, guide.shape, generator=generator, x_init=x_init, t_start=self.t0)
