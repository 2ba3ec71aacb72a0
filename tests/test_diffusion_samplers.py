"""The PC sampler, the probability-flow ODE sampler and SDEdit on data whose score is known exactly.

Data: every pixel independent, either N(MU, S^2) or a two-component mixture. Under the VE kernel a
component N(m, s^2) becomes N(m, s^2 + sigma^2), so the exact score is closed form; with it the samplers
must give back the data's moments. Tolerances count 4 standard errors of the sample moments
(n values: mean s / sqrt(n), std s / sqrt(2 n)) plus each sampler's known bias on N(1, 0.5^2):
- the prior N(0, sigma_max^2) ignores the data's mean: the ODE carries that offset to MU S / sigma_max
  (0.004; the SDE forgets it);
- Heun at 50 levels (99 NFE) is 0.6% high in std (0.5031 integrated exactly in float64; 2nd order:
  0.5066 at 35 levels, 0.5285 at 18);
- the PC sampler at N = 500 is overdispersed by the finite steps; :func:`pc_gaussian_std`, a recursion
  of the exact per-step variances, predicts 0.5047 for the predictor alone, 0.5063 with Langevin at
  snr 0.16 and 0.5384 at the seed's snr 0.4 (a Langevin step of size eps = 2 snr^2 v has the stationary
  variance v / (1 - snr^2)). The recursion treats the step size as exact; each sample's step comes from
  its own pixels' norms, which adds ~0.004 at 256 pixels a sample and < 0.001 at the 4096 used here.
"""
import logging
import math

import pytest
import torch

from orthogen.diffusion import (
    VESDE,
    ConditionedScore,
    LangevinCorrector,
    PredictorCorrectorSampler,
    ProbabilityFlowHeunSampler,
    ReverseDiffusionPredictor,
    SDEdit,
    StochasticHeunSampler,
)
from orthogen.errors import InputError

MU, S = 1.0, 0.5
SHAPE = (16, 1, 64, 64)  # 65536 values: SE of the mean 0.002, of the std 0.0014
N_VALUES = math.prod(SHAPE)


def per_sample(values, x):
    return values.reshape(-1, *([1] * (x.ndim - 1)))


def gaussian_score(x, sigma):
    """Exact score of N(MU, S^2) per pixel perturbed by noise of std sigma (B,)."""
    return -(x - MU) / (S ** 2 + per_sample(sigma, x) ** 2)


# two-component mixture: weight W at -1, 1 - W at +1, each of std 0.3
W, MODES, S_MIX = 0.3, (-1.0, 1.0), 0.3


def mixture_score(x, sigma):
    v = S_MIX ** 2 + per_sample(sigma, x) ** 2
    logits = torch.stack([math.log(W) - (x - MODES[0]) ** 2 / (2 * v),
                          math.log(1 - W) - (x - MODES[1]) ** 2 / (2 * v)])
    r = torch.softmax(logits, dim=0)
    return -(r[0] * (x - MODES[0]) + r[1] * (x - MODES[1])) / v


def pc_gaussian_std(sampler: PredictorCorrectorSampler, snr: float | None) -> float:
    """Expected final std of the PC sampler on N(MU, S^2) with the exact score, step by step.

    Per pixel everything is linear: with e the variance about MU and v = S^2 + sigma^2, a Langevin step
    of size eps = 2 snr^2 v^2 / e scales x - MU by a = 1 - eps / v and adds 2 eps; the predictor step
    d = sigma^2 - sigma_next^2 scales by 1 - d / v and adds d (not in the returned mean of the last step).
    """
    sigmas = sampler.sigma_grid().tolist()
    e = sigmas[0] ** 2 + MU ** 2  # the prior about MU: its variance plus the squared offset
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        v = S ** 2 + sigma ** 2
        if snr is not None:
            eps = 2 * snr ** 2 * v ** 2 / e
            e = (1 - eps / v) ** 2 * e + 2 * eps
        d = sigma ** 2 - sigma_next ** 2
        e_mean = (1 - d / v) ** 2 * e
        e = e_mean + d
    return math.sqrt(e_mean)


