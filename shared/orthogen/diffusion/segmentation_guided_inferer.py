"""Radiographs from segmentations, as a MONAI ``Inferer``: the seed paper's three methods behind one call.

Mei et al. (segmentation-guided knee radiograph generation) compare:

- ``"ctm"``: a conditional score model on [noisy image, segmentation], sampled from pure noise;
- ``"csm"``: an unconditional score model with SDEdit from the segmentation at t0 = 0.4;
- ``"unet"``: a U-Net regressing the radiograph from the segmentation (L1), the baseline.

The sampler of the two score methods is ``"pc"`` (predictor-corrector, the seed's; ``steps`` noise
levels, two network evaluations each), ``"ode"`` (the Heun probability-flow sampler, ``2 steps - 1``
evaluations, its denoiser clipped to the radiographs' range [0, 1]: see
:mod:`orthogen.diffusion.probability_flow`) or ``"stochastic_heun"`` (the same steps with Karras et al.'s
noise churn between them, as many evaluations: :mod:`orthogen.diffusion.stochastic_heun`). The network is whatever the bundle built; this object never looks inside it.
"""
from __future__ import annotations

import torch
from monai.inferers import Inferer

from orthogen.diffusion.conditioned_score import ConditionedScore
from orthogen.diffusion.pc_sampler import PredictorCorrectorSampler
from orthogen.diffusion.probability_flow import ProbabilityFlowHeunSampler
from orthogen.diffusion.sdedit import SDEdit
from orthogen.diffusion.stochastic_heun import StochasticHeunSampler
from orthogen.diffusion.ve_sde import VESDE
from orthogen.errors import InputError

METHODS = ("ctm", "csm", "unet")
SAMPLER_LABELS = {"pc": "PC", "ode": "ODE", "stochastic_heun": "stochastic Heun"}
"""Each sampler's name (as `--sampler` takes it) and its words in tables and DICOM descriptions."""
SAMPLERS = tuple(SAMPLER_LABELS)
RADIOGRAPH_RANGE = (0.0, 1.0)
"""The value range of the radiographs generated (and of the training DRRs)."""


class SegmentationGuidedInferer(Inferer):
    """Segmentations (B, 1, H, W) in {0, 0.5, 1} -> radiographs (B, K, H, W) in [0, 1], K = ``samples``.

    Args:
        method: ``"ctm"``, ``"csm"`` or ``"unet"`` (see the module docstring).
        sampler: ``"pc"``, ``"ode"`` or ``"stochastic_heun"`` (score methods only).
        steps: noise levels of a full run; None: the SDE's N (PC) or 50 (the Heun samplers, 99 evaluations).
        sde: the VE-SDE the score model was trained on; None: sigma 0.01-128, N = 500 (the seed's).
        t0: SDEdit's start time for ``"csm"``.
        snr: the Langevin corrector's signal-to-noise ratio (PC).
        churn: S_churn of the stochastic Heun sampler (see :class:`StochasticHeunSampler`).
        samples: K samples per segmentation (their spread is the per-pixel std map); 1 for ``"unet"``.
        seed: seed of all sampling noise (same seed, same radiographs).

    Attributes:
        nfe: network evaluations per segmentation of the last call (all K samples).
    """

    def __init__(self, method: str, sampler: str = "pc", steps: int | None = None, sde: VESDE | None = None,
                 t0: float = 0.4, snr: float = 0.4, churn: float = 40.0, samples: int = 1, seed: int = 0):
        super().__init__()
        if method not in METHODS:
            raise InputError(f"expected one of {', '.join(METHODS)}, got {method!r}", "method")
        if sampler not in SAMPLERS:
            raise InputError(f"expected one of {', '.join(SAMPLERS)}, got {sampler!r}", "sampler")
        if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
            raise InputError(f"expected a whole number >= 1, got {samples!r}", "samples")
        if method == "unet" and samples != 1:
            raise InputError(f"the U-Net is deterministic: expected 1 sample, got {samples}", "samples")
        self.method, self.samples, self.seed = method, samples, int(seed)
        self.sde = sde or VESDE()
        if sampler == "pc":
            self.sampler = PredictorCorrectorSampler(self.sde, steps=steps, snr=snr)
        elif sampler == "ode":
            self.sampler = ProbabilityFlowHeunSampler(self.sde, steps=50 if steps is None else steps,
                                                      data_range=RADIOGRAPH_RANGE)
        else:
            self.sampler = StochasticHeunSampler(self.sde, steps=50 if steps is None else steps,
                                                 data_range=RADIOGRAPH_RANGE, churn=churn)
        self.sdedit = SDEdit(self.sampler, t0) if method == "csm" else None
        self.sampler_name = sampler
        self.nfe = 0

    @torch.no_grad()
    def __call__(self, inputs: torch.Tensor, network, *args, **kwargs) -> torch.Tensor:
        """Generate K radiographs per segmentation of ``inputs`` (B, 1, H, W) with ``network``."""
        if inputs.ndim != 4 or inputs.shape[1] != 1:
            raise InputError(f"expected segmentations of shape (B, 1, H, W), got {tuple(inputs.shape)}", "inputs")
        segmentation = inputs.float()
        if self.method == "unet":
            self.nfe = 1
            return network(segmentation).clamp(0.0, 1.0)
        generator = torch.Generator(device=segmentation.device).manual_seed(self.seed)
        samples, nfe = [], 0
        for _ in range(self.samples):
            if self.method == "ctm":
                sample = self.sampler.sample(ConditionedScore(network, segmentation), segmentation.shape,
                                             generator=generator, device=segmentation.device)
            else:
                sample = self.sdedit.sample(network, segmentation, generator=generator)
            samples.append(sample)
            nfe += self.sampler.nfe
        self.nfe = nfe
        return torch.cat(samples, dim=1).clamp(0.0, 1.0)

    def describe(self) -> str:
        """The method, sampler and NFE of the last call in words, for tables."""
        if self.method == "unet":
            return f"{method_label(self.method, self.sampler_name)} (1 evaluation)"
        per_sample = self.nfe // self.samples if self.nfe else "?"
        return f"{method_label(self.method, self.sampler_name)}, {per_sample} NFE per sample"


def method_label(method: str, sampler: str) -> str:
    """The method and sampler in words ("CTM, stochastic Heun sampler"; "U-Net baseline"), for tables and
    DICOM series descriptions."""
    if method == "unet":
        return "U-Net baseline"
    return f"{method.upper()}, {SAMPLER_LABELS.get(sampler, sampler)} sampler"
