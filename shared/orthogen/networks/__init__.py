"""Networks: the X2CT-GAN generator and discriminator."""
from orthogen.networks.x2ct_gan import X2CTDiscriminator, X2CTGenerator

__all__ = ["X2CTDiscriminator", "X2CTGenerator"]
