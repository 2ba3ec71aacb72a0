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

from orthogen.drr import arguments
from orthogen.drr.arguments import VIEW_ANGLES_DEG, orbit_angles, parse_views
from orthogen.errors import InputError

__all__ = ["VIEW_ANGLES_DEG", "ProjectionGeometry", "fit_detector", "orbit_angles", "parse_views"]


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

    Raises:
        InputError: naming the field, when the detector is not two whole pixel counts from 1 to
            ``MAX_DETECTOR_PIXELS``, a pixel size is not positive and finite, or (cone beam) not
            0 < SID < SDD <= ``MAX_DISTANCE_MM``. Valid fields are stored as plain ints and floats.
    """

    detector_shape: tuple[int, int] = (256, 256)
    pixel_spacing_mm: tuple[float, float] = (1.0, 1.0)
    source_to_isocenter_mm: float = 1000.0
    source_to_detector_mm: float = 1500.0
    parallel: bool = False
    isocenter_mm: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        shape = _items(self.detector_shape)
        if len(shape) != 2:
            raise InputError(f"expected two pixel counts (rows, cols), got {self.detector_shape!r}", "detector_shape")
        shape = tuple(arguments.detector_size(n, "detector_shape") for n in shape)
        spacing = _items(self.pixel_spacing_mm)
        if len(spacing) != 2:
            raise InputError(f"expected two positive sizes in mm, got {self.pixel_spacing_mm!r}", "pixel_spacing_mm")
        spacing = tuple(arguments.finite_number(s, "pixel_spacing_mm", what="two positive sizes in mm")
                        for s in spacing)
        if min(spacing) <= 0:
            raise InputError(f"expected two positive sizes in mm, got {self.pixel_spacing_mm!r}", "pixel_spacing_mm")
        parallel = _flag(self.parallel, "parallel")
        if parallel:
            sid, sdd = self.source_to_isocenter_mm, self.source_to_detector_mm  # unused by parallel beam
        else:
            sid, sdd = arguments.source_distances(self.source_to_isocenter_mm, self.source_to_detector_mm)
        iso = self.isocenter_mm
        if iso is not None:
            iso = _items(iso)
            if len(iso) != 3:
                raise InputError(f"expected a world point (x, y, z) in mm or None, got {self.isocenter_mm!r}",
                                 "isocenter_mm")
            iso = tuple(arguments.finite_number(c, "isocenter_mm", what="three finite coordinates in mm")
                        for c in iso)
        for name, value in (("detector_shape", shape), ("pixel_spacing_mm", spacing), ("parallel", parallel),
                            ("source_to_isocenter_mm", sid), ("source_to_detector_mm", sdd), ("isocenter_mm", iso)):
            object.__setattr__(self, name, value)

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

    Raises:
        InputError: naming the argument, before any arithmetic: ``size`` not a whole number from 1 to
            ``MAX_DETECTOR_PIXELS`` (1.5 is refused, not rounded), SID/SDD not 0 < SID < SDD (cone beam)
            or the source inside the volume (SID <= its radius about the gantry axis), an unknown
            ``framing``, ``volume_shape`` not three positive counts, ``affine`` not a finite invertible 4x4.
    """
    size = arguments.detector_size(size)
    framing = arguments.framing(framing)
    parallel = _flag(parallel, "parallel")
    if not parallel:
        source_to_isocenter_mm, source_to_detector_mm = arguments.source_distances(
            source_to_isocenter_mm, source_to_detector_mm)
    shape = _volume_shape(volume_shape)
    affine = _volume_affine(affine)
    corners = np.array([[i, j, k, 1.0] for i in (-0.5, shape[0] - 0.5) for j in (-0.5, shape[1] - 0.5)
                        for k in (-0.5, shape[2] - 0.5)]) @ affine.T
    centre = corners[:, :3].mean(axis=0)
    rel = corners[:, :3] - centre
    radius_xy = float(np.sqrt(rel[:, 0] ** 2 + rel[:, 1] ** 2).max())
    half_height = float(np.abs(rel[:, 2]).max())
    if not parallel and source_to_isocenter_mm <= radius_xy:
        raise InputError(
            f"expected more than the volume's radius about the gantry axis ({radius_xy:.1f} mm), so that the "
            f"source stays outside the volume at every angle, got {source_to_isocenter_mm:g}",
            "source_to_isocenter_mm",
        )
    magnification = 1.0 if parallel else source_to_detector_mm / source_to_isocenter_mm
    if framing == "orbit":
        worst = 1.0 if parallel else source_to_detector_mm / (source_to_isocenter_mm - radius_xy)
        pixel = 2.0 * max(radius_xy, half_height) * worst / size
    else:
        pixel = 2.0 * max(float(np.abs(rel[:, :2]).max()), half_height) * magnification / size
    return ProjectionGeometry(
        detector_shape=(size, size),
        pixel_spacing_mm=(pixel, pixel),
        source_to_isocenter_mm=source_to_isocenter_mm,
        source_to_detector_mm=source_to_detector_mm,
        parallel=parallel,
    )


def _items(value) -> tuple:
    """``value``'s items as a tuple (a tuple, list, torch.Size, numpy array); () when it has none."""
    if isinstance(value, (str, bytes)):
        return ()
    try:
        return tuple(value)
    except TypeError:
        return ()


def _flag(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(f"expected True or False, got {value!r}", name)
    return bool(value)


def _volume_shape(volume_shape: Sequence[int]) -> tuple[int, int, int]:
    """(X, Y, Z): three positive voxel counts (a torch.Size or a tuple)."""
    items = _items(volume_shape)
    if len(items) != 3:
        raise InputError(f"expected three voxel counts (X, Y, Z), got {volume_shape!r}", "volume_shape")
    return tuple(arguments.whole_number(n, "volume_shape", what="voxels per axis") for n in items)


def _volume_affine(affine: np.ndarray | torch.Tensor) -> np.ndarray:
    """A finite, invertible (4, 4) voxel -> world matrix as float64."""
    if isinstance(affine, torch.Tensor):
        affine = affine.detach().cpu().numpy()
    try:
        matrix = np.asarray(affine, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"expected a (4, 4) voxel -> world matrix, got {type(affine).__name__}", "affine") from None
    if matrix.shape != (4, 4):
        raise InputError(f"expected a (4, 4) voxel -> world matrix, got shape {matrix.shape}", "affine")
    if not np.all(np.isfinite(matrix)) or abs(np.linalg.det(matrix[:3, :3])) < 1e-12:
        raise InputError("expected a finite, invertible voxel -> world matrix (non-zero spacing), got "
                         f"{matrix[:3, :3].tolist()}", "affine")
    return matrix
