"""The network of each of the seed's segmentation -> radiograph methods, from one set of backbone settings.

Mei et al. compare a conditional score model (CTM: NCSN++ on [noisy image, segmentation]), an
unconditional one used with SDEdit (CSM: NCSN++ on the noisy image), and a U-Net baseline on the same
backbone without noise conditioning. A bundle defines the backbone once and picks the method by name,
so training, inference and evaluation of any method build the same network.
"""
from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from orthogen.errors import InputError
from orthogen.networks.ncsnpp import NCSNpp
from orthogen.networks.unet_baseline import SegmentationToRadiographUNet

METHOD_INPUT_CHANNELS = {"ctm": 2, "csm": 1, "unet": 1}
"""Input channels per method: CTM sees [noisy image, segmentation]; CSM the noisy image; the U-Net the segmentation."""


def segmentation_to_radiograph_network(method: str, channels: Sequence[int], attention_resolutions: Sequence[int],
                                       num_res_blocks: int, image_size: int, dropout: float = 0.1,
                                       fir: bool = False) -> nn.Module:
    """``"ctm"`` / ``"csm"``: :class:`NCSNpp` with 2 / 1 input channels; ``"unet"``: the U-Net baseline.

    The other arguments are the backbone's (see :class:`orthogen.networks.NCSNpp`); all three output
    one channel (the radiograph's score, or the radiograph itself for the U-Net).
    """
    if method not in METHOD_INPUT_CHANNELS:
        raise InputError(f"expected one of {', '.join(METHOD_INPUT_CHANNELS)}, got {method!r}", "method")
    backbone = dict(spatial_dims=2, out_channels=1, channels=tuple(channels),
                    attention_resolutions=tuple(attention_resolutions), num_res_blocks=num_res_blocks,
                    image_size=image_size, dropout=dropout, fir=fir)
    if method == "unet":
        return SegmentationToRadiographUNet(in_channels=1, **backbone)
    return NCSNpp(in_channels=METHOD_INPUT_CHANNELS[method], **backbone)
