"""The score-model training engine: one denoising-score-matching step per iteration, plus an EMA of the weights.

MONAI's :class:`~monai.engines.SupervisedTrainer` computes ``loss(network(image), label)``; score matching
instead noises the image itself and scores the noisy copy at its noise level, so the loss needs the
network (:class:`orthogen.diffusion.DenoisingScoreMatchingLoss`). This is a small
:class:`monai.engines.Trainer` of its own, so ignite events, MONAI handlers and checkpointing work as for
any MONAI engine. The exponential moving average of the weights that the bundle ships and samples with
is kept by :class:`orthogen.handlers.ExponentialMovingAverage` (for this trainer and MONAI's alike).

Batches are MONAI dictionaries with ``image_key`` (B, 1, H, W) radiographs in [0, 1] and, for a
conditional model, ``condition_key`` (B, 1, H, W) segmentations in {0, 0.5, 1}.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from monai.engines import Trainer
from monai.engines.utils import IterationEvents
from monai.utils import CommonKeys
from torch import nn

from orthogen.diffusion import DenoisingScoreMatchingLoss
from orthogen.errors import InputError


class ScoreMatchingTrainer(Trainer):
    """Train a score network ``network(x, sigma) -> score`` by sigma^2-weighted denoising score matching.

    Args:
        device: where to train.
        max_epochs: epochs to run.
        train_data_loader: batches as in the module docstring.
        network: the score network (for a conditional model it takes [noisy image, condition]).
        optimizer: its optimizer.
        loss: the denoising score matching loss (it holds the SDE).
        image_key, condition_key: batch keys; ``condition_key=None`` trains an unconditional model.
        grad_clip_norm: clip the gradient norm to this (score_sde: 1.0); None: no clipping.
        seed: seed of the noise levels and noise drawn by the loss (one torch.Generator on ``device``).
        epoch_length, non_blocking, iteration_update, postprocessing, key_train_metric,
        additional_metrics, train_handlers, amp: as for :class:`monai.engines.SupervisedTrainer`.

    Each iteration's output holds ``image``, ``label`` (the condition or None) and ``loss`` (a float).
    """

    def __init__(
        self,
        device: torch.device | str,
        max_epochs: int,
        train_data_loader,
        network: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss: DenoisingScoreMatchingLoss,
        image_key: str = "image",
        condition_key: str | None = None,
        grad_clip_norm: float | None = 1.0,
        seed: int = 0,
        epoch_length: int | None = None,
        non_blocking: bool = False,
        iteration_update: Callable | None = None,
        postprocessing: Callable | None = None,
        key_train_metric: dict | None = None,
        additional_metrics: dict | None = None,
        train_handlers: Sequence | None = None,
        amp: bool = False,
    ):
        super().__init__(
            device=device,
            max_epochs=max_epochs,
            data_loader=train_data_loader,
            epoch_length=epoch_length,
            non_blocking=non_blocking,
            iteration_update=iteration_update,
            postprocessing=postprocessing,
            key_metric=key_train_metric,
            additional_metrics=additional_metrics,
            handlers=train_handlers,
            amp=amp,
        )
        if not isinstance(loss, DenoisingScoreMatchingLoss):
            raise InputError(f"expected a DenoisingScoreMatchingLoss, got {type(loss).__name__}", "loss")
        self.network = network
        self.optimizer = optimizer
        self.loss_function = loss
        self.image_key = image_key
        self.condition_key = condition_key
        self.grad_clip_norm = grad_clip_norm
        self.noise_generator = torch.Generator(device=torch.device(device)).manual_seed(int(seed))

    def _iteration(self, engine: ScoreMatchingTrainer, batchdata: dict[str, Any]) -> dict[str, Any]:
        if batchdata is None:
            raise ValueError("must provide batch data for current iteration.")
        device, non_blocking = engine.state.device, engine.non_blocking
        image = batchdata[engine.image_key].to(device, non_blocking=non_blocking).float()
        condition = None
        if engine.condition_key is not None:
            condition = batchdata[engine.condition_key].to(device, non_blocking=non_blocking).float()
        engine.network.train()
        loss = engine.loss_function(engine.network, image, condition, generator=engine.noise_generator)
        engine.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
        if engine.grad_clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(engine.network.parameters(), engine.grad_clip_norm)
        engine.optimizer.step()
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return {CommonKeys.IMAGE: image, CommonKeys.LABEL: condition, CommonKeys.LOSS: loss.item()}
