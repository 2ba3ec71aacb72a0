"""The orientation contract between a CT volume and its AP and lateral radiographs, and back-projection.

Binding for every bi-planar network here (X2CT-GAN, the knee CT diffusion); the data pipeline
(:mod:`orthogen.data.x2ct_hdf5`, axcodes "IAL") produces exactly this. A CT tensor is ``(B, C, D, H, W)``
with D = superior->inferior, H = posterior->anterior, W = patient right->left. The AP radiograph's rows
are D and its columns W, so it is back-projected along H; the lateral radiograph's rows are D and its
columns H, so it is back-projected along W::

    AP pixel (r, c)      -> CT voxels (r, :, c)
    lateral pixel (r, c) -> CT voxels (r, c, :)

A view's own 3D frame is ``(B, C, depth, row, col)``, depth being the axis its image is repeated along.
Back-projection by repetition is parallel-beam: for cone-beam radiographs framed on the anatomy it is
exact at the isocentre and off by the magnification's spread away from it (a few per cent of the field
of view for a knee at 1 m source distance).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

VIEWS = ("AP", "lateral")

# Permutations from a view's frame (B, C, depth, row, col) to the CT frame (B, C, D, H, W) and back.
_VIEW_TO_CT = {"AP": (0, 1, 3, 2, 4), "lateral": (0, 1, 3, 4, 2)}
_CT_TO_VIEW = {"AP": (0, 1, 3, 2, 4), "lateral": (0, 1, 4, 2, 3)}


def expand_along_depth(features: torch.Tensor) -> torch.Tensor:
    """Repeat 2D features along a new depth axis: (B, C, S, S) -> view frame (B, C, S, S, S), no copy."""
    batch, channels, rows, cols = features.shape
    return features.unsqueeze(2).expand(batch, channels, rows, rows, cols)


def view_to_ct(features: torch.Tensor, view: str) -> torch.Tensor:
    """Permute a view-frame tensor (B, C, depth, row, col) into the CT frame (B, C, D, H, W)."""
    return features.permute(*_VIEW_TO_CT[view])


def ct_to_view(volume: torch.Tensor, view: str) -> torch.Tensor:
    """Permute a CT-frame tensor (B, C, D, H, W) into a view's frame (B, C, depth, row, col)."""
    return volume.permute(*_CT_TO_VIEW[view])


def fuse_views(ap_features: torch.Tensor, lateral_features: torch.Tensor) -> torch.Tensor:
    """Average the AP and lateral view-frame features in the CT frame: -> (B, C, D, H, W)."""
    return (view_to_ct(ap_features, "AP") + view_to_ct(lateral_features, "lateral")) / 2


def expand_view_to_ct(image: torch.Tensor, view: str) -> torch.Tensor:
    """Back-project a radiograph (B, C, S, S) into CT orientation (B, C, S, S, S) by repetition."""
    return view_to_ct(expand_along_depth(image), view)


def backprojected_views(views: torch.Tensor, size: int) -> torch.Tensor:
    """AP and lateral radiographs (B, 2, H, W) -> their back-projections on a ``size``^3 grid (B, 2, s, s, s).

    Each view is area-averaged to ``size`` x ``size`` (anti-aliased) and repeated along its projection
    axis, AP into channel 0 and lateral into channel 1, in the CT frame: a voxel sees the two pixels
    whose rays pass through it.
    """
    small = F.interpolate(views, size=(size, size), mode="area") if views.shape[-2:] != (size, size) else views
    return torch.cat([expand_view_to_ct(small[:, i:i + 1], view) for i, view in enumerate(VIEWS)], dim=1)
