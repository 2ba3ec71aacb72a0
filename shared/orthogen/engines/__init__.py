"""Training engines (MONAI/ignite) that MONAI's own engines do not cover."""
from orthogen.engines.x2ct_gan_trainer import X2CTGanTrainer

__all__ = ["X2CTGanTrainer"]
