"""Losses: X2CT-GAN's projection loss and loss weights (adversarial losses come from MONAI)."""
from orthogen.losses.projection import ProjectionL1Loss
from orthogen.losses.x2ct_gan import X2CTLossWeights

__all__ = ["ProjectionL1Loss", "X2CTLossWeights"]
