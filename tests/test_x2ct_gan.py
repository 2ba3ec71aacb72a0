"""X2CT-GAN networks and losses: shapes, the orientation contract, gradients, hand-checked losses."""
import pytest
import torch
from monai.losses import PatchAdversarialLoss

from orthogen.errors import InputError
from orthogen.losses import ProjectionL1Loss, X2CTLossWeights
from orthogen.networks import X2CTDiscriminator, X2CTGenerator
from orthogen.networks.view_geometry import ct_to_view, expand_along_depth, expand_view_to_ct, fuse_views
from orthogen.networks.x2ct_gan import count_parameters

SMALL_32 = dict(
    in_size=32, base_channels=8, num_dense_layers=(2, 2, 2, 2), growth_rate=8, decoder_channels=(4, 8, 16, 16, 32)
)


@pytest.fixture(scope="module")
def generator() -> X2CTGenerator:
    torch.manual_seed(0)
    return X2CTGenerator(**SMALL_32)


def radiographs(batch: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 1, size, size, generator=generator), torch.rand(batch, 1, size, size, generator=generator)


def test_generator_output_shape_and_range(generator):
    ap, lateral = radiographs(2, 32, seed=1)
    ct = generator(ap, lateral)
    assert ct.shape == (2, 1, 32, 32, 32)
    assert ct.min() >= 0 and ct.max() > 0


def test_single_tensor_call_equals_two_view_call(generator):
    ap, lateral = radiographs(1, 32, seed=2)
    generator.eval()
    with torch.no_grad():
        assert torch.equal(generator(torch.cat([ap, lateral], dim=1)), generator(ap, lateral))
    generator.train()


def test_gradients_reach_both_encoders_and_every_parameter(generator):
    generator.zero_grad()
    ap, lateral = radiographs(1, 32, seed=3)
    generator(ap, lateral).mean().backward()
    for view in ("AP", "lateral"):
        stem_grad = generator.branches[view].encoder.stem[1].weight.grad
        assert stem_grad is not None and stem_grad.abs().sum() > 0
    unused = [name for name, p in generator.named_parameters() if p.grad is None]
    assert unused == []


@pytest.mark.parametrize("size, row, col", [(8, 2, 5), (8, 7, 0)])
def test_orientation_contract_through_fusion(size, row, col):
    # AP pixel (r, c) must land on CT voxels (r, :, c); lateral pixel (r, c) on (r, c, :).
    image = torch.zeros(1, 1, size, size)
    image[0, 0, row, col] = 2.0
    empty = torch.zeros_like(image)
    expected_ap = torch.zeros(1, 1, size, size, size)
    expected_ap[0, 0, row, :, col] = 1.0  # the average of 2 (AP) and 0 (lateral)
    expected_lateral = torch.zeros(1, 1, size, size, size)
    expected_lateral[0, 0, row, col, :] = 1.0
    assert torch.equal(fuse_views(expand_along_depth(image), expand_along_depth(empty)), expected_ap)
    assert torch.equal(fuse_views(expand_along_depth(empty), expand_along_depth(image)), expected_lateral)
    # The discriminator's condition uses the same back-projection.
    assert torch.equal(expand_view_to_ct(image, "AP"), 2 * expected_ap)
    assert torch.equal(expand_view_to_ct(image, "lateral"), 2 * expected_lateral)


def test_fused_volume_returns_to_each_view_frame():
    volume = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(1, 2, 3, 4, 5)  # (B, C, D, H, W)
    assert ct_to_view(volume, "AP").shape == (1, 2, 4, 3, 5)  # (depth H, row D, col W)
    assert ct_to_view(volume, "lateral").shape == (1, 2, 5, 3, 4)  # (depth W, row D, col H)
    assert ct_to_view(volume, "AP")[0, 1, 2, 1, 3] == volume[0, 1, 1, 2, 3]
    assert ct_to_view(volume, "lateral")[0, 1, 3, 1, 2] == volume[0, 1, 1, 2, 3]


def test_generator_rejects_bad_inputs(generator):
    ap, lateral = radiographs(1, 32, seed=4)
    with pytest.raises(InputError, match="lateral"):
        generator(ap, lateral[..., :16])
    with pytest.raises(InputError, match=r"^x: expected one tensor"):
        generator(torch.rand(1, 3, 32, 32))
    with pytest.raises(InputError, match="in_size"):
        X2CTGenerator(**{**SMALL_32, "in_size": 36})
    with pytest.raises(InputError, match="decoder_channels"):
        X2CTGenerator(**{**SMALL_32, "decoder_channels": (4, 8, 16, 16)})


def test_parameter_counts_are_the_documented_ones(generator):
    # Default = the reference's 128^3 multi-view generator (its fused-output path); see module docstring.
    assert count_parameters(X2CTGenerator()) == 61_715_633
    assert count_parameters(X2CTDiscriminator()) == 11_055_169
    assert count_parameters(generator) == 361_203


def test_discriminator_patch_logits_depend_on_the_condition():
    torch.manual_seed(0)
    discriminator = X2CTDiscriminator(base_channels=8)
    ct = torch.rand(2, 1, 32, 32, 32)
    ap, lateral = radiographs(2, 32, seed=5)
    logits = discriminator(ct, ap, lateral)
    assert logits.shape == (2, 1, 5, 5, 5)
    assert not torch.allclose(discriminator(ct, torch.zeros_like(ap), lateral), logits)
    with pytest.raises(InputError, match="ap"):
        discriminator(ct, ap[..., :16, :16], lateral)


def test_projection_l1_loss_by_hand():
    target = torch.zeros(1, 1, 2, 2, 2)
    target[0, 0, 0, 0, 0] = 1.0
    shifted = torch.zeros_like(target)
    shifted[0, 0, 1, 0, 0] = 1.0  # the same voxel, moved along D
    # Projection along D: both 0.5 at (H, W) = (0, 0) -> L1 0.
    # Along H: target 0.5 at (D, W) = (0, 0), prediction 0.5 at (1, 0) -> two entries of 0.5 over 4 -> 0.25.
    # Along W: the same, 0.25. Mean over the three axes: (0 + 0.25 + 0.25) / 3 = 1/6.
    loss = ProjectionL1Loss()
    assert loss(shifted, target).item() == pytest.approx(1 / 6)
    assert loss(torch.zeros_like(target), target).item() == pytest.approx(0.125)  # 0.5 / 4 on every axis
    assert loss(-target, target).item() == 0.0  # projections of |v|, as in the reference
    with pytest.raises(InputError):
        loss(target, target[..., :1])


def test_loss_weights_and_lsgan_are_the_references():
    weights = X2CTLossWeights()
    assert (weights.adversarial, weights.voxel_mse, weights.projection_l1) == (0.1, 10.0, 10.0)
    logits = torch.tensor([[[[[0.5, -1.0], [2.0, 0.0]]]]])
    lsgan = PatchAdversarialLoss(criterion="least_squares", no_activation_leastsq=True)
    # Real target 1: ((0.5-1)^2 + (-2)^2 + 1^2 + (-1)^2) / 4 = (0.25 + 4 + 1 + 1) / 4.
    assert lsgan(logits, target_is_real=True, for_discriminator=False).item() == pytest.approx(6.25 / 4)
    # Fake target 0: (0.25 + 1 + 4 + 0) / 4.
    assert lsgan(logits, target_is_real=False, for_discriminator=True).item() == pytest.approx(5.25 / 4)
