"""Signed-distance solids in millimetres: the geometric primitives the phantoms are built from.

A signed distance is negative inside a solid, zero on its surface and positive outside (mm). Every
primitive is defined in its own local frame and placed by a rigid ``Pose``; a ``Solid`` is a smooth
union of primitives under one more pose, so a bone can be moved as a whole.
Hand-written: no maintained Python library evaluates analytic signed distances vectorised on numpy grids.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np
from scipy.spatial.transform import Rotation

from orthogen.phantoms.grid import Coords


@dataclass(frozen=True, eq=False)
class Pose:
    """A rigid placement: ``world = rotation @ local + origin`` (mm).

    Attributes:
        rotation: (3, 3) orthogonal matrix whose columns are the local axes in the parent frame: a
            proper rotation, or a rotation and a mirror (a left limb built as a mirrored right one).
        origin: (3,) the local origin in the parent frame, mm.
    """

    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    origin: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def __post_init__(self) -> None:
        object.__setattr__(self, "rotation", np.asarray(self.rotation, dtype=np.float64).reshape(3, 3))
        object.__setattr__(self, "origin", np.asarray(self.origin, dtype=np.float64).reshape(3))

    @classmethod
    def from_euler(cls, degrees_xyz: Sequence[float] = (0.0, 0.0, 0.0),
                   origin: Sequence[float] = (0.0, 0.0, 0.0)) -> Pose:
        """Rotate about the parent's x, then y, then z axis (degrees, right-handed), then move to ``origin``."""
        return cls(Rotation.from_euler("xyz", degrees_xyz, degrees=True).as_matrix(), np.asarray(origin, float))

    def compose(self, inner: Pose) -> Pose:
        """The pose of ``inner`` (given in this pose's local frame) in this pose's parent frame."""
        return Pose(self.rotation @ inner.rotation, self.rotation @ inner.origin + self.origin)

    def to_world(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) local points -> (..., 3) parent-frame points, mm."""
        return np.asarray(points, float) @ self.rotation.T + self.origin

    def to_local(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> Coords:
        """Parent-frame coordinates (broadcastable float32 arrays, mm) -> local coordinates.

        An unrotated pose keeps the inputs' broadcast shapes, so axis-aligned solids stay cheap.
        """
        dx, dy, dz = x - np.float32(self.origin[0]), y - np.float32(self.origin[1]), z - np.float32(self.origin[2])
        if np.allclose(self.rotation, np.eye(3), rtol=0.0, atol=1e-12):
            return dx, dy, dz
        r = self.rotation.astype(np.float32)
        return (
            r[0, 0] * dx + r[1, 0] * dy + r[2, 0] * dz,
            r[0, 1] * dx + r[1, 1] * dy + r[2, 1] * dz,
            r[0, 2] * dx + r[1, 2] * dy + r[2, 2] * dz,
        )


class Primitive(Protocol):
    """A solid with a closed-form (or closely approximated) signed distance in its local frame."""

    pose: Pose

    def local_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(3,) lower and upper corners of a local-frame box that contains the solid, mm."""
        ...

    def local_signed_distance(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Signed distance (mm) at local coordinates given as broadcastable float32 arrays."""
        ...


def _ellipse_like_distance(scaled: Sequence[np.ndarray], scaled_twice: Sequence[np.ndarray],
                           min_radius: float) -> np.ndarray:
    """First-order distance to an ellipse/ellipsoid surface ``|p / r| = 1``.

    ``scaled`` holds p_i / r_i and ``scaled_twice`` p_i / r_i**2. The distance is
    ``(k0 - 1) * k0 / k1`` with ``k0 = |p / r|``, ``k1 = |p / r**2|``; exact on the surface and a close
    estimate within a few mm of it, which is where the ramps and cortical shells are evaluated.
    """
    k0 = np.sqrt(sum(c * c for c in scaled))
    k1 = np.sqrt(sum(c * c for c in scaled_twice))
    ratio = np.divide(k0, k1, out=np.full(np.broadcast(k0, k1).shape, min_radius, np.float32), where=k1 > 0)
    return (k0 - 1.0) * ratio


@dataclass(frozen=True, eq=False)
class Ellipsoid:
    """An ellipsoid with semi-axes ``radii`` (mm) along its local x, y, z, centred on its local origin."""

    radii: tuple[float, float, float]
    pose: Pose = field(default_factory=Pose)

    def local_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        r = np.asarray(self.radii, float)
        return -r, r

    def local_signed_distance(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        a, b, c = (float(r) for r in self.radii)
        return _ellipse_like_distance((x / a, y / b, z / c), (x / a**2, y / b**2, z / c**2), min(a, b, c))


@dataclass(frozen=True, eq=False)
class EllipticCylinder:
    """A cylinder along local z with an elliptic cross-section and rounded rims.

    Attributes:
        radii: semi-axes (x, y) of the cross-section, mm.
        half_height: half the length along z, mm.
        rounding: radius of the rounded rim, mm (0 = sharp edges).
    """

    radii: tuple[float, float]
    half_height: float
    rounding: float = 0.0
    pose: Pose = field(default_factory=Pose)

    def local_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        r = np.array([self.radii[0], self.radii[1], self.half_height], float)
        return -r, r

    def local_signed_distance(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        rim = float(self.rounding)
        a, b = float(self.radii[0]) - rim, float(self.radii[1]) - rim
        radial = _ellipse_like_distance((x / a, y / b), (x / a**2, y / b**2), min(a, b))
        axial = np.abs(z) - np.float32(self.half_height - rim)
        inside = np.minimum(np.maximum(radial, axial), 0.0)
        outside = np.sqrt(np.maximum(radial, 0.0) ** 2 + np.maximum(axial, 0.0) ** 2)
        return inside + outside - rim


@dataclass(frozen=True, eq=False)
class RoundedBox:
    """A box with half extents ``half_extents`` (mm) along its local axes and edges rounded by ``rounding`` mm."""

    half_extents: tuple[float, float, float]
    rounding: float = 0.0
    pose: Pose = field(default_factory=Pose)

    def local_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        h = np.asarray(self.half_extents, float)
        return -h, h

    def local_signed_distance(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        rim = float(self.rounding)
        qx, qy, qz = (np.abs(c) - np.float32(h - rim) for c, h in zip((x, y, z), self.half_extents))
        outside = np.sqrt(np.maximum(qx, 0.0) ** 2 + np.maximum(qy, 0.0) ** 2 + np.maximum(qz, 0.0) ** 2)
        inside = np.minimum(np.maximum(np.maximum(qx, qy), qz), 0.0)
        return outside + inside - rim


@dataclass(frozen=True, eq=False)
class Capsule:
    """A rod from ``start`` to ``end`` (mm, local frame) with rounded ends; its radius goes linearly
    from ``start_radius`` to ``end_radius`` (a close estimate of the distance when the taper is mild)."""

    start: tuple[float, float, float]
    end: tuple[float, float, float]
    start_radius: float
    end_radius: float
    pose: Pose = field(default_factory=Pose)

    def local_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        ends = np.array([self.start, self.end], float)
        r = max(self.start_radius, self.end_radius)
        return ends.min(axis=0) - r, ends.max(axis=0) + r

    def local_signed_distance(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        ax, ay, az = (float(c) for c in self.start)
        ux, uy, uz = (float(e) - float(s) for e, s in zip(self.end, self.start))
        px, py, pz = x - ax, y - ay, z - az
        t = np.clip((px * ux + py * uy + pz * uz) / (ux * ux + uy * uy + uz * uz), 0.0, 1.0)
        gap = np.sqrt((px - t * ux) ** 2 + (py - t * uy) ** 2 + (pz - t * uz) ** 2)
        return gap - (self.start_radius + t * (self.end_radius - self.start_radius))


def smooth_union(a: np.ndarray, b: np.ndarray, blend_mm: float) -> np.ndarray:
    """Union of two signed distances with a fillet of about ``blend_mm`` mm where they meet
    (polynomial smooth minimum; a plain minimum when ``blend_mm`` is 0)."""
    if blend_mm <= 0:
        return np.minimum(a, b)
    h = np.clip(0.5 + 0.5 * (b - a) / np.float32(blend_mm), 0.0, 1.0)
    return b + (a - b) * h - np.float32(blend_mm) * h * (1.0 - h)


@dataclass(frozen=True, eq=False)
class Solid:
    """A smooth union of primitives, placed in the world by ``pose``.

    Attributes:
        parts: primitives, each posed in this solid's local frame.
        pose: the solid's local frame in world mm.
        blend_mm: fillet radius where parts meet, mm.
    """

    parts: tuple[Primitive, ...]
    pose: Pose = field(default_factory=Pose)
    blend_mm: float = 0.0

    def world_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(3,) lower and upper world corners (mm) of a box that contains the solid."""
        corners = []
        for part in self.parts:
            lo, hi = part.local_bounds()
            box = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
            corners.append(self.pose.compose(part.pose).to_world(box))
        points = np.concatenate(corners)
        margin = self.blend_mm / 4  # the smooth union grows a solid by at most a quarter of the blend
        return points.min(axis=0) - margin, points.max(axis=0) + margin

    def signed_distance(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Signed distance (mm) at world coordinates given as broadcastable float32 arrays."""
        distance = None
        for part in self.parts:
            d = part.local_signed_distance(*self.pose.compose(part.pose).to_local(x, y, z))
            distance = d if distance is None else smooth_union(distance, d, self.blend_mm)
        return np.broadcast_to(distance, np.broadcast(x, y, z).shape).astype(np.float32, copy=False)


def vertical_clearance_mm(upper: Solid, lower: Solid, lower_corner: Sequence[float], upper_corner: Sequence[float],
                          column_step_mm: float = 2.0, z_step_mm: float = 0.25) -> float:
    """Smallest vertical gap (mm, along world z) between ``upper`` resting above ``lower``.

    Both solids are sampled on vertical columns spaced ``column_step_mm`` apart in x and y inside the
    world box ``[lower_corner, upper_corner]`` (mm), every ``z_step_mm`` along z; the surface heights are
    refined by linear interpolation of the signed distances. Negative when the solids interpenetrate.

    Raises:
        ValueError: no column of the box crosses both solids.
    """
    lo, hi = np.asarray(lower_corner, float), np.asarray(upper_corner, float)
    x = np.arange(lo[0], hi[0] + 1e-9, column_step_mm, dtype=np.float32).reshape(-1, 1, 1)
    y = np.arange(lo[1], hi[1] + 1e-9, column_step_mm, dtype=np.float32).reshape(1, -1, 1)
    z = np.arange(lo[2], hi[2] + 1e-9, z_step_mm, dtype=np.float32)
    below = lower.signed_distance(x, y, z.reshape(1, 1, -1))
    above = upper.signed_distance(x, y, z.reshape(1, 1, -1))
    top = _crossing_height(below, z, from_top=True)
    bottom = _crossing_height(above, z, from_top=False)
    gaps = bottom - top
    if not np.any(np.isfinite(gaps)):
        raise ValueError("no vertical column of the search box crosses both solids")
    return float(np.nanmin(gaps))


def _crossing_height(distance: np.ndarray, z: np.ndarray, from_top: bool) -> np.ndarray:
    """Per (x, y) column: height of the first surface crossing met coming from the top (or the
    bottom) of ``distance`` (nx, ny, nz) sampled at heights ``z`` (nz,); NaN where the column stays outside."""
    if from_top:
        distance, z = distance[..., ::-1], z[::-1]
    inside = distance <= 0
    first = np.argmax(inside, axis=2)
    before = np.maximum(first - 1, 0)
    d_in = np.take_along_axis(distance, first[..., None], axis=2)[..., 0]
    d_out = np.take_along_axis(distance, before[..., None], axis=2)[..., 0]
    fraction = np.where(first > 0, d_out / np.maximum(d_out - d_in, 1e-6), 0.0)  # from the outside sample
    height = z[before] + fraction * (z[first] - z[before])
    return np.where(inside.any(axis=2), height, np.nan)
