"""The VE-SDE and the denoising score matching loss against their closed forms.

Data N(mu, s^2 I) perturbed by the VE kernel N(x, sigma^2 I) is N(mu, (s^2 + sigma^2) I), whose score
-(x - mu) / (s^2 + sigma^2) is known exactly; the loss's minimum E_t[s^2 / (s^2 + sigma(t)^2)] too.
"""
import math

import numpy as np
import pytest
import torch

from orthogen.diffusion import (
    VESDE,
    DenoisingScoreMatchingLoss,
    ReverseDiffusionPredictor,
    gaussian_data_loss_minimum,
)
from orthogen.errors import InputError

MU, S = 1.0, 0.5


def gaussian_score(x, sigma):
    """Exact score of N(MU, S^2 I) perturbed by noise of std sigma (B,)."""
    v = S ** 2 + sigma.reshape(-1, *([1] * (x.ndim - 1))) ** 2
    return -(x - MU) / v


def test_sigma_is_geometric_between_sigma_min_and_sigma_max():
    sde = VESDE()
    assert (sde.sigma_min, sde.sigma_max, sde.N) == (0.01, 128.0, 500)
    t = torch.tensor([0.0, 0.25, 0.4, 0.5, 1.0], dtype=torch.float64)
    expected = 0.01 * (128.0 / 0.01) ** t
    torch.testing.assert_close(sde.sigma(t), expected, rtol=1e-12, atol=0)
    assert sde.sigma(0.4).item() == pytest.approx(0.01 * 12800 ** 0.4, rel=1e-12)  # 0.4395
    assert sde.sigma(torch.tensor(0.3, dtype=torch.float32)).dtype == torch.float32
    other = VESDE(sigma_min=0.002, sigma_max=80.0, N=10)
    assert other.sigma(1.0).item() == pytest.approx(80.0, rel=1e-12)
    assert other.sigma(0.0).item() == pytest.approx(0.002, rel=1e-12)


def test_marginal_prob_and_sde_are_the_closed_forms():
    sde = VESDE()
    x = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0.1, 0.5, 0.9])
    mean, std = sde.marginal_prob(x, t)
    assert mean is x
    torch.testing.assert_close(std, (0.01 * 12800.0 ** t.double()).float())
    # diffusion g(t)^2 = d sigma^2 / dt (central difference in float64)
    drift, g = sde.sde(x.double(), t.double())
    h = 1e-6
    dsigma2 = (sde.sigma(t.double() + h) ** 2 - sde.sigma(t.double() - h) ** 2) / (2 * h)
    assert torch.equal(drift, torch.zeros_like(x.double()))
    torch.testing.assert_close(g ** 2, dsigma2, rtol=1e-6, atol=0)
    # a number is a time shared by the batch
    _, std_shared = sde.marginal_prob(x, 0.4)
    assert std_shared.shape == (3,) and torch.allclose(std_shared, sde.sigma(0.4).float().expand(3))


def test_perturbed_samples_have_the_marginal_std():
    """x(t) = x(0) + sigma(t) z on 2^18 values: std within 1% (4 standard errors is 0.6%)."""
    sde = VESDE()
    g = torch.Generator().manual_seed(1)
    x0 = MU + S * torch.randn(64, 1, 64, 64, generator=g)
    mean, std = sde.marginal_prob(x0, 0.3)
    xt = mean + std.reshape(-1, 1, 1, 1) * torch.randn(x0.shape, generator=g)
    expected = math.sqrt(S ** 2 + sde.sigma(0.3).item() ** 2)
    assert xt.std().item() == pytest.approx(expected, rel=0.01)


