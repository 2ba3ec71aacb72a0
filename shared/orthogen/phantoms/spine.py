"""A procedural CT phantom of the lumbar spine: L1-L5 with intervertebral discs, in a torso.

World frame RAS (mm): +x right, +y anterior, +z superior. The vertebrae sit on a circular arc in the
sagittal (y, z) plane, bending ``lordosis_deg`` in all (apex anterior), centred on the world origin.
Each vertebra is a body (elliptic cylinder whose cortical shell forms the rim and the endplates) with
pedicles, laminae, a spinous process (posterior, pointing down) and two transverse processes; discs
fill the spaces between bodies, and T12/L1 and L5/S1 discs close the column. The torso is skin,
subcutaneous fat and muscle inside an elliptic cylinder, air outside.

Labels follow VerSe / CTSpine1K: L1 = 20 ... L5 = 24. The default grid, 128^3 at 1.5 mm (192 mm
across), holds the five lumbar vertebrae.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from orthogen.errors import InputError
from orthogen.phantoms.canvas import HUCanvas
from orthogen.phantoms.grid import VoxelGrid
from orthogen.phantoms.phantom_ct import PhantomCT
from orthogen.phantoms.random_streams import random_streams
from orthogen.phantoms.shapes import Capsule, EllipticCylinder, Pose, Primitive, RoundedBox, Solid
from orthogen.phantoms.tissue import CancellousTexture, TissueHU, TissueLayer, bone_layers, soft_tissue_layers

SPINE_LABELS: dict[int, str] = {20: "L1", 21: "L2", 22: "L3", 23: "L4", 24: "L5"}
_LEVELS = len(SPINE_LABELS)
_FAR_MM = 1000.0  # half length of the torso: beyond any field of view
# Average adult lumbar dimensions, L1..L5 (mm); discs T12/L1..L5/S1.
_BODY_WIDTH_MM = (40.0, 42.5, 45.0, 47.5, 50.0)
_BODY_DEPTH_MM = (30.0, 31.5, 33.0, 34.0, 35.0)
_BODY_HEIGHT_MM = (25.0, 26.0, 27.0, 27.0, 26.0)
_DISC_HEIGHT_MM = (7.0, 8.0, 9.0, 10.0, 11.0, 10.0)
_TRANSVERSE_LENGTH_MM = (15.0, 19.0, 24.0, 21.0, 18.0)


@dataclass(frozen=True)
class SpinePhantom:
    """A lumbar spine (L1-L5), its anatomy parameters (mm, degrees) drawn from a seed by ``from_seed``.

    The anatomy is defined in world millimetres and sampled on whatever grid ``render`` is given, so
    one phantom is the same spine at every resolution. The defaults are an average adult spine.
    Per-level tuples run L1..L5; ``disc_height_mm`` runs T12/L1..L5/S1.

    Attributes:
        seed: seeds the cancellous texture and the CT noise.
        body_width_mm: vertebral body width (left-right), mm.
        body_depth_mm: vertebral body depth (anterior-posterior), mm.
        body_height_mm: vertebral body height, mm.
        disc_height_mm: intervertebral disc heights at the column axis, mm (6 values).
        transverse_length_mm: how far each transverse process reaches beyond its pedicle, mm.
        arch_scale: size factor of the posterior arch (pedicles, canal, laminae, spinous process).
        lordosis_deg: total bend of the column from the L5/S1 to the T12/L1 disc, degrees (apex anterior).
        spinous_tilt_deg: how far the spinous processes point down from straight posterior, degrees.
        cortical_mm: cortical shell thickness, mm.
        torso_radii_mm: (x, y) semi-axes of the torso's elliptic cross-section, mm.
        back_depth_mm: soft tissue between the deepest-set spinous tip and the skin of the back, mm.
        skin_mm: skin thickness, mm.
        fat_mm: subcutaneous fat thickness, mm.
        tissue: CT numbers (HU) and noise levels.
    """

    seed: int = 0
    body_width_mm: tuple[float, ...] = _BODY_WIDTH_MM
    body_depth_mm: tuple[float, ...] = _BODY_DEPTH_MM
    body_height_mm: tuple[float, ...] = _BODY_HEIGHT_MM
    disc_height_mm: tuple[float, ...] = _DISC_HEIGHT_MM
    transverse_length_mm: tuple[float, ...] = _TRANSVERSE_LENGTH_MM
    arch_scale: float = 1.0
    lordosis_deg: float = 40.0
    spinous_tilt_deg: float = 15.0
    cortical_mm: float = 2.0
    torso_radii_mm: tuple[float, float] = (140.0, 100.0)
    back_depth_mm: float = 35.0
    skin_mm: float = 2.0
    fat_mm: float = 15.0
    tissue: TissueHU = field(default_factory=TissueHU)

    def __post_init__(self) -> None:
        random_streams(self.seed)  # validates the seed
        for name, count in (("body_width_mm", _LEVELS), ("body_depth_mm", _LEVELS), ("body_height_mm", _LEVELS),
                            ("disc_height_mm", _LEVELS + 1), ("transverse_length_mm", _LEVELS)):
            if len(getattr(self, name)) != count:
                raise InputError(f"expected {count} values, got {len(getattr(self, name))}", name)
        for name in ("body_width_mm", "body_depth_mm", "body_height_mm", "disc_height_mm", "transverse_length_mm",
                     "arch_scale", "cortical_mm", "torso_radii_mm", "back_depth_mm", "skin_mm", "fat_mm"):
            values = np.atleast_1d(np.asarray(getattr(self, name), dtype=float))
            if not np.all(np.isfinite(values) & (values > 0)):
                raise InputError(f"expected positive sizes, got {getattr(self, name)!r}", name)
        if not -90.0 < self.lordosis_deg < 90.0:
            raise InputError(f"expected an angle within (-90, 90) degrees, got {self.lordosis_deg}", "lordosis_deg")

    @classmethod
    def from_seed(cls, seed: int) -> SpinePhantom:
        """A spine whose size (+-10 %), per-level proportions, disc heights, lordosis (20-50 deg),
        spinous tilt, cortical thickness (1.5-2.5 mm), torso and tissue HU are drawn from ``seed``."""
        rng = random_streams(seed).anatomy
        scale = float(rng.uniform(0.9, 1.1))

        def jitter(values: tuple[float, ...], spread: float, factor: float = 1.0) -> tuple[float, ...]:
            return tuple(float(v * factor * rng.uniform(1.0 - spread, 1.0 + spread)) for v in values)

        return cls(
            seed=int(seed),
            body_width_mm=jitter(_BODY_WIDTH_MM, 0.03, scale),
            body_depth_mm=jitter(_BODY_DEPTH_MM, 0.03, scale),
            body_height_mm=jitter(_BODY_HEIGHT_MM, 0.05, 0.5 + 0.5 * scale),
            disc_height_mm=jitter(_DISC_HEIGHT_MM, 0.15),
            transverse_length_mm=jitter(_TRANSVERSE_LENGTH_MM, 0.1, scale),
            arch_scale=scale * float(rng.uniform(0.95, 1.05)),
            lordosis_deg=float(rng.uniform(20.0, 50.0)),
            spinous_tilt_deg=float(rng.uniform(0.0, 15.0)),
            cortical_mm=float(rng.uniform(1.5, 2.5)),
            torso_radii_mm=(float(rng.uniform(125.0, 155.0)), float(rng.uniform(90.0, 110.0))),
            back_depth_mm=float(rng.uniform(25.0, 45.0)),
            skin_mm=float(rng.uniform(1.5, 3.0)),
            fat_mm=float(rng.uniform(8.0, 25.0)),
            tissue=TissueHU.from_rng(rng),
        )

    def vertebra_solids(self) -> dict[int, Solid]:
        """Each vertebra in world mm, by label (20 L1 ... 24 L5)."""
        return self._layout()[0]

    def disc_solids(self) -> list[Solid]:
        """The intervertebral discs T12/L1 ... L5/S1 in world mm. Each reaches 2 mm into its
        neighbouring bodies, so that it fills the wedge a lordotic segment opens."""
        return self._layout()[1]

    def torso_solid(self) -> Solid:
        """The skin outline: an elliptic cylinder along z whose back lies about ``back_depth_mm`` behind
        the most posterior spinous process (as bounded by its box)."""
        vertebrae, _ = self._layout()
        back = min(solid.world_bounds()[0][1] for solid in vertebrae.values()) - self.back_depth_mm
        rx, ry = self.torso_radii_mm
        return Solid((EllipticCylinder((rx, ry), _FAR_MM, pose=Pose(origin=(0.0, back + ry, 0.0))),))

    def render(self, shape: tuple[int, int, int] = (128, 128, 128),
               spacing: tuple[float, float, float] = (1.5, 1.5, 1.5)) -> PhantomCT:
        """Sample the spine on an (X, Y, Z) grid of ``spacing`` mm centred on the column.

        The default, 128^3 at 1.5 mm (192 mm across), holds L1-L5 and the back; the torso is wider
        than that field of view left-right, as in a lumbar CT.

        Raises:
            InputError: ``shape`` or ``spacing`` is not three positive numbers.
        """
        grid = VoxelGrid(shape, spacing)
        streams = random_streams(self.seed)
        vertebrae, discs = self._layout()
        canvas = HUCanvas(grid, self.tissue.air)
        canvas.paint(self.torso_solid(), soft_tissue_layers(self.tissue, self.skin_mm, self.fat_mm))
        for disc in discs:
            canvas.paint(disc, [TissueLayer(0.0, self.tissue.disc)])
        texture = CancellousTexture.from_rng(streams.texture, self.tissue.texture_hu)
        for label, solid in vertebrae.items():
            canvas.paint(solid, bone_layers(self.tissue, self.cortical_mm, texture), label)
        canvas.add_noise(self.tissue.noise_hu, streams.noise)
        return canvas.to_phantom(SPINE_LABELS)

    def _layout(self) -> tuple[dict[int, Solid], list[Solid]]:
        """The vertebrae (by label) and discs, their anterior-posterior extent centred on y = 0."""
        bodies, discs = self._arc_poses()
        vertebrae = [self._vertebra(level, pose) for level, pose in enumerate(bodies)]
        lower = min(solid.world_bounds()[0][1] for solid in vertebrae)
        upper = max(solid.world_bounds()[1][1] for solid in vertebrae)
        centring = Pose(origin=(0.0, -(lower + upper) / 2, 0.0))
        vertebra_solids = {
            label: self._vertebra(level, centring.compose(pose))
            for level, (label, pose) in enumerate(zip(SPINE_LABELS, bodies))
        }
        disc_solids = [self._disc(index, centring.compose(pose)) for index, pose in enumerate(discs)]
        return vertebra_solids, disc_solids

    def _arc_poses(self) -> tuple[list[Pose], list[Pose]]:
        """Poses of the vertebral bodies' centres (L1..L5) and of the discs' centres (T12/L1..L5/S1)
        on the lordotic arc; the span from the bottom of L5 to the top of L1 is centred on the origin."""
        # arc-length segments from the bottom: L5/S1 disc, L5, L4/L5 disc, ..., L1, T12/L1 disc
        segments = [self.disc_height_mm[_LEVELS]]
        for level in reversed(range(_LEVELS)):
            segments += [self.body_height_mm[level], self.disc_height_mm[level]]
        ends = np.cumsum(segments)
        centres = ends - np.asarray(segments) / 2
        length = float(ends[-1])
        middle = (segments[0] + ends[-2]) / 2
        bend = math.radians(self.lordosis_deg)
        phi_middle = bend * (middle / length - 0.5)

        def pose_at(s: float) -> Pose:
            # tangent (0, -sin phi, cos phi): going up it leans anterior below the apex, posterior above
            phi = bend * (s / length - 0.5)
            if abs(bend) < 1e-9:
                y, z = 0.0, s - middle
            else:
                y = (math.cos(phi) - math.cos(phi_middle)) * length / bend
                z = (math.sin(phi) - math.sin(phi_middle)) * length / bend
            return Pose.from_euler((math.degrees(phi), 0.0, 0.0), origin=(0.0, y, z))

        poses = [pose_at(float(s)) for s in centres]
        return poses[1::2][::-1], poses[0::2][::-1]

    def _disc(self, index: int, pose: Pose) -> Solid:
        """Disc ``index`` (0 = T12/L1 ... 5 = L5/S1), as wide as its neighbouring bodies."""
        levels = [level for level in (index - 1, index) if 0 <= level < _LEVELS]
        radii = (
            0.485 * float(np.mean([self.body_width_mm[level] for level in levels])),
            0.485 * float(np.mean([self.body_depth_mm[level] for level in levels])),
        )
        return Solid((EllipticCylinder(radii, self.disc_height_mm[index] / 2 + 2.0, 1.5),), pose)

    def _vertebra(self, level: int, pose: Pose) -> Solid:
        """Vertebra ``level`` (0 = L1) in its body-centred frame (z along the column, y anterior),
        placed by ``pose``."""
        a = self.arch_scale
        w, d, h = self.body_width_mm[level] / 2, self.body_depth_mm[level] / 2, self.body_height_mm[level] / 2
        pedicle_half_width = a * (4.0 + 0.6 * level)  # pedicles widen from L1 to L5
        pedicle_x = a * 11.0 + pedicle_half_width  # the canal is ~22 mm wide
        lamina_root_y, lamina_tip_y = -(d + 10.0 * a), -(d + 19.0 * a)  # behind the pedicles; midline
        parts: list[Primitive] = [EllipticCylinder((w, d), h, min(3.0, h / 3))]  # body
        for side in (-1.0, 1.0):
            x = side * pedicle_x
            parts.append(RoundedBox((pedicle_half_width, 7.0 * a, 7.5 * a), 0.8 * pedicle_half_width,
                                    Pose(origin=(x, -(d + 4.0 * a), 0.2 * h))))  # pedicle
            rise = lamina_root_y - lamina_tip_y
            lamina_pose = Pose.from_euler((0.0, 0.0, math.degrees(math.atan2(rise, x))),
                                          origin=(x / 2, (lamina_root_y + lamina_tip_y) / 2, -0.15 * h))
            parts.append(RoundedBox((math.hypot(x, rise) / 2 + 2.0 * a, 3.0 * a, 9.0 * a), 2.5 * a, lamina_pose))
            tip_x = side * (pedicle_x + self.transverse_length_mm[level])
            parts.append(Capsule((x, -(d + 5.0 * a), 0.25 * h), (tip_x, -(d + 8.0 * a), 0.3 * h),
                                 4.0 * a, 3.0 * a))  # transverse process
        spinous_root = Pose.from_euler((self.spinous_tilt_deg, 0.0, 0.0), origin=(0.0, lamina_tip_y, -0.15 * h))
        parts.append(RoundedBox((3.0 * a, 15.0 * a, 8.0 * a), 2.5 * a,
                                spinous_root.compose(Pose(origin=(0.0, -13.0 * a, 0.0)))))  # spinous process
        return Solid(tuple(parts), pose, blend_mm=3.0 * a)


def spine_phantom(seed: int = 0, shape: tuple[int, int, int] = (128, 128, 128),
                  spacing: tuple[float, float, float] = (1.5, 1.5, 1.5)) -> PhantomCT:
    """The spine of ``SpinePhantom.from_seed(seed)`` sampled on an (X, Y, Z) grid of ``spacing`` mm."""
    return SpinePhantom.from_seed(seed).render(shape, spacing)