def heun_gaussian_std(sampler: ProbabilityFlowHeunSampler) -> float:
    """Expected final std of the (stochastic) Heun sampler on N(MU, S^2) with the exact score, step by step.

    With that score the slope is linear per pixel: (x - D) / sigma = k(sigma) (x - MU), k = sigma / (S^2 +
    sigma^2). A step lifts the variance e about MU by the churn (sigma_hat^2 - sigma^2) S_noise^2, then the
    Heun step of size h = sigma_next - sigma_hat scales x - MU by 1 + h / 2 (k(sigma_hat) + k(sigma_next)
    (1 + h k(sigma_hat))), the last (Euler) step by 1 + h k(sigma_hat).
    """
    sigmas = sampler.sigma_grid().tolist()
    e = sigmas[0] ** 2 + MU ** 2  # the prior about MU, as in pc_gaussian_std

    def k(sigma):
        return sigma / (S ** 2 + sigma ** 2)
    for i, (sigma, sigma_next) in enumerate(zip(sigmas[:-1], sigmas[1:])):
        gamma = sampler.churn_factor(sigma) if isinstance(sampler, StochasticHeunSampler) else 0.0
        sigma_hat = sigma * (1 + gamma)
        e += (sigma_hat ** 2 - sigma ** 2) * getattr(sampler, "churn_noise", 1.0) ** 2
        h = sigma_next - sigma_hat
        a = 1 + h * k(sigma_hat) if i == sampler.steps - 1 else 1 + h / 2 * (k(sigma_hat) + k(sigma_next) * (1 + h * k(sigma_hat)))
        e *= a * a
    return math.sqrt(e)


def mean_tolerance(std):
    return 4 * std / math.sqrt(N_VALUES)


def std_tolerance(std):
    return 4 * std / math.sqrt(2 * N_VALUES)


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def sde():
    return VESDE()


@pytest.fixture(scope="module")
def gaussian_samples(sde):
    """Samples of the seed's PC sampler (N = 500, snr 0.4), PC with snr 0.16 and the default ODE."""
    out = {}
    for name, sampler in [("pc_seed", PredictorCorrectorSampler(sde)),
                          ("pc_snr016", PredictorCorrectorSampler(sde, snr=0.16)),
                          ("ode", ProbabilityFlowHeunSampler(sde))]:
        x = sampler.sample(gaussian_score, SHAPE, generator=seeded(0))
        out[name] = (x, sampler.nfe)
    return out


def test_ode_recovers_gaussian_data_within_100_evaluations(gaussian_samples, sde):
    x, nfe = gaussian_samples["ode"]
    assert nfe == 99
    prior_offset = MU * S / sde.sigma_max
    assert abs(x.mean().item() - MU) < mean_tolerance(S) + prior_offset
    assert abs(x.std().item() - S) < std_tolerance(S) + 0.0031


def test_ode_converges_to_the_exact_flow_map_at_second_order(sde):
    """On N(MU, S^2) the flow map is x0 = MU + (xT - MU) S / sqrt(S^2 + sigma_max^2): its slope exactly."""
    exact = S / math.sqrt(S ** 2 + sde.sigma_max ** 2)
    errors = []
    for steps in (18, 35, 50):
        sampler = ProbabilityFlowHeunSampler(sde, steps=steps)
        ends = [sampler.sample(gaussian_score, (1, 1, 1, 1), x_init=torch.full((1, 1, 1, 1), v, dtype=torch.float64))
                for v in (0.0, sde.sigma_max)]
        slope = (ends[1] - ends[0]).item() / sde.sigma_max
        errors.append(slope / exact - 1)
    assert 0 < errors[2] < 0.007  # 0.6% at 99 NFE
    assert errors[0] / errors[1] > 3.5  # about 4 for twice the steps


def test_pc_sampler_recovers_gaussian_data(gaussian_samples, sde):
    x, nfe = gaussian_samples["pc_snr016"]
    assert nfe == 1000  # 500 levels, predictor + one corrector step each
    predicted = pc_gaussian_std(PredictorCorrectorSampler(sde), snr=0.16)
    assert predicted == pytest.approx(0.5063, abs=1e-4)
    assert abs(x.mean().item() - MU) < mean_tolerance(S)
    assert abs(x.std().item() - predicted) < std_tolerance(S) + 0.001
    assert abs(x.std().item() - S) < std_tolerance(S) + 0.0063 + 0.001


