"""Networks: the X2CT-GAN generator and discriminator; the NCSN++ score network and its U-Net baseline."""
from orthogen.networks.ncsnpp import CPU_PRESET, PAPER_SCALE, NCSNpp, NCSNppBackbone
from orthogen.networks.unet_baseline import SegmentationToRadiographUNet
from orthogen.networks.x2ct_gan import X2CTDiscriminator, X2CTGenerator

__all__ = [
    "CPU_PRESET",
    "NCSNpp",
    "NCSNppBackbone",
    "PAPER_SCALE",
    "SegmentationToRadiographUNet",
    "X2CTDiscriminator",
    "X2CTGenerator",
]
