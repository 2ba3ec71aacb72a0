"""The nested (Matryoshka) diffusion training engine of the knee CT-from-radiographs model.

:class:`orthogen.engines.ScoreMatchingTrainer` trains a VE-SDE score ``network(x, sigma)`` on one image;
the nested diffusion instead noises the CT at every resolution of the cascade with one shared time and
scores them all in one call, conditioned on the radiographs and two sizes in mm
(:class:`orthogen.diffusion.NestedDiffusionLoss`). The seeded generator and the optimisation step are
:class:`orthogen.engines.denoising_trainer.DenoisingTrainer`'s.

Batches are MONAI dictionaries with ``image`` (B, 2, S, S) AP + lateral radiographs in [0, 1], ``label``
(B, 1, R, R, R) the CT in the HU window mapped to [0, 1] (R divisible by every resolution), and
``pixel_spacing`` / ``slice_thickness`` (B,) mm (:class:`orthogen.data.biplanar_conditioning.BiplanarConditioningd`).
The CT is mapped to the diffusion's data units [-1, 1] and average-pooled to each resolution
(:func:`orthogen.diffusion.downsample_pyramid`).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from monai.utils import CommonKeys

from orthogen.diffusion import NestedConditionedDenoiser, NestedDiffusionLoss, downsample_pyramid
from orthogen.engines.denoising_trainer import DenoisingTrainer


class NestedDiffusionTrainer(DenoisingTrainer):
    """Train ``network(x list, timesteps, views, pixel_spacing, slice_thickness)`` with the nested diffusion loss.

    Args:
        device, max_epochs, train_data_loader, network, optimizer, grad_clip_norm, seed and the MONAI
            engine options: as for :class:`~orthogen.engines.denoising_trainer.DenoisingTrainer`
            (``network``: :class:`orthogen.networks.BiplanarCTDiffusion` or a DistributedDataParallel of it).
        loss: the nested diffusion loss (it holds the schedule and the prediction type).
        resolutions: the cascade's cube sizes, lowest first (the network's).

    Each iteration's output holds ``image``, ``label``, ``loss`` (a float) and ``loss_terms``
    (``{resolution: MSE}``).
    """

    loss_type = NestedDiffusionLoss

    def __init__(self, *args, resolutions: Sequence[int], **kwargs):
        super().__init__(*args, **kwargs)
        self.resolutions = [int(r) for r in resolutions]

    def batch_loss(self, batchdata: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        views = self.to_device(batchdata, CommonKeys.IMAGE)
        ct = self.to_device(batchdata, CommonKeys.LABEL)
        spacing, thickness = self.to_device(batchdata, "pixel_spacing"), self.to_device(batchdata, "slice_thickness")
        x0 = downsample_pyramid(torch.as_tensor(ct) * 2.0 - 1.0, self.resolutions)
        denoise = NestedConditionedDenoiser(self.network, views, spacing, thickness)
        loss, terms = self.loss_function(denoise, x0, generator=self.noise_generator, return_terms=True)
        return loss, {CommonKeys.IMAGE: views, CommonKeys.LABEL: ct, "loss_terms": terms}