def test_seed_pc_sampler_overdisperses_as_langevin_at_snr_04_predicts(gaussian_samples, sde):
    """snr 0.4 with one corrector step: the mean is right, the std 8% high, as the recursion predicts."""
    x, nfe = gaussian_samples["pc_seed"]
    assert nfe == 1000
    predicted = pc_gaussian_std(PredictorCorrectorSampler(sde), snr=0.4)
    assert predicted == pytest.approx(0.5384, abs=1e-4)
    assert abs(x.mean().item() - MU) < mean_tolerance(S)
    assert abs(x.std().item() - predicted) < std_tolerance(S) + 0.001


def test_predictor_alone_follows_the_step_recursion(sde):
    sampler = PredictorCorrectorSampler(sde, corrector="none")
    x = sampler.sample(gaussian_score, SHAPE, generator=seeded(2))
    assert sampler.nfe == 500
    assert abs(x.std().item() - pc_gaussian_std(sampler, snr=None)) < std_tolerance(S)
    assert abs(x.mean().item() - MU) < mean_tolerance(S)


def test_heun_variance_recursion_gives_the_odes_known_bias(sde):
    """The recursion of the stochastic tests, at churn 0: the ODE's 0.5031 quoted in the module docstring."""
    assert heun_gaussian_std(ProbabilityFlowHeunSampler(sde)) == pytest.approx(0.5031, abs=5e-5)


@pytest.mark.parametrize("churn", [40.0, 10.0])
def test_stochastic_heun_gives_the_std_its_step_recursion_predicts(sde, churn):
    """Default churn (capped: gamma = sqrt(2) - 1 for sigma in [0.01, 10]) predicts 0.5139, churn 10 0.5084:
    the churn steps add their own discretisation error on top of the ODE's 0.5031."""
    sampler = StochasticHeunSampler(sde, churn=churn)
    x = sampler.sample(gaussian_score, SHAPE, generator=seeded(0))
    assert sampler.nfe == 99
    expected = heun_gaussian_std(sampler)
    assert expected > heun_gaussian_std(ProbabilityFlowHeunSampler(sde)) + 0.004
    assert abs(x.std().item() - expected) < std_tolerance(S)
    assert abs(x.mean().item() - MU) < mean_tolerance(S)  # the churn forgets the prior's offset


def test_stochastic_heun_without_churn_is_the_ode_sampler(sde):
    ode = ProbabilityFlowHeunSampler(sde, steps=20, data_range=(0.0, 1.0))
    still = StochasticHeunSampler(sde, steps=20, data_range=(0.0, 1.0), churn=0.0)
    a = ode.sample(bounded_mixture_score, (4, 1, 8, 8), generator=seeded(5))
    b = still.sample(bounded_mixture_score, (4, 1, 8, 8), generator=seeded(5))
    assert torch.equal(a, b)


def test_stochastic_heun_lifts_the_level_only_inside_the_churn_range(sde):
    """Each step's first evaluation is at sigma_hat = sigma (1 + gamma) inside [S_tmin, S_tmax], at sigma outside."""
    levels = []

    def score(x, sigma):
        levels.append(sigma[0].item())
        return gaussian_score(x, sigma)
    sampler = StochasticHeunSampler(sde, steps=10, churn=2.0, churn_range=(1.0, 50.0))
    sampler.sample(score, (1, 1, 4, 4), generator=seeded())
    grid = sampler.sigma_grid().tolist()
    firsts = levels[0::2]  # Heun: two evaluations a step, one in the last
    for sigma, first in zip(grid[:-1], firsts):
        gamma = 0.2 if 1.0 <= sigma <= 50.0 else 0.0
        assert first == pytest.approx(sigma * (1 + gamma), rel=1e-5)
    assert firsts[0] == pytest.approx(grid[0], rel=1e-6)  # sigma_max = 128 is above S_tmax
    assert sampler.churn_factor(5.0) == pytest.approx(0.2)
    assert StochasticHeunSampler(sde, steps=10, churn=100.0).churn_factor(5.0) == pytest.approx(math.sqrt(2) - 1)


def test_ode_and_pc_agree_with_each_other(gaussian_samples):
    ode, _ = gaussian_samples["ode"]
    pc, _ = gaussian_samples["pc_snr016"]
    assert abs(ode.mean().item() - pc.mean().item()) < 2 * mean_tolerance(S) + 0.004
    assert abs(ode.std().item() - pc.std().item()) < 2 * std_tolerance(S) + 0.0063 + 0.001


