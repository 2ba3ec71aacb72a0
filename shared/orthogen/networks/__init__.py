"""Networks: the X2CT-GAN generator and discriminator; the NCSN++ score network and its U-Net baseline."""
from orthogen.networks.ncsnpp import NCSNPP_PRESETS, NCSNpp, NCSNppBackbone
from orthogen.networks.preconditioned_score import PreconditionedScore
from orthogen.networks.segmentation_to_radiograph import METHOD_INPUT_CHANNELS, segmentation_to_radiograph_network
from orthogen.networks.slice_features import SliceFeatureNet, slice_feature_network, train_slice_features
from orthogen.networks.unet_baseline import SegmentationToRadiographUNet
from orthogen.networks.x2ct_gan import X2CT_GENERATOR_PRESETS, X2CTDiscriminator, X2CTGenerator, x2ct_generator

__all__ = [
    "METHOD_INPUT_CHANNELS",
    "NCSNPP_PRESETS",
    "NCSNpp",
    "NCSNppBackbone",
    "PreconditionedScore",
    "SegmentationToRadiographUNet",
    "X2CT_GENERATOR_PRESETS",
    "X2CTDiscriminator",
    "X2CTGenerator",
    "segmentation_to_radiograph_network",
    "x2ct_generator",
    "SliceFeatureNet",
    "slice_feature_network",
    "train_slice_features",
]

# Nested (Matryoshka) 3D denoiser and the bi-planar radiograph encoder (knee CT from radiographs).
from orthogen.networks.nested_unet3d import (  # noqa: E402
    NESTED_UNET3D_PRESETS,
    ConditionedDiffusionUNet,
    NestedUNet3D,
    OuterLevel,
    SpacingEmbedding,
    nested_denoiser,
)
from orthogen.networks.radiograph_encoder import (  # noqa: E402
    RADIOGRAPH_ENCODER_PRESETS,
    RadiographEncoder,
    radiograph_encoder,
)

__all__ += [
    "NESTED_UNET3D_PRESETS",
    "ConditionedDiffusionUNet",
    "NestedUNet3D",
    "OuterLevel",
    "SpacingEmbedding",
    "nested_denoiser",
    "RADIOGRAPH_ENCODER_PRESETS",
    "RadiographEncoder",
    "radiograph_encoder",
]

# The knee CT diffusion bundle's network: the radiograph encoder and the nested denoiser in one module.
from orthogen.networks.biplanar_ct_diffusion import (  # noqa: E402
    BIPLANAR_CT_DIFFUSION_PRESETS,
    BiplanarCTDiffusion,
    biplanar_ct_diffusion,
)

__all__ += ["BIPLANAR_CT_DIFFUSION_PRESETS", "BiplanarCTDiffusion", "biplanar_ct_diffusion"]

# The knee CT cascade's patch super-resolution denoiser.
from orthogen.networks.patch_super_resolution import (  # noqa: E402
    PATCH_SUPER_RESOLUTION_PRESETS,
    PatchSuperResolutionUNet,
    patch_super_resolution_network,
)

__all__ += ["PATCH_SUPER_RESOLUTION_PRESETS", "PatchSuperResolutionUNet", "patch_super_resolution_network"]
