"""The U-Net baseline of segmentation-guided knee radiograph generation: segmentation in, radiograph out.

Mei et al. (2024) compare their diffusion models with a conventional U-Net that maps the segmentation
condition straight to a radiograph and is trained with an L1 loss (the loss lives in the training
config, not here). It is the NCSN++ backbone (:class:`orthogen.networks.ncsnpp.NCSNppBackbone`: the same
levels, BigGAN residual blocks, attention and skip rescale) without noise conditioning: no Fourier
embedding, no embedding projections in the residual blocks, no division by sigma. One forward pass
gives the radiograph; there is no sampler.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from orthogen.errors import InputError
from orthogen.networks.ncsnpp import NCSNPP_PRESETS, NCSNppBackbone


class SegmentationToRadiographUNet(nn.Module):
    """Deterministic U-Net from segmentation condition channels to a radiograph, on the NCSN++ backbone.

    Args:
        spatial_dims: must be 2.
        in_channels: condition channels (1: bone contours; 2: contours + filled bones).
        out_channels: 1, the radiograph.
        channels / attention_resolutions / num_res_blocks / image_size / dropout / fir: as
            :class:`orthogen.networks.NCSNpp` (the presets ``NCSNPP_PRESETS`` apply).

    Forward: ``condition`` ``(B, in_channels, H, W)`` -> radiograph ``(B, out_channels, H, W)`` (no
    output activation: the L1 loss is taken on the raw output).
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        channels: Sequence[int] = NCSNPP_PRESETS["paper"]["channels"],
        attention_resolutions: Sequence[int] = (16,),
        num_res_blocks: int = 2,
        image_size: int = 256,
        dropout: float = 0.1,
        fir: bool = True,
    ):
        super().__init__()
        if spatial_dims != 2:
            raise InputError(f"the U-Net baseline is 2D only (radiographs), got {spatial_dims}", "spatial_dims")
        self.backbone = NCSNppBackbone(
            in_channels, out_channels, channels, attention_resolutions, num_res_blocks, image_size,
            embedding_channels=None, dropout=dropout, fir=fir)

    def forward(self, condition: torch.Tensor) -> torch.Tensor:
        return self.backbone(condition, None)
