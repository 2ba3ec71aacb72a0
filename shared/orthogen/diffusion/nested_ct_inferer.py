"""A CT from bi-planar radiographs by nested DDIM, as a MONAI ``Inferer`` (the knee CT diffusion bundle's).

The evaluator hands it the radiographs (B, 2, S, S) and, through MONAI's ``PrepareBatchExtraInput``,
``pixel_spacing`` and ``slice_thickness`` (B,) mm; it samples every resolution of the cascade at once with
:class:`orthogen.diffusion.NestedDDIMSampler` (``steps`` network calls, seeded: the same seed gives the
same CT on the same device) and returns the highest resolution's CT (B, 1, r, r, r) mapped from the
diffusion's [-1, 1] to the bundle's HU window scale [0, 1]. The network is called as
``network(x list, timesteps, views, pixel_spacing, slice_thickness)``
(:class:`orthogen.networks.BiplanarCTDiffusion`); this object never looks inside it.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.inferers import Inferer

from orthogen.diffusion.nested_ddim_sampler import NestedDDIMSampler
from orthogen.diffusion.nested_denoiser_fn import NestedConditionedDenoiser
from orthogen.diffusion.nested_diffusion import ShiftedCosineSchedule
from orthogen.errors import InputError


class NestedCTInferer(Inferer):
    """Radiographs (B, 2, S, S) in [0, 1] -> CT (B, 1, r, r, r) in [0, 1], r = ``resolutions[-1]``.

    Args:
        resolutions: the cascade's cube sizes, lowest first (the network's).
        steps: DDIM steps = network calls per CT (>= 1).
        seed: seed of the start noise (and of eta's noise).
        schedule: the schedule the network was trained with; None: the shifted cosine schedule based
            at ``resolutions[0]``.
        prediction_type: "v" or "epsilon", as trained.
        eta: DDIM's stochasticity (0: deterministic given the seed).

    Attributes:
        nfe: network calls of the last call.
    """

    def __init__(self, resolutions: Sequence[int], steps: int = 50, seed: int = 0,
                 schedule: ShiftedCosineSchedule | None = None, prediction_type: str = "v", eta: float = 0.0):
        super().__init__()
        try:
            self.resolutions = [int(r) for r in resolutions]
        except (TypeError, ValueError):
            raise InputError(f"expected cube sizes like [32, 64], got {resolutions!r}", "resolutions") from None
        if not self.resolutions:
            raise InputError("expected at least one resolution, got none", "resolutions")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise InputError(f"expected a whole number >= 1, got {steps!r}", "steps")
        self.schedule = schedule or ShiftedCosineSchedule(base_resolution=self.resolutions[0])
        self.sampler = NestedDDIMSampler(self.schedule, num_steps=steps, prediction_type=prediction_type, eta=eta)
        self.seed, self.steps = int(seed), steps
        self.nfe = 0

    def describe(self) -> str:
        """The sampler, its network calls and the cascade in words, for tables and pictures."""
        cascade = "+".join(f"{r}^3" for r in self.resolutions)
        return f"nested DDIM, {self.nfe or self.steps} NFE, cascade {cascade}"

    @torch.no_grad()
    def __call__(self, inputs: torch.Tensor, network, *args, pixel_spacing=None, slice_thickness=None,
                 **kwargs) -> torch.Tensor:
        """The CT of each radiograph pair of ``inputs`` (B, 2, S, S)."""
        if not isinstance(inputs, torch.Tensor) or inputs.ndim != 4 or inputs.shape[1] != 2:
            got = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs).__name__
            raise InputError(f"expected AP + lateral radiographs (B, 2, S, S), got {got}", "inputs")
        for name, value in (("pixel_spacing", pixel_spacing), ("slice_thickness", slice_thickness)):
            if value is None:
                raise InputError("expected (B,) mm from the batch (PrepareBatchExtraInput), got None", name)
        views = torch.as_tensor(inputs).float()
        device = views.device
        denoise = NestedConditionedDenoiser(network, views, torch.as_tensor(pixel_spacing).to(device).float(),
                                            torch.as_tensor(slice_thickness).to(device).float())
        volumes = self.sampler(denoise, self.resolutions, batch_size=views.shape[0], seed=self.seed, device=device)
        self.nfe = self.sampler.last_evaluations
        return ((volumes[-1] + 1.0) / 2.0).clamp(0.0, 1.0)
