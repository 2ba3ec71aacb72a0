"""The patch super-resolution denoiser of the knee CT cascade: MONAI's 3D ``DiffusionModelUNet`` on patches.

After the seed's last stage (Khosravi et al. supersample their 128^3 CTs to 512^3 with a patch-based
diffusion model): the network denoises one 3D patch of the **residual** between the high-resolution
CT and the upsampled low-resolution CT (SR3-style conditioning by concatenation, Saharia et al. 2022;
residual targets as in Whang et al. 2022, "Deblurring via stochastic refinement"), conditioned on

- the upsampled low-resolution patch (1 channel, the diffusion's data units [-1, 1]), and
- the patch's position in the volume: three coordinate channels in [-0.5, 0.5] along the volume's axes,
  the convention of MONAI's ``AddCoordinateChannels`` (training crops them from that transform's
  output; inference cuts them from :func:`orthogen.diffusion.patch_super_resolution.volume_coordinates`).

``forward(x, timesteps, condition)``: ``x`` (B, 1, p, p, p) the noisy residual patch, ``timesteps`` (B,)
MONAI's convention (0 clean ... 1000 noise), ``condition`` (B, 4, p, p, p) = upsampled patch +
coordinates; returns (B, 1, p, p, p), the prediction (velocity or noise: the diffusion decides). The
UNet is fully convolutional without attention, so it runs on any patch edge divisible by
2^(levels - 1): trained on small patches, it infers on larger ones.

Presets (:data:`PATCH_SUPER_RESOLUTION_PRESETS`):

- ``"phantom_cpu"``: channels (8, 16, 32, 32), one residual block per level, no attention in the levels:
  724,857 parameters (the shipped model: 32^3 training patches, x4 from 32^3 to 128^3 phantom CTs). About
  0.9 s per 64^3 window forward on this project's 2-core CPU.
- ``"paper"``: channels (64, 128, 256, 256), two residual blocks per level, no attention in the levels:
  67,271,809 parameters. The seed's network is not described beyond "patch-based diffusion"; this size is ours.

MONAI's middle block always holds one self-attention layer, at the patch edge / 8 (4 levels): 4,096
tokens for a 128^3 window. Four levels rather than three keep that attention small (16^3 = 4,096 tokens
instead of 32^3 = 32,768, whose attention matrix alone would be 4 GB per head).
"""
from __future__ import annotations

import torch
from monai.networks.nets import DiffusionModelUNet
from torch import nn

from orthogen.errors import InputError

#: Condition channels: the upsampled low-resolution patch and three coordinate channels.
CONDITION_CHANNELS = 4

PATCH_SUPER_RESOLUTION_PRESETS: dict[str, dict] = {
    "phantom_cpu": dict(channels=(8, 16, 32, 32), attention_levels=(False, False, False, False), num_res_blocks=1,
                        norm_num_groups=8),
    "paper": dict(channels=(64, 128, 256, 256), attention_levels=(False, False, False, False), num_res_blocks=2,
                  norm_num_groups=32),
}
"""Named channel plans of :class:`PatchSuperResolutionUNet` (see the module docstring)."""


class PatchSuperResolutionUNet(nn.Module):
    """Noisy residual patch + condition channels -> prediction, one MONAI ``DiffusionModelUNet`` (3D)."""

    def __init__(self, channels=(8, 16, 32, 32), attention_levels=(False, False, False, False), num_res_blocks: int = 1,
                 norm_num_groups: int = 8):
        super().__init__()
        self.unet = DiffusionModelUNet(spatial_dims=3, in_channels=1 + CONDITION_CHANNELS, out_channels=1,
                                       channels=tuple(channels), attention_levels=tuple(attention_levels),
                                       num_res_blocks=num_res_blocks, norm_num_groups=norm_num_groups)
        self.patch_multiple = 2 ** (len(channels) - 1)

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[1] != 1:
            raise InputError(f"expected a noisy patch (B, 1, p, p, p), got {tuple(x.shape)}", "x")
        if condition.shape != (x.shape[0], CONDITION_CHANNELS, *x.shape[2:]):
            raise InputError(f"expected the condition ({x.shape[0]}, {CONDITION_CHANNELS}, "
                             f"{', '.join(map(str, x.shape[2:]))}), got {tuple(condition.shape)}", "condition")
        if any(size % self.patch_multiple for size in x.shape[2:]):
            raise InputError(f"expected patch edges divisible by {self.patch_multiple}, got {tuple(x.shape[2:])}",
                             "patch_size")
        return self.unet(torch.cat([x, condition], dim=1), timesteps)


def patch_super_resolution_network(preset: str = "phantom_cpu") -> PatchSuperResolutionUNet:
    """The network of a named preset (:data:`PATCH_SUPER_RESOLUTION_PRESETS`); an unknown name raises InputError."""
    if preset not in PATCH_SUPER_RESOLUTION_PRESETS:
        raise InputError(f"expected one of {sorted(PATCH_SUPER_RESOLUTION_PRESETS)}, got {preset!r}", "sr_preset")
    return PatchSuperResolutionUNet(**PATCH_SUPER_RESOLUTION_PRESETS[preset])
