"""Progressive training: start a cascade stage from the previous stage's weights (32 -> 64 -> 128)."""
from __future__ import annotations

import logging
from pathlib import Path

from ignite.engine import Engine, Events
from torch import nn

from orthogen.handlers.network_checkpoint_loader import read_weights

logger = logging.getLogger(__name__)


class InnerStageLoader:
    """Ignite handler: when training starts, load the previous stage's weights into the network's inner levels.

    The file is read and checked when the handler is built (a missing or unreadable file stops with one
    line before training starts); the weights go through the network's ``load_inner_stage``
    (:meth:`orthogen.networks.BiplanarCTDiffusion.load_inner_stage`: everything of the earlier stage must
    fit, only the new outer level stays at its initial values). One INFO line says what was loaded.

    Args:
        load_path: the previous stage's weights (its EMA state dict, as the bundle writes them); empty or
            None: the first stage, trained from scratch (the handler does nothing).
        network: the network being trained (a DistributedDataParallel is unwrapped).
    """

    def __init__(self, load_path: str | Path | None, network: nn.Module):
        self.load_path = Path(load_path) if load_path else None
        self.network = network
        self.weights = None if self.load_path is None else read_weights(self.load_path)
        self.new_keys: list[str] = []

    def attach(self, engine: Engine) -> None:
        if self.weights is not None:
            engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Engine | None = None) -> list[str]:
        network = getattr(self.network, "module", self.network)
        self.new_keys = network.load_inner_stage(self.weights)
        logger.info(f"loaded the inner stage from {self.load_path}: {len(self.weights)} tensors; "
                    f"{len(self.new_keys)} new tensors of the added outer level")
        return self.new_keys
