"""The segmentation -> radiograph inferer: the three methods, the three samplers, K samples, seeds, NFE."""
import pytest
import torch

from orthogen.diffusion import VESDE
from orthogen.diffusion.segmentation_guided_inferer import SegmentationGuidedInferer
from orthogen.errors import InputError

SDE = VESDE(sigma_min=0.01, sigma_max=2.0, N=20)


def gaussian_score(x, sigma, mean=0.5, std=0.1):
    """The exact score of N(mean, std^2) data perturbed by sigma (channels beyond the first ignored)."""
    image = x[:, :1]
    return -(image - mean) / (std ** 2 + sigma.reshape(-1, 1, 1, 1) ** 2)


class Recorder:
    """A score 'network' that records the inputs it was given."""

    def __init__(self):
        self.inputs = []

    def __call__(self, x, sigma):
        self.inputs.append(x.clone())
        return gaussian_score(x, sigma)


def _segmentation(batch=2):
    seg = torch.zeros(batch, 1, 8, 8)
    seg[:, :, 2:6, 2:6] = 0.5
    seg[:, :, 3:5, 3:5] = 1.0
    return seg


def test_ctm_sees_the_segmentation_as_a_second_channel_and_starts_from_noise():
    network = Recorder()
    inferer = SegmentationGuidedInferer("ctm", "pc", steps=10, sde=SDE, samples=3, seed=1)
    out = inferer(_segmentation(), network)
    assert out.shape == (2, 3, 8, 8) and 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    assert inferer.nfe == 3 * 20  # corrector + predictor per level, 10 levels, 3 samples
    first = network.inputs[0]
    assert first.shape == (2, 2, 8, 8) and torch.equal(first[:, 1:], _segmentation())
    assert float(first[:, :1].std()) > 1.0  # pure noise at sigma_max = 2
    # the samples resemble the data (mean 0.5): the exact score was followed
    assert abs(float(out.mean()) - 0.5) < 0.05


def test_csm_starts_from_the_noised_segmentation_at_t0():
    network = Recorder()
    inferer = SegmentationGuidedInferer("csm", "ode", steps=5, sde=SDE, t0=0.4, seed=0)
    out = inferer(_segmentation(), network)
    assert out.shape == (2, 1, 8, 8)
    first = network.inputs[0]
    assert first.shape == (2, 1, 8, 8)  # an unconditional model sees the image only
    residual = first - _segmentation()
    assert float(residual.std()) == pytest.approx(float(SDE.sigma(0.4)), rel=0.3)
    assert inferer.nfe == 2 * 5 - 1


def test_same_seed_same_radiographs_other_seed_others():
    a = SegmentationGuidedInferer("ctm", "pc", steps=5, sde=SDE, seed=3)(_segmentation(), gaussian_score)
    b = SegmentationGuidedInferer("ctm", "pc", steps=5, sde=SDE, seed=3)(_segmentation(), gaussian_score)
    c = SegmentationGuidedInferer("ctm", "pc", steps=5, sde=SDE, seed=4)(_segmentation(), gaussian_score)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_the_stochastic_heun_sampler_is_chosen_by_name_with_its_churn_and_described():
    inferer = SegmentationGuidedInferer("ctm", "stochastic_heun", steps=6, sde=SDE, churn=3.0, seed=2)
    out = inferer(_segmentation(), gaussian_score)
    assert out.shape == (2, 1, 8, 8) and inferer.nfe == 2 * 6 - 1
    assert inferer.sampler.churn == 3.0 and inferer.sampler.data_range == (0.0, 1.0)
    assert inferer.describe() == "CTM, stochastic Heun sampler, 11 NFE per sample"
    # the churn draws from the seeded generator: another seed, another radiograph; no churn, the ODE's
    other = SegmentationGuidedInferer("ctm", "stochastic_heun", steps=6, sde=SDE, churn=3.0, seed=3)
    assert not torch.equal(out, other(_segmentation(), gaussian_score))
    still = SegmentationGuidedInferer("ctm", "stochastic_heun", steps=6, sde=SDE, churn=0.0, seed=2)
    ode = SegmentationGuidedInferer("ctm", "ode", steps=6, sde=SDE, seed=2)
    assert torch.equal(still(_segmentation(), gaussian_score), ode(_segmentation(), gaussian_score))


def test_unet_is_one_clamped_evaluation():
    inferer = SegmentationGuidedInferer("unet")
    out = inferer(_segmentation(), lambda seg: 2.0 * seg - 0.25)
    assert inferer.nfe == 1 and float(out.max()) == 1.0 and float(out.min()) == 0.0
    assert torch.allclose(out[:, :, 2, 2], torch.full((2, 1), 0.75))


@pytest.mark.parametrize("kwargs, match", [
    ({"method": "gan"}, "method: expected one of ctm, csm, unet, got 'gan'"),
    ({"method": "ctm", "sampler": "euler"}, "sampler: expected one of pc, ode, stochastic_heun, got 'euler'"),
    ({"method": "ctm", "samples": 0}, "samples: expected a whole number >= 1"),
    ({"method": "unet", "samples": 4}, "samples: the U-Net is deterministic"),
])
def test_unknown_names_and_bad_counts_are_refused(kwargs, match):
    with pytest.raises(InputError, match=match):
        SegmentationGuidedInferer(**kwargs)
