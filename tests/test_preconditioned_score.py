"""Karras et al.'s preconditioning of the knee score network (beyond the seed) and the loss weighting that
goes with it: closed forms on Gaussian data, the condition left unscaled, the factory's choices."""
import pytest
import torch
from torch import nn

from orthogen.diffusion import VESDE, DenoisingScoreMatchingLoss
from orthogen.errors import InputError
from orthogen.networks import NCSNpp, segmentation_to_radiograph_network
from orthogen.networks.preconditioned_score import PreconditionedScore

SIGMA_DATA = 0.3


class ZeroBackbone(nn.Module):
    """F = 0 on the image channel; records what it was given."""

    scale_by_sigma = False

    def forward(self, inputs, sigma):
        self.inputs, self.sigma = inputs, sigma
        return torch.zeros_like(inputs[:, :1])


@pytest.mark.parametrize("sigma", [0.01, 0.3, 5.0, 128.0])
def test_a_zero_backbone_gives_the_exact_score_of_gaussian_data_with_the_data_std(sigma):
    """With F = 0, D = c_skip x and the score (D - x) / sigma^2 = -x / (sigma^2 + sigma_data^2): the exact
    score of N(0, sigma_data^2) data perturbed by noise of std sigma."""
    network = PreconditionedScore(ZeroBackbone(), image_channels=1, sigma_data=SIGMA_DATA)
    x = torch.randn(3, 2, 8, 8, dtype=torch.float64) * 40
    score = network(x, sigma)
    torch.testing.assert_close(score, -x[:, :1] / (sigma ** 2 + SIGMA_DATA ** 2), rtol=1e-9, atol=0)


def test_the_backbone_sees_the_noisy_image_at_unit_scale_and_the_condition_as_given():
    backbone = ZeroBackbone()
    network = PreconditionedScore(backbone, image_channels=1, sigma_data=SIGMA_DATA)
    image = torch.randn(2, 1, 16, 16, dtype=torch.float64) * 128.0
    condition = torch.full((2, 1, 16, 16), 0.5, dtype=torch.float64)
    network(torch.cat([image, condition], 1), torch.tensor([128.0, 128.0], dtype=torch.float64))
    torch.testing.assert_close(backbone.inputs[:, 1:], condition)
    torch.testing.assert_close(backbone.inputs[:, :1], image / (128.0 ** 2 + SIGMA_DATA ** 2) ** 0.5)
    torch.testing.assert_close(backbone.sigma, torch.tensor([128.0, 128.0], dtype=torch.float64))


@pytest.mark.parametrize("t", [0.1, 0.5, 0.9])
def test_the_edm_weighted_loss_of_a_zero_backbone_on_gaussian_data_is_one_at_every_noise_level(t):
    """E||D - x||^2 / c_out^2 with D = c_skip (x + sigma z), x ~ N(0, sigma_data^2): exactly 1 per pixel, for
    every sigma (Karras et al.'s unit-variance training target); the seed's sigma^2 weighting of the same
    network gives sigma_data^2 / (sigma^2 + sigma_data^2) instead."""
    sde = VESDE(sigma_min=0.01, sigma_max=128.0)
    network = PreconditionedScore(ZeroBackbone(), image_channels=1, sigma_data=SIGMA_DATA)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 1, 64, 64, generator=generator, dtype=torch.float64) * SIGMA_DATA
    times = torch.full((64,), t, dtype=torch.float64)
    edm = DenoisingScoreMatchingLoss(sde, sigma_data=SIGMA_DATA)(network, x, generator=generator, t=times)
    seed = DenoisingScoreMatchingLoss(sde)(network, x, generator=generator, t=times)
    sigma = sde.sigma(torch.tensor(t, dtype=torch.float64)).item()
    assert edm.item() == pytest.approx(1.0, rel=0.02)
    assert seed.item() == pytest.approx(SIGMA_DATA ** 2 / (sigma ** 2 + SIGMA_DATA ** 2), rel=0.02)


def test_the_factory_wraps_a_score_network_that_does_not_divide_by_sigma():
    plain = segmentation_to_radiograph_network("ctm", "phantom_cpu", 64)
    preconditioned = segmentation_to_radiograph_network("ctm", "phantom_cpu", 64, sigma_data=SIGMA_DATA)
    assert isinstance(plain, NCSNpp) and plain.scale_by_sigma
    assert isinstance(preconditioned, PreconditionedScore) and not preconditioned.backbone.scale_by_sigma
    assert sum(p.numel() for p in preconditioned.parameters()) == sum(p.numel() for p in plain.parameters())
    with torch.no_grad():
        score = preconditioned(torch.rand(2, 2, 64, 64), torch.tensor([0.5, 50.0]))
    assert score.shape == (2, 1, 64, 64) and torch.isfinite(score).all()


@pytest.mark.parametrize("build, field", [
    (lambda: segmentation_to_radiograph_network("unet", "phantom_cpu", 64, sigma_data=SIGMA_DATA), "sigma_data"),
    (lambda: PreconditionedScore(ZeroBackbone(), sigma_data=0.0), "sigma_data"),
    (lambda: PreconditionedScore(NCSNpp(in_channels=2, spatial_dims=2, out_channels=1, image_size=32,
                                        channels=(16, 16), num_res_blocks=1)), "backbone"),
    (lambda: DenoisingScoreMatchingLoss(VESDE(), sigma_data=-1.0), "sigma_data"),
])
def test_bad_preconditioning_settings_name_their_field(build, field):
    with pytest.raises(InputError) as error:
        build()
    assert error.value.source == field
