"""The paper-size X2CT-GAN (128^3, as paper_scale.json builds it) runs forward and backward: slow on CPU."""
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser

from orthogen.networks.x2ct_gan import count_parameters

pytestmark = pytest.mark.slow
CONFIGS = Path(__file__).resolve().parents[2] / "bundles" / "spine_x2ct_gan" / "configs"


def test_paper_scale_builds_the_paper_network_and_it_trains_one_step():
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / f) for f in ("train.json", "paper_scale.json")])
    generator = parser.get_parsed_content("network_def")
    discriminator = parser.get_parsed_content("discriminator_def")
    assert count_parameters(generator) == 61_715_633  # the reference's fused-output generator
    radiographs = torch.rand(1, 2, 128, 128)
    ct = generator(radiographs)
    assert ct.shape == (1, 1, 128, 128, 128) and float(ct.min()) >= 0.0
    logits = discriminator(ct, radiographs[:, :1], radiographs[:, 1:])
    assert logits.shape == (1, 1, 17, 17, 17)
    (ct.mean() + logits.mean()).backward()
    assert all(p.grad is not None for p in generator.parameters())
