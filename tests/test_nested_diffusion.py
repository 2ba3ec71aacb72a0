"""Nested diffusion in 3D: the per-resolution shifted schedule, the multi-resolution loss, the DDIM sampler."""
import math

import pytest
import torch
import torch.nn.functional as F

from orthogen.diffusion import (
    NestedConditionedDenoiser,
    NestedDDIMSampler,
    NestedDenoiseCounter,
    NestedDiffusionLoss,
    ShiftedCosineSchedule,
    downsample_pyramid,
)
from orthogen.errors import InputError
from orthogen.networks import nested_denoiser

TINY = dict(channels=(8, 16), attention_levels=(False, True), num_head_channels=8, norm_num_groups=4,
            cross_attention_dim=16, outer_channels=(8, 8))
TIMES = torch.linspace(0.0, 1.0, 11)


def test_shift_formula_holds():
    schedule = ShiftedCosineSchedule(base_resolution=32)
    base = schedule.logsnr(TIMES, 32)
    for r in (32, 64, 128):
        assert schedule.shift(r) == pytest.approx(3 * math.log(32 / r))
        assert torch.allclose(schedule.logsnr(TIMES, r) - base, torch.full_like(base, 3 * math.log(32 / r)), atol=1e-5)
    assert schedule.shift(64) == pytest.approx(-2.0794, abs=1e-4) and schedule.shift(128) == pytest.approx(-4.1589,
                                                                                                           abs=1e-4)
    # the base schedule is the cosine log-SNR from logsnr_max at t = 0 to logsnr_min at t = 1, decreasing
    assert base[0] == pytest.approx(15.0, abs=1e-4) and base[-1] == pytest.approx(-15.0, abs=1e-4)
    assert torch.all(base[1:] < base[:-1])
    assert torch.allclose(base[5], torch.tensor(0.0), atol=1e-5)  # symmetric range: logsnr 0 at t = 1/2
    alpha, sigma = schedule.alpha_sigma(TIMES, 64)
    assert torch.allclose(alpha**2 + sigma**2, torch.ones(11), atol=1e-6)
    # the exponent is the number of spatial dimensions by default; ml-mdm's 2D shift is shift_power=2
    assert ShiftedCosineSchedule(32, shift_power=2).shift(64) == pytest.approx(2 * math.log(0.5))


def test_shift_makes_the_pooled_volume_as_noisy_as_the_base():
    """Average-pooling resolution 2r to r divides noise variance by 8: the shift restores the base SNR."""
    schedule = ShiftedCosineSchedule(base_resolution=8)
    t = torch.full((4,), 0.4)
    x0 = torch.full((4, 1, 16, 16, 16), 0.7)  # a smooth (constant) signal survives pooling unchanged
    noise = torch.randn(4, 1, 16, 16, 16, generator=torch.Generator().manual_seed(0))
    pooled = F.avg_pool3d(schedule.add_noise(x0, noise, t), 2)
    alpha16, sigma16 = schedule.alpha_sigma(t[:1], 16)
    alpha8, sigma8 = schedule.alpha_sigma(t[:1], 8)
    pooled_logsnr = torch.log(alpha16**2 / (sigma16**2 / 8))
    assert torch.allclose(pooled_logsnr, schedule.logsnr(t[:1], 8), atol=1e-5)
    assert pooled.mean().item() == pytest.approx(0.7 * alpha16.item(), abs=0.01)
    measured = torch.log(pooled.mean() ** 2 / pooled.var()) - math.log(0.49)  # log(signal^2 / noise variance)
    assert measured.item() == pytest.approx(schedule.logsnr(t[:1], 8).item(), abs=0.1)


@pytest.mark.parametrize("prediction_type", ["v", "epsilon"])
def test_targets_invert(prediction_type):
    schedule = ShiftedCosineSchedule(base_resolution=8)
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.rand(3, 1, 16, 16, 16, generator=g) * 2 - 1, torch.randn(3, 1, 16, 16, 16, generator=g)
    t = torch.tensor([0.05, 0.5, 0.95])
    x_t = schedule.add_noise(x0, noise, t)
    x0_back, noise_back = schedule.x0_and_noise(x_t, schedule.target(x0, noise, t, prediction_type), t,
                                                prediction_type)
    assert torch.allclose(x0_back, x0, atol=1e-4) and torch.allclose(noise_back, noise, atol=1e-4)


