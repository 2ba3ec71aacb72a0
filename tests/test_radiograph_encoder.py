"""The ConvNeXt-style (MedNeXt blocks) bi-planar radiograph encoder: tokens, view and position embeddings, presets."""
import pytest
import torch
from monai.networks.blocks import MedNeXtBlock

from orthogen.errors import InputError
from orthogen.networks import RADIOGRAPH_ENCODER_PRESETS, RadiographEncoder, radiograph_encoder
from orthogen.networks.radiograph_encoder import sincos_position_embedding_2d

TINY = dict(channels=(8, 16), depths=(1, 1), token_dim=16, stem_stride=4)


def count(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def views(batch=2, size=32, seed=0):
    return torch.rand(batch, 2, size, size, generator=torch.Generator().manual_seed(seed))


def test_tokens_shape_and_separate_views_match_stacked():
    torch.manual_seed(0)
    encoder = RadiographEncoder(**TINY).eval()
    x = views()
    tokens = encoder(x)
    assert tokens.shape == (2, 2 * 4 * 4, 16)  # 32 / (4 * 2) = 4 tokens per axis, two views
    assert encoder.num_tokens(32, 32) == 32
    assert torch.equal(encoder(x[:, :1], x[:, 1:]), tokens)  # AP and lateral as (B, 1, H, W)
    assert torch.equal(encoder(x[:, 0], x[:, 1]), tokens)  # or as (B, H, W)
    assert torch.isfinite(tokens).all()
    rectangular = encoder(torch.rand(1, 2, 32, 64))
    assert rectangular.shape == (1, 2 * 4 * 8, 16)


def test_view_embedding_tells_the_views_apart():
    torch.manual_seed(0)
    encoder = RadiographEncoder(**TINY).eval()
    same = views(batch=1)[:, :1].expand(1, 2, 32, 32)  # the same image as AP and as lateral
    tokens = encoder(same)
    ap, lateral = tokens[:, :16], tokens[:, 16:]
    assert not torch.allclose(ap, lateral)
    with torch.no_grad():
        encoder.view_embedding.zero_()
    tokens = encoder(same)
    assert torch.allclose(tokens[:, :16], tokens[:, 16:])


def test_position_embedding_is_distinct_per_position():
    emb = sincos_position_embedding_2d(4, 6, 16)
    assert emb.shape == (24, 16)
    assert torch.cdist(emb, emb).add(torch.eye(24) * 10).min() > 1e-3  # every pair of positions differs
    # row-major: the first half encodes the row, the second the column
    assert torch.equal(emb[0, :8], emb[5, :8]) and not torch.equal(emb[0, 8:], emb[5, 8:])


def test_built_from_mednext_blocks_and_gradients_flow():
    torch.manual_seed(0)
    encoder = RadiographEncoder(**TINY)
    assert any(isinstance(m, MedNeXtBlock) for m in encoder.modules())
    encoder(views()).square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in encoder.parameters())


def test_presets():
    assert count(radiograph_encoder("phantom_cpu")) == 111_456
    with torch.device("meta"):
        paper = radiograph_encoder("paper")
    assert count(paper) == 29_405_056
    assert set(RADIOGRAPH_ENCODER_PRESETS) == {"phantom_cpu", "paper"}
    phantom = radiograph_encoder("phantom_cpu").eval()
    assert phantom(torch.rand(1, 2, 128, 128)).shape == (1, 128, 64)


@pytest.mark.parametrize(
    "call, argument",
    [
        (lambda e: e(torch.rand(1, 3, 32, 32)), "views"),
        (lambda e: e(torch.rand(1, 2, 30, 32)), "views"),
        (lambda e: e(torch.rand(1, 2, 32, 32) * 2), "views"),
        (lambda e: e(torch.rand(1, 2, 32, 32) - 0.5), "views"),
        (lambda e: e(torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 64)), "lateral"),
        (lambda e: e(torch.rand(1, 2, 32, 32), torch.rand(1, 1, 32, 32)), "ap"),
    ],
)
def test_bad_inputs_name_the_argument(call, argument):
    encoder = RadiographEncoder(**TINY)
    with pytest.raises(InputError, match=f"^{argument}: expected"):
        call(encoder)


def test_bad_preset_and_overrides():
    with pytest.raises(InputError, match="^preset: expected one of"):
        radiograph_encoder("huge")
    with pytest.raises(InputError, match="^overrides: expected keys"):
        radiograph_encoder("phantom_cpu", width=3)
    with pytest.raises(InputError, match="^depths: expected one depth per stage"):
        RadiographEncoder(channels=(8, 16), depths=(1,))
