"""The nested (Matryoshka) 3D denoiser: one network for 32^3, 64^3 and 128^3 CT volumes.

This is the denoiser of the knee CT-from-bi-planar-radiographs diffusion model (after Khosravi et
al., "Generating Knee CT Scans from Bi-Planar Radiographs Using a Modular Diffusion Model"), which
follows Matryoshka Diffusion Models (Gu et al., ICLR 2024; apple/ml-mdm ``ml_mdm/models/nested_unet.py``,
``NestedUNet``): the network for the low resolution is nested inside the levels for the higher
resolutions, every resolution is denoised jointly by one forward pass, and each has its own output.

**The inner core is MONAI's ``DiffusionModelUNet``** (3D, ``with_conditioning=True``,
``cross_attention_dim``), subclassed as :class:`ConditionedDiffusionUNet`. Its layers and parameter
names are MONAI's, so the core alone is a ``DiffusionModelUNet`` (its ``forward`` has MONAI's
signature plus ``extra_embedding``). MONAI's ``forward`` is one block with no hooks, so the subclass
re-states it in two halves that the nesting needs (the sequence of layers is MONAI's own):

- :meth:`ConditionedDiffusionUNet.embedding`: MONAI's sinusoidal timestep embedding and MLP (and
  class embedding if configured) **plus an extra continuous embedding** added to it. MONAI has only
  ``num_class_embeds`` (an ``nn.Embedding`` of integer labels) for conditioning the time embedding;
  the cleanest way to add a continuous quantity is to add a vector of the time embedding's width to
  ``emb`` before the blocks read it, which is exactly where MONAI adds its class embedding. Adding it
  in the subclass keeps MONAI's parameters untouched (a MONAI state dict loads unchanged).
- :meth:`ConditionedDiffusionUNet.forward_with_embedding`: MONAI's ``conv_in`` -> down blocks -> middle
  block -> up blocks -> ``out``, with two additions from ml-mdm's nested UNet: features from an outer
  level are added after ``conv_in`` (``input_features``, ml-mdm's ``x = x + x_feat``), and the features
  before the output head are returned as well (ml-mdm returns them to the outer level).

**Spacing conditioning.** Pixel spacing (mm) of the radiographs and slice thickness (mm) of the CT
are each embedded by :class:`SpacingEmbedding` (sinusoidal features of log(value / 1 mm) at
``num_frequencies`` log-spaced frequencies, then a two-layer MLP) and the sum is the extra
embedding above, added to the time embedding that every residual block of every level receives.
The last MLP layer starts at zero, so the conditioning starts as a no-op.

**Outer levels** (:class:`OuterLevel`, one per doubling: 64^3 around the 32^3 core, 128^3 around
the 64^3 level), as ml-mdm's ``NestedUNet`` but with one resolution step per level:
``conv_in(x_r)`` (+ the next outer level's features) -> ``num_res_blocks`` MONAI residual blocks ->
``in_adapter`` (a stride-2 3x3x3 convolution to the inner level's ``conv_in`` width, **zero
initialised**) added to the inner level's ``conv_in(x_{r/2})`` -> the inner level runs -> its
pre-head features are upsampled x2 (nearest) and projected by ``out_adapter`` (zero initialised) ->
added to the outer features -> ``num_res_blocks + 1`` MONAI residual blocks with skip connections
(MONAI ``UpBlock``) -> its own output head (GroupNorm, SiLU, zero-initialised convolution, as MONAI's
``out``). The outer levels have no attention (ml-mdm's outer levels neither): the radiograph tokens
are cross-attended at the core's low-resolution levels only (``attention_levels``; with
``with_conditioning`` MONAI's attention blocks are self- + cross-attention transformer blocks).
All levels share the core's time (+ spacing) embedding.

**Progressive training** 32 -> 64 -> 128: a network built for ``resolutions=(32, 64)`` holds the
same ``core.*`` and ``spacing_embedding.*`` parameters as a ``(32,)`` network plus ``outer_levels.0.*``;
:meth:`NestedUNet3D.load_inner_stage` loads the previous stage's state dict (refusing anything but
missing new outer-level keys). Because ``in_adapter`` starts at zero, the freshly built outer level
does not change the inner levels' outputs: the 32^3 output of the (32, 64) network equals the
32-stage network's output (tested), and the 64^3 head starts at zero.

Inputs and outputs (:meth:`NestedUNet3D.forward`), lowest resolution first:
``x``: a sequence of noisy volumes (B, C, r, r, r), r = ``resolutions[i]``, in the diffusion's data
units (the CT's HU mapped to about [-1, 1] by the data pipeline); a prefix of the built resolutions
may be given (only those levels run). ``timesteps`` (B,): MONAI's timestep convention (0 = clean,
about 1000 = noise; floats allowed). ``context`` (B, T, cross_attention_dim): radiograph tokens
(:class:`orthogen.networks.RadiographEncoder`). ``pixel_spacing``, ``slice_thickness`` (B,) in mm,
> 0. Returns a list of (B, out_channels, r, r, r) predictions (noise or velocity: the diffusion
decides), one per given resolution.

**Presets** (:data:`NESTED_UNET3D_PRESETS`; trainable parameters at ``in_channels=out_channels=1``,
counted by ``scripts/bench_nested_denoiser.py``):

- ``"phantom_cpu"``: core channels (32, 64, 64) at 32/16/8, one residual block per level,
  cross-attention (with self-attention, MONAI's transformer block) at 8^3 and in MONAI's middle block,
  token width 64; outer widths 16 (64^3) and 16 (128^3), one residual block each: 3,239,777
  parameters at (32,), 3,331,282 at (32, 64), 3,408,947 at (32, 64, 128). On this project's 2-core
  CPU with one torch thread (other jobs running, load ~3), batch 1, 128 tokens: forward 0.48 s at
  32^3 and 1.22 s at (32, 64); forward + backward 1.48 s and 3.41 s (two threads were slower under
  that load). ``scripts/bench_nested_denoiser.py`` measures it.
- ``"paper"``: core channels (128, 256, 512, 512) at 32/16/8/4, two residual blocks per level,
  cross-attention at 16, 8 and 4 (two transformer layers each), token width 512; outer widths 128
  (64^3) and 64 (128^3), two residual blocks each: 404,667,649 parameters at (32,), 411,742,338 at
  (32, 64), 413,817,475 at (32, 64, 128), approximating the seed's ~400 M (its exact channel plan
  could not be checked here). Built on the meta device in the tests.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution
from monai.networks.nets.diffusion_model_unet import (
    DiffusionModelUNet,
    DownBlock,
    UpBlock,
    get_timestep_embedding,
    zero_module,
)
from torch import nn

from orthogen.errors import InputError

NESTED_UNET3D_PRESETS: dict[str, dict] = {
    "phantom_cpu": dict(
        channels=(32, 64, 64), attention_levels=(False, False, True), num_res_blocks=1, num_head_channels=32,
        norm_num_groups=16, transformer_num_layers=1, cross_attention_dim=64, outer_channels=(16, 16),
        outer_num_res_blocks=1, num_frequencies=8,
    ),
    "paper": dict(
        channels=(128, 256, 512, 512), attention_levels=(False, True, True, True), num_res_blocks=2,
        num_head_channels=64, norm_num_groups=32, transformer_num_layers=2, cross_attention_dim=512,
        outer_channels=(128, 64), outer_num_res_blocks=2, num_frequencies=16,
    ),
}
"""The nested denoiser's hyperparameters by name, the one place they are written. ``channels``,
``attention_levels``, ``num_res_blocks``, ``num_head_channels``, ``norm_num_groups``,
``transformer_num_layers``, ``cross_attention_dim`` are MONAI ``DiffusionModelUNet`` arguments of the
32^3 core; ``outer_channels[i]`` is the width of the outer level at ``base * 2 ** (i + 1)``;
``num_frequencies`` is the spacing embedding's. ``cross_attention_dim`` equals the same-named
radiograph encoder preset's ``token_dim``."""

