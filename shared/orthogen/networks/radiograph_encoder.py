"""A ConvNeXt-style encoder that turns the AP and lateral radiographs into cross-attention tokens.

This is the radiograph encoder of the knee CT-from-bi-planar-radiographs diffusion model (after
Khosravi et al., "Generating Knee CT Scans from Bi-Planar Radiographs Using a Modular Diffusion
Model"): a ConvNeXt CNN encodes the two views; its last feature maps, flattened, are the token
sequence the nested 3D denoiser (:mod:`orthogen.networks.nested_unet3d`) cross-attends to.

**Built from MONAI's MedNeXt blocks** (``monai.networks.blocks.MedNeXtBlock`` / ``MedNeXtDownBlock``,
MONAI 1.6.1). MedNeXt (Roy et al., MICCAI 2023) is ConvNeXt for medical images: its block is
ConvNeXt's (depthwise k x k convolution -> normalisation -> 1x1 expansion x4 -> GELU -> 1x1
compression, residual), available for 2D, and its down block is the same block with a stride-2
depthwise convolution and a strided 1x1 residual. It ships with MONAI, so no dependency is added:
timm (ConvNeXt) imports torchvision, which must never be imported here, and transformers' ConvNext
is not installed (docs/STACK.md). The encoder itself (stem, stages, token head, view and position
embeddings) is assembled here.

Structure (ConvNeXt's macro design, Liu et al. 2022):

1. each view (B, 1, H, W) in [0, 1] is mapped to [-1, 1]; the two views share the CNN weights
   (stacked on the batch axis), so the view is told apart by a learned view embedding (below);
2. a patchify stem: ``Conv2d(1, channels[0], kernel=stem_stride, stride=stem_stride)`` and a
   channel-wise GroupNorm;
3. ``len(channels)`` stages of ``depths[i]`` MedNeXt blocks (kernel ``kernel_size``, expansion
   ``expansion_ratio``, GroupNorm with one group per channel, MedNeXt's default), a MedNeXt down
   block (x1/2, with residual) between stages;
4. a token head: GroupNorm(1 group) + 1x1 convolution to ``token_dim``; the (h, w) feature map of
   each view is flattened row-major into h*w tokens;
5. tokens get a learned view embedding (one ``token_dim`` vector per view, AP first) and a fixed 2D
   sinusoidal position embedding (half the channels encode the row, half the column, as in MAE's
   2D sin-cos embedding; computed for any h, w), then a LayerNorm.

Output: (B, V * h * w, token_dim), V = 2 views, h = H / (stem_stride * 2**(len(channels) - 1)),
AP tokens first. E.g. the "phantom_cpu" preset on 128 x 128 views: h = w = 8, 128 tokens of 64.

Presets (:data:`RADIOGRAPH_ENCODER_PRESETS`, trainable parameters, counted by the tests):
``"phantom_cpu"`` 111,456 (channels 16-32-64, depths 1-1-2, token 64; ~10 ms for two 128^2 views
on one CPU thread); ``"paper"`` 29,405,056 (ConvNeXt-T's plan: channels 96-192-384-768, depths
3-3-9-3, token 512; ConvNeXt-T itself has 28 M).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from monai.networks.blocks import MedNeXtBlock, MedNeXtDownBlock
from torch import nn

from orthogen.errors import InputError

RADIOGRAPH_ENCODER_PRESETS: dict[str, dict] = {
    "phantom_cpu": dict(channels=(16, 32, 64), depths=(1, 1, 2), token_dim=64, stem_stride=4, kernel_size=7,
                        expansion_ratio=4),
    "paper": dict(channels=(96, 192, 384, 768), depths=(3, 3, 9, 3), token_dim=512, stem_stride=4, kernel_size=7,
                  expansion_ratio=4),
}
"""The radiograph encoder's hyperparameters by name. ``token_dim`` must equal the denoiser preset's
``cross_attention_dim`` of the same name (:data:`orthogen.networks.NESTED_UNET3D_PRESETS`)."""


def sincos_position_embedding_2d(height: int, width: int, dim: int, device=None, dtype=None) -> torch.Tensor:
    """Fixed 2D sine-cosine position embedding, (height * width, dim), row-major.

    The first ``dim / 2`` channels encode the row index, the rest the column index, each as
    ``[sin(p * w_k), cos(p * w_k)]`` with ``w_k = 10000 ** (-k / (dim / 4))`` (Vaswani et al. 2017;
    the 2D split as in MAE, He et al. 2022). ``dim`` must be divisible by 4.
    """
    if dim % 4:
        raise InputError(f"expected a multiple of 4, got {dim}", "token_dim")
    quarter = dim // 4
    omega = torch.exp(-math.log(10000.0) * torch.arange(quarter, device=device, dtype=torch.float32) / quarter)
    rows = torch.arange(height, device=device, dtype=torch.float32)[:, None] * omega  # (h, dim/4)
    cols = torch.arange(width, device=device, dtype=torch.float32)[:, None] * omega  # (w, dim/4)
    row_emb = torch.cat([rows.sin(), rows.cos()], dim=1)[:, None, :].expand(height, width, 2 * quarter)
    col_emb = torch.cat([cols.sin(), cols.cos()], dim=1)[None, :, :].expand(height, width, 2 * quarter)
    return torch.cat([row_emb, col_emb], dim=2).reshape(height * width, dim).to(dtype or torch.float32)


class RadiographEncoder(nn.Module):
    """ConvNeXt-style (MedNeXt blocks) encoder: bi-planar radiographs -> token sequence.

    Args:
        channels: widths of the stages (each stage after the first halves the resolution).
        depths: MedNeXt blocks per stage (same length as ``channels``).
        token_dim: width of the output tokens (= the denoiser's ``cross_attention_dim``).
        stem_stride: patch size of the patchify stem (ConvNeXt: 4).
        kernel_size: depthwise kernel of the MedNeXt blocks (ConvNeXt: 7).
        expansion_ratio: MLP expansion of the blocks (ConvNeXt: 4).
        num_views: number of radiographs (2: AP then lateral).

    ``forward(views)`` with views (B, V, H, W) in [0, 1], or ``forward(ap, lateral)`` with two
    (B, 1, H, W) or (B, H, W) tensors in [0, 1]; returns tokens (B, V * h * w, token_dim).
    H and W must be multiples of ``stem_stride * 2 ** (len(channels) - 1)``.
    """

    def __init__(
        self,
        channels: Sequence[int] = (16, 32, 64),
        depths: Sequence[int] = (1, 1, 2),
        token_dim: int = 64,
        stem_stride: int = 4,
        kernel_size: int = 7,
        expansion_ratio: int = 4,
        num_views: int = 2,
    ):
        super().__init__()
        channels, depths = tuple(int(c) for c in channels), tuple(int(d) for d in depths)
        if not channels or len(channels) != len(depths):
            raise InputError(f"expected one depth per stage ({len(channels)} stages), got {len(depths)} depths",
                             "depths")
        if token_dim % 4:
            raise InputError(f"expected a multiple of 4, got {token_dim}", "token_dim")
        self.channels, self.depths, self.token_dim = channels, depths, int(token_dim)
        self.stem_stride, self.num_views = int(stem_stride), int(num_views)
        self.stem = nn.Sequential(
            nn.Conv2d(1, channels[0], kernel_size=stem_stride, stride=stem_stride),
            nn.GroupNorm(channels[0], channels[0]),
        )
        stages = []
        for i, (width, depth) in enumerate(zip(channels, depths)):
            blocks: list[nn.Module] = []
            if i > 0:
                blocks.append(MedNeXtDownBlock(channels[i - 1], width, expansion_ratio=expansion_ratio,
                                               kernel_size=kernel_size, use_residual_connection=True, dim="2d"))
            blocks += [MedNeXtBlock(width, width, expansion_ratio=expansion_ratio, kernel_size=kernel_size, dim="2d")
                       for _ in range(depth)]
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.head = nn.Sequential(nn.GroupNorm(1, channels[-1]), nn.Conv2d(channels[-1], token_dim, kernel_size=1))
        self.view_embedding = nn.Parameter(0.02 * torch.randn(num_views, token_dim))
        self.norm = nn.LayerNorm(token_dim)

    @property
    def downsampling(self) -> int:
        """Radiograph pixels per token along each axis."""
        return self.stem_stride * 2 ** (len(self.channels) - 1)

    def num_tokens(self, height: int, width: int) -> int:
        """Tokens produced for views of height x width pixels."""
        return self.num_views * (height // self.downsampling) * (width // self.downsampling)

    def _views(self, views: torch.Tensor, lateral: torch.Tensor | None) -> torch.Tensor:
        if lateral is not None:
            if self.num_views != 2:
                raise InputError(f"expected one (B, V, H, W) tensor for {self.num_views} views, got ap and lateral",
                                 "views")
            parts = []
            for name, view in (("ap", views), ("lateral", lateral)):
                if not isinstance(view, torch.Tensor) or view.ndim not in (3, 4) or (view.ndim == 4
                                                                                      and view.shape[1] != 1):
                    got = tuple(view.shape) if isinstance(view, torch.Tensor) else type(view).__name__
                    raise InputError(f"expected a (B, 1, H, W) or (B, H, W) radiograph, got {got}", name)
                parts.append(view if view.ndim == 3 else view[:, 0])
            if parts[0].shape != parts[1].shape:
                raise InputError(f"expected the AP shape {tuple(parts[0].shape)}, got {tuple(parts[1].shape)}",
                                 "lateral")
            views = torch.stack(parts, dim=1)
        if not isinstance(views, torch.Tensor) or views.ndim != 4 or views.shape[1] != self.num_views:
            got = tuple(views.shape) if isinstance(views, torch.Tensor) else type(views).__name__
            raise InputError(f"expected (B, {self.num_views}, H, W) radiographs, got {got}", "views")
        step = self.downsampling
        if views.shape[-1] % step or views.shape[-2] % step or views.shape[-1] < step or views.shape[-2] < step:
            raise InputError(f"expected height and width multiples of {step}, got {tuple(views.shape[-2:])}",
                             "views")
        if views.device.type != "meta" and views.numel():
            low, high = float(views.min()), float(views.max())
            if not (math.isfinite(low) and math.isfinite(high)) or low < -1e-3 or high > 1 + 1e-3:
                raise InputError(f"expected values in [0, 1], got [{low:.4g}, {high:.4g}]", "views")
        return views

    def forward(self, views: torch.Tensor, lateral: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens (B, V * h * w, token_dim) of the views (B, V, H, W) in [0, 1] (or of ``ap``, ``lateral``)."""
        views = self._views(views, lateral)
        batch, num_views, height, width = views.shape
        x = views.reshape(batch * num_views, 1, height, width) * 2.0 - 1.0
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        x = self.head(x)  # (B * V, token_dim, h, w)
        h, w = x.shape[-2:]
        tokens = x.flatten(2).transpose(1, 2).reshape(batch, num_views, h * w, self.token_dim)
        position = sincos_position_embedding_2d(h, w, self.token_dim, device=x.device, dtype=x.dtype)
        tokens = tokens + self.view_embedding[None, :, None, :] + position[None, None]
        return self.norm(tokens.reshape(batch, num_views * h * w, self.token_dim))


def radiograph_encoder(preset: str = "phantom_cpu", **overrides) -> RadiographEncoder:
    """The radiograph encoder of a named preset (:data:`RADIOGRAPH_ENCODER_PRESETS`), keys overridable."""
    if preset not in RADIOGRAPH_ENCODER_PRESETS:
        raise InputError(f"expected one of {sorted(RADIOGRAPH_ENCODER_PRESETS)}, got {preset!r}", "preset")
    unknown = sorted(set(overrides) - set(RADIOGRAPH_ENCODER_PRESETS[preset]) - {"num_views"})
    if unknown:
        raise InputError(f"expected keys of the {preset!r} preset, got {unknown}", "overrides")
    return RadiographEncoder(**{**RADIOGRAPH_ENCODER_PRESETS[preset], **overrides})
