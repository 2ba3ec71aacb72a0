"""X2CT-GAN: a CT volume from two orthogonal radiographs (Ying et al., CVPR 2019).

Re-implemented after reading the authors' code (github kylekma/X2CT, ``3DGAN/lib/model/nets``); the
default arguments rebuild the paper's 128^3 network (``multiview_network_denseUNetFuse_transposed``).

Orientation: the contract of :mod:`orthogen.networks.view_geometry` (AP pixel (r, c) -> CT voxels
(r, :, c), lateral pixel (r, c) -> (r, c, :)). Each view branch keeps its 3D features in its own frame
``(B, C, depth, row, col)``; at every decoder scale both frames are permuted into the CT frame and
averaged (:func:`~orthogen.networks.view_geometry.fuse_views`), and the average is handed back to each
branch, as in the reference.

Differences from the reference (with the reference's weights copied in, the generator's output is
identical): instance norms keep no running statistics (the reference's test script switches them to
per-instance statistics anyway); the unused per-view output heads are not built; the discriminator
is MONAI's ``PatchDiscriminator``, whose last conv pads by 1 where the reference pads by 2, so its
patch grid lacks the reference's outermost ring of patches (17^3 instead of 19^3 at 128^3).

Parameter counts (:func:`count_parameters`): the default 128^3 generator has 61,715,633 parameters,
exactly the reference's fused-output path (the reference also builds, per view, a full-resolution
decoder tail and output head whose outputs no loss uses; those are left out here); the default
discriminator has 11,055,169. Small CPU configurations (forward+backward of batch 1, 2 CPU cores):

- 32^3, 361,203 parameters, ~0.2 s: ``X2CTGenerator(in_size=32, base_channels=8,
  num_dense_layers=(2, 2, 2, 2), growth_rate=8, decoder_channels=(4, 8, 16, 16, 32))``.
- 64^3, 849,929 parameters, ~1.1 s: ``X2CTGenerator(in_size=64, base_channels=16,
  num_dense_layers=(2, 2, 2, 2, 2), growth_rate=8, decoder_channels=(8, 8, 16, 16, 32, 32))``.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.nets import PatchDiscriminator
from monai.networks.utils import normal_init
from torch import nn

from orthogen.errors import InputError
from orthogen.networks.view_geometry import VIEWS, ct_to_view, expand_along_depth, expand_view_to_ct, fuse_views


def count_parameters(network: nn.Module) -> int:
    """Number of trainable parameters of ``network``."""
    return sum(p.numel() for p in network.parameters() if p.requires_grad)


def _check_radiograph(image: torch.Tensor, size: int, name: str) -> None:
    if image.ndim != 4 or image.shape[1] != 1 or image.shape[2:] != (size, size):
        raise InputError(
            f"expected a radiograph tensor of shape (B, 1, {size}, {size}), got {tuple(image.shape)}", name
        )


def _conv3d_block(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [nn.Conv3d(in_channels, out_channels, 3, padding=1), nn.InstanceNorm3d(out_channels), nn.ReLU(inplace=True)]


def _transposed_up3d(in_channels: int, out_channels: int) -> list[nn.Module]:
    """Doubles every spatial size: (B, in, s, s, s) -> (B, out, 2s, 2s, 2s)."""
    return [
        nn.ConvTranspose3d(in_channels, out_channels, 3, stride=2, padding=1, output_padding=1),
        nn.InstanceNorm3d(out_channels),
        nn.ReLU(inplace=True),
    ]


class DenseLayer2D(nn.Module):
    """DenseNet-BC layer: norm-ReLU-1x1 conv-norm-ReLU-3x3 conv, output appended to the input channels.

    Hand-written: MONAI's dense layers (monai.networks.nets.densenet) are private and batch-norm bound.
    (B, C, s, s) -> (B, C + growth_rate, s, s).
    """

    def __init__(self, in_channels: int, growth_rate: int, bottleneck_width: int):
        super().__init__()
        inner = bottleneck_width * growth_rate
        self.layers = nn.Sequential(
            nn.InstanceNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, inner, 1),
            nn.InstanceNorm2d(inner),
            nn.ReLU(inplace=True),
            nn.Conv2d(inner, growth_rate, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.layers(x)], dim=1)


class ViewEncoder(nn.Module):
    """2D DenseNet encoder of one radiograph.

    A 7x7 stem, then per stage: stride-2 conv, dense block, and a 1x1 conv halving the channels (the last
    stage instead averages over space to one vector).

    Args:
        base_channels: channels of the stem.
        num_dense_layers: dense layers per stage; the number of stages is its length.
        growth_rate: channels each dense layer adds.
        bottleneck_width: 1x1-conv width of a dense layer, in multiples of ``growth_rate``.

    ``channels[k]`` is the channel count of the feature at scale k (size S / 2^k), k = 0..stages-1, and
    ``channels[-1]`` the length of the code vector.
    """

    def __init__(self, base_channels: int, num_dense_layers: Sequence[int], growth_rate: int, bottleneck_width: int):
        super().__init__()
        self.stem = nn.Sequential(
            nn.ReflectionPad2d(3),
            nn.Conv2d(1, base_channels, 7),
            nn.InstanceNorm2d(base_channels),
            nn.ReLU(inplace=True),
        )
        self.channels = [base_channels]
        self.stages = nn.ModuleList()
        channels = base_channels
        for index, num_layers in enumerate(num_dense_layers):
            layers: list[nn.Module] = [
                nn.InstanceNorm2d(channels),
                nn.ReLU(inplace=True),
                nn.Conv2d(channels, channels, 3, stride=2, padding=1),
            ]
            for _ in range(num_layers):
                layers.append(DenseLayer2D(channels, growth_rate, bottleneck_width))
                channels += growth_rate
            if index == len(num_dense_layers) - 1:
                layers.append(nn.AdaptiveAvgPool2d(1))
            else:
                layers += [nn.InstanceNorm2d(channels), nn.ReLU(inplace=True), nn.Conv2d(channels, channels // 2, 1)]
                channels //= 2
            self.stages.append(nn.Sequential(*layers))
            self.channels.append(channels)

    def forward(self, image: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """(B, 1, S, S) -> ([features at scale k: (B, channels[k], S/2^k, S/2^k)], code (B, channels[-1]))."""
        features = []
        x = self.stem(image)
        for stage in self.stages:
            features.append(x)
            x = stage(x)
        return features, x.flatten(1)


class DimensionConnection(nn.Module):
    """X2CT's 2D->3D connection ("Connection-B"): 1x1 2D conv, repeat along depth, 3x3x3 conv.

    (B, in_channels, s, s) -> view frame (B, out_channels, s, s, s).
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.compress = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1), nn.InstanceNorm2d(out_channels), nn.ReLU(inplace=True)
        )
        self.refine = nn.Sequential(*_conv3d_block(out_channels, out_channels))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.refine(expand_along_depth(self.compress(features)))