BASE_RESOLUTION = 32
"""The core's resolution in the presets (the seed's first stage); other bases work if divisible."""


def _shape(value) -> str:
    return str(tuple(value.shape)) if isinstance(value, torch.Tensor) else type(value).__name__


class SpacingEmbedding(nn.Module):
    """Embeds positive physical sizes in mm (pixel spacing, slice thickness) into the time embedding's width.

    Each quantity v (B,) in mm becomes ``[sin(f_k log v), cos(f_k log v)]`` for ``num_frequencies``
    frequencies f_k log-spaced in [1, 100] (log v: multiplicative changes of spacing matter equally at
    0.2 mm and at 2 mm); the features of all quantities are concatenated and passed through
    Linear -> SiLU -> Linear (last layer zero-initialised). Output (B, embed_dim).
    """

    def __init__(self, embed_dim: int, num_quantities: int = 2, num_frequencies: int = 8):
        super().__init__()
        self.num_quantities, self.num_frequencies = int(num_quantities), int(num_frequencies)
        self.register_buffer("frequencies", torch.logspace(0.0, 2.0, self.num_frequencies), persistent=False)
        features = 2 * self.num_frequencies * self.num_quantities
        self.mlp = nn.Sequential(nn.Linear(features, embed_dim), nn.SiLU(),
                                 zero_module(nn.Linear(embed_dim, embed_dim)))

    def forward(self, *values_mm: torch.Tensor) -> torch.Tensor:
        """Embedding (B, embed_dim) of ``num_quantities`` tensors (B,) in mm (> 0)."""
        if len(values_mm) != self.num_quantities:
            raise InputError(f"expected {self.num_quantities} quantities, got {len(values_mm)}", "values_mm")
        angles = [torch.log(v.float())[:, None] * self.frequencies for v in values_mm]
        features = torch.cat([torch.cat([a.sin(), a.cos()], dim=1) for a in angles], dim=1)
        return self.mlp(features.to(self.mlp[0].weight.dtype))


