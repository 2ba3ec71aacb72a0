"""The nested (Matryoshka) 3D denoiser: shapes per resolution, MONAI core, progressive stages, presets, bad inputs."""
import pytest
import torch
from monai.networks.nets import DiffusionModelUNet
from monai.networks.nets.diffusion_model_unet import SpatialTransformer

from orthogen.errors import InputError
from orthogen.networks import NESTED_UNET3D_PRESETS, ConditionedDiffusionUNet, NestedUNet3D, nested_denoiser

# The phantom_cpu plan, narrowed: an 8^3 core with two levels (attention at 4^3), outer widths 8.
TINY = dict(channels=(8, 16), attention_levels=(False, True), num_head_channels=8, norm_num_groups=4,
            cross_attention_dim=16, outer_channels=(8, 8))


def count(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def tiny(resolutions, seed=0):
    torch.manual_seed(seed)
    return nested_denoiser("phantom_cpu", resolutions, **TINY).eval()


def perturb(module, seed=1, skip=()):
    """Random weights everywhere (zero-initialised layers would hide the structure), except names containing skip."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if not any(s in name for s in skip):
                parameter.copy_(0.1 * torch.randn(parameter.shape, generator=generator))
    return module


def inputs(resolutions, batch=2, tokens=5, dim=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = [torch.randn(batch, 1, r, r, r, generator=g) for r in resolutions]
    t = torch.tensor([10.0, 700.0][:batch])
    context = torch.randn(batch, tokens, dim, generator=g)
    return x, t, context, torch.tensor([0.3, 0.5][:batch]), torch.tensor([1.0, 2.5][:batch])


@pytest.mark.parametrize("resolutions", [(8,), (8, 16), (8, 16, 32)])
def test_one_prediction_per_resolution(resolutions):
    network = perturb(tiny(resolutions))
    with torch.no_grad():
        out = network(*inputs(resolutions))
    assert [tuple(o.shape) for o in out] == [(2, 1, r, r, r) for r in resolutions]
    assert all(torch.isfinite(o).all() for o in out)
    # a prefix of the resolutions runs only those levels
    with torch.no_grad():
        prefix = network(*inputs(resolutions[:1]))
    assert len(prefix) == 1 and prefix[0].shape == (2, 1, 8, 8, 8)


def test_core_is_monai_diffusion_model_unet():
    network = perturb(tiny((8,)))
    core = network.core
    assert isinstance(core, ConditionedDiffusionUNet) and isinstance(core, DiffusionModelUNet)
    x, t, context, _, _ = inputs((8,))
    with torch.no_grad():  # without extra embedding, the subclass computes exactly MONAI's forward
        assert torch.equal(core(x[0], t, context), DiffusionModelUNet.forward(core, x[0], t, context))
    # and MONAI's own class loads its weights unchanged
    monai_net = DiffusionModelUNet(spatial_dims=3, in_channels=1, out_channels=1, num_res_blocks=1, channels=(8, 16),
                                   attention_levels=(False, True), norm_num_groups=4, num_head_channels=8,
                                   with_conditioning=True, cross_attention_dim=16).eval()
    monai_net.load_state_dict(core.state_dict())
    with torch.no_grad():
        assert torch.equal(monai_net(x[0], t, context), core(x[0], t, context))


def test_conditioning_reaches_the_outputs():
    network = perturb(tiny((8, 16)))
    x, t, context, spacing, thickness = inputs((8, 16))
    with torch.no_grad():
        base = network(x, t, context, spacing, thickness)
        other_context = network(x, t, context + 1.0, spacing, thickness)
        other_spacing = network(x, t, context, spacing * 2, thickness)
        other_thickness = network(x, t, context, spacing, thickness * 2)
        other_time = network(x, t + 100, context, spacing, thickness)
    for changed in (other_context, other_spacing, other_thickness, other_time):
        assert all(not torch.allclose(a, b) for a, b in zip(base, changed))
    # cross-attention lives in the core only (low-resolution levels); the outer levels have none
    assert any(isinstance(m, SpatialTransformer) for m in network.core.modules())
    assert not any(isinstance(m, SpatialTransformer) for m in network.outer_levels.modules())


def test_spacing_embedding_starts_as_a_no_op():
    network = tiny((8,))
    x, t, context, spacing, thickness = inputs((8,))
    with torch.no_grad():
        assert torch.equal(network(x, t, context, spacing, thickness)[0], network(x, t, context, 4.0, 0.1)[0])


def test_progressive_stage_loads_and_keeps_the_inner_output():
    stage32 = perturb(tiny((8,)))
    stage64 = tiny((8, 16), seed=5)
    left = stage64.load_inner_stage(stage32.state_dict())
    assert left and all(k.startswith("outer_levels.0.") for k in left)
    own = stage64.state_dict()
    assert all(torch.equal(own[k], v) for k, v in stage32.state_dict().items())  # inner weights arrive unchanged
    x, t, context, spacing, thickness = inputs((8, 16))
    with torch.no_grad():
        low = stage32(x[:1], t, context, spacing, thickness)[0]
        both = stage64(x, t, context, spacing, thickness)
        assert torch.equal(both[0], low)
        assert torch.count_nonzero(both[1]) == 0  # the new head starts at zero
        # any outer weights: as long as the outer input path (in_adapter) is zero, the 8^3 output is the stage's
        perturb(stage64.outer_levels, seed=3, skip=("in_adapter",))
        assert torch.equal(stage64(x, t, context, spacing, thickness)[0], low)
        perturb(stage64.outer_levels, seed=4)  # and the path is live once in_adapter has weights
        assert not torch.allclose(stage64(x, t, context, spacing, thickness)[0], low)
    # next stage: (8, 16) -> (8, 16, 32)
    stage128 = tiny((8, 16, 32))
    left = stage128.load_inner_stage(stage64.state_dict())
    assert left and all(k.startswith("outer_levels.1.") for k in left)
    x3, *_ = inputs((8, 16, 32))
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(stage128(x3, t, context, spacing, thickness)[:2],
                                                     stage64(x3[:2], t, context, spacing, thickness)))


def test_load_inner_stage_refuses_what_does_not_fit():
    stage64 = tiny((8, 16))
    with pytest.raises(InputError, match="^state_dict: expected keys of a network"):
        tiny((8,)).load_inner_stage(stage64.state_dict())  # a later stage into an earlier one
    wider = nested_denoiser("phantom_cpu", (8,), **{**TINY, "channels": (12, 16), "norm_num_groups": 4})
    with pytest.raises(InputError, match="^state_dict: expected core.conv_in.conv.weight of shape"):
        stage64.load_inner_stage(wider.state_dict())
    partial = {k: v for k, v in tiny((8,)).state_dict().items() if not k.startswith("spacing_embedding.")}
    with pytest.raises(InputError, match="^state_dict: expected every inner-stage weight, got none for 'spacing"):
        stage64.load_inner_stage(partial)


def test_phantom_cpu_preset_at_32():
    torch.manual_seed(0)
    network = nested_denoiser("phantom_cpu", (32,)).eval()
    assert 2_500_000 < count(network) < 3_500_000
    x = [torch.randn(1, 1, 32, 32, 32)]
    with torch.no_grad():
        out = network(x, torch.tensor([500.0]), torch.randn(1, 128, 64), 0.4, 1.0)
    assert out[0].shape == (1, 1, 32, 32, 32)
    full = nested_denoiser("phantom_cpu", (32, 64, 128))
    assert 2_500_000 < count(full) < 3_500_000  # ~3 M over all three resolutions


def test_paper_preset_on_meta():
    with torch.device("meta"):
        network = nested_denoiser("paper", (32, 64, 128))
        out = network([torch.empty(1, 1, r, r, r) for r in (32, 64, 128)], torch.empty(1), torch.empty(1, 128, 512),
                      torch.empty(1), torch.empty(1))
    assert 380e6 < count(network) < 450e6  # the seed's ~400 M
    assert [tuple(o.shape) for o in out] == [(1, 1, r, r, r) for r in (32, 64, 128)]


@pytest.mark.parametrize(
    "change, argument",
    [
        (lambda a: {**a, "x": a["x"][0]}, "x"),
        (lambda a: {**a, "x": [a["x"][0][:, :, :4]]}, r"x\[0\]"),
        (lambda a: {**a, "x": [a["x"][0], torch.zeros(2, 1, 8, 8, 8)]}, r"x\[1\]"),
        (lambda a: {**a, "x": a["x"] + [torch.zeros(2, 1, 32, 32, 32)]}, "x"),
        (lambda a: {**a, "timesteps": torch.zeros(3)}, "timesteps"),
        (lambda a: {**a, "context": torch.zeros(2, 5, 7)}, "context"),
        (lambda a: {**a, "pixel_spacing": torch.tensor([0.3, -0.5])}, "pixel_spacing"),
        (lambda a: {**a, "slice_thickness": 0.0}, "slice_thickness"),
        (lambda a: {**a, "slice_thickness": torch.ones(3)}, "slice_thickness"),
        (lambda a: {**a, "pixel_spacing": float("nan")}, "pixel_spacing"),
    ],
)
def test_bad_inputs_name_the_argument(change, argument):
    network = tiny((8, 16))
    x, t, context, spacing, thickness = inputs((8, 16))
    arguments = change(dict(x=x, timesteps=t, context=context, pixel_spacing=spacing, slice_thickness=thickness))
    with pytest.raises(InputError, match=f"^{argument}: expected") as error:
        network(**arguments)
    assert "\n" not in str(error.value)


def test_bad_construction():
    with pytest.raises(InputError, match="^preset: expected one of"):
        nested_denoiser("huge")
    with pytest.raises(InputError, match="^overrides: expected keys"):
        nested_denoiser("phantom_cpu", depth=3)
    with pytest.raises(InputError, match="^resolutions: expected sizes doubling"):
        NestedUNet3D(resolutions=(32, 48), **{k: v for k, v in NESTED_UNET3D_PRESETS["phantom_cpu"].items()})
    with pytest.raises(InputError, match="^resolutions: expected at most 3 resolutions"):
        nested_denoiser("phantom_cpu", (32, 64, 128, 256))
    with pytest.raises(InputError, match="^resolutions: expected sizes doubling from a multiple of 4"):
        nested_denoiser("phantom_cpu", (30,))
