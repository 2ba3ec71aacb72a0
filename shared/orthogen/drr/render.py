"""Digitally reconstructed radiographs (DRRs) of CT volumes and of their bone label maps."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from orthogen.drr.arguments import energy_kev as checked_energy_kev
from orthogen.drr.arguments import finite_number
from orthogen.drr.attenuation import hu_to_attenuation
from orthogen.drr.geometry import ProjectionGeometry, parse_views
from orthogen.drr.projector import line_integrals
from orthogen.errors import InputError


@dataclass(frozen=True)
class DRR:
    """Rendered views.

    Attributes:
        image: (V, R, C) float32 in [0, 1], bone bright: the line integral over ``normalizer``, clipped.
        line_integral: (V, R, C) float32, Beer-Lambert exponent ``integral mu dl`` (dimensionless);
            the detected intensity is ``exp(-line_integral)``.
        angles_deg: the V gantry angles (0 = AP, 90 = lateral).
        pixel_spacing_mm: (row, col) at the detector.
        normalizer: (V,) line integral that maps to 1.0 in ``image``.
    """

    image: torch.Tensor
    line_integral: torch.Tensor
    angles_deg: tuple[float, ...]
    pixel_spacing_mm: tuple[float, float]
    normalizer: torch.Tensor

    @property
    def intensity(self) -> torch.Tensor:
        """(V, R, C) transmitted fraction ``I / I0`` in (0, 1]."""
        return torch.exp(-self.line_integral)


def render_drr(
    volume_hu: torch.Tensor | np.ndarray,
    affine: torch.Tensor | np.ndarray,
    geometry: ProjectionGeometry,
    views: str | Sequence[str | float] = "ap,lateral",
    *,
    energy_kev: float = 60.0,
    normalizer: float | None = None,
) -> DRR:
    """Render DRRs of a CT: HU -> linear attenuation at ``energy_kev`` -> Beer-Lambert line integrals.

    Args:
        volume_hu: (X, Y, Z) CT in HU (a MONAI MetaTensor's own affine is NOT used; pass ``affine``).
        affine: (4, 4) voxel -> world (RAS) mm.
        geometry: cone- or parallel-beam detector placement.
        views: view names / angles, e.g. ``"ap,lateral"``, ``[0, 45, 90]`` or ``"orbit:60"``.
        energy_kev: effective photon energy.
        normalizer: line integral shown as 1.0; ``None`` normalizes each view by its own maximum.
            Use a fixed value to compare brightness across volumes.
    """
    hu = torch.as_tensor(np.asarray(volume_hu) if isinstance(volume_hu, np.ndarray) else volume_hu)
    if hu.ndim != 3:
        raise InputError(f"expected a (X, Y, Z) CT volume, got shape {tuple(hu.shape)}", "volume_hu")
    angles = parse_views(views)
    energy_kev = checked_energy_kev(energy_kev)
    integral = line_integrals(hu_to_attenuation(hu.float(), energy_kev), affine, geometry, angles)
    if normalizer is None:
        norm = integral.detach().amax(dim=(1, 2)).clamp(min=1e-6)
    else:
        if finite_number(normalizer, "normalizer", what="a positive line integral") <= 0:
            raise InputError(f"expected a positive line integral, got {normalizer!r}", "normalizer")
        norm = torch.full((len(angles),), float(normalizer), dtype=integral.dtype, device=integral.device)
    image = torch.clamp(integral / norm[:, None, None], 0.0, 1.0)
    return DRR(image, integral, tuple(angles), tuple(geometry.pixel_spacing_mm), norm)


def project_labels(
    labels: torch.Tensor | np.ndarray,
    affine: torch.Tensor | np.ndarray,
    geometry: ProjectionGeometry,
    views: str | Sequence[str | float] = "ap,lateral",
    label_values: Sequence[int] | None = None,
) -> torch.Tensor:
    """Bone-only projections: path length (mm) of each ray through each label.

    Args:
        labels: (X, Y, Z) integer label map, 0 = background.
        label_values: the labels to project, one output channel each; ``None`` = every non-zero label.

    Returns:
        (V, L, R, C) float32 path lengths in mm; sum over L for the all-bone path length.
    """
    lab = torch.as_tensor(np.asarray(labels) if isinstance(labels, np.ndarray) else labels)
    if lab.ndim != 3:
        raise InputError(f"expected a (X, Y, Z) label map, got shape {tuple(lab.shape)}", "labels")
    values = sorted(int(v) for v in torch.unique(lab) if v != 0) if label_values is None else list(label_values)
    if not values:
        raise InputError("the label map has no non-zero label to project", "labels")
    masks = torch.stack([(lab == v).float() for v in values])
    return line_integrals(masks, affine, geometry, parse_views(views))