class ConditionedDiffusionUNet(DiffusionModelUNet):
    """MONAI's ``DiffusionModelUNet`` with an extra continuous embedding, nesting inputs and feature outputs.

    Same constructor and parameters as ``DiffusionModelUNet``. ``forward(x, timesteps, context,
    class_labels, ..., extra_embedding=None)`` is MONAI's forward with ``extra_embedding`` (B,
    4 * channels[0]) added to the time embedding. :meth:`embedding` and :meth:`forward_with_embedding`
    are its two halves (see the module docstring).
    """

    @property
    def embedding_dim(self) -> int:
        """Width of the time embedding (MONAI: 4 * channels[0])."""
        return self.block_out_channels[0] * 4

    def embedding(self, timesteps: torch.Tensor, dtype: torch.dtype, class_labels: torch.Tensor | None = None,
                  extra_embedding: torch.Tensor | None = None) -> torch.Tensor:
        """MONAI's time (+ class) embedding plus ``extra_embedding``: (B, embedding_dim)."""
        emb = self.time_embed(get_timestep_embedding(timesteps, self.block_out_channels[0]).to(dtype=dtype))
        if self.num_class_embeds is not None:
            if class_labels is None:
                raise InputError("expected class labels (the network has num_class_embeds), got None", "class_labels")
            emb = emb + self.class_embedding(class_labels).to(dtype=dtype)
        if extra_embedding is not None:
            emb = emb + extra_embedding.to(dtype=dtype)
        return emb

    def forward_with_embedding(
        self,
        x: torch.Tensor,
        emb: torch.Tensor,
        context: torch.Tensor | None = None,
        input_features: torch.Tensor | None = None,
        down_block_additional_residuals: Sequence[torch.Tensor] | None = None,
        mid_block_additional_residual: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """MONAI's UNet body from a ready embedding; returns (output, features before the output head).

        ``input_features`` (B, channels[0], *spatial) are added after ``conv_in``; the returned
        features are (B, channels[0], *spatial).
        """
        h = self.conv_in(x)
        if input_features is not None:
            h = h + input_features
        if context is not None and self.with_conditioning is False:
            raise InputError("expected no context (the network has with_conditioning=False), got one", "context")
        skips: list[torch.Tensor] = [h]
        for block in self.down_blocks:
            h, res_samples = block(hidden_states=h, temb=emb, context=context)
            skips.extend(res_samples)
        if down_block_additional_residuals is not None:
            skips = [s + r for s, r in zip(skips, down_block_additional_residuals)]
        h = self.middle_block(hidden_states=h, temb=emb, context=context)
        if mid_block_additional_residual is not None:
            h = h + mid_block_additional_residual
        for block in self.up_blocks:
            count = len(block.resnets)
            res_samples, skips = skips[-count:], skips[:-count]
            h = block(hidden_states=h, res_hidden_states_list=res_samples, temb=emb, context=context)
        return self.out(h), h

    def forward(  # type: ignore[override]
        self,
        x: torch.Tensor,
        timesteps: torch.Tensor,
        context: torch.Tensor | None = None,
        class_labels: torch.Tensor | None = None,
        down_block_additional_residuals: tuple[torch.Tensor] | None = None,
        mid_block_additional_residual: torch.Tensor | None = None,
        extra_embedding: torch.Tensor | None = None,
    ) -> torch.Tensor:
        emb = self.embedding(timesteps, x.dtype, class_labels, extra_embedding)
        return self.forward_with_embedding(x, emb, context, None, down_block_additional_residuals,
                                           mid_block_additional_residual)[0]


class OuterLevel(nn.Module):
    """One outer resolution around an inner level (twice the inner resolution); see the module docstring.

    Args:
        in_channels, out_channels: volume channels in and prediction channels out.
        channels: this level's feature width.
        inner_channels: the inner level's ``conv_in`` / feature width.
        embedding_dim: the shared time embedding's width.
        num_res_blocks: residual blocks before the inner level (after it: one more, as MONAI's UNet).
        norm_num_groups: GroupNorm groups (must divide ``channels``).
    """

    def __init__(self, in_channels: int, out_channels: int, channels: int, inner_channels: int, embedding_dim: int,
                 num_res_blocks: int = 1, norm_num_groups: int = 8):
        super().__init__()
        if channels % norm_num_groups:
            raise InputError(f"expected widths divisible by norm_num_groups={norm_num_groups}, got {channels}",
                             "outer_channels")
        conv = dict(spatial_dims=3, conv_only=True)
        self.conv_in = Convolution(in_channels=in_channels, out_channels=channels, kernel_size=3, padding=1, **conv)
        self.down = DownBlock(3, channels, channels, embedding_dim, num_res_blocks=num_res_blocks,
                              norm_num_groups=norm_num_groups, add_downsample=False)
        self.in_adapter = zero_module(Convolution(in_channels=channels, out_channels=inner_channels, kernel_size=3,
                                                  strides=2, padding=1, **conv))
        self.out_adapter = zero_module(Convolution(in_channels=inner_channels, out_channels=channels, kernel_size=3,
                                                   padding=1, **conv))
        self.up = UpBlock(3, channels, channels, channels, embedding_dim, num_res_blocks=num_res_blocks + 1,
                          norm_num_groups=norm_num_groups, add_upsample=False)
        self.out = nn.Sequential(
            nn.GroupNorm(norm_num_groups, channels, eps=1e-6), nn.SiLU(),
            zero_module(Convolution(in_channels=channels, out_channels=out_channels, kernel_size=3, padding=1, **conv)),
        )

    def encode(self, x: torch.Tensor, emb: torch.Tensor, input_features: torch.Tensor | None):
        """(features at this resolution, skip features, features for the inner level at half the resolution)."""
        h = self.conv_in(x)
        if input_features is not None:
            h = h + input_features
        skips = [h]
        h, res_samples = self.down(hidden_states=h, temb=emb)
        skips.extend(res_samples)
        return h, skips, self.in_adapter(h)

    def decode(self, h: torch.Tensor, skips: list[torch.Tensor], inner_features: torch.Tensor, emb: torch.Tensor):
        """(output, features before the output head) from the inner level's features."""
        h = h + self.out_adapter(F.interpolate(inner_features, scale_factor=2.0, mode="nearest"))
        h = self.up(hidden_states=h, res_hidden_states_list=skips, temb=emb)
        return self.out(h), h


class NestedUNet3D(nn.Module):
    """Nested 3D denoiser: MONAI ``DiffusionModelUNet`` core at the base resolution + outer levels.

    Args:
        resolutions: the cube sizes, lowest first, each twice the previous (e.g. (32,), (32, 64),
            (32, 64, 128)); the number of outer levels is ``len(resolutions) - 1``.
        in_channels, out_channels: volume channels (1: the CT) and prediction channels.
        channels, attention_levels, num_res_blocks, num_head_channels, norm_num_groups,
            transformer_num_layers, cross_attention_dim: the core's MONAI ``DiffusionModelUNet`` arguments
            (``with_conditioning=True``).
        outer_channels: widths of the outer levels (at least ``len(resolutions) - 1`` entries).
        outer_num_res_blocks: residual blocks per outer level (before the inner level).
        num_frequencies: frequencies of the spacing embedding.

    See the module docstring for ``forward``'s inputs and outputs.
    """

    def __init__(
        self,
        resolutions: Sequence[int] = (BASE_RESOLUTION,),
        in_channels: int = 1,
        out_channels: int = 1,
        channels: Sequence[int] = (32, 64, 64),
        attention_levels: Sequence[bool] = (False, False, True),
        num_res_blocks: int | Sequence[int] = 1,
        num_head_channels: int | Sequence[int] = 32,
        norm_num_groups: int = 16,
        transformer_num_layers: int = 1,
        cross_attention_dim: int = 64,
        outer_channels: Sequence[int] = (16, 16),
        outer_num_res_blocks: int = 1,
        num_frequencies: int = 8,
    ):
        super().__init__()
        self.resolutions = check_resolutions(resolutions, len(channels), len(outer_channels))
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.cross_attention_dim = int(cross_attention_dim)
        self.core = ConditionedDiffusionUNet(
            spatial_dims=3, in_channels=in_channels, out_channels=out_channels, num_res_blocks=num_res_blocks,
            channels=tuple(channels), attention_levels=tuple(attention_levels), norm_num_groups=norm_num_groups,
            num_head_channels=num_head_channels, with_conditioning=True, transformer_num_layers=transformer_num_layers,
            cross_attention_dim=cross_attention_dim,
        )
        dim = self.core.embedding_dim
        self.spacing_embedding = SpacingEmbedding(dim, num_quantities=2, num_frequencies=num_frequencies)
        widths = [channels[0], *outer_channels[: len(self.resolutions) - 1]]
        self.outer_levels = nn.ModuleList(
            OuterLevel(in_channels, out_channels, widths[i + 1], widths[i], dim, outer_num_res_blocks,
                       math.gcd(norm_num_groups, widths[i + 1]))
            for i in range(len(self.resolutions) - 1)
        )

    def _check(self, x, timesteps, context, pixel_spacing, slice_thickness):
        if isinstance(x, torch.Tensor) or not isinstance(x, Sequence) or not 1 <= len(x) <= len(self.resolutions):
            raise InputError(f"expected a list of 1 to {len(self.resolutions)} volumes at {self.resolutions}, "
                             f"got {_shape(x) if isinstance(x, torch.Tensor) else type(x).__name__}", "x")
        batch = x[0].shape[0] if isinstance(x[0], torch.Tensor) and x[0].ndim == 5 else None
        for i, volume in enumerate(x):
            r = self.resolutions[i]
            if not isinstance(volume, torch.Tensor) or volume.ndim != 5 or tuple(volume.shape[1:]) != (
                    self.in_channels, r, r, r) or volume.shape[0] != batch:
                raise InputError(f"expected ({batch or 'B'}, {self.in_channels}, {r}, {r}, {r}), got {_shape(volume)}",
                                 f"x[{i}]")
        if not isinstance(timesteps, torch.Tensor) or timesteps.shape != (batch,):
            raise InputError(f"expected ({batch},), got {_shape(timesteps)}", "timesteps")
        if not isinstance(context, torch.Tensor) or context.ndim != 3 or context.shape[0] != batch or (
                context.shape[2] != self.cross_attention_dim):
            raise InputError(f"expected ({batch}, T, {self.cross_attention_dim}) radiograph tokens, "
                             f"got {_shape(context)}", "context")
        values = []
        for name, value in (("pixel_spacing", pixel_spacing), ("slice_thickness", slice_thickness)):
            value = torch.as_tensor(value, dtype=torch.float32, device=x[0].device)
            if value.ndim == 0:
                value = value.expand(batch)
            if value.shape != (batch,):
                raise InputError(f"expected a number or ({batch},) in mm, got {_shape(value)}", name)
            if value.device.type != "meta" and not bool(torch.all(torch.isfinite(value) & (value > 0))):
                raise InputError(f"expected positive finite mm, got {value.tolist()}", name)
            values.append(value)
        return values

    def forward(
        self,
        x: Sequence[torch.Tensor],
        timesteps: torch.Tensor,
        context: torch.Tensor,
        pixel_spacing: torch.Tensor | float,
        slice_thickness: torch.Tensor | float,
    ) -> list[torch.Tensor]:
        """Predictions (B, out_channels, r, r, r) for each given noisy volume, lowest resolution first."""
        pixel_spacing, slice_thickness = self._check(x, timesteps, context, pixel_spacing, slice_thickness)
        extra = self.spacing_embedding(pixel_spacing, slice_thickness)
        emb = self.core.embedding(timesteps, x[0].dtype, extra_embedding=extra)
        return self._run(len(x) - 1, x, emb, context, None)[0]

    def _run(self, level: int, x, emb, context, input_features):
        if level == 0:
            out, features = self.core.forward_with_embedding(x[0], emb, context, input_features)
            return [out], features
        outer = self.outer_levels[level - 1]
        h, skips, inner_input = outer.encode(x[level], emb, input_features)
        outs, inner_features = self._run(level - 1, x, emb, context, inner_input)
        out, features = outer.decode(h, skips, inner_features, emb)
        return [*outs, out], features

    def load_inner_stage(self, state_dict: Mapping[str, torch.Tensor]) -> list[str]:
        """Load the state dict of the previous progressive-training stage (fewer resolutions).

        Every key of ``state_dict`` must exist here with the same shape, and the keys it lacks must
        all belong to outer levels that the earlier stage did not have; otherwise an InputError
        names the first offending key. Returns the keys left at their initial values (the new
        outer levels, whose zero-initialised ``in_adapter`` leaves the inner outputs unchanged).
        """
        own = self.state_dict()
        for key, value in state_dict.items():
            if key not in own:
                raise InputError(f"expected keys of a network with at most resolutions {self.resolutions}, "
                                 f"got {key!r}", "state_dict")
            if tuple(own[key].shape) != tuple(value.shape):
                raise InputError(f"expected {key} of shape {tuple(own[key].shape)}, got {tuple(value.shape)}",
                                 "state_dict")
        levels = {int(k.split(".")[1]) for k in state_dict if k.startswith("outer_levels.")}
        stage_levels = max(levels) + 1 if levels else 0
        missing = [k for k in own if k not in state_dict]
        for key in missing:
            if not key.startswith("outer_levels.") or int(key.split(".")[1]) < stage_levels:
                raise InputError(f"expected every inner-stage weight, got none for {key!r}", "state_dict")
        self.load_state_dict(dict(state_dict), strict=False)
        return missing


def check_resolutions(resolutions: Sequence[int], core_levels: int, outer_levels: int) -> tuple[int, ...]:
    """The resolutions as a tuple, or an InputError: each twice the last, the base divisible by 2**(levels-1)."""
    try:
        resolutions = tuple(int(r) for r in resolutions)
    except (TypeError, ValueError):
        raise InputError(f"expected a sequence of cube sizes like (32, 64), got {resolutions!r}",
                         "resolutions") from None
    step = 2 ** (core_levels - 1)
    if not resolutions or resolutions[0] < step or resolutions[0] % step or any(
            b != 2 * a for a, b in zip(resolutions, resolutions[1:])):
        raise InputError(f"expected sizes doubling from a multiple of {step}, like (32, 64, 128), got {resolutions}",
                         "resolutions")
    if len(resolutions) - 1 > outer_levels:
        raise InputError(f"expected at most {outer_levels + 1} resolutions (outer_channels has {outer_levels}), "
                         f"got {resolutions}", "resolutions")
    return resolutions


def nested_denoiser(preset: str = "phantom_cpu", resolutions: Sequence[int] = (BASE_RESOLUTION,),
                    in_channels: int = 1, out_channels: int = 1, **overrides) -> NestedUNet3D:
    """The nested 3D denoiser of a named preset (:data:`NESTED_UNET3D_PRESETS`) for ``resolutions``.

    ``overrides`` replace preset keys (e.g. narrower ``channels`` for tests); an unknown preset or
    key raises InputError.
    """
    if preset not in NESTED_UNET3D_PRESETS:
        raise InputError(f"expected one of {sorted(NESTED_UNET3D_PRESETS)}, got {preset!r}", "preset")
    unknown = sorted(set(overrides) - set(NESTED_UNET3D_PRESETS[preset]))
    if unknown:
        raise InputError(f"expected keys of the {preset!r} preset, got {unknown}", "overrides")
    return NestedUNet3D(resolutions=resolutions, in_channels=in_channels, out_channels=out_channels,
                        **{**NESTED_UNET3D_PRESETS[preset], **overrides})
