"""Patch diffusion super-resolution (seamless blending, positions, an oracle network recovers the truth),
K-sample uncertainty (zero std for identical seeds) and projection guidance (exact geometry, PSNR rises)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from monai.transforms import AddCoordinateChannels

from orthogen.diffusion import (
    NestedCTInferer,
    PatchSuperResolution,
    ProjectionGuidance,
    blend_patches,
    super_resolution_passes,
    unshifted_schedule,
    volume_coordinates,
)
from orthogen.errors import InputError
from orthogen.metrics.radiograph import radiograph_psnr
from orthogen.networks import patch_super_resolution_network
from orthogen.transforms import SuperResolutionPair
from orthogen.transforms.super_resolution_pair import upsample_volume


@pytest.mark.parametrize("mode, overlap", [("gaussian", 0.25), ("gaussian", 0.5), ("constant", 0.25)])
def test_blending_a_constant_volume_gives_it_back_unchanged(mode, overlap):
    volume = torch.full((1, 1, 40, 40, 40), 0.3712)
    out = blend_patches(volume, lambda patches, windows: patches, 16, overlap, mode)
    assert out.shape == volume.shape and torch.allclose(out, volume, atol=1e-6, rtol=0)


def test_windows_carry_the_coordinates_of_their_place_in_the_volume():
    shape = (36, 36, 36)
    volume = torch.zeros((1, 1, *shape))

    def position(patches, windows):
        return torch.stack([volume_coordinates(shape, w[2:])[0:1] for w in windows])

    out = blend_patches(volume, position, 16, 0.25, "gaussian", sw_batch_size=3)
    monai_coordinates = torch.as_tensor(AddCoordinateChannels(spatial_dims=(0, 1, 2))(torch.zeros((1, *shape)))[1:])
    assert torch.allclose(out[0], monai_coordinates[:1], atol=1e-6)
    window = (slice(4, 20), slice(0, 16), slice(20, 36))
    assert torch.allclose(volume_coordinates(shape, window), monai_coordinates[(slice(None), *window)])


def test_passes_reach_powers_of_four_and_other_sizes_are_refused_naming_resolution():
    assert [super_resolution_passes(32, r) for r in (None, 32, 128, 512)] == [0, 0, 1, 2]
    with pytest.raises(InputError) as error:
        super_resolution_passes(32, 256)
    assert error.value.source == "resolution" and "32, 128, 512" in str(error.value)


def test_the_training_pair_keeps_a_linear_ramp_inside_the_cube():
    ramp = torch.linspace(0, 1, 32)[:, None, None].expand(32, 32, 32)[None].clone()
    pair = SuperResolutionPair(4)(ramp)
    assert pair.shape == ramp.shape
    assert torch.allclose(pair[:, 4:-4], ramp[:, 4:-4], atol=1e-5)
    with pytest.raises(InputError):
        SuperResolutionPair(4)(torch.zeros(1, 30, 30, 30))


class OracleResidual(torch.nn.Module):
    """A 'network' that knows the true high-resolution CT: from the window's coordinates it cuts the true
    residual and returns the exact v-prediction; super-resolution with it must return the truth."""

    def __init__(self, high: torch.Tensor, residual_scale: float):
        super().__init__()
        self.size = high.shape[-1]
        residual = 2.0 * (high - upsample_volume(torch.nn.functional.avg_pool3d(high, 4)))
        self.residual = residual_scale * residual
        self.schedule = unshifted_schedule()

    def forward(self, x, timesteps, condition):
        t = timesteps / 1000.0
        index = torch.round((condition[:, 1:] + 0.5) * (self.size - 1)).long()
        x0 = torch.stack([self.residual[0, 0][i[0], i[1], i[2]] for i in index])[:, None]
        alpha, sigma = (v.reshape(-1, 1, 1, 1, 1) for v in self.schedule.alpha_sigma(t, x.shape[-1]))
        noise = (x - alpha * x0) / sigma
        return alpha * noise - sigma * x0


def test_an_oracle_network_makes_super_resolution_return_the_true_high_resolution_ct():
    generator = torch.Generator().manual_seed(0)
    high = torch.nn.functional.avg_pool3d(torch.rand((1, 1, 64, 64, 64), generator=generator), 2)  # 32^3
    high = high.clamp(0.0, 1.0)
    low = torch.nn.functional.avg_pool3d(high, 4)
    sr = PatchSuperResolution(OracleResidual(high, 4.5), passes=1, patch_size=16, steps=3, residual_scale=4.5)
    out = sr(low)
    assert out.shape == (1, 1, 32, 32, 32)
    assert float((out - high).abs().max()) < 1e-4
    assert sr.nfe == 3 * 27  # 27 windows of 16^3 (overlap 0.25) per step


def test_the_shipped_size_network_supersamples_deterministically_per_seed():
    network = patch_super_resolution_network("phantom_cpu").eval()
    low = torch.rand((1, 1, 8, 8, 8), generator=torch.Generator().manual_seed(1))
    sr = PatchSuperResolution(network, passes=1, patch_size=16, steps=2)
    first, again, other = sr(low, seed=3), sr(low, seed=3), sr(low, seed=4)
    assert first.shape == (1, 1, 32, 32, 32) and 0.0 <= float(first.min()) and float(first.max()) <= 1.0
    assert torch.equal(first, again) and not torch.equal(first, other)
    with pytest.raises(InputError) as error:
        sr(torch.zeros(1, 1, 8, 8, 4))
    assert error.value.source == "low"


class TinyCascade(torch.nn.Module):
    """Stands in for BiplanarCTDiffusion: a prediction that depends on x_t, so the seed matters."""

    def forward(self, x, timesteps, views, pixel_spacing, slice_thickness):
        return [0.5 * v + 0.1 * views.mean() for v in x]


def _sample(**options):
    inferer = NestedCTInferer([8], steps=3, **options)
    views = torch.rand((1, 2, 16, 16), generator=torch.Generator().manual_seed(2))
    return inferer(views, TinyCascade(), pixel_spacing=torch.tensor([2.0]), slice_thickness=torch.tensor([1.0]))


def test_uncertainty_is_zero_for_identical_seeds_and_positive_otherwise():
    same = _sample(sample_seeds=[3, 3])
    differing = _sample(sample_seeds=[3, 4])
    assert same.shape == differing.shape == (1, 2, 8, 8, 8)
    assert float(same[:, 1].abs().max()) == 0.0
    assert float(differing[:, 1].min()) >= 0.0 and float(differing[:, 1].mean()) > 1e-3
    one, two = _sample(seed=3), _sample(seed=4)
    assert torch.allclose(differing[:, :1], (one + two) / 2, atol=1e-6)
    assert torch.allclose(differing[:, 1:], (one - two).abs() / np.sqrt(2.0), atol=1e-6)  # std of two, ddof 1
    assert _sample(samples=3).shape == (1, 2, 8, 8, 8) and _sample().shape == (1, 1, 8, 8, 8)


@pytest.fixture(scope="module")
def prepared_knee(tmp_path_factory):
    from orthogen.data.biplanar_conditioning import BiplanarConditioningd
    from orthogen.data.biplanar_input import LoadBiplanarInputd
    from orthogen.data.case_layout import write_case
    from orthogen.data.knee_ct_prepare import KneeCTPreparation, prepare_knee_ct
    from orthogen.phantoms import KneePhantom

    root = tmp_path_factory.mktemp("guided")
    p = KneePhantom.from_seed(5).render(shape=(48, 48, 48), spacing=(3.0, 3.0, 3.0))
    write_case(p.volume_hu, p.labels, p.affine, root / "phantoms", "knee_0005")
    prepare_knee_ct(root / "phantoms", root / "data", KneeCTPreparation(size=32, drr_size=32, split=(1, 0, 0)))
    item = json.loads((root / "data" / "datalist.json").read_text())["training"][0]
    loaded = BiplanarConditioningd()(LoadBiplanarInputd(size=32, require_label=True)({"h5": str(root / "data" / item["h5"])}))
    ct = torch.as_tensor(loaded["label"])[0].float()
    return (ct.clamp(-1024, 1476) + 1024) / 2500 * 2 - 1, torch.as_tensor(loaded["image"]).float(), \
        float(loaded["pixel_spacing"])


def test_guidance_renders_the_true_ct_onto_its_own_input_views(prepared_knee):
    x0, views, spacing = prepared_knee
    rendered = ProjectionGuidance(0.02).views_of(x0, spacing, views.shape[-1])
    assert [radiograph_psnr(rendered[i].numpy(), views[i].numpy()) > 60.0 for i in range(2)] == [True, True]


def test_guidance_steps_raise_the_re_projection_psnr_of_a_wrong_estimate(prepared_knee):
    x0, views, spacing = prepared_knee
    guidance = ProjectionGuidance(0.5)
    correct = guidance.correction(views[None], torch.tensor([spacing]))
    estimate = [torch.nn.functional.avg_pool3d(x0[None, None], 4).mean().expand(1, 1, 32, 32, 32).clone()]

    def psnr(volume):
        rendered = guidance.views_of(volume[0, 0], spacing, views.shape[-1])
        return np.mean([radiograph_psnr(rendered[i].numpy(), views[i].numpy()) for i in range(2)])

    before = psnr(estimate[0])
    for _ in range(10):
        estimate = correct(estimate, torch.tensor([0.5]))
    assert psnr(estimate[0]) > before + 3.0
    assert ProjectionGuidance(0.0).correction(views[None], torch.tensor([spacing])) is None
    with pytest.raises(InputError) as error:
        ProjectionGuidance(-1.0)
    assert error.value.source == "guidance_weight"