class ViewBranch(nn.Module):
    """One view's encoder, its 2D->3D connections and its 3D decoder stream (in the view's frame).

    Scale k has size S / 2^k, k = 0..L with L = len(num_dense_layers); ``decoder_channels[k]`` are the
    3D channels at scale k and ``view_decoder_convs[k - 1]`` the extra 3x3x3 convs at scale k (k >= 1).
    """

    def __init__(
        self,
        in_size: int,
        base_channels: int,
        num_dense_layers: Sequence[int],
        growth_rate: int,
        bottleneck_width: int,
        decoder_channels: Sequence[int],
        view_decoder_convs: Sequence[int],
        link_dropout: float,
    ):
        super().__init__()
        num_scales = len(num_dense_layers)
        self.code_shape = (decoder_channels[-1],) + (in_size // 2**num_scales,) * 3
        self.encoder = ViewEncoder(base_channels, num_dense_layers, growth_rate, bottleneck_width)
        self.connections = nn.ModuleList(
            DimensionConnection(self.encoder.channels[k], decoder_channels[k]) for k in range(num_scales)
        )
        # Fully connected link from the 2D code vector to the coarsest 3D feature volume.
        self.link = nn.Sequential(
            nn.Linear(self.encoder.channels[-1], decoder_channels[-1] * (in_size // 2**num_scales) ** 3),
            nn.Dropout(link_dropout),
            nn.ReLU(inplace=True),
        )
        # compress[k] merges the stream with connection k: 2 * decoder_channels[k] -> decoder_channels[k].
        self.compress = nn.ModuleList(
            nn.Sequential(*_conv3d_block(2 * decoder_channels[k], decoder_channels[k])) for k in range(num_scales)
        )
        # up[k - 1] takes the stream from scale k to scale k - 1.
        self.up = nn.ModuleList()
        for k in range(1, num_scales + 1):
            layers: list[nn.Module] = []
            for _ in range(view_decoder_convs[k - 1]):
                layers += _conv3d_block(decoder_channels[k], decoder_channels[k])
            self.up.append(nn.Sequential(*layers, *_transposed_up3d(decoder_channels[k], decoder_channels[k - 1])))

    def encode(self, image: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """(B, 1, S, S) -> (connection volumes per scale k (view frame), coarsest stream (B, C_L, s, s, s))."""
        features, code = self.encoder(image)
        links = [connection(feature) for connection, feature in zip(self.connections, features)]
        return links, self.link(code).view(code.shape[0], *self.code_shape)


class X2CTGenerator(nn.Module):
    """X2CT-GAN generator: two radiographs (AP, lateral) -> a CT volume.

    Two 2D DenseNet encoders, a 2D->3D connection at every scale, a fully connected bottleneck, and
    three 3D decoder streams (AP, lateral, fused) with transposed convolutions; at every scale the two
    view streams are fused by averaging in CT orientation (:func:`fuse_views`), the average feeds the
    fused stream and returns to both view streams. Output ReLU: CT in [0, +inf), trained on [0, 1].

    Args:
        in_size: S, the side of the square radiographs and of the cubic CT; divisible by 2^L and
            S / 2^L >= 2 (instance norm needs more than one value per channel).
        base_channels: channels of each encoder's stem.
        num_dense_layers: dense layers per encoder stage; L = len(num_dense_layers) stages.
        growth_rate: channels each dense layer adds.
        bottleneck_width: 1x1-conv width of a dense layer, in multiples of ``growth_rate``.
        decoder_channels: L + 1 channel counts of the 3D features at scales 0..L (full size first).
        view_decoder_convs: L counts of extra 3x3x3 convs in each view stream at scales 1..L;
            default 2 at every scale but the coarsest (0), as in the reference.
        fused_decoder_convs: L + 1 counts of extra 3x3x3 convs in the fused stream at scales 0..L;
            default 1 at every scale but the coarsest (0), as in the reference.
        link_dropout: dropout of the fully connected bottleneck (0.5 in the reference).

    Shapes: ``forward(ap, lateral)`` with ap, lateral (B, 1, S, S) in [0, 1], or ``forward(x)`` with x
    (B, 2, S, S) (channel 0 AP, channel 1 lateral) -> CT (B, 1, S, S, S) in the orientation of the
    module docstring.
    """

    def __init__(
        self,
        in_size: int = 128,
        base_channels: int = 64,
        num_dense_layers: Sequence[int] = (6, 12, 24, 16, 6),
        growth_rate: int = 32,
        bottleneck_width: int = 4,
        decoder_channels: Sequence[int] = (16, 16, 32, 64, 128, 256),
        view_decoder_convs: Sequence[int] | None = None,
        fused_decoder_convs: Sequence[int] | None = None,
        link_dropout: float = 0.5,
    ):
        super().__init__()
        num_scales = len(num_dense_layers)
        if view_decoder_convs is None:
            view_decoder_convs = (2,) * (num_scales - 1) + (0,)
        if fused_decoder_convs is None:
            fused_decoder_convs = (1,) * num_scales + (0,)
        for name, values, length in (
            ("decoder_channels", decoder_channels, num_scales + 1),
            ("view_decoder_convs", view_decoder_convs, num_scales),
            ("fused_decoder_convs", fused_decoder_convs, num_scales + 1),
        ):
            if len(values) != length:
                raise InputError(
                    f"expected {length} values for {num_scales} encoder stages, got {len(values)}", name
                )
        if num_scales < 1 or in_size % 2**num_scales or in_size // 2**num_scales < 2:
            raise InputError(
                f"in_size must be divisible by 2^{num_scales} (one halving per encoder stage) with a quotient "
                f">= 2, got in_size={in_size}",
                "in_size",
            )
        self.in_size = in_size
        self.num_scales = num_scales
        self.branches = nn.ModuleDict(
            {
                view: ViewBranch(
                    in_size,
                    base_channels,
                    num_dense_layers,
                    growth_rate,
                    bottleneck_width,
                    decoder_channels,
                    view_decoder_convs,
                    link_dropout,
                )
                for view in VIEWS
            }
        )
        # fused[k]: the fused stream at scale k (merge with the previous scale's output unless k == L,
        # extra convs, then up to scale k - 1 unless k == 0).
        self.fused = nn.ModuleList()
        for k in range(num_scales + 1):
            layers: list[nn.Module] = []
            if k < num_scales:
                layers += _conv3d_block(2 * decoder_channels[k], decoder_channels[k])
            for _ in range(fused_decoder_convs[k]):
                layers += _conv3d_block(decoder_channels[k], decoder_channels[k])
            if k > 0:
                layers += _transposed_up3d(decoder_channels[k], decoder_channels[k - 1])
            self.fused.append(nn.Sequential(*layers))
        self.head = nn.Sequential(nn.Conv3d(decoder_channels[0], 1, 7, padding=3), nn.ReLU())
        self.apply(normal_init)

    def forward(self, ap: torch.Tensor, lateral: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 1, S, S) AP and lateral, or one (B, 2, S, S) tensor -> CT (B, 1, S, S, S)."""
        if lateral is None:
            if ap.ndim != 4 or ap.shape[1] != 2:
                raise InputError(
                    f"expected one tensor of shape (B, 2, {self.in_size}, {self.in_size}) (AP, lateral) "
                    f"or two radiographs, got {tuple(ap.shape)}",
                    "x",
                )
            ap, lateral = ap[:, :1], ap[:, 1:]
        _check_radiograph(ap, self.in_size, "ap")
        _check_radiograph(lateral, self.in_size, "lateral")

        links, streams = {}, {}
        for view, image in zip(VIEWS, (ap, lateral)):
            links[view], streams[view] = self.branches[view].encode(image)
        fused = None
        for k in range(self.num_scales, -1, -1):
            if k < self.num_scales:
                for view in VIEWS:
                    streams[view] = self.branches[view].compress[k](torch.cat([streams[view], links[view][k]], 1))
            average = fuse_views(streams["AP"], streams["lateral"])
            fused = self.fused[k](average if fused is None else torch.cat([average, fused], 1))
            if k > 0:
                for view in VIEWS:
                    streams[view] = self.branches[view].up[k - 1](ct_to_view(average, view))
        return self.head(fused)


X2CT_GENERATOR_PRESETS: dict[str, dict] = {
    "phantom_cpu": dict(base_channels=16, num_dense_layers=(2, 3, 3), growth_rate=8, bottleneck_width=2,
                        decoder_channels=(16, 24, 32, 64), link_dropout=0.0),
    "paper": {},
}
"""The spine bundle's generators by name, the one place their hyperparameters are written:
``"phantom_cpu"`` is the 3-stage network of the shipped phantom-trained 32^3 weights (sized for CPU
training), ``"paper"`` the reference's 5-stage network (:class:`X2CTGenerator`'s defaults)."""


def x2ct_generator(preset: str, in_size: int) -> X2CTGenerator:
    """The generator of the named preset (:data:`X2CT_GENERATOR_PRESETS`) for ``in_size``^2 radiographs."""
    if preset not in X2CT_GENERATOR_PRESETS:
        raise InputError(f"expected one of {', '.join(X2CT_GENERATOR_PRESETS)}, got {preset!r}", "network_preset")
    return X2CTGenerator(in_size=in_size, **X2CT_GENERATOR_PRESETS[preset])


class X2CTDiscriminator(nn.Module):
    """Conditional 3D PatchGAN of X2CT-GAN (LSGAN: raw logits, no sigmoid).

    As in the reference, the condition is both radiographs back-projected into CT orientation
    (:func:`expand_view_to_ct`) and concatenated before the CT: channels (AP, lateral, CT). The network
    is MONAI's ``PatchDiscriminator`` with instance norm, LeakyReLU 0.2, kernel 4, padding 2, strides 2
    and a last stride-1 layer; weights drawn from N(0, 0.02).

    Args:
        base_channels: filters of the first layer, doubled per layer (64 in the reference).
        num_layers: normalised conv layers after the first (3 in the reference).

    Shapes: ``forward(ct (B, 1, S, S, S), ap (B, 1, S, S), lateral (B, 1, S, S))`` -> logits
    (B, 1, P, P, P); P = 17 for S = 128, 9 for S = 64, 5 for S = 32 (with the defaults).
    """

    def __init__(self, base_channels: int = 64, num_layers: int = 3):
        super().__init__()
        self.patch_gan = PatchDiscriminator(
            spatial_dims=3,
            channels=base_channels,
            in_channels=3,
            out_channels=1,
            num_layers_d=num_layers,
            kernel_size=4,
            norm="INSTANCE",
            padding=2,
        )

    def forward(self, ct: torch.Tensor, ap: torch.Tensor, lateral: torch.Tensor) -> torch.Tensor:
        if ct.ndim != 5 or ct.shape[1] != 1 or len(set(ct.shape[2:])) != 1:
            raise InputError(f"expected a cubic CT tensor of shape (B, 1, S, S, S), got {tuple(ct.shape)}", "ct")
        size = ct.shape[-1]
        _check_radiograph(ap, size, "ap")
        _check_radiograph(lateral, size, "lateral")
        condition = [expand_view_to_ct(ap, "AP"), expand_view_to_ct(lateral, "lateral")]
        return self.patch_gan(torch.cat([*condition, ct], 1))[-1]
