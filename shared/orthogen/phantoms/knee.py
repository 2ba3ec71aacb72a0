"""A procedural CT phantom of a right knee in extension: femur, tibia, fibula and patella in a leg.

World frame RAS (mm): +x right (lateral for a right knee), +y anterior, +z superior. The joint line
(the middle of the femorotibial gap) is at about z = 0 and the leg's axis runs along z. Each bone is a
smooth union of ellipsoids, elliptic cylinders and rods with a cortical shell around textured
cancellous bone; the leg is skin, subcutaneous fat and muscle inside an elliptic cylinder, air outside.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from orthogen.errors import InputError
from orthogen.phantoms.canvas import HUCanvas
from orthogen.phantoms.grid import VoxelGrid
from orthogen.phantoms.phantom_ct import PhantomCT
from orthogen.phantoms.random_streams import random_streams
from orthogen.phantoms.shapes import Capsule, Ellipsoid, EllipticCylinder, Pose, Primitive, Solid, vertical_clearance_mm
from orthogen.phantoms.tissue import CancellousTexture, TissueHU, bone_layers, soft_tissue_layers

KNEE_LABELS: dict[int, str] = {1: "femur", 2: "tibia", 3: "fibula", 4: "patella"}
_FAR_MM = 1000.0  # half length of the shafts and of the leg: beyond any field of view
_FEMUR_BLEND_MM = 8.0  # fillet between the femur's condyles, metaphysis and shaft


@dataclass(frozen=True)
class KneePhantom:
    """A right knee, its anatomy parameters (mm, degrees) drawn from a seed by ``from_seed``.

    The anatomy is defined in world millimetres and sampled on whatever grid ``render`` is given, so
    one phantom is the same knee at every resolution. The defaults are an average adult knee.

    Attributes:
        seed: seeds the cancellous texture and the CT noise.
        bone_scale: multiplies every bone dimension (1: distal femur 74 mm wide, tibial plateau 76 mm).
        leg_radii_mm: (x, y) semi-axes of the skin's elliptic cross-section, mm.
        skin_mm: skin thickness, mm.
        fat_mm: subcutaneous fat thickness, mm.
        joint_gap_mm: smallest vertical clearance between the femoral condyles and the tibial plateau, mm.
        valgus_deg: femur tilt about the anterior axis relative to the tibia, degrees; positive =
            valgus (the femoral shaft leans lateral going up), negative = varus.
        flexion_deg: knee flexion, degrees: the femur turns about the condyles' transverse axis, its
            shaft leaning posterior going up.
        tibial_slope_deg: posterior slope of the tibial plateau, degrees.
        cortical_mm: cortical shell thickness of (femur, tibia, fibula, patella), mm.
        tissue: CT numbers (HU) and noise levels.
    """

    seed: int = 0
    bone_scale: float = 1.0
    leg_radii_mm: tuple[float, float] = (53.0, 49.0)
    skin_mm: float = 2.0
    fat_mm: float = 5.0
    joint_gap_mm: float = 5.0
    valgus_deg: float = 1.0
    flexion_deg: float = 5.0
    tibial_slope_deg: float = 6.0
    cortical_mm: tuple[float, float, float, float] = (2.8, 2.8, 2.0, 2.0)
    tissue: TissueHU = field(default_factory=TissueHU)

    def __post_init__(self) -> None:
        random_streams(self.seed)  # validates the seed
        for name in ("bone_scale", "leg_radii_mm", "skin_mm", "fat_mm", "joint_gap_mm", "cortical_mm"):
            values = np.atleast_1d(np.asarray(getattr(self, name), dtype=float))
            if not np.all(np.isfinite(values) & (values > 0)):
                raise InputError(f"expected positive sizes, got {getattr(self, name)!r}", name)

    @classmethod
    def from_seed(cls, seed: int) -> KneePhantom:
        """A knee whose size, soft tissues, joint gap (3-7 mm), valgus (-4..6 deg), flexion (0-10 deg),
        tibial slope, cortical thicknesses (1.5-3.5 mm) and tissue HU are drawn from ``seed``."""
        rng = random_streams(seed).anatomy
        scale = float(rng.uniform(0.9, 1.05))
        return cls(
            seed=int(seed),
            bone_scale=scale,
            leg_radii_mm=(50.0 * scale + float(rng.uniform(2.0, 5.0)), 47.0 * scale + float(rng.uniform(3.0, 6.0))),
            skin_mm=float(rng.uniform(1.5, 2.5)),
            fat_mm=float(rng.uniform(3.0, 7.0)),
            joint_gap_mm=float(rng.uniform(3.0, 7.0)),
            valgus_deg=float(rng.uniform(-4.0, 6.0)),
            flexion_deg=float(rng.uniform(0.0, 10.0)),
            tibial_slope_deg=float(rng.uniform(3.0, 9.0)),
            cortical_mm=(
                float(rng.uniform(2.0, 3.5)),
                float(rng.uniform(2.0, 3.5)),
                float(rng.uniform(1.5, 2.5)),
                float(rng.uniform(1.5, 2.5)),
            ),
            tissue=TissueHU.from_rng(rng),
        )

    def leg_solid(self) -> Solid:
        """The skin outline: an elliptic cylinder along z, slightly anterior of the joint centre."""
        rx, ry = self.leg_radii_mm
        leg = EllipticCylinder((rx, ry), _FAR_MM, pose=Pose(origin=(0.0, 2.0 * self.bone_scale, 0.0)))
        return Solid((leg,))

    def bone_solids(self) -> dict[int, Solid]:
        """Each bone in world mm, by label (1 femur, 2 tibia, 3 fibula, 4 patella)."""
        s = self.bone_scale
        slope = np.radians(self.tibial_slope_deg)
        # highest point of the sloped plateau: the anterior rim, its flat top reaching ry - rim
        plateau_top_mm = (24.0 * s - 3.0 * s) * np.sin(slope) + 3.0 * s * (1.0 - np.cos(slope))
        tibia_pose = Pose(origin=(0.0, -5.0 * s, -self.joint_gap_mm / 2 - plateau_top_mm))
        plateau_pose = Pose.from_euler((self.tibial_slope_deg, 0.0, 0.0)).compose(Pose(origin=(0.0, 0.0, -6.0 * s)))
        tibia = Solid(
            (
                EllipticCylinder((38.0 * s, 24.0 * s), 6.0 * s, 3.0 * s, plateau_pose),
                Ellipsoid((37.0 * s, 23.5 * s, 15.0 * s), Pose(origin=(0.0, -0.5 * s, -16.0 * s))),  # condyles
                Ellipsoid((30.0 * s, 21.0 * s, 30.0 * s), Pose(origin=(0.0, -1.0 * s, -34.0 * s))),  # metaphysis
                Ellipsoid((9.0 * s, 6.0 * s, 13.0 * s), Pose(origin=(3.0 * s, 18.0 * s, -36.0 * s))),  # tuberosity
                EllipticCylinder((12.0 * s, 11.0 * s), _FAR_MM,
                                 pose=Pose(origin=(-1.0 * s, 1.0 * s, -45.0 * s - _FAR_MM))),  # shaft
            ),
            tibia_pose,
            blend_mm=10.0,
        )
        fibula = Solid(
            (
                Ellipsoid((9.0 * s, 9.0 * s, 11.0 * s), Pose(origin=(35.0 * s, -22.0 * s, -34.0 * s))),  # head
                Capsule((35.0 * s, -22.0 * s, -34.0 * s), (31.0 * s, -17.0 * s, -34.0 * s - _FAR_MM),
                        7.0 * s, 6.0 * s),  # shaft
            ),
            tibia_pose,
            blend_mm=6.0,
        )
        femur_parts = (
            Ellipsoid((16.0 * s, 27.0 * s, 23.0 * s), Pose(origin=(-21.0 * s, 0.0, 0.0))),  # medial condyle
            Ellipsoid((15.0 * s, 26.0 * s, 22.0 * s), Pose(origin=(21.0 * s, 1.0 * s, 1.0 * s))),  # lateral condyle
            Ellipsoid((36.0 * s, 21.0 * s, 30.0 * s), Pose(origin=(0.0, 1.0 * s, 24.0 * s))),  # metaphysis
            EllipticCylinder((14.0 * s, 13.0 * s), _FAR_MM,
                             pose=Pose(origin=(0.0, 2.0 * s, 24.0 * s + _FAR_MM))),  # shaft
        )
        femur_pose = self._femur_pose(femur_parts, tibia)
        femur = Solid(femur_parts, femur_pose, _FEMUR_BLEND_MM)
        patella = Solid(
            (Ellipsoid((21.0 * s, 9.0 * s, 23.0 * s), Pose(origin=(3.0 * s, 31.0 * s + 3.0, 16.0 * s))),),
            femur_pose,
        )
        return {1: femur, 2: tibia, 3: fibula, 4: patella}

    def _femur_pose(self, femur_parts: tuple[Primitive, ...], tibia: Solid) -> Pose:
        """Flexion, then valgus, about the condyles' centre, at the height that leaves
        ``joint_gap_mm`` of vertical clearance above the tibia (measured on the solids)."""
        s = self.bone_scale
        near = Pose.from_euler((self.flexion_deg, self.valgus_deg, 0.0),
                               origin=(0.0, -6.0 * s, self.joint_gap_mm / 2 + 23.0 * s))
        clearance = vertical_clearance_mm(
            Solid(femur_parts, near, _FEMUR_BLEND_MM), tibia, (-45.0 * s, -35.0 * s, -20.0), (45.0 * s, 30.0 * s, 20.0)
        )
        return Pose(near.rotation, near.origin + (0.0, 0.0, self.joint_gap_mm - clearance))

    def render(self, shape: tuple[int, int, int] = (128, 128, 128),
               spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> PhantomCT:
        """Sample the knee on an (X, Y, Z) grid of ``spacing`` mm centred on the joint.

        The default 128^3 grid at 1 mm holds the leg (90-115 mm across) with air around it.

        Raises:
            InputError: ``shape`` or ``spacing`` is not three positive numbers.
        """
        grid = VoxelGrid(shape, spacing)
        streams = random_streams(self.seed)
        canvas = HUCanvas(grid, self.tissue.air)
        canvas.paint(self.leg_solid(), soft_tissue_layers(self.tissue, self.skin_mm, self.fat_mm))
        texture = CancellousTexture.from_rng(streams.texture, self.tissue.texture_hu)
        for (label, solid), cortical_mm in zip(self.bone_solids().items(), self.cortical_mm):
            canvas.paint(solid, bone_layers(self.tissue, cortical_mm, texture), label)
        canvas.add_noise(self.tissue.noise_hu, streams.noise)
        return canvas.to_phantom(KNEE_LABELS)


def knee_phantom(seed: int = 0, shape: tuple[int, int, int] = (128, 128, 128),
                 spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> PhantomCT:
    """The knee of ``KneePhantom.from_seed(seed)`` sampled on an (X, Y, Z) grid of ``spacing`` mm."""
    return KneePhantom.from_seed(seed).render(shape, spacing)
