"""The score-model training engine: one denoising-score-matching step per iteration, plus an EMA of the weights.

Score matching noises the image itself and scores the noisy copy at its noise level, so the loss needs
the network (:class:`orthogen.diffusion.DenoisingScoreMatchingLoss`); the seeded generator and the
optimisation step are :class:`orthogen.engines.denoising_trainer.DenoisingTrainer`'s. The exponential moving average of the weights that the bundle ships and samples with
is kept by :class:`orthogen.handlers.ExponentialMovingAverage` (for this trainer and MONAI's alike).

Batches are MONAI dictionaries with ``image_key`` (B, 1, H, W) radiographs in [0, 1] and, for a
conditional model, ``condition_key`` (B, 1, H, W) segmentations in {0, 0.5, 1}.
"""
from __future__ import annotations

from typing import Any

import torch
from monai.utils import CommonKeys

from orthogen.diffusion import DenoisingScoreMatchingLoss
from orthogen.engines.denoising_trainer import DenoisingTrainer


class ScoreMatchingTrainer(DenoisingTrainer):
    """Train a score network ``network(x, sigma) -> score`` by sigma^2-weighted denoising score matching.

    Args:
        device, max_epochs, train_data_loader, network, optimizer, grad_clip_norm, seed and the MONAI
            engine options: as for :class:`~orthogen.engines.denoising_trainer.DenoisingTrainer`
            (``network``: the score network; for a conditional model it takes [noisy image, condition]).
        loss: the denoising score matching loss (it holds the SDE).
        image_key, condition_key: batch keys; ``condition_key=None`` trains an unconditional model.

    Each iteration's output holds ``image``, ``label`` (the condition or None) and ``loss`` (a float).
    """

    loss_type = DenoisingScoreMatchingLoss

    def __init__(self, *args, image_key: str = "image", condition_key: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.image_key = image_key
        self.condition_key = condition_key

    def batch_loss(self, batchdata: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        image = self.to_device(batchdata, self.image_key)
        condition = None if self.condition_key is None else self.to_device(batchdata, self.condition_key)
        loss = self.loss_function(self.network, image, condition, generator=self.noise_generator)
        return loss, {CommonKeys.IMAGE: image, CommonKeys.LABEL: condition}
