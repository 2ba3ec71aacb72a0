"""The X2CT-GAN training engine: one generator step, then one discriminator step, per iteration.

MONAI's :class:`~monai.engines.GanTrainer` draws the generator's input from a latent code and updates the
discriminator first; X2CT-GAN is a *conditional* GAN on paired data (radiographs -> CT) that updates the
generator first (Ying et al. 2019, Sec. 3.3; kylekma/X2CT ``optimize_parameters``). So this is a small
:class:`monai.engines.Trainer` of its own: ignite events, handlers, metrics and checkpointing all work as
for any MONAI engine.

Batches are MONAI dictionaries with ``"image"`` (B, 2, S, S): AP and lateral radiographs in [0, 1], and
``"label"`` (B, 1, S, S, S): the CT in [0, 1] (see :class:`orthogen.transforms.ClipNormalizeHU`).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from monai.engines import Trainer
from monai.engines.utils import GanKeys, IterationEvents, default_prepare_batch
from monai.losses import PatchAdversarialLoss
from monai.utils import CommonKeys
from torch import nn

from orthogen.losses import ProjectionL1Loss, X2CTLossWeights


class X2CTGanTrainer(Trainer):
    """Adversarial + voxel MSE + projection L1 training of an X2CT generator against a conditional D.

    Generator loss: ``w.adversarial * LSGAN(D(G(x)) -> real) + w.voxel_mse * MSE(G(x), y)
    + w.projection_l1 * ProjectionL1(G(x), y)``; discriminator loss:
    ``w.adversarial * (LSGAN(D(y) -> real) + LSGAN(D(G(x)) -> fake))`` (the reference's weighting).

    Args:
        device: where to train.
        max_epochs: epochs to run.
        train_data_loader: batches as in the module docstring.
        generator, discriminator: the two networks (``discriminator(ct, ap, lateral)``).
        g_optimizer, d_optimizer: their optimizers.
        loss_weights: the three weights (defaults: the paper's 0.1 / 10 / 10).
        epoch_length, non_blocking, prepare_batch, iteration_update, postprocessing, key_train_metric,
        additional_metrics, train_handlers, amp: as for :class:`monai.engines.SupervisedTrainer`.

    Each iteration's output holds ``image``, ``label``, ``pred`` (the generated CT, detached) and the
    floats ``g_loss``, ``d_loss``, ``loss`` (= g_loss), ``g_adversarial``, ``g_voxel_mse``,
    ``g_projection_l1``.
    """

    def __init__(
        self,
        device: torch.device | str,
        max_epochs: int,
        train_data_loader,
        generator: nn.Module,
        discriminator: nn.Module,
        g_optimizer: torch.optim.Optimizer,
        d_optimizer: torch.optim.Optimizer,
        loss_weights: X2CTLossWeights | None = None,
        epoch_length: int | None = None,
        non_blocking: bool = False,
        prepare_batch: Callable = default_prepare_batch,
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
            prepare_batch=prepare_batch,
            iteration_update=iteration_update,
            postprocessing=postprocessing,
            key_metric=key_train_metric,
            additional_metrics=additional_metrics,
            handlers=train_handlers,
            amp=amp,
        )
        self.generator = generator
        self.discriminator = discriminator
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        self.loss_weights = loss_weights or X2CTLossWeights()
        self.adversarial_loss = PatchAdversarialLoss(criterion="least_squares", no_activation_leastsq=True)
        self.voxel_loss = nn.MSELoss()
        self.projection_loss = ProjectionL1Loss()
        # the networks under the names MONAI's checkpoint and bundle tooling look for
        self.network = generator

    def _iteration(self, engine: X2CTGanTrainer, batchdata: dict[str, Any]) -> dict[str, Any]:
        if batchdata is None:
            raise ValueError("must provide batch data for current iteration.")
        image, ct = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking)[:2]
        ap, lateral = image[:, :1], image[:, 1:2]
        w = engine.loss_weights
        engine.generator.train()
        engine.discriminator.train()

        # generator step: fool D, match the voxels and the three mean projections
        fake = engine.generator(image)
        engine.discriminator.requires_grad_(False)
        g_adversarial = engine.adversarial_loss(engine.discriminator(fake, ap, lateral), target_is_real=True,
                                                for_discriminator=False)
        g_voxel = engine.voxel_loss(fake, ct)
        g_projection = engine.projection_loss(fake, ct)
        g_loss = w.adversarial * g_adversarial + w.voxel_mse * g_voxel + w.projection_l1 * g_projection
        engine.g_optimizer.zero_grad(set_to_none=True)
        g_loss.backward()
        engine.g_optimizer.step()
        engine.fire_event(IterationEvents.BACKWARD_COMPLETED)

        # discriminator step on the real CT and the (detached) generated one
        engine.discriminator.requires_grad_(True)
        d_real = engine.adversarial_loss(engine.discriminator(ct, ap, lateral), target_is_real=True,
                                         for_discriminator=True)
        d_fake = engine.adversarial_loss(engine.discriminator(fake.detach(), ap, lateral), target_is_real=False,
                                         for_discriminator=True)
        d_loss = w.adversarial * (d_real + d_fake)
        engine.d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        engine.d_optimizer.step()
        engine.fire_event(IterationEvents.MODEL_COMPLETED)

        return {
            CommonKeys.IMAGE: image,
            CommonKeys.LABEL: ct,
            CommonKeys.PRED: fake.detach(),
            CommonKeys.LOSS: g_loss.item(),
            GanKeys.GLOSS: g_loss.item(),
            GanKeys.DLOSS: d_loss.item(),
            "g_adversarial": g_adversarial.item(),
            "g_voxel_mse": g_voxel.item(),
            "g_projection_l1": g_projection.item(),
        }
