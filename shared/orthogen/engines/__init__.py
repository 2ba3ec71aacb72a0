"""Training engines (MONAI/ignite) and schedules that MONAI's own do not cover."""
from orthogen.engines.denoising_trainer import DenoisingTrainer
from orthogen.engines.linear_decay_lr import LinearDecayLR, linear_decay_factor
from orthogen.engines.score_matching_trainer import ScoreMatchingTrainer
from orthogen.engines.x2ct_gan_trainer import X2CTGanTrainer

__all__ = ["DenoisingTrainer", "LinearDecayLR", "ScoreMatchingTrainer", "X2CTGanTrainer", "linear_decay_factor"]

# The nested (Matryoshka) diffusion trainer of the knee CT bundle.
from orthogen.engines.nested_diffusion_trainer import NestedDiffusionTrainer  # noqa: E402

__all__ += ["NestedDiffusionTrainer"]

# The patch super-resolution trainer of the knee CT cascade (128^3 -> 512^3).
from orthogen.engines.patch_super_resolution_trainer import PatchSuperResolutionTrainer  # noqa: E402

__all__ += ["PatchSuperResolutionTrainer"]
