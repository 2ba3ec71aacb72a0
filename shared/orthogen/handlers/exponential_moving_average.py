"""An exponential moving average of a network's weights, kept during training (score_sde's ``ema_rate``)."""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from ignite.engine import Engine, Events
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from orthogen.errors import InputError
from orthogen.io.atomic_write import atomic_file

logger = logging.getLogger(__name__)


class ExponentialMovingAverage:
    """Ignite handler: after every iteration, ``ema = decay * ema + (1 - decay) * weights`` (and buffers).

    The average is torch's :class:`~torch.optim.swa_utils.AveragedModel`; ``self.module`` is the
    averaged copy of the network (same class, same state-dict keys), which a ``CheckpointSaver`` saves as
    the bundle's model and which inference loads like the network itself.

    Args:
        network: the network being trained.
        decay: the EMA rate (score_sde: 0.999 for NCSN++; 0.9999 at large scale).
        save_path: where to write the averaged network (a plain state dict, atomically) after every
            epoch, so an interrupted CPU training still leaves usable weights; None: not written.
    """

    def __init__(self, network: nn.Module, decay: float = 0.999, save_path: str | Path | None = None):
        if not isinstance(decay, (int, float)) or not 0.0 <= decay < 1.0:
            raise InputError(f"expected a decay in [0, 1), got {decay!r}", "ema_decay")
        self.network = network
        self.average = AveragedModel(network, multi_avg_fn=get_ema_multi_avg_fn(float(decay)), use_buffers=True)
        self.save_path = None if save_path is None else Path(save_path)

    @property
    def module(self) -> nn.Module:
        """The averaged network."""
        return self.average.module

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)
        if self.save_path is not None:
            engine.add_event_handler(Events.EPOCH_COMPLETED, self.save)

    def save(self, engine: Engine | None = None) -> Path:
        """Write the averaged network's state dict to ``save_path`` (temporary file, then rename)."""
        with atomic_file(self.save_path) as tmp:
            torch.save(self.module.state_dict(), tmp)
        logger.info(f"saved the EMA weights to {self.save_path}")
        return self.save_path

    def __call__(self, engine: Engine) -> None:
        self.average.update_parameters(self.network)

    def state_dict(self) -> dict:
        return self.average.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.average.load_state_dict(state)
