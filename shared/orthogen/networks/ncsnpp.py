"""NCSN++: the noise-conditional score network of score-based generative modelling (Song et al., ICLR 2021).

This is the score model of segmentation-guided knee radiograph generation (Mei et al., 2024): with
``in_channels=1`` the unconditional score model that the paper's *conditional sampling* method (CSM)
guides at sampling time, with ``in_channels=2`` (noisy radiograph, then the segmentation condition)
the *conditional training* model (CTM). The output (``out_channels=1``) is the score of the radiograph
channel. The network knows nothing about its SDE or sampler (those live in ``orthogen.diffusion``): it
maps ``(x, sigma)`` to ``score`` and that is all.

Written after reading score_sde_pytorch's ``models/ncsnpp.py`` and ``layerspp.py`` (VE configs
``configs/ve/*_ncsnpp_continuous.py``): the structure, the block order, the attention placement, the
group counts and the embedding follow them.

**Built on diffusers' layers** (``diffusers==0.42.1``, pinned in pyproject.toml). diffusers has every
layer NCSN++ is made of, with NCSN++'s options: ``ResnetBlock2D`` is the BigGAN-style residual block
(``up``/``down`` resampling inside the block, 1x1 shortcut, ``output_scale_factor`` = the 1/sqrt(2) skip
rescale, dropout, the ``Dense(act(temb))`` bias, optional time embedding, and score_sde's FIR
``[1, 3, 3, 1]`` resampling via ``kernel="fir"``), ``Attention`` with ``rescale_output_factor`` is
score_sde's ``AttnBlockpp``, and ``GaussianFourierProjection(log=True)`` is score_sde's Fourier
embedding of log sigma. Why not the alternatives:

- diffusers' ``UNet2DModel`` itself: it cannot switch off the time embedding (the U-Net baseline needs
  that), it always divides by the time input in Fourier mode (so ``scale_by_sigma`` could not be a
  choice), it gives its down/up blocks no skip rescale and all widths one GroupNorm group count, it
  puts attention after every residual block of the decoder (NCSN++: one per decoder level), and its
  Skip blocks (NCSN++'s progressive input/output) hard-code 3 image channels. So the blocks are
  composed here instead.
- MONAI (``DiffusionModelUNet`` and its ``DiffusionUNetResnetBlock``): the residual block has no dropout,
  always needs a time embedding, keeps an identity shortcut when it resamples, has no FIR resampling and
  no skip rescale, and the network embeds integer DDPM timesteps sinusoidally; several layers would have
  to be rewritten.

No layer is hand-written here: the module only assembles diffusers' layers in NCSN++'s order.
Checked against score_sde's own ``NCSNpp`` (``progressive="none"``, ``progressive_input="none"``) by
``scripts/compare_ncsnpp_with_score_sde.py --reference <score_sde_pytorch checkout>`` (run by hand: the
CPU preset at 64x64 with 1 and 2 input channels, with FIR and attention at 16+8, and the paper preset at
256x256): with its weights copied in (layers paired in forward order, its ``NIN`` matrices transposed
into ``nn.Linear``), the scores agree to rounding, the largest difference over the largest score 5e-15
in float64 and 2e-6 in float32 (2026-12-07, score_sde_pytorch cb1f359). With one input channel the
parameter counts are equal; with two, score_sde's output convolution has a second output channel.

**Deviations from score_sde's NCSN++** (the bundle docs copy this list):

1. No progressive growing: neither the input pyramid (``progressive_input``: ``input_skip`` /
   ``residual``) nor the output pyramid (``progressive``: ``output_skip``). Only the plain U-Net path
   (score_sde's ``progressive="none"``, ``progressive_input="none"``) is built, to stay on library
   layers: diffusers' Skip blocks, which implement the pyramids, hard-code 3 image channels.
   (score_sde's 256x256 VE configs use ``output_skip`` + ``input_skip``, its CIFAR-10 VE configs
   ``none`` + ``residual``.)
2. Output channels are chosen (``out_channels=1``): score_sde always outputs as many channels as it
   takes in. For the CTM (2 channels in) only the radiograph's score is produced.
3. No input centering inside the network: score_sde maps ``[0, 1]`` data to ``[-1, 1]`` inside
   ``NCSNpp.forward`` when ``data.centered`` is false; here the network takes ``x`` as given and the data
   pipeline decides the intensity range.
4. Initialisation: PyTorch's default initialisation (diffusers' layers) instead of score_sde's
   ``variance_scaling(1, "fan_avg", "uniform")`` with zero biases; as with score_sde's ``init_scale=0``,
   the last convolution of every residual branch, the attention output projection and the output
   convolution start at zero (score_sde: scale 1e-10, i.e. practically zero).
5. Parameter names and order differ (diffusers' ``ResnetBlock2D`` / ``Attention`` names, encoder
   attention listed after the level's residual blocks), so score_sde checkpoints need a name map.
6. The attention resolutions are fixed when the network is built (from ``image_size``); score_sde tests
   the feature map's width at run time. Inputs of another size run through the same layers (attention
   then sits at the same depth, not at the same pixel size).
7. FIR resampling is a choice: ``fir=True`` as score_sde's VE configs (paper scale); ``fir=False``
   (nearest upsampling, 2x2 average pooling: score_sde's ``fir=False`` path) in the CPU preset, where
   diffusers' pure-PyTorch FIR (score_sde uses a CUDA kernel) made the CPU step 1.7-3x slower.
8. ``num_res_blocks`` is 2 in the paper-scale preset, as in score_sde's 256x256 VE configs
   (celebahq_256 / ffhq_256); the seed's own count could not be checked here (score_sde's CIFAR-10 VE
   configs use 4; with 4 the paper plan has 38,138,881 parameters at ``in_channels=2``).

**Channel plan.** score_sde writes widths as ``nf * ch_mult``. The seed's six levels for 256x256 input
(resolutions 256, 128, 64, 32, 16, 8) with widths (64, 128, 128, 128, 128, 256) are ``nf=64``,
``ch_mult=(1, 2, 2, 2, 2, 4)``; this module takes the widths directly (``channels``), ``nf`` being
``channels[0]``. None of score_sde's own 256x256 configs is this plan (they use ``nf=128``,
``ch_mult=(1, 1, 2, 2, 2, 2, 2)``, seven levels down to 4x4). As in score_sde, the Fourier embedding has
``nf`` frequencies (``2 * nf`` features), the embedding MLP is ``2nf -> 4nf -> 4nf``, and every GroupNorm
has ``min(C // 4, 32)`` groups.

**Presets** (:data:`NCSNPP_PRESETS`, named by the bundle configs' `network_preset`).
Parameter counts are trainable parameters (the Fourier frequencies are fixed: saved, not counted):

- Paper scale, 256x256: 24,420,225 parameters with ``in_channels=2`` (CTM), 24,419,649 with
  ``in_channels=1`` (CSM; score_sde's ``NCSNpp`` with this plan has exactly as many). Four attention
  layers: three at 16x16 (two in the encoder, one in the decoder) and NCSN++'s fixed middle-block
  attention at the 8x8 bottom. The U-Net baseline on this plan: 22,774,721 (``in_channels=1``). One
  256x256 forward pass on one CPU thread takes ~7-9 s.
- CPU preset, 64x64 (the shipped phantom-trained weights): channels (32, 64, 64, 64), four levels
  (64, 32, 16, 8), attention at 16x16, 2 blocks per level, no FIR: 2,478,017 parameters with
  ``in_channels=2`` (the U-Net baseline: 2,246,497 with ``in_channels=1``). One Adam step (forward +
  backward) at batch 16, measured on this project's 2-core machine while other jobs ran (load average
  5-6): one thread 3.1-3.6 s (median 3.35 s), 4.6-5.6 s in the busiest minutes; two threads 4.8-5.5 s,
  up to 15 s (with both cores busy, the second thread mostly waits). So an epoch of 1,000 images
  (63 steps) takes ~3.5-6 minutes on one thread. (32, 64, 64, 128) would give 4,678,081 parameters at
  ~1.5x the step time.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from diffusers.models.attention_processor import Attention
from diffusers.models.embeddings import GaussianFourierProjection, TimestepEmbedding
from diffusers.models.resnet import ResnetBlock2D
from torch import nn

from orthogen.errors import InputError

SKIP_RESCALE = math.sqrt(2.0)
"""NCSN++'s skip rescale: every residual and attention block returns ``(skip + branch) / sqrt(2)``."""