@pytest.mark.parametrize("make_sampler", [
    lambda sde: ProbabilityFlowHeunSampler(sde),
    lambda sde: StochasticHeunSampler(sde),
    lambda sde: PredictorCorrectorSampler(sde, steps=250, snr=0.16),
], ids=["ode", "stochastic_heun", "pc"])
def test_samplers_recover_a_two_mode_mixture(make_sampler, sde):
    """Mode weights within 4 SE (binomial, 0.0072) + 0.01 for the discretisation; mean and std likewise."""
    sampler = make_sampler(sde)
    x = sampler.sample(mixture_score, (256, 1, 16, 16), generator=seeded(1))
    assert sampler.nfe <= (100 if isinstance(sampler, ProbabilityFlowHeunSampler) else 500)
    weight = (x < 0).double().mean().item()
    assert abs(weight - W) < 4 * math.sqrt(W * (1 - W) / N_VALUES) + 0.01
    mean = W * MODES[0] + (1 - W) * MODES[1]
    std = math.sqrt(S_MIX ** 2 + W * (1 - W) * (MODES[1] - MODES[0]) ** 2)
    assert abs(x.mean().item() - mean) < mean_tolerance(std) + 0.02
    assert abs(x.std().item() - std) < std_tolerance(std) + 0.02
    # each mode keeps its own spread
    assert abs(x[x > 0].std().item() - S_MIX) < 0.02


