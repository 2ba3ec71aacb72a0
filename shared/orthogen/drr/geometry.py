"""Projection geometry: where the source and the detector pixels are for each view angle.

All views orbit the patient's superior axis (world +z, RAS) through an isocenter.
The gantry angle is measured so that

* angle 0 deg = **AP**: the source is anterior (+y), the beam travels anterior -> posterior and the
  detector is behind the patient;
* angle 90 deg = **lateral**: the source is at the patient's right (+x), the detector at the left.

Detector images are seen from the source side, the usual radiographic display for AP: rows run
superior -> inferior, and the columns run along ``u = (-cos a, sin a, 0)`` — patient right -> left for
AP (patient's right on the viewer's left) and posterior -> anterior for the lateral view. A full orbit
is a proper rotation of this frame, so consecutive views are consistent.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from orthogen.errors import InputError

VIEW_ANGLES_DEG: dict[str, float] = {"ap": 0.0, "lateral": 90.0}


def parse_views(views: str | float | Sequence[str | float]) -> list[float]:
    """Gantry angles in degrees from view names and/or numbers.

    ``"ap,lateral"``, ``["AP", 30.0]``, ``"orbit:60"`` (60 views evenly over 360 deg) are all accepted.
    """
    if isinstance(views, (int, float)):
        return [float(views)]
    items = views.split(",") if isinstance(views, str) else list(views)
    angles: list[float] = []
    for item in items:
        if isinstance(item, (int, float)):
            angles.append(float(item))
            continue
        name = item.strip().lower()
        if name in VIEW_ANGLES_DEG:
            angles.append(VIEW_ANGLES_DEG[name])
        elif name.startswith("orbit:"):
            angles.extend(orbit_angles(_positive_int(name.split(":", 1)[1], "views")))
        else:
            try:
                angles.append(float(name))
            except ValueError:
                raise InputError(
                    f"unknown view {item!r}; expected 'ap', 'lateral', 'orbit:N' or an angle in degrees", "views"
                ) from None
    if not angles:
        raise InputError("no view given; expected e.g. 'ap,lateral'", "views")
    return angles


def orbit_angles(n_views: int, start_deg: float = 0.0, span_deg: float = 360.0) -> list[float]:
    """``n_views`` gantry angles evenly spaced over ``span_deg`` starting at ``start_deg``."""
    return [start_deg + span_deg * i / n_views for i in range(n_views)]


def _positive_int(text: str, field: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise InputError(f"expected a positive integer, got {text!r}", field) from None
    if value <= 0:
        raise InputError(f"expected a positive integer, got {value}", field)
    return value


@dataclass(frozen=True)
class ProjectionGeometry:
    """A flat-panel detector orbiting an isocenter; cone beam, or parallel beam when ``parallel``.

    Args:
        detector_shape: (rows, cols) pixels.
        pixel_spacing_mm: (row, col) pixel size at the detector, mm.
        source_to_isocenter_mm: SID, mm (cone beam only).
        source_to_detector_mm: SDD, mm (cone beam only); the magnification at the isocenter is SDD/SID.
        parallel: parallel-beam geometry (rays along the view direction; SID/SDD unused).
        isocenter_mm: world (RAS) point the gantry orbits; ``None`` = centre of the volume.
    """

    detector_shape: tuple[int, int] = (256, 256)
    pixel_spacing_mm: tuple[float, float] = (1.0, 1.0)
    source_to_isocenter_mm: float = 1000.0
    source_to_detector_mm: float = 1500.0
    parallel: bool = False
    isocenter_mm: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        if len(self.detector_shape) != 2 or min(self.detector_shape) <= 0:
            raise InputError(f"expected two positive pixel counts, got {self.detector_shape}", "detector_shape")
        if len(self.pixel_spacing_mm) != 2 or min(self.pixel_spacing_mm) <= 0:
            raise InputError(f"expected two positive sizes in mm, got {self.pixel_spacing_mm}", "pixel_spacing_mm")
        if not self.parallel and not 0 < self.source_to_isocenter_mm < self.source_to_detector_mm:
            raise InputError(
                "expected 0 < source_to_isocenter_mm < source_to_detector_mm, got "
                f"{self.source_to_isocenter_mm} and {self.source_to_detector_mm}",
                "geometry",
            )

    @property
    def magnification(self) -> float:
        """Detector size / object size at the isocenter (1 for parallel beam)."""
        return 1.0 if self.parallel else self.source_to_detector_mm / self.source_to_isocenter_mm

    def ray_endpoints(
        self, angle_deg: float, isocenter_mm: torch.Tensor, depth_mm: float, dtype=torch.float64, device=None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """World (RAS, mm) start and end point of every detector pixel's ray.

        Args:
            angle_deg: gantry angle (0 = AP, 90 = lateral).
            isocenter_mm: (3,) world point.
            depth_mm: for parallel beam, how far before and after the isocenter rays start and end
                (at least the volume's half diagonal).

        Returns:
            ``(start, end)``: start (3,) for cone beam (the source) or (R, C, 3) for parallel beam;
            end (R, C, 3), the pixel centres on the detector (parallel: the far end of each ray).
        """
        a = math.radians(angle_deg)
        to_source = torch.tensor([math.sin(a), math.cos(a), 0.0], dtype=dtype, device=device)
        u = torch.tensor([-math.cos(a), math.sin(a), 0.0], dtype=dtype, device=device)
        v = torch.tensor([0.0, 0.0, -1.0], dtype=dtype, device=device)
        rows, cols = self.detector_shape
        r = (torch.arange(rows, dtype=dtype, device=device) - (rows - 1) / 2) * self.pixel_spacing_mm[0]
        c = (torch.arange(cols, dtype=dtype, device=device) - (cols - 1) / 2) * self.pixel_spacing_mm[1]
        plane = r[:, None, None] * v + c[None, :, None] * u  # (R, C, 3) offsets within the detector plane
        iso = isocenter_mm.to(dtype=dtype, device=device)
        if self.parallel:
            return iso + plane + depth_mm * to_source, iso + plane - depth_mm * to_source
        source = iso + self.source_to_isocenter_mm * to_source
        detector_centre = source - self.source_to_detector_mm * to_source
        return source, detector_centre + plane


def fit_detector(
    volume_shape: Sequence[int],
    affine: np.ndarray | torch.Tensor,
    size: int,
    *,
    source_to_isocenter_mm: float = 1000.0,
    source_to_detector_mm: float = 1500.0,
    parallel: bool = False,
    framing: str = "orbit",
) -> ProjectionGeometry:
    """A square ``size`` x ``size`` detector framed on a volume whose centre is the isocenter.

    Args:
        volume_shape: (X, Y, Z) voxels.
        affine: (4, 4) voxel -> world mm.
        framing: ``"orbit"``: the whole volume stays on the detector at every gantry angle;
            ``"isocenter"``: the detector, back-projected to the isocenter plane, just covers the
            volume's largest extent, so a cube's AP and lateral faces fill the image as a slice would.
    """
    affine = np.asarray(affine, dtype=np.float64)
    shape = np.asarray(volume_shape, dtype=np.float64)
    corners = np.array([[i, j, k, 1.0] for i in (-0.5, shape[0] - 0.5) for j in (-0.5, shape[1] - 0.5)
                        for k in (-0.5, shape[2] - 0.5)]) @ affine.T
    centre = corners[:, :3].mean(axis=0)
    rel = corners[:, :3] - centre
    radius_xy = float(np.sqrt(rel[:, 0] ** 2 + rel[:, 1] ** 2).max())
    half_height = float(np.abs(rel[:, 2]).max())
    magnification = 1.0 if parallel else source_to_detector_mm / source_to_isocenter_mm
    if framing == "orbit":
        worst = 1.0 if parallel else source_to_detector_mm / (source_to_isocenter_mm - radius_xy)
        pixel = 2.0 * max(radius_xy, half_height) * worst / size
    elif framing == "isocenter":
        pixel = 2.0 * max(np.abs(rel[:, :2]).max(), half_height) * magnification / size
    else:
        raise InputError(f"expected 'orbit' or 'isocenter', got {framing!r}", "framing")
    return ProjectionGeometry(
        detector_shape=(size, size),
        pixel_spacing_mm=(pixel, pixel),
        source_to_isocenter_mm=source_to_isocenter_mm,
        source_to_detector_mm=source_to_detector_mm,
        parallel=parallel,
    )