NCSNPP_PRESETS: dict[str, dict] = {
    "phantom_cpu": dict(channels=(32, 64, 64, 64), attention_resolutions=(16,), num_res_blocks=2, dropout=0.1,
                        fir=False),
    "paper": dict(channels=(64, 128, 128, 128, 128, 256), attention_resolutions=(16,), num_res_blocks=2,
                  dropout=0.1, fir=True),
}
"""The knee radiograph bundle's backbones by name, the one place their hyperparameters are written
(without ``image_size``, which the data sets): ``"phantom_cpu"`` is the narrow 4-level network of the
shipped phantom-trained 64x64 weights, sized for CPU training; ``"paper"`` the seed's six-level
NCSN++ (channels 64-256, FIR resampling) for 256x256 radiographs."""


def group_count(channels: int) -> int:
    """score_sde's GroupNorm group count for a layer of ``channels`` features: ``min(C // 4, 32)``."""
    return min(channels // 4, 32)


def count_parameters(network: nn.Module) -> int:
    """Number of trainable parameters of ``network``."""
    return sum(p.numel() for p in network.parameters() if p.requires_grad)


def _zero(module: nn.Module) -> nn.Module:
    for parameter in module.parameters():
        nn.init.zeros_(parameter)
    return module


class NCSNppBackbone(nn.Module):
    """The NCSN++ U-Net body, shared by the score model and the U-Net baseline.

    Encoder: a 3x3 input convolution, then per level ``num_res_blocks`` BigGAN residual blocks (each
    followed by attention at the attention resolutions) and, except at the deepest level, a residual
    block that halves the size. Middle: residual block, attention, residual block. Decoder: per level
    ``num_res_blocks + 1`` residual blocks, each taking the next encoder skip concatenated, one attention
    at the attention resolutions, and, except at the top level, a residual block that doubles the size.
    Output: GroupNorm, SiLU, 3x3 convolution. Every residual and attention block rescales its sum by
    1/sqrt(2).

    Args:
        in_channels / out_channels: image channels in and out.
        channels: width of each level, top (full resolution) first; the level count is ``len(channels)``.
        attention_resolutions: feature-map sizes (at ``image_size`` input) that get attention.
        num_res_blocks: residual blocks per encoder level (the decoder has one more per level).
        image_size: the input size the attention resolutions refer to; must be divisible by
            ``2 ** (len(channels) - 1)``.
        embedding_channels: width of the conditioning embedding each residual block adds as a bias;
            ``None`` builds the blocks without one (the U-Net baseline).
        dropout: dropout inside every residual block.
        fir: resample with score_sde's FIR filter ``[1, 3, 3, 1]`` (else nearest / 2x2 average).

    Input ``(B, in_channels, H, W)`` with H and W divisible by ``2 ** (len(channels) - 1)``, and the
    embedding ``(B, embedding_channels)`` or ``None``; output ``(B, out_channels, H, W)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        channels: Sequence[int],
        attention_resolutions: Sequence[int],
        num_res_blocks: int,
        image_size: int,
        embedding_channels: int | None,
        dropout: float = 0.1,
        fir: bool = True,
    ):
        super().__init__()
        channels = tuple(int(c) for c in channels)
        levels = len(channels)
        if in_channels < 1 or out_channels < 1:
            raise InputError(f"expected at least one channel in and out, got {in_channels} and {out_channels}",
                             "in_channels/out_channels")
        if levels < 1 or any(c < 4 or c % group_count(c) for c in channels):
            raise InputError(f"expected level widths >= 4 divisible by min(C // 4, 32), got {channels}", "channels")
        if num_res_blocks < 1:
            raise InputError(f"expected at least 1, got {num_res_blocks}", "num_res_blocks")
        if image_size % 2 ** (levels - 1):
            raise InputError(
                f"{image_size} is not divisible by 2^{levels - 1} (one halving per level below the top)",
                "image_size")
        resolutions = [image_size // 2**level for level in range(levels)]
        unknown = sorted(set(attention_resolutions) - set(resolutions))
        if unknown:
            raise InputError(f"{unknown} are not level resolutions {resolutions} of a {image_size}^2 input",
                             "attention_resolutions")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.channels = channels
        self.num_res_blocks = num_res_blocks
        self.image_size = image_size
        self.resolutions = tuple(resolutions)
        self.attention_resolutions = tuple(sorted(set(attention_resolutions), reverse=True))
        self.embedding_channels = embedding_channels

        def resnet(c_in: int, c_out: int | None = None, up: bool = False, down: bool = False) -> ResnetBlock2D:
            c_out = c_in if c_out is None else c_out
            block = ResnetBlock2D(
                in_channels=c_in, out_channels=c_out, temb_channels=embedding_channels, dropout=dropout,
                groups=group_count(c_in), groups_out=group_count(c_out), eps=1e-6, non_linearity="swish",
                output_scale_factor=SKIP_RESCALE, kernel="fir" if fir else None, up=up, down=down,
                use_in_shortcut=c_in != c_out or up or down)
            _zero(block.conv2)
            return block

        def attention(c: int) -> Attention:
            block = Attention(
                c, heads=1, dim_head=c, norm_num_groups=group_count(c), eps=1e-6, bias=True,
                residual_connection=True, rescale_output_factor=SKIP_RESCALE, upcast_softmax=True,
                _from_deprecated_attn_block=True)
            _zero(block.to_out[0])
            return block

        self.input_conv = nn.Conv2d(in_channels, channels[0], kernel_size=3, padding=1)
        skip_channels = [channels[0]]
        width = channels[0]
        self.down = nn.ModuleList()
        for level, (c, resolution) in enumerate(zip(channels, resolutions)):
            stage = nn.Module()
            stage.resnets = nn.ModuleList()
            stage.attentions = nn.ModuleList()
            for _ in range(num_res_blocks):
                stage.resnets.append(resnet(width, c))
                width = c
                if resolution in self.attention_resolutions:
                    stage.attentions.append(attention(c))
                skip_channels.append(c)
            stage.downsample = resnet(width, down=True) if level < levels - 1 else None
            if stage.downsample is not None:
                skip_channels.append(width)
            self.down.append(stage)

        self.mid_resnet_1 = resnet(width)
        self.mid_attention = attention(width)
        self.mid_resnet_2 = resnet(width)

        self.up = nn.ModuleList()
        for level in reversed(range(levels)):
            c = channels[level]
            stage = nn.Module()
            stage.resnets = nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                stage.resnets.append(resnet(width + skip_channels.pop(), c))
                width = c
            stage.attention = attention(c) if resolutions[level] in self.attention_resolutions else None
            stage.upsample = resnet(width, up=True) if level > 0 else None
            self.up.append(stage)
        assert not skip_channels

        self.output_norm = nn.GroupNorm(group_count(width), width, eps=1e-6)
        self.output_activation = nn.SiLU()
        self.output_conv = _zero(nn.Conv2d(width, out_channels, kernel_size=3, padding=1))

    def check_input(self, x: torch.Tensor) -> None:
        """Raise :class:`InputError` unless ``x`` is ``(B, in_channels, H, W)`` with H, W fitting the levels."""
        factor = 2 ** (len(self.channels) - 1)
        if x.ndim != 4 or x.shape[1] != self.in_channels or x.shape[2] % factor or x.shape[3] % factor:
            raise InputError(
                f"expected (B, {self.in_channels}, H, W) with H and W divisible by {factor}, got {tuple(x.shape)}",
                "x")

    def forward(self, x: torch.Tensor, embedding: torch.Tensor | None = None) -> torch.Tensor:
        self.check_input(x)
        h = self.input_conv(x)
        skips = [h]
        for stage in self.down:
            for index, block in enumerate(stage.resnets):
                h = block(h, embedding)
                if len(stage.attentions):
                    h = stage.attentions[index](h)
                skips.append(h)
            if stage.downsample is not None:
                h = stage.downsample(h, embedding)
                skips.append(h)

        h = self.mid_resnet_1(h, embedding)
        h = self.mid_attention(h)
        h = self.mid_resnet_2(h, embedding)

        for stage in self.up:
            for block in stage.resnets:
                h = block(torch.cat([h, skips.pop()], dim=1), embedding)
            if stage.attention is not None:
                h = stage.attention(h)
            if stage.upsample is not None:
                h = stage.upsample(h, embedding)

        return self.output_conv(self.output_activation(self.output_norm(h)))

    def attention_layers(self) -> list[tuple[str, int]]:
        """Every attention layer as ``(name, feature-map size at image_size input)``, encoder to decoder."""
        found = []
        for level, stage in enumerate(self.down):
            found += [(f"down.{level}.attentions.{i}", self.resolutions[level]) for i in range(len(stage.attentions))]
        found.append(("mid_attention", self.resolutions[-1]))
        for index, stage in enumerate(self.up):
            if stage.attention is not None:
                found.append((f"up.{index}.attention", self.resolutions[len(self.up) - 1 - index]))
        return found


def sigma_per_sample(sigma: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """sigma as a ``(B,)`` tensor on ``x``'s device and dtype (one value is repeated for the batch)."""
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1)
    if sigma.numel() == 1:
        sigma = sigma.expand(x.shape[0])
    if sigma.numel() != x.shape[0]:
        raise InputError(f"expected one noise level or one per sample ({x.shape[0]}), got {sigma.numel()}", "sigma")
    return sigma


