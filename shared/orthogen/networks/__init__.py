"""Networks: the X2CT-GAN generator and discriminator; the NCSN++ score network and its U-Net baseline."""
from orthogen.networks.ncsnpp import CPU_PRESET, PAPER_SCALE, NCSNpp, NCSNppBackbone
from orthogen.networks.segmentation_to_radiograph import METHOD_INPUT_CHANNELS, segmentation_to_radiograph_network
from orthogen.networks.unet_baseline import SegmentationToRadiographUNet
from orthogen.networks.x2ct_gan import X2CTDiscriminator, X2CTGenerator

__all__ = [
    "CPU_PRESET",
    "METHOD_INPUT_CHANNELS",
    "NCSNpp",
    "NCSNppBackbone",
    "PAPER_SCALE",
    "SegmentationToRadiographUNet",
    "X2CTDiscriminator",
    "X2CTGenerator",
    "segmentation_to_radiograph_network",
]
