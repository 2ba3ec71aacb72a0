"""The network of each of the seed's segmentation -> radiograph methods, from one set of backbone settings.

Mei et al. compare a conditional score model (CTM: NCSN++ on [noisy image, segmentation]), an
unconditional one used with SDEdit (CSM: NCSN++ on the noisy image), and a U-Net baseline on the same
backbone without noise conditioning. A bundle defines the backbone once and picks the method by name,
so training, inference and evaluation of any method build the same network.
"""
from __future__ import annotations

from torch import nn

from orthogen.errors import InputError
from orthogen.networks.ncsnpp import NCSNPP_PRESETS, NCSNpp
from orthogen.networks.preconditioned_score import PreconditionedScore
from orthogen.networks.unet_baseline import SegmentationToRadiographUNet

METHOD_INPUT_CHANNELS = {"ctm": 2, "csm": 1, "unet": 1}
"""Input channels per method: CTM sees [noisy image, segmentation]; CSM the noisy image; the U-Net the segmentation."""


def segmentation_to_radiograph_network(method: str, preset: str, image_size: int,
                                       sigma_data: float | None = None) -> nn.Module:
    """The network of ``method`` on the backbone ``preset`` (:data:`NCSNPP_PRESETS`) for ``image_size``^2 images.

    ``"ctm"`` / ``"csm"``: :class:`NCSNpp` with 2 / 1 input channels; ``"unet"``: the U-Net baseline on
    the same backbone. All three output one channel (the radiograph's score, or the radiograph itself
    for the U-Net). ``sigma_data``: None builds the seed's score network (NCSN++ dividing its output by
    sigma); a value (the data's std) wraps an NCSN++ that does not in :class:`PreconditionedScore`
    (Karras et al.'s preconditioning; score methods only).
    """
    if method not in METHOD_INPUT_CHANNELS:
        raise InputError(f"expected one of {', '.join(METHOD_INPUT_CHANNELS)}, got {method!r}", "method")
    if preset not in NCSNPP_PRESETS:
        raise InputError(f"expected one of {', '.join(NCSNPP_PRESETS)}, got {preset!r}", "network_preset")
    backbone = dict(spatial_dims=2, out_channels=1, image_size=image_size, **NCSNPP_PRESETS[preset])
    if method == "unet":
        if sigma_data is not None:
            raise InputError("expected no sigma_data for the U-Net (it has no noise level to precondition for), "
                             f"got {sigma_data!r}", "sigma_data")
        return SegmentationToRadiographUNet(in_channels=1, **backbone)
    if sigma_data is None:
        return NCSNpp(in_channels=METHOD_INPUT_CHANNELS[method], **backbone)
    return PreconditionedScore(NCSNpp(in_channels=METHOD_INPUT_CHANNELS[method], scale_by_sigma=False, **backbone),
                               image_channels=1, sigma_data=sigma_data)
