"""The score-matching trainer: it lowers the DSM loss, keeps an EMA of the weights, and is seeded."""
import pytest
from ignite.engine import Events
import torch
from torch import nn

from orthogen.diffusion import VESDE, DenoisingScoreMatchingLoss
from orthogen.engines import ScoreMatchingTrainer
from orthogen.errors import InputError
from orthogen.handlers.exponential_moving_average import ExponentialMovingAverage


class TinyScore(nn.Module):
    """A 3x3 convolution of [noisy image, condition], divided by sigma (the NCSN++ output scaling)."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 1, 3, padding=1)

    def forward(self, x, sigma):
        return self.conv(x) / sigma.reshape(-1, 1, 1, 1)


def _loader(conditional: bool):
    g = torch.Generator().manual_seed(0)
    images = 0.5 + 0.1 * torch.randn(32, 1, 8, 8, generator=g)
    batches = []
    for i in range(0, 32, 8):
        batch = {"image": images[i:i + 8]}
        if conditional:
            batch["seg"] = (images[i:i + 8] > 0.5).float() * 0.5
        batches.append(batch)
    return batches


def _train(conditional: bool, epochs: int, seed: int = 0):
    torch.manual_seed(0)
    network = TinyScore(2 if conditional else 1)
    ema = ExponentialMovingAverage(network, decay=0.9)
    loss = DenoisingScoreMatchingLoss(VESDE(sigma_min=0.01, sigma_max=1.0))
    losses = []
    trainer = ScoreMatchingTrainer("cpu", epochs, _loader(conditional), network,
                                   torch.optim.Adam(network.parameters(), lr=1e-2), loss,
                                   condition_key="seg" if conditional else None, seed=seed, train_handlers=[ema])
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(e.state.output["loss"]))
    trainer.run()
    return network, ema, losses


@pytest.mark.parametrize("conditional", [False, True])
def test_training_lowers_the_score_matching_loss(conditional):
    _, _, losses = _train(conditional, epochs=40)
    first, last = sum(losses[:8]) / 8, sum(losses[-8:]) / 8
    assert last < 0.7 * first, (first, last)


def test_ema_trails_the_weights_and_training_is_seeded():
    network, ema, losses = _train(False, epochs=3)
    assert int(ema.average.n_averaged) == 12  # one update per iteration
    assert not torch.equal(ema.module.conv.weight, network.conv.weight)
    _, ema_again, losses_again = _train(False, epochs=3)
    assert losses == losses_again and torch.equal(ema.module.conv.weight, ema_again.module.conv.weight)
    _, _, other = _train(False, epochs=3, seed=1)
    assert other != losses


def test_bad_settings_are_refused():
    with pytest.raises(InputError, match="ema_decay: expected a decay in"):
        ExponentialMovingAverage(TinyScore(1), decay=1.0)
    with pytest.raises(InputError, match="loss: expected a DenoisingScoreMatchingLoss, got MSELoss"):
        ScoreMatchingTrainer("cpu", 1, _loader(False), TinyScore(1), torch.optim.SGD(TinyScore(1).parameters(), 0.1),
                             nn.MSELoss())
