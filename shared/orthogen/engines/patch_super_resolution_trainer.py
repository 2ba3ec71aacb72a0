"""The training engine of the knee CT cascade's patch super-resolution model.

Batches are MONAI dictionaries of training crops (MONAI's ``RandSpatialCropSamplesd``) from
:class:`orthogen.transforms.SuperResolutionPaird` + ``AddCoordinateChannelsd``: ``label`` (B, 1, p, p, p)
the high-resolution CT patch in [0, 1] and ``condition`` (B, 4, p, p, p) the upsampled low-resolution
patch in [0, 1] followed by the patch's three coordinate channels. The diffusion's clean data is the
residual ``residual_scale * 2 (label - upsampled)`` (data units; see
:mod:`orthogen.diffusion.patch_super_resolution`); the loss is the diffusion MSE of
:class:`orthogen.diffusion.NestedDiffusionLoss` on that one resolution with the unshifted schedule.
The seeded generator and the optimisation step are :class:`orthogen.engines.denoising_trainer.DenoisingTrainer`'s.
"""
from __future__ import annotations

from typing import Any

import torch
from monai.utils import CommonKeys

from orthogen.diffusion import NestedDiffusionLoss
from orthogen.diffusion.patch_super_resolution import condition_channels
from orthogen.engines.denoising_trainer import DenoisingTrainer


class PatchSuperResolutionTrainer(DenoisingTrainer):
    """Train ``network(x, timesteps, condition)`` (:class:`orthogen.networks.PatchSuperResolutionUNet`).

    Args:
        residual_scale: the residual's scale in the diffusion (the inference's must match).
        condition_key: the batch key of the upsampled patch + coordinates.
        The others: as for :class:`~orthogen.engines.denoising_trainer.DenoisingTrainer`
        (``loss``: a NestedDiffusionLoss with :func:`orthogen.diffusion.patch_super_resolution.unshifted_schedule`).
    """

    loss_type = NestedDiffusionLoss

    def __init__(self, *args, residual_scale: float = 4.0, condition_key: str = "condition", **kwargs):
        super().__init__(*args, **kwargs)
        self.residual_scale, self.condition_key = float(residual_scale), condition_key

    def batch_loss(self, batchdata: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        high = self.to_device(batchdata, CommonKeys.LABEL)
        given = self.to_device(batchdata, self.condition_key)
        upsampled, coordinates = given[:, :1], given[:, 1:]
        residual = self.residual_scale * 2.0 * (high - upsampled)
        condition = condition_channels(upsampled, coordinates)

        def denoise(x_t, t):
            return [self.network(x_t[0], t * 1000.0, condition)]

        loss, terms = self.loss_function(denoise, [residual], generator=self.noise_generator, return_terms=True)
        return loss, {CommonKeys.LABEL: high, "loss_terms": terms}
