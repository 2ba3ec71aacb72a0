"""The view-aligned cube and its AP and lateral DRRs, each detector framed on the cube.

A view-aligned CT has axcodes "IAL": D runs superior -> inferior, H posterior -> anterior, W patient
right -> left, so the AP view's rows and columns are (D, W) and the lateral view's (D, H). The data
preparation renders its training views this way, the bundle's loader gives a generated CT this cube,
projection-guided sampling renders the CT estimate with it, and the knee CT evaluation re-projects with it.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from orthogen.drr.geometry import ProjectionGeometry
from orthogen.drr.render import render_drr


def view_aligned_affine(spacing_dhw: tuple[float, float, float], size: int) -> np.ndarray:
    """Voxel -> RAS mm affine of a view-aligned ("IAL") S^3 cube centred on the world origin."""
    directions = np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]]).T  # columns: I, A, L
    affine = np.eye(4)
    affine[:3, :3] = directions * np.asarray(spacing_dhw, dtype=np.float64)
    affine[:3, 3] = -affine[:3, :3] @ np.full(3, (size - 1) / 2)
    return affine


class DRRSettings(Protocol):
    """What :func:`view_aligned_drrs` needs of a DRR setup (the data preparations, projection guidance)."""

    source_to_isocenter_mm: float
    source_to_detector_mm: float
    energy_kev: float

    @property
    def magnification(self) -> float: ...


def view_aligned_drr_images(ct_hu: torch.Tensor, affine, prep: DRRSettings, detector_pixels: int | None = None):
    """AP and lateral cone-beam DRRs of a view-aligned ("IAL") (D, H, W) volume in HU, as torch tensors.

    The detector is framed on the volume: back-projected to the isocenter, its ``detector_pixels``^2
    pixels cover the volume's (D, W) extent (AP, gantry 0 deg) or (D, H) extent (lateral, 90 deg). With
    ``detector_pixels=None`` the detector has the volume's own sizes, one pixel per voxel at the isocenter.
    Differentiable in ``ct_hu`` (the projector is torch): projection-guided sampling renders with it.

    Returns:
        ``(ap, lateral, ap_spacing, lateral_spacing)``: (R, C) [0, 1] images and their (row, col)
        pixel spacing at the detector, mm (isocenter spacing x ``prep.magnification``).
    """
    spacing = np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)  # (D, H, W) voxel sizes, mm
    views = []
    for angle, (rows_axis, cols_axis) in ((0.0, (0, 2)), (90.0, (0, 1))):
        shape = (ct_hu.shape[rows_axis], ct_hu.shape[cols_axis])
        voxel = (spacing[rows_axis], spacing[cols_axis])
        if detector_pixels is not None:  # the same extent on detector_pixels^2 pixels
            voxel = tuple(v * n / detector_pixels for v, n in zip(voxel, shape))
            shape = (detector_pixels, detector_pixels)
        pixel = (float(voxel[0] * prep.magnification), float(voxel[1] * prep.magnification))
        geometry = ProjectionGeometry(shape, pixel, prep.source_to_isocenter_mm, prep.source_to_detector_mm)
        drr = render_drr(ct_hu, affine, geometry, [angle], energy_kev=prep.energy_kev)
        views.append((drr.image[0], pixel))
    (ap, ap_spacing), (lateral, lateral_spacing) = views
    return ap, lateral, ap_spacing, lateral_spacing


def view_aligned_drrs(ct_hu: torch.Tensor, affine: np.ndarray, prep: DRRSettings, detector_pixels: int | None = None):
    """:func:`view_aligned_drr_images` as (R, C) float32 numpy images (no gradient), for writing to disk."""
    with torch.no_grad():
        ap, lateral, ap_spacing, lateral_spacing = view_aligned_drr_images(ct_hu, affine, prep, detector_pixels)
    return ap.numpy(), lateral.numpy(), ap_spacing, lateral_spacing