@pytest.mark.parametrize("make_sampler", [
    lambda sde: PredictorCorrectorSampler(sde, steps=30),
    lambda sde: ProbabilityFlowHeunSampler(sde, steps=10),
    lambda sde: StochasticHeunSampler(sde, steps=10),
], ids=["pc", "ode", "stochastic_heun"])
def test_same_seed_same_sample(make_sampler, sde):
    sampler = make_sampler(sde)
    a = sampler.sample(gaussian_score, (2, 1, 8, 8), generator=seeded(7))
    b = sampler.sample(gaussian_score, (2, 1, 8, 8), generator=seeded(7))
    c = sampler.sample(gaussian_score, (2, 1, 8, 8), generator=seeded(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_network_evaluations_are_counted(sde):
    calls = []

    def score(x, sigma):
        calls.append(sigma.clone())
        return gaussian_score(x, sigma)

    cases = [
        (PredictorCorrectorSampler(sde, steps=20), 40),
        (PredictorCorrectorSampler(sde, steps=20, corrector_steps=3), 80),
        (PredictorCorrectorSampler(sde, steps=20, corrector="none"), 20),
        (PredictorCorrectorSampler(sde, steps=20, predictor="none"), 20),
        (ProbabilityFlowHeunSampler(sde, steps=10), 19),
        (ProbabilityFlowHeunSampler(sde, steps=1), 1),
        (StochasticHeunSampler(sde, steps=10), 19),
    ]
    for sampler, expected in cases:
        calls.clear()
        sampler.sample(score, (2, 1, 4, 4), generator=seeded())
        assert sampler.nfe == len(calls) == expected
    # SDEdit from t0 = 0.4 keeps the step density: 50 levels for t in [eps, 1] -> 20 from 0.4
    edit = SDEdit(PredictorCorrectorSampler(sde, steps=50), t0=0.4)
    edit.sample(score, torch.rand(2, 1, 4, 4), generator=seeded())
    assert edit.nfe == 40


def test_nfe_is_logged_and_the_bar_is_quiet_off_a_terminal(sde, caplog, capfd):
    with caplog.at_level(logging.INFO, logger="orthogen.diffusion"):
        PredictorCorrectorSampler(sde, steps=5).sample(gaussian_score, (1, 1, 4, 4), generator=seeded())
        ProbabilityFlowHeunSampler(sde, steps=5).sample(gaussian_score, (1, 1, 4, 4), generator=seeded())
    messages = [r.getMessage() for r in caplog.records]
    assert any("10 network evaluations" in m for m in messages)
    assert any("9 network evaluations" in m for m in messages)
    out, err = capfd.readouterr()
    assert "sampling" not in out + err  # pytest's stderr is not a terminal: tqdm(disable=None) stays quiet


class SpyPredictor(ReverseDiffusionPredictor):
    """Records every noise level and the first state it is given."""

    def __init__(self):
        self.sigmas, self.first_x = [], None

    def update(self, score_fn, x, sigma, sigma_next, generator=None):
        if self.first_x is None:
            self.first_x = x.clone()
        self.sigmas.append((sigma.clone(), sigma_next.clone()))
        return super().update(score_fn, x, sigma, sigma_next, generator)


def test_sdedit_starts_from_the_guide_at_sigma_t0(sde):
    spy = SpyPredictor()
    sampler = PredictorCorrectorSampler(sde, predictor=spy, corrector="none", steps=20)
    guide = torch.rand(16, 1, 128, 128, generator=seeded(3))  # 2^18 values: SE of the std 0.14%
    SDEdit(sampler, t0=0.4).sample(gaussian_score, guide, generator=seeded(4))
    first_sigma, _ = spy.sigmas[0]
    assert torch.equal(first_sigma, torch.full((16,), sde.sigma(0.4).item(), dtype=torch.float32))
    assert (spy.first_x - guide).std().item() == pytest.approx(sde.sigma(0.4).item(), rel=0.006)
    assert abs((spy.first_x - guide).mean().item()) < 4 * sde.sigma(0.4).item() / 512
    assert len(spy.sigmas) == 8  # round(20 * 0.4)
    last_sigma, last_next = spy.sigmas[-1]
    assert torch.allclose(last_sigma, sde.sigma(1e-5).float()) and torch.equal(last_next, torch.zeros(16))
    # every level on the way down is lower than the one before
    levels = torch.stack([s[0] for s, _ in spy.sigmas])
    assert bool((levels[1:] < levels[:-1]).all())


def test_sdedit_with_the_ode_keeps_the_guide_layout(sde):
    """From t0 = 0.4 a guide far from the data is pulled toward it but keeps its pixel order."""
    guide = torch.linspace(0, 1, 64).reshape(1, 1, 8, 8).repeat(4, 1, 1, 1)
    out = SDEdit(ProbabilityFlowHeunSampler(sde, steps=20), t0=0.4).sample(gaussian_score, guide, seeded(0))
    assert out.shape == guide.shape
    assert torch.corrcoef(torch.stack([out.flatten(), guide.flatten()]))[0, 1] > 0.5


def test_conditional_model_sees_image_and_condition(sde):
    condition = torch.rand(1, 1, 8, 8)
    seen = []

    def model(inputs, sigma):
        seen.append(inputs)
        return gaussian_score(inputs[:, :1], sigma)

    x = PredictorCorrectorSampler(sde, steps=5).sample(ConditionedScore(model, condition), (3, 1, 8, 8),
                                                      generator=seeded())
    assert x.shape == (3, 1, 8, 8)
    assert all(i.shape == (3, 2, 8, 8) and torch.equal(i[:, 1:], condition.expand(3, 1, 8, 8)) for i in seen)
    with pytest.raises(InputError, match="^condition: shape"):
        PredictorCorrectorSampler(sde, steps=5).sample(ConditionedScore(model, torch.rand(2, 1, 8, 8)),
                                                       (3, 1, 8, 8), generator=seeded())


def test_langevin_step_uses_each_samples_own_norms():
    """A sample's Langevin step does not depend on the other samples of its batch."""
    x = torch.randn(3, 1, 8, 8, generator=seeded(0))
    x[2] *= 100  # a far-off batch-mate
    sigma = torch.full((3,), 2.0)
    both, _ = LangevinCorrector(0.4).update(gaussian_score, x, sigma, seeded(1))
    alone, _ = LangevinCorrector(0.4).update(gaussian_score, x[:2], sigma[:2], seeded(1))
    # same noise for the first two samples (the generator fills the batch in order)
    assert torch.allclose(both[:2], alone, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("build, field", [
    (lambda sde: PredictorCorrectorSampler(sde, predictor="euler"), "predictor"),
    (lambda sde: PredictorCorrectorSampler(sde, corrector="ald"), "corrector"),
    (lambda sde: PredictorCorrectorSampler(sde, predictor="none", corrector="none"), "predictor"),
    (lambda sde: PredictorCorrectorSampler(sde, steps=0), "steps"),
    (lambda sde: PredictorCorrectorSampler(sde, steps=2.5), "steps"),
    (lambda sde: PredictorCorrectorSampler(sde, snr=-1), "snr"),
    (lambda sde: PredictorCorrectorSampler(sde, corrector_steps=0), "corrector_steps"),
    (lambda sde: PredictorCorrectorSampler("ve"), "sde"),
    (lambda sde: ProbabilityFlowHeunSampler(sde, steps=0), "steps"),
    (lambda sde: StochasticHeunSampler(sde, churn=-1.0), "churn"),
    (lambda sde: StochasticHeunSampler(sde, churn=float("inf")), "churn"),
    (lambda sde: StochasticHeunSampler(sde, churn_range=(10.0, 1.0)), "churn_range"),
    (lambda sde: StochasticHeunSampler(sde, churn_range=5.0), "churn_range"),
    (lambda sde: StochasticHeunSampler(sde, churn_noise=0.0), "churn_noise"),
    (lambda sde: StochasticHeunSampler(sde, steps=0), "steps"),
    (lambda sde: SDEdit(PredictorCorrectorSampler(sde), t0=0.0), "t0"),
    (lambda sde: SDEdit(PredictorCorrectorSampler(sde), t0=1.5), "t0"),
    (lambda sde: SDEdit(PredictorCorrectorSampler(sde), t0=float("nan")), "t0"),
    (lambda sde: PredictorCorrectorSampler(sde, steps=5).sample(gaussian_score, (2, 0, 4)), "shape"),
    (lambda sde: PredictorCorrectorSampler(sde, steps=5).sample(gaussian_score, (4,)), "shape"),
    (lambda sde: PredictorCorrectorSampler(sde, steps=5).sample(gaussian_score, (2, 1, 4, 4), t_start=0), "t_start"),
    (lambda sde: PredictorCorrectorSampler(sde, steps=5).sample(gaussian_score, (2, 1, 4, 4),
                                                               x_init=torch.zeros(2, 1, 4, 5)), "x_init"),
    (lambda sde: ProbabilityFlowHeunSampler(sde, steps=5).sample(lambda x, s: x[:, :, :1], (2, 1, 4, 4)),
     "score_fn"),
    (lambda sde: SDEdit(ProbabilityFlowHeunSampler(sde)).sample(gaussian_score, torch.zeros(4, 4)), "guide"),
])
def test_bad_sampler_inputs_raise_one_line(build, field, sde):
    with pytest.raises(InputError) as error:
        build(sde)
    assert str(error.value).startswith(f"{field}: ") and "\n" not in str(error.value)


def bounded_mixture_score(x, sigma):
    """Exact score of data 0.2 or 0.8 (equal weights, each N(., 0.05^2)): all of it inside [0, 1]."""
    variance = 0.05 ** 2 + per_sample(sigma, x) ** 2
    low, high = -((x - 0.2) ** 2) / (2 * variance), -((x - 0.8) ** 2) / (2 * variance)
    weight_low = torch.sigmoid(low - high)
    return (weight_low * (0.2 - x) + (1 - weight_low) * (0.8 - x)) / variance


def test_clipping_the_denoiser_changes_nothing_for_an_exact_score_on_data_in_range(sde):
    plain = ProbabilityFlowHeunSampler(sde).sample(bounded_mixture_score, (64, 1, 8, 8), generator=seeded(3))
    clipped = ProbabilityFlowHeunSampler(sde, data_range=(0.0, 1.0)).sample(
        bounded_mixture_score, (64, 1, 8, 8), generator=seeded(3))
    assert (plain - clipped).abs().max().item() < 0.02
    assert abs((clipped < 0.5).double().mean().item() - 0.5) < 0.03


@pytest.mark.parametrize("score", [lambda x, sigma: torch.zeros_like(x), lambda x, sigma: -x / per_sample(sigma, x)],
                         ids=["no-denoising", "pulls-to-zero"])
def test_with_the_denoiser_clipped_the_sample_is_in_the_data_range_whatever_the_score(score, sde):
    """The last step (to sigma = 0) returns the clipped denoiser, so even a useless score ends in range;
    the plain ODE keeps what the score leaves (here: the initial noise of std sigma_max)."""
    clipped = ProbabilityFlowHeunSampler(sde, steps=10, data_range=(0.0, 1.0)).sample(score, (4, 1, 8, 8),
                                                                                       generator=seeded(4))
    assert -1e-6 <= clipped.min().item() and clipped.max().item() <= 1.0 + 1e-6  # float32 rounding
    plain = ProbabilityFlowHeunSampler(sde, steps=10).sample(score, (4, 1, 8, 8), generator=seeded(4))
    assert plain.abs().max().item() > 1.0


def test_bad_data_range_raises_one_line(sde):
    for value in [(1.0, 0.0), "ab", (0.0,), None.__class__]:
        with pytest.raises(InputError, match="^data_range: expected"):
            ProbabilityFlowHeunSampler(sde, data_range=value)
