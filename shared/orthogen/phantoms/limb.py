"""A limb bent at a joint: two elliptic cylinders meeting in a mitre, as a signed-distance solid (mm).

Used for the skin outline of a flexed leg: the thigh follows the femur, the shank follows the tibia,
and the two meet on the plane that halves the bend, so the outline has neither a gap on the front of
the knee nor a double layer of skin behind it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from orthogen.phantoms.shapes import EllipticCylinder, Pose

_FAR_MM = 1000.0  # half length of each segment's bounding box: beyond any field of view


@dataclass(frozen=True, eq=False)
class BentLimb:
    """An elliptic cylinder along local z, bent by ``bend_deg`` about a hinge axis parallel to local x.

    Above the hinge (the upper segment) the cross-section is the ellipse of semi-axes ``radii`` centred
    on ``centre`` in every plane of constant z. The lower segment is the upper one turned by
    ``bend_deg`` about the hinge axis (right-handed about +x: positive turns the lower end towards +y).
    The segments meet on the plane through the hinge axis tilted by ``bend_deg / 2``; there their
    cross-sections coincide, so the surface is continuous. With ``bend_deg = 0`` this is a plain
    elliptic cylinder.

    Attributes:
        radii: (x, y) semi-axes of the cross-section, mm.
        centre: (x, y) of the cross-section's centre in the local frame, mm.
        hinge: (y, z) where the hinge axis crosses the local y-z plane, mm.
        bend_deg: turn of the lower segment about the hinge axis, degrees.
        pose: the limb's local frame in its parent frame.
    """

    radii: tuple[float, float]
    centre: tuple[float, float] = (0.0, 0.0)
    hinge: tuple[float, float] = (0.0, 0.0)
    bend_deg: float = 0.0
    pose: Pose = field(default_factory=Pose)

    def world_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(3,) lower and upper parent-frame corners (mm) of a box that contains the limb."""
        reach = max(abs(self.centre[0]), abs(self.centre[1]), *map(abs, self.hinge)) + max(self.radii) + _FAR_MM
        corners = np.array([[x, y, z] for x in (-reach, reach) for y in (-reach, reach) for z in (-reach, reach)])
        points = self.pose.to_world(corners)
        return points.min(axis=0), points.max(axis=0)

    def signed_distance(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Signed distance (mm) at parent-frame coordinates given as broadcastable float32 arrays.

        Each side of the mitre plane takes the distance to its own (unbounded) segment: exact on the
        surface, and within a few per cent of the true distance for the skin and fat layers near the
        mitre at bends up to ~45 degrees.
        """
        lx, ly, lz = self.pose.to_local(x, y, z)
        cx, cy = (np.float32(c) for c in self.centre)
        hy, hz = (np.float32(h) for h in self.hinge)
        dy, dz = ly - hy, lz - hz
        cylinder, mid_height = EllipticCylinder(tuple(self.radii), _FAR_MM), np.zeros((1, 1, 1), np.float32)

        def radial(px: np.ndarray, py: np.ndarray) -> np.ndarray:
            return cylinder.local_signed_distance(px - cx, py - cy, mid_height)

        upper = radial(lx, ly)
        if self.bend_deg == 0.0:
            return np.broadcast_to(upper, np.broadcast(x, y, z).shape).astype(np.float32, copy=False)
        angle = math.radians(self.bend_deg)
        cos, sin = np.float32(math.cos(angle)), np.float32(math.sin(angle))
        # the lower segment's frame: turn the point back by -bend_deg about the hinge axis
        lower = radial(lx, hy + cos * dy + sin * dz)
        half_cos, half_sin = np.float32(math.cos(angle / 2)), np.float32(math.sin(angle / 2))
        above_mitre = (-half_sin * dy + half_cos * dz) >= 0  # side of the plane whose normal is z turned by bend/2
        distance = np.where(above_mitre, upper, lower)
        return np.broadcast_to(distance, np.broadcast(x, y, z).shape).astype(np.float32, copy=False)
