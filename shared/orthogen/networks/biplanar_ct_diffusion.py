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

**Progressive training.** :meth:`BiplanarCTDiffusion.load_inner_stage` loads the weights of the previous
stage (fewer resolutions): the encoder's must all fit, the denoiser's go through
:meth:`orthogen.networks.NestedUNet3D.load_inner_stage` (only the new outer level may be missing).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from orthogen.errors import InputError
from orthogen.networks.nested_unet3d import BASE_RESOLUTION, NestedUNet3D, nested_denoiser
from orthogen.networks.radiograph_encoder import RadiographEncoder, radiograph_encoder

logger = logging.getLogger(__name__)

BIPLANAR_CT_DIFFUSION_PRESETS: dict[str, dict[str, str]] = {
    "phantom_cpu": dict(encoder="phantom_cpu", denoiser="phantom_cpu"),
    "paper": dict(encoder="paper", denoiser="paper"),
}
"""The network's presets by name: which preset of :data:`orthogen.networks.RADIOGRAPH_ENCODER_PRESETS` and of
:data:`orthogen.networks.NESTED_UNET3D_PRESETS` it joins (their token width and cross-attention width agree)."""


class BiplanarCTDiffusion(nn.Module):
    """Radiograph encoder + nested 3D denoiser (see the module docstring)."""

    def __init__(self, encoder: RadiographEncoder, denoiser: NestedUNet3D):
        super().__init__()
        if encoder.token_dim != denoiser.cross_attention_dim:
            raise InputError(f"expected the denoiser's cross_attention_dim {denoiser.cross_attention_dim}, got "
                             f"tokens of {encoder.token_dim}", "encoder")
        self.encoder, self.denoiser = encoder, denoiser

    @property
    def resolutions(self) -> tuple[int, ...]:
        """The cube sizes of the cascade, lowest first."""
        return self.denoiser.resolutions

    def forward(self, x, timesteps: torch.Tensor, views: torch.Tensor, pixel_spacing, slice_thickness):
        """Predictions for the noisy volumes ``x`` (a list, or one base-resolution tensor)."""
        single = isinstance(x, torch.Tensor)
        tokens = self.encoder(views)
        predictions = self.denoiser([x] if single else list(x), timesteps, tokens, pixel_spacing, slice_thickness)
        return predictions[0] if single else predictions

    def load_inner_stage(self, state_dict: Mapping[str, torch.Tensor]) -> list[str]:
        """Load the previous stage's weights; returns the keys left new (the added outer level's)."""
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
        missing = self.denoiser.load_inner_stage(denoiser)
        self.encoder.load_state_dict(encoder, strict=True)
        return [f"denoiser.{k}" for k in missing]


def biplanar_ct_diffusion(preset: str = "phantom_cpu", resolutions: Sequence[int] = (BASE_RESOLUTION,),
                          **denoiser_overrides) -> BiplanarCTDiffusion:
    """The network of a named preset (:data:`BIPLANAR_CT_DIFFUSION_PRESETS`) for the cascade ``resolutions``.

    ``denoiser_overrides`` replace keys of the denoiser's preset (tests); an unknown preset raises InputError.
    """
    if preset not in BIPLANAR_CT_DIFFUSION_PRESETS:
        raise InputError(f"expected one of {sorted(BIPLANAR_CT_DIFFUSION_PRESETS)}, got {preset!r}", "network_preset")
    names = BIPLANAR_CT_DIFFUSION_PRESETS[preset]
    return BiplanarCTDiffusion(radiograph_encoder(names["encoder"]),
                               nested_denoiser(names["denoiser"], tuple(resolutions), **denoiser_overrides))
