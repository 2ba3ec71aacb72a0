"""NCSN++ score network and the U-Net baseline: shapes, scale by sigma, the Fourier embedding, the presets."""
import inspect
import math

import pytest
import torch
from diffusers.models.attention_processor import Attention
from diffusers.models.resnet import ResnetBlock2D

from orthogen.errors import InputError
from orthogen.networks import NCSNPP_PRESETS, NCSNpp, SegmentationToRadiographUNet
from orthogen.networks.ncsnpp import count_parameters

CPU_PRESET = {**NCSNPP_PRESETS["phantom_cpu"], "spatial_dims": 2, "image_size": 64}
PAPER_SCALE = {**NCSNPP_PRESETS["paper"], "spatial_dims": 2, "image_size": 256}
# The CPU preset at a quarter of its width: the structure tests do not need the full width.
TINY = {**CPU_PRESET, "channels": (8, 16, 16, 16)}


def images(batch: int, channels: int, size: int, seed: int) -> torch.Tensor:
    return torch.randn(batch, channels, size, size, generator=torch.Generator().manual_seed(seed))


def built(cls, seed: int = 0, **arguments):
    torch.manual_seed(seed)
    return cls(**arguments).eval()


def perturb(network: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    """Give every trainable weight a random value: zero-initialised layers would hide the structure."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in network.parameters():
            if parameter.requires_grad:
                parameter.copy_(0.1 * torch.randn(parameter.shape, generator=generator))
    return network


@pytest.mark.parametrize("in_channels", [1, 2])
def test_cpu_preset_output_shape(in_channels):
    network = built(NCSNpp, in_channels=in_channels, out_channels=1, **CPU_PRESET)
    with torch.no_grad():
        score = network(images(2, in_channels, 64, seed=0), torch.tensor([0.5, 20.0]))
    assert score.shape == (2, 1, 64, 64)
    assert torch.isfinite(score).all()


def test_cpu_preset_size_and_attention_at_16():
    network = built(NCSNpp, in_channels=2, **CPU_PRESET)
    assert count_parameters(network) == 2_478_017
    seen = []
    for module in network.modules():
        if isinstance(module, Attention):
            module.register_forward_hook(lambda m, args, out: seen.append(tuple(out.shape[-2:])))
    with torch.no_grad():
        network(images(1, 2, 64, seed=0), 1.0)
    # two encoder blocks and one decoder block at 16x16, NCSN++'s middle attention at the 8x8 bottom
    assert sorted(seen) == [(8, 8), (16, 16), (16, 16), (16, 16)]
    assert [size for _, size in network.backbone.attention_layers()] == [16, 16, 8, 16]


def test_output_is_backbone_output_divided_by_sigma():
    network = perturb(built(NCSNpp, in_channels=2, **TINY))
    captured = {}
    network.backbone.register_forward_hook(lambda m, args, out: captured.update(out=out))
    sigma = torch.tensor([2.0, 0.25])
    with torch.no_grad():
        score = network(images(2, 2, 64, seed=3), sigma)
    torch.testing.assert_close(score, captured["out"] / sigma.reshape(2, 1, 1, 1))


def test_scale_by_sigma_against_unscaled_network():
    scaled = perturb(built(NCSNpp, in_channels=1, scale_by_sigma=True, **TINY))
    unscaled = built(NCSNpp, in_channels=1, scale_by_sigma=False, **TINY)
    unscaled.load_state_dict(scaled.state_dict())
    x = images(2, 1, 64, seed=4)
    with torch.no_grad():
        torch.testing.assert_close(scaled(x, 2.0), unscaled(x, 2.0) / 2)
        # one value for the batch is the same as that value per sample
        torch.testing.assert_close(scaled(x, 2.0), scaled(x, torch.tensor([2.0, 2.0])))
        # the noise level does condition the network
        assert not torch.allclose(unscaled(x, 2.0), unscaled(x, 3.0))


def test_fourier_embedding_is_log_sigma_features_fixed_by_the_seed():
    first, again, other = (built(NCSNpp, seed=s, in_channels=2, **TINY) for s in (7, 7, 8))
    projection = first.fourier_projection
    frequencies = projection.weight
    assert frequencies.shape == (TINY["channels"][0],) and not frequencies.requires_grad
    assert torch.equal(frequencies, again.fourier_projection.weight)
    assert not torch.equal(frequencies, other.fourier_projection.weight)
    assert "fourier_projection.weight" in first.state_dict()  # the fixed frequencies travel with the weights

    sigma = torch.tensor([0.01, 1.0, 50.0])
    angles = torch.log(sigma)[:, None] * frequencies[None, :] * 2 * math.pi  # diffusers' order of products
    expected = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    torch.testing.assert_close(projection(sigma), expected)
    torch.testing.assert_close(projection(sigma), projection(sigma.clone()))


def test_unet_baseline_has_no_noise_input():
    unet = perturb(built(SegmentationToRadiographUNet, in_channels=1, **TINY))
    assert list(inspect.signature(unet.forward).parameters) == ["condition"]
    blocks = [m for m in unet.modules() if isinstance(m, ResnetBlock2D)]
    assert blocks and all(block.time_emb_proj is None for block in blocks)
    assert not hasattr(unet, "fourier_projection") and not hasattr(unet, "embedding")
    condition = images(2, 1, 64, seed=5)
    with torch.no_grad():
        radiograph = unet(condition)
        assert radiograph.shape == (2, 1, 64, 64)
        torch.testing.assert_close(radiograph, unet(condition))
    with pytest.raises(TypeError):
        unet(condition, torch.tensor([1.0, 1.0]))


def test_backward_reaches_every_trainable_parameter():
    network = built(NCSNpp, in_channels=2, **TINY).train()
    network(images(2, 2, 64, seed=6), torch.tensor([0.1, 10.0])).abs().mean().backward()
    missing = [name for name, p in network.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing


def test_paper_scale_builds_with_the_seed_plan():
    network = built(NCSNpp, in_channels=2, out_channels=1, **PAPER_SCALE)
    backbone = network.backbone
    assert backbone.resolutions == (256, 128, 64, 32, 16, 8)
    assert backbone.channels == (64, 128, 128, 128, 128, 256)
    encoder_widths = [stage.resnets[-1].out_channels for stage in backbone.down]
    assert encoder_widths == [64, 128, 128, 128, 128, 256]
    assert all(len(stage.resnets) == 2 for stage in backbone.down)
    assert all(len(stage.resnets) == 3 for stage in backbone.up)
    # attention only at 16x16, plus NCSN++'s fixed middle-block attention at the 8x8 bottom
    attention = backbone.attention_layers()
    assert [size for _, size in attention] == [16, 16, 8, 16]
    assert sum(isinstance(m, Attention) for m in network.modules()) == len(attention)
    assert count_parameters(network) == 24_420_225
    assert count_parameters(built(NCSNpp, in_channels=1, **PAPER_SCALE)) == 24_419_649
    assert count_parameters(built(SegmentationToRadiographUNet, in_channels=1, **PAPER_SCALE)) == 22_774_721


@pytest.mark.slow
def test_paper_scale_forward_at_256():
    network = built(NCSNpp, in_channels=2, **PAPER_SCALE)
    with torch.no_grad():
        score = network(images(1, 2, 256, seed=0), 5.0)
    assert score.shape == (1, 1, 256, 256)
    assert torch.isfinite(score).all()


def test_bad_arguments_raise_one_line_errors():
    network = built(NCSNpp, in_channels=2, **TINY)
    with pytest.raises(InputError, match="x"):
        network(images(1, 1, 64, seed=0), 1.0)
    with pytest.raises(InputError, match="divisible by 8"):
        network(images(1, 2, 60, seed=0), 1.0)
    with pytest.raises(InputError, match="sigma"):
        network(images(2, 2, 64, seed=0), torch.tensor([1.0, 2.0, 3.0]))
    with pytest.raises(InputError, match="attention_resolutions"):
        NCSNpp(in_channels=2, **{**TINY, "attention_resolutions": (12,)})
    with pytest.raises(InputError, match="spatial_dims"):
        NCSNpp(**{**TINY, "spatial_dims": 3})
