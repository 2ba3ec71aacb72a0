"""Score-based diffusion on the VE-SDE: the SDE, predictor-corrector and probability-flow samplers,
SDEdit, and the denoising score matching loss.

Every sampler takes a score function ``score_fn(x, sigma) -> score`` (x (B, C, *spatial), sigma (B,)
noise std in data units); a network never knows its sampler, and a conditional network is wrapped
by :class:`ConditionedScore`. References: Song et al. 2021 (score SDEs; yang-song/score_sde_pytorch),
Karras et al. 2022 (Heun probability-flow and stochastic samplers), Meng et al. 2022 (SDEdit).
"""
from orthogen.diffusion.conditioned_score import ConditionedScore, conditioned
from orthogen.diffusion.correctors import CORRECTORS, Corrector, LangevinCorrector, NoneCorrector, corrector_by_name
from orthogen.diffusion.pc_sampler import PredictorCorrectorSampler
from orthogen.diffusion.predictors import (
    PREDICTORS,
    NonePredictor,
    Predictor,
    ReverseDiffusionPredictor,
    predictor_by_name,
)
from orthogen.diffusion.probability_flow import ProbabilityFlowHeunSampler
from orthogen.diffusion.score_evaluation_counter import ScoreEvaluationCounter
from orthogen.diffusion.score_matching_loss import DenoisingScoreMatchingLoss, gaussian_data_loss_minimum
from orthogen.diffusion.sdedit import SDEdit
from orthogen.diffusion.stochastic_heun import StochasticHeunSampler
from orthogen.diffusion.segmentation_guided_inferer import METHODS, SAMPLERS, SegmentationGuidedInferer
from orthogen.diffusion.ve_sde import VESDE

__all__ = [
    "CORRECTORS",
    "METHODS",
    "PREDICTORS",
    "ConditionedScore",
    "Corrector",
    "DenoisingScoreMatchingLoss",
    "LangevinCorrector",
    "NoneCorrector",
    "NonePredictor",
    "Predictor",
    "PredictorCorrectorSampler",
    "ProbabilityFlowHeunSampler",
    "ReverseDiffusionPredictor",
    "SAMPLERS",
    "SDEdit",
    "SegmentationGuidedInferer",
    "ScoreEvaluationCounter",
    "StochasticHeunSampler",
    "VESDE",
    "conditioned",
    "corrector_by_name",
    "gaussian_data_loss_minimum",
    "predictor_by_name",
]

# Nested (Matryoshka) diffusion in 3D: shifted schedule, multi-resolution loss, DDIM sampler.
from orthogen.diffusion.nested_ddim_sampler import NestedDDIMSampler  # noqa: E402
from orthogen.diffusion.nested_denoiser_fn import NestedConditionedDenoiser, NestedDenoiseCounter  # noqa: E402
from orthogen.diffusion.nested_diffusion import (  # noqa: E402
    PREDICTION_TYPES,
    ShiftedCosineSchedule,
    downsample_pyramid,
)
from orthogen.diffusion.nested_diffusion_loss import NestedDiffusionLoss  # noqa: E402

__all__ += [
    "NestedConditionedDenoiser",
    "NestedDDIMSampler",
    "NestedDenoiseCounter",
    "NestedDiffusionLoss",
    "PREDICTION_TYPES",
    "ShiftedCosineSchedule",
    "downsample_pyramid",
]

# Projection-guided sampling: the CT estimate's DRRs pulled towards the input views.
from orthogen.diffusion.projection_guidance import ProjectionGuidance  # noqa: E402

__all__ += ["ProjectionGuidance"]

# The knee CT diffusion bundle's inferer: nested DDIM from bi-planar radiographs.
from orthogen.diffusion.nested_ct_inferer import NestedCTInferer  # noqa: E402

__all__ += ["NestedCTInferer"]

# Patch diffusion super-resolution of the knee CT cascade (x4 per pass, seamless overlapping windows).
from orthogen.diffusion.patch_super_resolution import (  # noqa: E402
    SUPER_RESOLUTION_FACTOR,
    PatchSuperResolution,
    blend_patches,
    super_resolution_passes,
    unshifted_schedule,
    volume_coordinates,
)

__all__ += ["PatchSuperResolution", "SUPER_RESOLUTION_FACTOR", "blend_patches", "super_resolution_passes",
            "unshifted_schedule",
            "volume_coordinates"]
