"""A CT from bi-planar radiographs by nested DDIM, as a MONAI ``Inferer`` (the knee CT diffusion bundle's).

The evaluator hands it the radiographs (B, 2, S, S) and, through MONAI's ``PrepareBatchExtraInput``,
``pixel_spacing`` and ``slice_thickness`` (B,) mm; it samples every resolution of the cascade at once with
:class:`orthogen.diffusion.NestedDDIMSampler` (``steps`` network calls, seeded: the same seed gives the
same CT on the same device) and returns the highest resolution's CT (B, 1, r, r, r) mapped from the
diffusion's [-1, 1] to the bundle's HU window scale [0, 1]. The network is called as
``network(x list, timesteps, views, pixel_spacing, slice_thickness)``
(:class:`orthogen.networks.BiplanarCTDiffusion`); this object never looks inside it.

Two options follow the cascade:

- ``super_resolution``: a :class:`orthogen.diffusion.PatchSuperResolution` whose x4 passes take the CT on
  from r^3 (to 512^3 from the shipped 32^3 with two passes);
- ``guidance``: a :class:`orthogen.diffusion.ProjectionGuidance` whose weight > 0 pulls each step's CT
  estimate's DRRs towards the input views;
- ``samples`` K > 1: K CTs from seeds ``seed .. seed + K - 1`` (each super-resolved), returned as
  (B, 2, R, R, R): channel 0 their per-voxel mean, channel 1 their per-voxel standard deviation (both on the
  [0, 1] scale; :class:`orthogen.transforms.SplitSampleStatisticsd` splits them). Welford's running
  update keeps two volumes in memory whatever K is (torch has no running-moments helper).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import torch
from monai.inferers import Inferer

from orthogen.diffusion.nested_ddim_sampler import NestedDDIMSampler
from orthogen.diffusion.nested_denoiser_fn import NestedConditionedDenoiser
from orthogen.diffusion.nested_diffusion import ShiftedCosineSchedule
from orthogen.diffusion.patch_super_resolution import PatchSuperResolution
from orthogen.diffusion.projection_guidance import ProjectionGuidance
from orthogen.errors import InputError

logger = logging.getLogger(__name__)


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
        super_resolution: x4 patch super-resolution passes after the cascade, or None.
        samples: CTs per input (K >= 1); K > 1 returns mean and standard deviation.
        sample_seeds: the K samples' seeds instead of ``seed .. seed + samples - 1`` (K = its length).
        guidance: projection guidance during the cascade's sampling, or None.

    Attributes:
        nfe: network calls of the last call.
    """

    def __init__(self, resolutions: Sequence[int], steps: int = 50, seed: int = 0,
                 schedule: ShiftedCosineSchedule | None = None, prediction_type: str = "v", eta: float = 0.0,
                 super_resolution: PatchSuperResolution | None = None, samples: int = 1,
                 guidance: ProjectionGuidance | None = None, sample_seeds: Sequence[int] | None = None):
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
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise InputError(f"expected a whole number >= 1, got {samples!r}", "samples")
        self.seed, self.steps = int(seed), steps
        self.sample_seeds = ([int(s) for s in sample_seeds] if sample_seeds is not None
                             else [self.seed + k for k in range(samples)])
        if not self.sample_seeds:
            raise InputError("expected at least one seed, got none", "sample_seeds")
        self.samples = len(self.sample_seeds)
        self.super_resolution, self.guidance = super_resolution, guidance
        self.nfe = 0

    def describe(self) -> str:
        """The sampler, its network calls and the cascade in words, for tables and pictures."""
        cascade = "+".join(f"{r}^3" for r in self.resolutions)
        words = f"nested DDIM, {self.nfe or self.steps} NFE, cascade {cascade}"
        if self.guidance is not None and self.guidance.weight:
            words += f", projection guidance {self.guidance.weight:g}"
        if self.super_resolution is not None and self.super_resolution.passes:
            words += f", then {self.super_resolution.describe()}"
        return words + (f", mean and std of {self.samples} samples" if self.samples > 1 else "")

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
        spacing = torch.as_tensor(pixel_spacing).to(device).float()
        denoise = NestedConditionedDenoiser(network, views, spacing, torch.as_tensor(slice_thickness).to(device).float())
        correction = self.guidance.correction(views, spacing) if self.guidance is not None else None
        self.nfe = 0
        mean = squares = None
        for k, seed in enumerate(self.sample_seeds):
            ct = self._one_sample(denoise, views.shape[0], seed, device, correction)
            if mean is None:
                mean, squares = ct, torch.zeros_like(ct)
            else:  # Welford: mean and sum of squared deviations, updated in place
                delta = ct - mean
                mean += delta / (k + 1)
                squares += delta * (ct - mean)
        if self.samples == 1:
            return mean
        return torch.cat([mean, (squares / (self.samples - 1)).sqrt()], dim=1)

    def _one_sample(self, denoise, batch_size: int, seed: int, device, correction) -> torch.Tensor:
        start = time.perf_counter()
        volumes = self.sampler(denoise, self.resolutions, batch_size=batch_size, seed=seed, device=device,
                               x0_correction=correction)
        self.nfe += self.sampler.last_evaluations
        guided = " with projection guidance" if correction is not None else ""
        logger.info(f"stage cascade {'+'.join(f'{r}^3' for r in self.resolutions)}: {self.steps} DDIM steps{guided}, "
                    f"{self.sampler.last_evaluations} network calls, {time.perf_counter() - start:.1f} s (seed {seed})")
        ct = ((volumes[-1] + 1.0) / 2.0).clamp(0.0, 1.0)
        if self.super_resolution is not None and self.super_resolution.passes:
            ct = self.super_resolution(ct, seed=seed)
            self.nfe += self.super_resolution.nfe
        return ct