def test_downsample_pyramid():
    volume = torch.randn(2, 1, 32, 32, 32)
    pyramid = downsample_pyramid(volume, (8, 16, 32))
    assert [p.shape[-1] for p in pyramid] == [8, 16, 32] and pyramid[-1] is volume
    assert torch.allclose(pyramid[0].mean(), volume.mean(), atol=1e-5)
    with pytest.raises(InputError, match="^resolutions: expected sizes dividing 32"):
        downsample_pyramid(volume, (12, 32))
    with pytest.raises(InputError, match="^volume: expected a cube"):
        downsample_pyramid(torch.zeros(1, 1, 8, 8, 4), (8,))


class Spy:
    """A denoise function that records what it is given and predicts zeros."""

    def __init__(self):
        self.calls = []

    def __call__(self, x_t, t):
        self.calls.append(([x.clone() for x in x_t], t.clone()))
        return [torch.zeros_like(x) for x in x_t]


def test_loss_uses_one_time_and_each_resolutions_own_noise_level():
    schedule = ShiftedCosineSchedule(base_resolution=8)
    loss = NestedDiffusionLoss(schedule, prediction_type="epsilon")
    spy = Spy()
    zeros = [torch.zeros(3, 1, r, r, r) for r in (8, 16)]
    ones = [torch.ones(3, 1, r, r, r) for r in (8, 16)]
    loss(spy, zeros, generator=torch.Generator().manual_seed(7))
    loss(spy, ones, generator=torch.Generator().manual_seed(7))
    (x_zero, t), (x_one, t_again) = spy.calls
    assert torch.equal(t, t_again) and t.shape == (3,)  # one t per case, shared by every resolution
    for r, a, b in zip((8, 16), x_zero, x_one):
        alpha, _ = schedule.alpha_sigma(t, r)  # same noise, x0 = 1 vs 0: the difference is alpha_r(t)
        assert torch.allclose(b - a, alpha.reshape(3, 1, 1, 1, 1).expand_as(a), atol=1e-5)
    # weights: a zero weight removes a resolution's term
    total, terms = NestedDiffusionLoss(schedule, "v", weights={8: 1.0, 16: 0.0})(
        spy, zeros, generator=torch.Generator().manual_seed(1), return_terms=True)
    assert total.item() == pytest.approx(terms[8], rel=1e-6) and set(terms) == {8, 16}
    with pytest.raises(InputError, match="^weights: expected a weight for every resolution"):
        NestedDiffusionLoss(schedule, weights={8: 1.0})(spy, zeros)
    with pytest.raises(InputError, match="^prediction_type: expected one of"):
        NestedDiffusionLoss(schedule, prediction_type="x0")


def test_loss_is_finite_and_decreases_on_tiny_data():
    torch.manual_seed(0)
    network = nested_denoiser("phantom_cpu", (8, 16), **TINY)
    schedule = ShiftedCosineSchedule(base_resolution=8)
    loss = NestedDiffusionLoss(schedule, prediction_type="v")
    g = torch.Generator().manual_seed(0)
    volume = torch.tanh(torch.randn(2, 1, 16, 16, 16, generator=g))
    x0 = downsample_pyramid(volume, (8, 16))
    denoise = NestedConditionedDenoiser(network, torch.randn(2, 5, 16, generator=g), torch.tensor([0.3, 0.6]),
                                        torch.tensor([1.0, 3.0]))
    optimizer = torch.optim.Adam(network.parameters(), lr=3e-3)
    values = []
    for _ in range(8):  # the same t and noise every step: a fixed objective
        optimizer.zero_grad()
        value = loss(denoise, x0, generator=torch.Generator().manual_seed(3))
        value.backward()
        grads = [p.grad for p in network.parameters() if p.grad is not None]
        assert torch.isfinite(value) and grads and all(torch.isfinite(gr).all() for gr in grads)
        optimizer.step()
        values.append(value.item())
    assert values[-1] < 0.9 * values[0], values


