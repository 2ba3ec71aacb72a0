"""The knee CT-from-bi-planar-radiographs diffusion network: radiograph encoder + nested 3D denoiser, one module.

After Khosravi et al., "Generating Knee CT Scans from Bi-Planar Radiographs Using a Modular Diffusion
Model": a ConvNeXt-style encoder (:class:`orthogen.networks.RadiographEncoder`) turns the AP and lateral
radiographs into tokens, which the Matryoshka denoiser (:class:`orthogen.networks.NestedUNet3D`)
cross-attends while it denoises the CT at every resolution of its cascade (32^3, 64^3, 128^3), also
conditioned on the pixel spacing and the slice thickness. The bundle builds this one module from one
named preset (:data:`BIPLANAR_CT_DIFFUSION_PRESETS`), so training, inference and the weights file all
hold the encoder and the denoiser together (state-dict keys ``encoder.*`` and ``denoiser.*``).

``forward(x, timesteps, views, pixel_spacing, slice_thickness)``:

- ``x``: the noisy volumes, a list (B, 1, r, r, r) lowest resolution first (a prefix of ``resolutions``),
  or one tensor: the base resolution alone (then the prediction is one tensor too: MONAI's
  ``verify_net_in_out`` and single-tensor callers);
- ``timesteps`` (B,): MONAI's convention (0 clean ... 1000 noise);
- ``views`` (B, 2, H, W): AP then lateral radiograph in [0, 1];
- ``pixel_spacing``, ``slice_thickness``: (B,) or a number, mm, > 0.

The encoder runs on every call (it is small beside the denoiser: 0.1 M of 3.3 M parameters in the
``phantom_cpu`` preset, 29 M of 405 M in ``paper``).

**Back-projected views** (``backprojected_views=True``; the ``*_views`` presets; beyond the seed). Cross-attention
lets every voxel read every radiograph token, but it has to learn from data which pixels lie on the rays
through the voxel. With back-projection the denoiser is also given, at every resolution r of the
cascade, the two views repeated along their projection axes
(:func:`orthogen.networks.view_geometry.backprojected_views`: channels noisy CT, AP, lateral; the
denoiser is built with ``in_channels=3``), so the bone silhouettes of both views meet where the bone is
from the first step, as in X2CT-GAN's 2D -> 3D connection. The prediction is still one channel per
resolution, and the cross-attention to the tokens stays.

**Progressive training.** :meth:`BiplanarCTDiffusion.load_inner_stage` loads the weights of the previous
stage (fewer resolutions): the encoder's must all fit, the denoiser's go through
:meth:`orthogen.networks.NestedUNet3D.load_inner_stage` (only the new outer level may be missing). The
weights of a network without back-projected views also load into one with them: the input convolutions'
view channels start at zero, so the loaded network's predictions are unchanged until training moves them.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from orthogen.errors import InputError
from orthogen.networks.nested_unet3d import BASE_RESOLUTION, NestedUNet3D, nested_denoiser
from orthogen.networks.radiograph_encoder import RadiographEncoder, radiograph_encoder
from orthogen.networks.view_geometry import VIEWS, backprojected_views

logger = logging.getLogger(__name__)

BIPLANAR_CT_DIFFUSION_PRESETS: dict[str, dict] = {
    "phantom_cpu": dict(encoder="phantom_cpu", denoiser="phantom_cpu", backprojected_views=False),
    "phantom_cpu_views": dict(encoder="phantom_cpu", denoiser="phantom_cpu", backprojected_views=True),
    "paper": dict(encoder="paper", denoiser="paper", backprojected_views=False),
    "paper_views": dict(encoder="paper", denoiser="paper", backprojected_views=True),
}
"""The network's presets by name: which preset of :data:`orthogen.networks.RADIOGRAPH_ENCODER_PRESETS` and of
:data:`orthogen.networks.NESTED_UNET3D_PRESETS` it joins (their token width and cross-attention width agree),
and whether the denoiser also sees the back-projected views (``*_views``; "paper" is the seed's network)."""

CT_CHANNELS = 1
"""Channels of the CT volume that is denoised (HU mapped to about [-1, 1])."""


def denoiser_in_channels(backprojected_views: bool) -> int:
    """The denoiser's input channels: the CT, and with ``backprojected_views`` one per view (AP, lateral)."""
    return CT_CHANNELS + (len(VIEWS) if backprojected_views else 0)


class BiplanarCTDiffusion(nn.Module):
    """Radiograph encoder + nested 3D denoiser (see the module docstring).

    Args:
        encoder: the radiograph encoder (its ``token_dim`` is the denoiser's ``cross_attention_dim``).
        denoiser: the nested denoiser; ``in_channels`` 1 (the CT), or 3 with ``backprojected_views``.
        backprojected_views: also give the denoiser the views back-projected onto each resolution's grid.
    """

    def __init__(self, encoder: RadiographEncoder, denoiser: NestedUNet3D, backprojected_views: bool = False):
        super().__init__()
        if encoder.token_dim != denoiser.cross_attention_dim:
            raise InputError(f"expected the denoiser's cross_attention_dim {denoiser.cross_attention_dim}, got "
                             f"tokens of {encoder.token_dim}", "encoder")
        self.backprojected_views = bool(backprojected_views)
        expected = denoiser_in_channels(self.backprojected_views)
        if denoiser.in_channels != expected:
            raise InputError(f"expected a denoiser with {expected} input channels (backprojected_views="
                             f"{self.backprojected_views}), got {denoiser.in_channels}", "denoiser")
        self.encoder, self.denoiser = encoder, denoiser

    @property
    def resolutions(self) -> tuple[int, ...]:
        """The cube sizes of the cascade, lowest first."""
        return self.denoiser.resolutions

    def forward(self, x, timesteps: torch.Tensor, views: torch.Tensor, pixel_spacing, slice_thickness):
        """Predictions for the noisy volumes ``x`` (a list, or one base-resolution tensor)."""
        single = isinstance(x, torch.Tensor)
        volumes = [x] if single else list(x)
        tokens = self.encoder(views)
        if self.backprojected_views:
            volumes = [self._with_views(volume, views) for volume in volumes]
        predictions = self.denoiser(volumes, timesteps, tokens, pixel_spacing, slice_thickness)
        return predictions[0] if single else predictions

    @staticmethod
    def _with_views(volume, views: torch.Tensor):
        """``[volume, AP, lateral]`` on the volume's grid; anything but a (B, 1, r, r, r) tensor is passed on
        for the denoiser to refuse with its one line."""
        if not isinstance(volume, torch.Tensor) or volume.ndim != 5 or volume.shape[1] != CT_CHANNELS or (
                len(set(volume.shape[2:])) != 1):
            return volume
        return torch.cat([volume, backprojected_views(views.to(volume.dtype), volume.shape[-1])], dim=1)

    def load_inner_stage(self, state_dict: Mapping[str, torch.Tensor]) -> list[str]:
        """Load the previous stage's weights; returns the keys left new (the added outer level's).

        Weights of the same network without back-projected views load too: their input convolutions
        (one CT channel) are widened with zero weights for the view channels.
        """
        encoder = {k[len("encoder."):]: v for k, v in state_dict.items() if k.startswith("encoder.")}
        denoiser = {k[len("denoiser."):]: v for k, v in state_dict.items() if k.startswith("denoiser.")}
        other = sorted(set(state_dict) - {f"encoder.{k}" for k in encoder} - {f"denoiser.{k}" for k in denoiser})
        if other:
            raise InputError(f"expected encoder.* and denoiser.* weights, got {other[0]!r}", "state_dict")
        own = self.encoder.state_dict()
        for key, value in own.items():
            if key not in encoder or tuple(encoder[key].shape) != tuple(value.shape):
                got = tuple(encoder[key].shape) if key in encoder else "none"
                raise InputError(f"expected encoder.{key} of shape {tuple(value.shape)}, got {got}", "state_dict")
        if self.backprojected_views:
            denoiser = self._widened_input_convolutions(denoiser)
        missing = self.denoiser.load_inner_stage(denoiser)
        self.encoder.load_state_dict(encoder, strict=True)
        return [f"denoiser.{k}" for k in missing]

    def _widened_input_convolutions(self, denoiser: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The denoiser weights with CT-only input convolutions (out, 1, k, k, k) zero-padded to the view channels."""
        own = self.denoiser.state_dict()
        widened = dict(denoiser)
        for key, value in denoiser.items():
            if key.endswith("conv_in.conv.weight") and key in own and value.ndim == 5 and (
                    value.shape[1] == CT_CHANNELS and own[key].shape[1] == self.denoiser.in_channels):
                views = value.new_zeros(value.shape[0], own[key].shape[1] - CT_CHANNELS, *value.shape[2:])
                widened[key] = torch.cat([value, views], dim=1)
                logger.info("%s: CT-only weights, the view channels start at 0", key)
        return widened


def biplanar_ct_diffusion(preset: str = "phantom_cpu", resolutions: Sequence[int] = (BASE_RESOLUTION,),
                          **denoiser_overrides) -> BiplanarCTDiffusion:
    """The network of a named preset (:data:`BIPLANAR_CT_DIFFUSION_PRESETS`) for the cascade ``resolutions``.

    ``denoiser_overrides`` replace keys of the denoiser's preset (tests); an unknown preset raises InputError.
    """
    if preset not in BIPLANAR_CT_DIFFUSION_PRESETS:
        raise InputError(f"expected one of {sorted(BIPLANAR_CT_DIFFUSION_PRESETS)}, got {preset!r}", "network_preset")
    names = BIPLANAR_CT_DIFFUSION_PRESETS[preset]
    denoiser = nested_denoiser(names["denoiser"], tuple(resolutions),
                               in_channels=denoiser_in_channels(names["backprojected_views"]), **denoiser_overrides)
    return BiplanarCTDiffusion(radiograph_encoder(names["encoder"]), denoiser, names["backprojected_views"])
