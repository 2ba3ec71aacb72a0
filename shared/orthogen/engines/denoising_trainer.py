"""The base of the diffusion training engines: a loss that needs the network, drawn from a seeded generator.

MONAI's :class:`~monai.engines.SupervisedTrainer` computes ``loss(network(image), label)``; a diffusion
loss instead noises the data itself at random noise levels and calls the network on the noisy copy, so it
needs the network and a random generator. :class:`DenoisingTrainer` is a small
:class:`monai.engines.Trainer` that owns that generator (seeded, on the training device) and one
optimisation step (zero grad, backward, optional gradient-norm clipping, step, with MONAI's iteration
events), so ignite events, MONAI handlers, EMA and checkpointing work as for any MONAI engine. A subclass
says only how a batch becomes a loss: :class:`orthogen.engines.ScoreMatchingTrainer` (VE-SDE score
matching on radiographs) and :class:`orthogen.engines.NestedDiffusionTrainer` (the nested CT diffusion).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from monai.engines import Trainer
from monai.engines.utils import IterationEvents
from monai.utils import CommonKeys
from torch import nn

from orthogen.errors import InputError


class DenoisingTrainer(Trainer):
    """Train ``network`` on ``loss`` with one seeded noise generator; subclasses implement :meth:`batch_loss`.

    Args:
        device, max_epochs, train_data_loader: as for :class:`monai.engines.SupervisedTrainer`.
        network: the network being trained.
        optimizer: its optimizer.
        loss: the loss object; it must be an instance of the subclass' ``loss_type``.
        grad_clip_norm: clip the gradient norm to this (score_sde: 1.0); None: no clipping.
        seed: seed of the noise levels and noise the loss draws (one torch.Generator on ``device``).
        epoch_length, non_blocking, iteration_update, postprocessing, key_train_metric,
        additional_metrics, train_handlers, amp: as for :class:`monai.engines.SupervisedTrainer`.

    Each iteration's output holds ``loss`` (a float) and what :meth:`batch_loss` returns beside it.
    """

    loss_type: type = nn.Module

    def __init__(
        self,
        device: torch.device | str,
        max_epochs: int,
        train_data_loader,
        network: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss: nn.Module,
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
        if not isinstance(loss, self.loss_type):
            raise InputError(f"expected a {self.loss_type.__name__}, got {type(loss).__name__}", "loss")
        self.network = network
        self.optimizer = optimizer
        self.loss_function = loss
        self.grad_clip_norm = grad_clip_norm
        self.noise_generator = torch.Generator(device=torch.device(device)).manual_seed(int(seed))

    def batch_loss(self, batchdata: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        """(the scalar loss of one batch, the iteration output's other entries); the network is in train mode."""
        raise NotImplementedError

    def _iteration(self, engine: DenoisingTrainer, batchdata: dict[str, Any]) -> dict[str, Any]:
        if batchdata is None:
            raise ValueError("must provide batch data for current iteration.")
        engine.network.train()
        loss, output = engine.batch_loss(batchdata)
        engine.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
        if engine.grad_clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(engine.network.parameters(), engine.grad_clip_norm)
        engine.optimizer.step()
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return {**output, CommonKeys.LOSS: loss.item()}

    def to_device(self, batchdata: dict[str, Any], key: str) -> torch.Tensor:
        """``batchdata[key]`` as float32 on the training device."""
        return torch.as_tensor(batchdata[key]).to(self.state.device, non_blocking=self.non_blocking).float()