def test_prior_sampling_and_logp():
    sde = VESDE()
    a = sde.prior_sampling((8, 1, 32, 32), generator=torch.Generator().manual_seed(3))
    b = sde.prior_sampling((8, 1, 32, 32), generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.dtype == torch.float32
    assert a.std().item() == pytest.approx(128.0, rel=0.03)
    z = torch.randn(2, 1, 3, 5, 2, dtype=torch.float64) * 100
    expected = torch.distributions.Normal(0.0, 128.0).log_prob(z).reshape(2, -1).sum(1)
    torch.testing.assert_close(sde.prior_logp(z), expected)


def score_sde_discretize_G(t: np.ndarray, sigma_min: float, sigma_max: float, N: int) -> np.ndarray:
    """score_sde_pytorch's VESDE.discretize G in closed form: level floor(t (N - 1)), sigma_{-1} = 0."""
    sigmas = np.exp(np.linspace(np.log(sigma_min), np.log(sigma_max), N))
    level = np.floor(t * (N - 1) + 1e-9).astype(int)  # + 1e-9: the grid times, free of float rounding
    adjacent = np.where(level == 0, 0.0, sigmas[np.maximum(level - 1, 0)])
    return np.sqrt(sigmas[level] ** 2 - adjacent ** 2)


@pytest.mark.parametrize("N", [2, 10, 500])
def test_discretize_matches_score_sde_closed_form(N):
    sde = VESDE(N=N)
    expected_sigmas = np.exp(np.linspace(np.log(0.01), np.log(128.0), N))
    np.testing.assert_allclose(sde.discrete_sigmas.numpy(),
                               expected_sigmas, rtol=1e-12)
    x = torch.zeros(N, 1, 2, 2, dtype=torch.float64)
    for times in (np.arange(N) / (N - 1), np.linspace(1.0, 1e-5, N)):  # the levels; score_sde's sampler grid
        f, G = sde.discretize(x, torch.from_numpy(times))
        assert torch.equal(f, torch.zeros_like(x))
        np.testing.assert_allclose(G.numpy(), score_sde_discretize_G(times, 0.01, 128.0, N), rtol=1e-10)
    _, G0 = sde.discretize(x[:1], 0.0)
    assert G0.item() == pytest.approx(0.01, rel=1e-12)  # the lowest level adds all of sigma_min


def test_reverse_diffusion_predictor_is_the_reverse_of_discretize():
    """On the SDE's levels: x_{i-1} = x_i - f + G^2 score + G z with f, G from discretize."""
    sde = VESDE(N=50)
    sigmas = sde.discrete_sigmas
    x = 3.0 * torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for i in (49, 20, 0):
        sigma = sigmas[i].expand(4)
        sigma_next = (sigmas[i - 1] if i > 0 else torch.tensor(0.0, dtype=torch.float64)).expand(4)
        new, new_mean = ReverseDiffusionPredictor().update(
            gaussian_score, x, sigma, sigma_next, torch.Generator().manual_seed(5))
        f, G = sde.discretize(x, i / 49)
        z = torch.randn(x.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
        G = G.reshape(-1, 1, 1, 1)
        expected_mean = x - f + G ** 2 * gaussian_score(x, sigma)
        torch.testing.assert_close(new_mean, expected_mean, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(new, expected_mean + G * z, rtol=1e-12, atol=1e-12)


def test_dsm_loss_of_the_exact_score_is_the_analytic_minimum():
    sde = VESDE()
    loss_fn = DenoisingScoreMatchingLoss(sde)
    g = torch.Generator().manual_seed(0)
    # fixed times: the loss given t is s^2 / (s^2 + sigma(t)^2), averaged over the batch
    x = MU + S * torch.randn(4096, 1, 8, 8, generator=g, dtype=torch.float64)
    t = torch.linspace(1e-5, 1.0, 4096, dtype=torch.float64)
    loss = loss_fn(gaussian_score, x, generator=g, t=t).item()
    given_t = (S ** 2 / (S ** 2 + sde.sigma(t) ** 2)).mean().item()
    # each pixel's term is q chi^2_1 with q <= 1: standard error <= sqrt(2 / 2^18) = 0.0028
    assert loss == pytest.approx(given_t, abs=4 * math.sqrt(2 / x.numel()))
    # random times: the expectation over t ~ U(eps, 1), in closed form
    x = MU + S * torch.randn(16384, 1, 4, 4, generator=g, dtype=torch.float64)
    per_batch = [loss_fn(gaussian_score, x, generator=g).item() for _ in range(4)]
    minimum = gaussian_data_loss_minimum(sde, S)
    assert minimum == pytest.approx(
        np.mean(S ** 2 / (S ** 2 + sde.sigma(torch.linspace(1e-5, 1, 100001, dtype=torch.float64)).numpy() ** 2)),
        rel=1e-4)
    # the spread over t dominates: per-sample values in [0, 1] have std < 0.5, so SE < 0.5 / sqrt(65536)
    assert np.mean(per_batch) == pytest.approx(minimum, abs=4 * 0.5 / math.sqrt(4 * 16384))
    # wrong scores lose: too small, and one that ignores the data's spread (score of N(mu, sigma^2))
    for wrong in (lambda y, s: 0.8 * gaussian_score(y, s),
                  lambda y, s: -(y - MU) / s.reshape(-1, 1, 1, 1) ** 2):
        assert loss_fn(wrong, x, generator=torch.Generator().manual_seed(9)).item() > minimum + 0.01


def test_dsm_loss_is_seeded():
    loss_fn = DenoisingScoreMatchingLoss(VESDE())
    x = torch.rand(4, 1, 8, 8)
    a = loss_fn(gaussian_score, x, generator=torch.Generator().manual_seed(2))
    b = loss_fn(gaussian_score, x, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)


def test_conditional_loss_noises_only_the_image_and_passes_the_condition():
    sde = VESDE()
    x = torch.rand(32, 1, 16, 16, dtype=torch.float64)
    condition = (torch.rand(32, 1, 16, 16) > 0.5).double()
    seen = {}

    def model(inputs, sigma):
        seen["inputs"], seen["sigma"] = inputs, sigma
        return torch.zeros_like(inputs[:, :1])

    t = torch.full((32,), 0.4, dtype=torch.float64)
    loss = DenoisingScoreMatchingLoss(sde)(model, x, condition=condition,
                                           generator=torch.Generator().manual_seed(0), t=t)
    assert seen["inputs"].shape == (32, 2, 16, 16)
    assert torch.equal(seen["inputs"][:, 1:], condition)
    noise = (seen["inputs"][:, :1] - x) / sde.sigma(0.4)
    assert noise.std().item() == pytest.approx(1.0, rel=0.05)
    torch.testing.assert_close(seen["sigma"], sde.sigma(t))
    # a zero score leaves loss = mean z^2
    assert loss.item() == pytest.approx(noise.pow(2).mean().item(), rel=1e-9)
    # the model's parameters get gradients through the loss
    net = torch.nn.Conv2d(2, 1, 3, padding=1).double()
    DenoisingScoreMatchingLoss(sde)(lambda y, s: net(y), x, condition=condition).backward()
    assert net.weight.grad is not None and net.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("kwargs, field", [
    ({"sigma_min": 0.0}, "sigma_min"),
    ({"sigma_max": 0.005}, "sigma_max"),
    ({"sigma_max": float("inf")}, "sigma_max"),
    ({"N": 1}, "N"),
    ({"N": 2.5}, "N"),
    ({"N": True}, "N"),
])
def test_bad_sde_settings_raise_one_line(kwargs, field):
    with pytest.raises(InputError) as error:
        VESDE(**kwargs)
    assert str(error.value).startswith(f"{field}: ") and "\n" not in str(error.value)


def test_bad_loss_inputs_raise_one_line():
    loss_fn = DenoisingScoreMatchingLoss(VESDE())
    with pytest.raises(InputError, match="^x: "):
        loss_fn(gaussian_score, torch.rand(4, 4))
    with pytest.raises(InputError, match="^score_fn: returned"):
        loss_fn(lambda y, s: y[:, :, :2], torch.rand(2, 1, 4, 4))
    with pytest.raises(InputError, match="^condition: shape"):
        loss_fn(lambda y, s: y[:, :1], torch.rand(2, 1, 4, 4), condition=torch.rand(3, 1, 4, 4))
    with pytest.raises(InputError, match="^t: "):
        loss_fn(gaussian_score, torch.rand(2, 1, 4, 4), t=torch.rand(3))
    with pytest.raises(InputError, match="^eps: "):
        DenoisingScoreMatchingLoss(VESDE(), eps=1.0)
