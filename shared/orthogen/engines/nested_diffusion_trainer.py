"""The nested (Matryoshka) diffusion training engine of the knee CT-from-radiographs model.

:class:`orthogen.engines.ScoreMatchingTrainer` trains a VE-SDE score ``network(x, sigma)`` on one image;
the nested diffusion instead noises the CT at every resolution of the cascade with one shared time and
scores them all in one call, conditioned on the radiographs and two sizes in mm
(:class:`orthogen.diffusion.NestedDiffusionLoss`). This is a small :class:`monai.engines.Trainer` of its
own, so ignite events, MONAI handlers, EMA and checkpointing work as for any MONAI engine.

Batches are MONAI dictionaries with ``image`` (B, 2, S, S) AP + lateral radiographs in [0, 1], ``label``
(B, 1, R, R, R) the CT in the HU window mapped to [0, 1] (R divisible by every resolution), and
``pixel_spacing`` / ``slice_thickness`` (B,) mm (:class:`orthogen.data.biplanar_conditioning.BiplanarConditioningd`).
The CT is mapped to the diffusion's data units [-1, 1] and average-pooled to each resolution
(:func:`orthogen.diffusion.downsample_pyramid`).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from monai.engines import Trainer
from monai.engines.utils import IterationEvents
from monai.utils import CommonKeys
from torch import nn

from orthogen.diffusion import NestedConditionedDenoiser, NestedDiffusionLoss, downsample_pyramid
from orthogen.errors import InputError


class NestedDiffusionTrainer(Trainer):
    """Train ``network(x list, timesteps, views, pixel_spacing, slice_thickness)`` with the nested diffusion loss.

    Args:
        device, max_epochs, train_data_loader: as for :class:`monai.engines.SupervisedTrainer`.
        network: :class:`orthogen.networks.BiplanarCTDiffusion` (or a DistributedDataParallel of it).
        optimizer: its optimizer.
        loss: the nested diffusion loss (it holds the schedule and the prediction type).
        resolutions: the cascade's cube sizes, lowest first (the network's).
        grad_clip_norm: clip the gradient norm to this; None: no clipping.
        seed: seed of the times and noise the loss draws (one torch.Generator on ``device``).
        epoch_length, non_blocking, iteration_update, postprocessing, key_train_metric,
        additional_metrics, train_handlers, amp: as for :class:`monai.engines.SupervisedTrainer`.

    Each iteration's output holds ``image``, ``label``, ``loss`` (a float) and ``loss_terms``
    (``{resolution: MSE}``).
    """

    def __init__(
        self,
        device: torch.device | str,
        max_epochs: int,
        train_data_loader,
        network: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss: NestedDiffusionLoss,
        resolutions: Sequence[int],
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
        if not isinstance(loss, NestedDiffusionLoss):
            raise InputError(f"expected a NestedDiffusionLoss, got {type(loss).__name__}", "loss")
        self.network = network
        self.optimizer = optimizer
        self.loss_function = loss
        self.resolutions = [int(r) for r in resolutions]
        self.grad_clip_norm = grad_clip_norm
        self.noise_generator = torch.Generator(device=torch.device(device)).manual_seed(int(seed))

    def _iteration(self, engine: NestedDiffusionTrainer, batchdata: dict[str, Any]) -> dict[str, Any]:
        if batchdata is None:
            raise ValueError("must provide batch data for current iteration.")
        device, non_blocking = engine.state.device, engine.non_blocking
        views = batchdata[CommonKeys.IMAGE].to(device, non_blocking=non_blocking).float()
        ct = batchdata[CommonKeys.LABEL].to(device, non_blocking=non_blocking).float()
        spacing = torch.as_tensor(batchdata["pixel_spacing"]).to(device).float()
        thickness = torch.as_tensor(batchdata["slice_thickness"]).to(device).float()
        x0 = downsample_pyramid(torch.as_tensor(ct) * 2.0 - 1.0, engine.resolutions)
        engine.network.train()
        denoise = NestedConditionedDenoiser(engine.network, views, spacing, thickness)
        loss, terms = engine.loss_function(denoise, x0, generator=engine.noise_generator, return_terms=True)
        engine.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
        if engine.grad_clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(engine.network.parameters(), engine.grad_clip_norm)
        engine.optimizer.step()
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return {CommonKeys.IMAGE: views, CommonKeys.LABEL: ct, CommonKeys.LOSS: loss.item(), "loss_terms": terms}
