"""Back-projected views for the knee CT diffusion network: the orientation contract, the area resize, the
``*_views`` presets, and CT-only weights loading into the back-projecting network unchanged."""
import pytest
import torch

from orthogen.errors import InputError
from orthogen.networks import biplanar_ct_diffusion
from orthogen.networks.biplanar_ct_diffusion import BiplanarCTDiffusion
from orthogen.networks.nested_unet3d import nested_denoiser
from orthogen.networks.radiograph_encoder import radiograph_encoder
from orthogen.networks.view_geometry import backprojected_views


def test_an_ap_pixel_lights_its_ray_along_h_and_a_lateral_pixel_its_ray_along_w():
    views = torch.zeros(1, 2, 8, 8)
    views[0, 0, 2, 5] = 1.0  # AP row 2 (D), column 5 (W)
    views[0, 1, 6, 1] = 1.0  # lateral row 6 (D), column 1 (H)
    volume = backprojected_views(views, 8)
    assert volume.shape == (1, 2, 8, 8, 8)
    ap = torch.zeros(8, 8, 8)
    ap[2, :, 5] = 1.0
    lateral = torch.zeros(8, 8, 8)
    lateral[6, 1, :] = 1.0
    assert torch.equal(volume[0, 0], ap) and torch.equal(volume[0, 1], lateral)


def test_views_are_area_averaged_to_the_grid():
    views = torch.rand(2, 2, 32, 32, generator=torch.Generator().manual_seed(0))
    volume = backprojected_views(views, 8)
    assert volume.shape == (2, 2, 8, 8, 8)
    block = views[1, 0, 4:8, 12:16].mean()  # AP pixel (1, 3) of the 8 x 8 grid
    assert torch.allclose(volume[1, 0, 1, :, 3], block.expand(8))
    assert torch.allclose(volume.mean(dim=(2, 3, 4)), views.mean(dim=(2, 3)), atol=1e-6)


def test_ct_only_weights_load_into_the_views_network_with_the_same_predictions_until_trained():
    torch.manual_seed(0)
    plain, views_net = biplanar_ct_diffusion("phantom_cpu", (8, 16)), biplanar_ct_diffusion("phantom_cpu_views", (8, 16))
    assert views_net.denoiser.in_channels == 3 and plain.denoiser.in_channels == 1
    with torch.no_grad():  # give the zero-initialised heads and adapters weights, so every output is live
        for p in plain.parameters():
            p.add_(0.01 * torch.randn_like(p))
    assert views_net.load_inner_stage(plain.state_dict()) == []
    x = [torch.randn(1, 1, 8, 8, 8), torch.randn(1, 1, 16, 16, 16)]
    args = (torch.tensor([300.0]), torch.rand(1, 2, 32, 32), 1.0, 2.0)
    with torch.no_grad():
        for a, b in zip(plain(x, *args), views_net(x, *args)):
            assert torch.equal(a, b) and a.abs().max() > 0
        conv = views_net.denoiser.core.conv_in.conv.weight
        assert torch.count_nonzero(conv[:, 1:]) == 0
        conv[:, 1:] = 0.1  # trained view channels: the prediction now reads the back-projection
        brighter = (args[0], 0.5 + 0.5 * args[1], *args[2:])
        assert not torch.allclose(views_net(x, *args)[0], views_net(x, *brighter)[0])


def test_a_denoiser_without_the_view_channels_is_refused_in_one_line():
    with pytest.raises(InputError, match="3 input channels"):
        BiplanarCTDiffusion(radiograph_encoder("phantom_cpu"), nested_denoiser("phantom_cpu"), backprojected_views=True)
    with pytest.raises(InputError, match="network_preset"):
        biplanar_ct_diffusion("phantom_cpu_view")
