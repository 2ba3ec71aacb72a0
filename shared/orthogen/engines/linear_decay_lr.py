"""The pix2pix / X2CT learning-rate rule: constant, then linear decay to exactly zero, per epoch."""
from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from orthogen.errors import InputError


def linear_decay_factor(epoch: int, constant_epochs: int, decay_epochs: int) -> float:
    """LR factor of 0-based ``epoch``: 1 - max(0, epoch + 2 - constant_epochs) / (decay_epochs + 1).

    This is kylekma/X2CT's ``lambda_rule`` (``lib/model/factory.py``) with its ``epoch_count`` of 1:
    with ``niter`` = ``niter_decay`` = 50 the factor is 1 for epochs 0-48 (49 epochs at the full rate),
    then falls by 1/51 per epoch to exactly 0 for epoch 99, the 100th and last. Never below 0 when
    training runs past ``constant_epochs + decay_epochs``.
    """
    return max(0.0, 1.0 - max(0, epoch + 2 - constant_epochs) / (decay_epochs + 1))


class LinearDecayLR(LambdaLR):
    """``LambdaLR`` with :func:`linear_decay_factor`: full rate, then linear decay to 0 (step once per epoch).

    Args:
        optimizer: the optimizer whose rate it scales.
        constant_epochs: X2CT's ``niter`` (the rate is full for ``constant_epochs - 1`` epochs).
        decay_epochs: X2CT's ``niter_decay`` (the rate is 0 in epoch ``constant_epochs + decay_epochs``,
            counting from 1).
    """

    def __init__(self, optimizer: Optimizer, constant_epochs: int, decay_epochs: int):
        for name, value in (("constant_epochs", constant_epochs), ("decay_epochs", decay_epochs)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"expected a whole number of epochs >= 1, got {value!r}", name)
        self.constant_epochs, self.decay_epochs = constant_epochs, decay_epochs
        super().__init__(optimizer, lambda epoch: linear_decay_factor(epoch, constant_epochs, decay_epochs))