def oracle(schedule, target):
    """The exact v-prediction for data that is always ``target`` (a list, one volume per resolution)."""

    def denoise(x_t, t):
        out = []
        for x, x0 in zip(x_t, target):
            alpha, sigma = (v.reshape(-1, 1, 1, 1, 1) for v in schedule.alpha_sigma(t, x.shape[-1]))
            eps = (x - alpha * x0) / sigma
            out.append(alpha * eps - sigma * x0)
        return out

    return denoise


def test_sampler_recovers_a_point_distribution_with_the_exact_denoiser():
    schedule = ShiftedCosineSchedule(base_resolution=8)
    target = downsample_pyramid(torch.rand(2, 1, 16, 16, 16, generator=torch.Generator().manual_seed(0)) - 0.5,
                                (8, 16))
    for eta in (0.0, 1.0):
        out = NestedDDIMSampler(schedule, num_steps=5, eta=eta)(oracle(schedule, target), (8, 16), batch_size=2)
        assert all(torch.allclose(o, x, atol=1e-4) for o, x in zip(out, target))


def test_sampler_seeded_steps_counted_and_shapes():
    torch.manual_seed(0)
    network = nested_denoiser("phantom_cpu", (8, 16), **TINY).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # random weights: zero-initialised heads would give identical (zero) predictions
        for p in network.parameters():
            p.copy_(0.05 * torch.randn(p.shape, generator=g))
    denoise = NestedConditionedDenoiser(network, torch.randn(1, 5, 16, generator=g), 0.4, 1.5)
    schedule = ShiftedCosineSchedule(base_resolution=8)
    for eta in (0.0, 0.5):
        sampler = NestedDDIMSampler(schedule, num_steps=3, eta=eta, x0_range=None)
        first = sampler(denoise, (8, 16), seed=1)
        assert [tuple(o.shape) for o in first] == [(1, 1, r, r, r) for r in (8, 16)]
        again = sampler(denoise, (8, 16), seed=1)
        other = sampler(denoise, (8, 16), seed=2)
        assert all(torch.equal(a, b) for a, b in zip(first, again))
        assert all(not torch.allclose(a, b) for a, b in zip(first, other))
    for steps in (1, 4):
        counter = NestedDenoiseCounter(denoise)
        sampler = NestedDDIMSampler(schedule, num_steps=steps)
        out = sampler(counter, (8, 16), seed=0)
        assert counter.count == steps and sampler.last_evaluations == steps
        assert all(o.min() >= -1 and o.max() <= 1 for o in out)  # x0 clipped to [-1, 1]
    # all three resolutions of a (8, 16, 32) network in one sampler call
    torch.manual_seed(0)
    three = NestedConditionedDenoiser(nested_denoiser("phantom_cpu", (8, 16, 32), **TINY).eval(),
                                      torch.randn(2, 5, 16), 0.4, 1.5)
    out = NestedDDIMSampler(schedule, num_steps=1)(three, (8, 16, 32), batch_size=2, seed=0)
    assert [tuple(o.shape) for o in out] == [(2, 1, r, r, r) for r in (8, 16, 32)]


def test_sampler_bad_arguments():
    schedule = ShiftedCosineSchedule(base_resolution=8)
    for steps in (0, 2.5, True):
        with pytest.raises(InputError, match="^num_steps: expected an integer >= 1"):
            NestedDDIMSampler(schedule, num_steps=steps)
    with pytest.raises(InputError, match="^eta: expected a number >= 0"):
        NestedDDIMSampler(schedule, eta=-1.0)
    with pytest.raises(InputError, match="^resolutions: expected positive cube sizes"):
        NestedDDIMSampler(schedule, num_steps=1)(Spy(), ())
    with pytest.raises(InputError, match="^denoise_fn: returned"):
        NestedDDIMSampler(schedule, num_steps=1)(lambda x, t: x[:1], (8, 16))
    with pytest.raises(InputError, match="^resolution: expected a positive integer"):
        schedule.shift(-8)