class NCSNpp(nn.Module):
    """NCSN++ score network for the VE SDE: ``score = NCSNpp(x, sigma)``, the score of the image channel.

    sigma is embedded as score_sde does for VE models: Gaussian Fourier features of ``log(sigma)``
    (``channels[0]`` random frequencies of standard deviation ``fourier_scale``, fixed at construction
    and saved with the weights), then Linear-SiLU-Linear to ``4 * channels[0]``; every residual block
    adds a projection of ``SiLU(embedding)``. With ``scale_by_sigma`` the output is divided by sigma
    (score_sde's ``scale_by_sigma``, the VE choice). See the module docstring for the presets and the
    deviations from score_sde.

    Args:
        spatial_dims: must be 2 (radiographs).
        in_channels: 1 (unconditional, CSM) or 2 (noisy radiograph + segmentation condition, CTM).
        out_channels: 1, the score of the radiograph channel.
        channels: width of each level, top first (the paper: ``(64, 128, 128, 128, 128, 256)``).
        attention_resolutions: feature-map sizes that get attention (the paper: ``(16,)``).
        num_res_blocks: residual blocks per level.
        image_size: input size the attention resolutions refer to.
        fourier_scale: standard deviation of the Fourier frequencies (score_sde: 16).
        dropout: dropout in the residual blocks (score_sde: 0.1).
        scale_by_sigma: divide the output by sigma.
        fir: score_sde's FIR resampling inside the residual blocks.

    Forward: ``x`` ``(B, in_channels, H, W)`` and ``sigma`` > 0, ``(B,)`` or one value for the batch;
    returns ``(B, out_channels, H, W)``.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 2,
        out_channels: int = 1,
        channels: Sequence[int] = NCSNPP_PRESETS["paper"]["channels"],
        attention_resolutions: Sequence[int] = (16,),
        num_res_blocks: int = 2,
        image_size: int = 256,
        fourier_scale: float = 16.0,
        dropout: float = 0.1,
        scale_by_sigma: bool = True,
        fir: bool = True,
    ):
        super().__init__()
        if spatial_dims != 2:
            raise InputError(f"NCSN++ here is 2D only (radiographs), got {spatial_dims}", "spatial_dims")
        nf = int(channels[0])
        self.scale_by_sigma = scale_by_sigma
        self.fourier_projection = GaussianFourierProjection(embedding_size=nf, scale=fourier_scale, log=True)
        self.embedding = TimestepEmbedding(2 * nf, 4 * nf, act_fn="silu")
        self.backbone = NCSNppBackbone(
            in_channels, out_channels, channels, attention_resolutions, num_res_blocks, image_size,
            embedding_channels=4 * nf, dropout=dropout, fir=fir)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        self.backbone.check_input(x)
        sigma = sigma_per_sample(sigma, x)
        embedding = self.embedding(self.fourier_projection(sigma))
        score = self.backbone(x, embedding)
        if self.scale_by_sigma:
            score = score / sigma.reshape(-1, 1, 1, 1)
        return score
