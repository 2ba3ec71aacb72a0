"""Loss weights of X2CT-GAN, as set in the reference's multi-view experiment (d2_multiview2500.yml)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class X2CTLossWeights:
    """Weights of the generator's loss terms (reference: gan_lambda, idt_lambda, map_projection_lambda).

    Generator loss = adversarial * LSGAN(D(fake) -> 1) + voxel_mse * MSE(fake, real)
    + projection_l1 * :class:`~orthogen.losses.ProjectionL1Loss` (fake, real).
    The reference weights the discriminator's loss by ``adversarial`` as well:
    adversarial * (LSGAN(D(real) -> 1) + LSGAN(D(fake) -> 0)).
    LSGAN here is ``monai.losses.PatchAdversarialLoss(criterion="least_squares",
    no_activation_leastsq=True)``: a plain MSE on the raw logits as in the reference (without
    ``no_activation_leastsq`` MONAI first applies a LeakyReLU(0.05) to the logits).
    """

    adversarial: float = 0.1
    voxel_mse: float = 10.0
    projection_l1: float = 10.0
