"""A procedural CT phantom of a knee: femur, tibia, fibula and patella in a leg, straight or flexed,
left or right, turned and placed anywhere near the middle of the field of view.

Three frames (RAS-like, mm; +x lateral for a right knee, +y anterior, +z superior):

- ``"tibia"``: where the anatomy is built. The tibia's axis runs along z, the joint line (the middle of
  the femorotibial gap) is at about z = 0, and the femur sits on the plateau, flexed by
  ``flexion_deg`` about the condyles' transverse axis and tilted by ``valgus_deg``.
- ``"knee"``: the phantom's own frame. The femur stands along z (up to its valgus tilt) and the tibia
  and fibula turn by ``flexion_deg`` about the condyles' transverse axis (their lower ends posterior).
  Its origin is the knee centre: on the femur's axis at the joint line of the straight knee. Always a
  right knee; with no flexion it is the tibia frame.
- ``"world"``: the scanner's frame, in which ``render`` samples. The knee frame mirrored (x -> -x) for
  a left knee, turned about z by ``leg_rotation_deg`` (external rotation positive: the front of the
  knee turns lateral) and shifted by ``joint_offset_mm``.

Each bone is a smooth union of ellipsoids, elliptic cylinders and rods with a cortical shell around
textured cancellous bone; the leg is skin, subcutaneous fat and muscle inside an elliptic cylinder
bent at the knee (thigh along the femur, shank along the tibia), air outside.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy.spatial.transform import Rotation

from orthogen.errors import InputError
from orthogen.phantoms.canvas import HUCanvas
from orthogen.phantoms.grid import VoxelGrid
from orthogen.phantoms.knee_ranges import MAX_FLEXION_DEG, KneeRanges
from orthogen.phantoms.limb import BentLimb
from orthogen.phantoms.phantom_ct import PhantomCT
from orthogen.phantoms.random_streams import random_streams
from orthogen.phantoms.shapes import Capsule, Ellipsoid, EllipticCylinder, Pose, Primitive, Solid, vertical_clearance_mm
from orthogen.phantoms.tissue import CancellousTexture, TissueHU, bone_layers, soft_tissue_layers

KNEE_LABELS: dict[int, str] = {1: "femur", 2: "tibia", 3: "fibula", 4: "patella"}
KNEE_SIDES = ("right", "left")
#: The frames a knee's solids can be given in (see the module docstring).
KneeFrame = Literal["world", "knee", "tibia"]
_FAR_MM = 1000.0  # half length of the shafts: beyond any field of view
_FEMUR_BLEND_MM = 8.0  # fillet between the femur's condyles, metaphysis and shaft
#: The patella turns about the condyles' axis by this share of the knee's flexion (it rides the trochlea).
PATELLA_FLEXION_SHARE = 0.7
#: Cartilage between the patella and the femur along the patella's anterior axis, mm.
PATELLOFEMORAL_GAP_MM = 3.0
#: Semi-axes (x, y) of the lean leg's cross-section for ``bone_scale`` 1, before the lean margin and fat, mm.
LEAN_LEG_RADII_MM = (52.0, 52.0)
#: The leg's cross-section is centred this far anterior of the knee centre for ``bone_scale`` 1, mm
#: (negative: posterior, where the hamstrings and calf muscles are; the patella is near the skin).
LEG_CENTRE_Y_MM = -4.0


@dataclass(frozen=True)
class KneePhantom:
    """A knee, its anatomy, placement and scan parameters (mm, degrees) drawn from a seed by ``from_seed``.

    The anatomy is defined in world millimetres and sampled on whatever grid ``render`` is given, so
    one phantom is the same knee at every resolution. The defaults are an average adult right knee,
    nearly straight, centred and untwisted.

    Attributes:
        seed: seeds the cancellous texture and the CT noise.
        side: "right" or "left" (the right knee mirrored).
        bone_scale: multiplies every bone dimension (1: distal femur 74 mm wide, tibial plateau 76 mm).
        leg_radii_mm: (x, y) semi-axes of the skin's elliptic cross-section, mm; it is centred
            ``LEG_CENTRE_Y_MM * bone_scale`` anterior of the knee centre (the bones lie forward in the leg).
        skin_mm: skin thickness, mm.
        fat_mm: subcutaneous fat thickness, mm.
        joint_gap_mm: smallest clearance between the femoral condyles and the tibial plateau along the
            tibia's axis, mm.
        valgus_deg: femur tilt about the anterior axis relative to the tibia, degrees; positive =
            valgus (the femoral shaft leans lateral going up), negative = varus.
        flexion_deg: knee flexion, degrees (0 to 45): the tibia and fibula turn about the condyles'
            transverse axis relative to the femur, their lower ends posterior; the patella follows by
            ``PATELLA_FLEXION_SHARE`` of it, staying in front of the condyles.
        tibial_slope_deg: posterior slope of the tibial plateau, degrees.
        cortical_mm: cortical shell thickness of (femur, tibia, fibula, patella), mm.
        leg_rotation_deg: rotation of the leg about the scanner's z axis through the knee centre,
            degrees (-90 to 90); positive = external (the front of the knee turns lateral).
        joint_offset_mm: world position (x, y, z) of the knee centre, mm (0: the middle of the field
            of view of ``render``).
        scan_spacing_mm: voxel size (x, y, z) of the simulated scan, ``scanner_grid``, mm.
        scan_fov_mm: extent (x, y, z) of the simulated scan, mm.
        tissue: CT numbers (HU) and noise levels.
    """

    seed: int = 0
    side: str = "right"
    bone_scale: float = 1.0
    leg_radii_mm: tuple[float, float] = (60.0, 60.0)
    skin_mm: float = 2.0
    fat_mm: float = 5.0
    joint_gap_mm: float = 5.0
    valgus_deg: float = 1.0
    flexion_deg: float = 5.0
    tibial_slope_deg: float = 6.0
    cortical_mm: tuple[float, float, float, float] = (2.8, 2.8, 2.0, 2.0)
    leg_rotation_deg: float = 0.0
    joint_offset_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    scan_spacing_mm: tuple[float, float, float] = (0.5, 0.5, 1.0)
    scan_fov_mm: tuple[float, float, float] = (160.0, 160.0, 160.0)
    tissue: TissueHU = field(default_factory=TissueHU)

    def __post_init__(self) -> None:
        random_streams(self.seed)  # validates the seed
        if self.side not in KNEE_SIDES:
            raise InputError(f"expected one of {KNEE_SIDES}, got {self.side!r}", "side")
        for name in ("bone_scale", "leg_radii_mm", "skin_mm", "fat_mm", "joint_gap_mm", "cortical_mm",
                     "scan_spacing_mm", "scan_fov_mm"):
            values = np.atleast_1d(np.asarray(getattr(self, name), dtype=float))
            if not np.all(np.isfinite(values) & (values > 0)):
                raise InputError(f"expected positive sizes, got {getattr(self, name)!r}", name)
        for name, low, high in (("flexion_deg", 0.0, MAX_FLEXION_DEG), ("leg_rotation_deg", -90.0, 90.0)):
            value = float(getattr(self, name))
            if not low <= value <= high:
                raise InputError(f"expected an angle within [{low:g}, {high:g}] degrees, got {value!r}", name)
        offset = np.asarray(self.joint_offset_mm, dtype=float)
        if offset.shape != (3,) or not np.all(np.isfinite(offset)):
            raise InputError(f"expected three finite numbers (x, y, z) in mm, got {self.joint_offset_mm!r}",
                             "joint_offset_mm")
        for name in ("scan_spacing_mm", "scan_fov_mm"):
            if len(getattr(self, name)) != 3:
                raise InputError(f"expected three numbers (x, y, z) in mm, got {getattr(self, name)!r}", name)

    @classmethod
    def from_seed(cls, seed: int, ranges: KneeRanges | None = None) -> KneePhantom:
        """A knee whose every parameter is drawn uniformly from ``ranges`` (default ``KneeRanges()``)
        by ``seed``: bone size, leg girth (lean margin and fat), skin, joint gap, valgus, flexion,
        tibial slope, cortical thicknesses, tissue HU, side, leg rotation, joint offset and the scan's
        pixel spacing, slice thickness and field of view. Same seed and ranges, same knee."""
        ranges = KneeRanges() if ranges is None else ranges
        rng = random_streams(seed).anatomy

        def draw(low_high: tuple[float, float]) -> float:
            return float(rng.uniform(*low_high))  # one draw whatever the range: the order never shifts

        scale = draw(ranges.bone_scale)
        margin_x, margin_y = draw(ranges.leg_margin_mm), draw(ranges.leg_margin_mm)
        skin_mm, fat_mm = draw(ranges.skin_mm), draw(ranges.fat_mm)
        lean_x, lean_y = (radius * scale for radius in LEAN_LEG_RADII_MM)
        anatomy = dict(
            bone_scale=scale,
            leg_radii_mm=(lean_x + margin_x + fat_mm, lean_y + margin_y + fat_mm),
            skin_mm=skin_mm,
            fat_mm=fat_mm,
            joint_gap_mm=draw(ranges.joint_gap_mm),
            valgus_deg=draw(ranges.valgus_deg),
            flexion_deg=draw(ranges.flexion_deg),
            tibial_slope_deg=draw(ranges.tibial_slope_deg),
            cortical_mm=tuple(draw(r) for r in ranges.cortical_mm),
            tissue=TissueHU.from_rng(rng),
        )
        side = "left" if rng.random() < ranges.left_fraction else "right"
        rotation = draw(ranges.leg_rotation_deg)
        offset = tuple(draw(r) for r in ranges.joint_offset_mm)
        pixel, slice_mm = draw(ranges.scan_pixel_mm), draw(ranges.scan_slice_mm)
        fov_xy, fov_z = draw(ranges.scan_fov_xy_mm), draw(ranges.scan_fov_z_mm)
        return cls(seed=int(seed), side=side, leg_rotation_deg=rotation, joint_offset_mm=offset,
                   scan_spacing_mm=(pixel, pixel, slice_mm), scan_fov_mm=(fov_xy, fov_xy, fov_z), **anatomy)

    # --- frames -----------------------------------------------------------------------------------

    def frame_pose(self, frame: KneeFrame = "world") -> Pose:
        """The pose that takes tibia-frame coordinates to ``frame`` (mm); a mirror for a left knee's world."""
        return self._tibia_to(frame, self._femur_pose())

    def _tibia_to(self, frame: KneeFrame, femur_pose: Pose) -> Pose:
        if frame == "tibia":
            return Pose()
        if frame not in ("knee", "world"):
            raise InputError(f"expected 'world', 'knee' or 'tibia', got {frame!r}", "frame")
        # the knee frame: the tibia turned back by the flexion about the condyles' centre (the hinge)
        turn = Rotation.from_euler("x", -self.flexion_deg, degrees=True).as_matrix()
        hinge = femur_pose.origin
        knee = Pose(turn, hinge - turn @ hinge)
        return knee if frame == "knee" else self._placement().compose(knee)

    def _placement(self) -> Pose:
        """Knee frame -> world: mirror (left knee), turn about z (external positive), shift."""
        mirror = np.diag([-1.0, 1.0, 1.0]) if self.side == "left" else np.eye(3)
        turn = Rotation.from_euler("z", -self.leg_rotation_deg, degrees=True).as_matrix()
        return Pose(mirror @ turn, np.asarray(self.joint_offset_mm, dtype=float))

    # --- solids -----------------------------------------------------------------------------------

    def leg_solid(self, frame: KneeFrame = "world") -> BentLimb:
        """The skin outline in ``frame``: an elliptic cylinder centred a little posterior of the knee
        centre, its thigh along the femur and its shank along the tibia, bent at the condyles' axis."""
        return self._leg_solid(frame, self._femur_pose())

    def _leg_solid(self, frame: KneeFrame, femur_pose: Pose) -> BentLimb:
        knee_to_tibia = self._tibia_to("knee", femur_pose)
        tibia_from_knee = Pose(knee_to_tibia.rotation.T, -knee_to_tibia.rotation.T @ knee_to_tibia.origin)
        hinge = femur_pose.origin  # a fixed point of the tibia -> knee turn
        return BentLimb(self.leg_radii_mm, centre=(0.0, LEG_CENTRE_Y_MM * self.bone_scale),
                        hinge=(hinge[1], hinge[2]), bend_deg=-self.flexion_deg,
                        pose=self._tibia_to(frame, femur_pose).compose(tibia_from_knee))

    def bone_solids(self, frame: KneeFrame = "world") -> dict[int, Solid]:
        """Each bone in ``frame`` (mm), by label (1 femur, 2 tibia, 3 fibula, 4 patella)."""
        femur_pose = self._femur_pose()
        return self._bone_solids(frame, femur_pose)

    def _bone_solids(self, frame: KneeFrame, femur_pose: Pose) -> dict[int, Solid]:
        to_frame = self._tibia_to(frame, femur_pose)
        tibia, fibula = self._tibia_and_fibula()
        femur = Solid(self._femur_parts(), femur_pose, _FEMUR_BLEND_MM)
        patella = Solid(self._patella_parts(), femur_pose.compose(self._patella_pose()))
        return {label: Solid(solid.parts, to_frame.compose(solid.pose), solid.blend_mm)
                for label, solid in ((1, femur), (2, tibia), (3, fibula), (4, patella))}

    def _tibia_and_fibula(self) -> tuple[Solid, Solid]:
        """Tibia and fibula in the tibia frame, the plateau's top ``joint_gap_mm / 2`` below z = 0."""
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
        return tibia, fibula

    def _femur_parts(self) -> tuple[Primitive, ...]:
        """The femur in its own frame: origin between the condyles' centres, shaft along +z."""
        s = self.bone_scale
        return (
            Ellipsoid((16.0 * s, 27.0 * s, 23.0 * s), Pose(origin=(-21.0 * s, 0.0, 0.0))),  # medial condyle
            Ellipsoid((15.0 * s, 26.0 * s, 22.0 * s), Pose(origin=(21.0 * s, 1.0 * s, 1.0 * s))),  # lateral condyle
            Ellipsoid((36.0 * s, 21.0 * s, 30.0 * s), Pose(origin=(0.0, 1.0 * s, 24.0 * s))),  # metaphysis
            EllipticCylinder((14.0 * s, 13.0 * s), _FAR_MM,
                             pose=Pose(origin=(0.0, 2.0 * s, 24.0 * s + _FAR_MM))),  # shaft
        )

    def _patella_parts(self) -> tuple[Primitive, ...]:
        """The patella in the femur's frame of a straight knee: in front of the trochlea."""
        s = self.bone_scale
        return (Ellipsoid((21.0 * s, 9.0 * s, 23.0 * s), Pose(origin=(3.0 * s, 31.0 * s + 3.0, 16.0 * s))),)

    def _femur_pose(self) -> Pose:
        """The femur in the tibia frame: flexion about the condyles' transverse axis after the valgus
        tilt, at the height that leaves ``joint_gap_mm`` of vertical clearance above the tibia
        (measured on the solids)."""
        s = self.bone_scale
        rotation = Rotation.from_euler("yx", (self.valgus_deg, self.flexion_deg), degrees=True).as_matrix()
        near = Pose(rotation, (0.0, -6.0 * s, self.joint_gap_mm / 2 + 23.0 * s))
        tibia, _ = self._tibia_and_fibula()
        clearance = vertical_clearance_mm(
            Solid(self._femur_parts(), near, _FEMUR_BLEND_MM), tibia,
            (-45.0 * s, -35.0 * s, -20.0), (45.0 * s, 30.0 * s, 20.0),
        )
        return Pose(near.rotation, near.origin + (0.0, 0.0, self.joint_gap_mm - clearance))

    def _patella_pose(self) -> Pose:
        """The patella's pose in the femur frame: turned down about the condyles' axis by
        ``PATELLA_FLEXION_SHARE`` of the flexion, then moved along its anterior axis to leave
        ``PATELLOFEMORAL_GAP_MM`` between it and the femur (measured on the solids)."""
        s = self.bone_scale
        turn_deg = -PATELLA_FLEXION_SHARE * self.flexion_deg
        turn = Rotation.from_euler("x", turn_deg, degrees=True).as_matrix()
        # look along the patella's anterior axis: the frame turned so that it points up (+z)
        look = Pose(Rotation.from_euler("x", 90.0 - turn_deg, degrees=True).as_matrix())
        femur = Solid(self._femur_parts(), look, _FEMUR_BLEND_MM)
        patella = Solid(self._patella_parts(), look.compose(Pose(turn)))
        centre_x, centre_y, front_z = 3.0 * s, -16.0 * s, 40.0 * s + 3.0  # the patella's centre, front, seen so
        clearance = vertical_clearance_mm(patella, femur, (centre_x - 24.0 * s, centre_y - 26.0 * s, 0.0),
                                          (centre_x + 24.0 * s, centre_y + 26.0 * s, front_z + 2.0))
        anterior = turn @ np.array([0.0, 1.0, 0.0])
        return Pose(turn, anterior * (PATELLOFEMORAL_GAP_MM - clearance))

    # --- sampling ---------------------------------------------------------------------------------

    def scanner_grid(self) -> VoxelGrid:
        """The grid of this knee's simulated scan: ``scan_spacing_mm`` voxels covering ``scan_fov_mm``,
        centred on the world origin (the knee centre lies at ``joint_offset_mm``)."""
        shape = tuple(max(1, round(fov / spacing)) for fov, spacing in zip(self.scan_fov_mm, self.scan_spacing_mm))
        return VoxelGrid(shape, self.scan_spacing_mm)

    def render_like_a_scan(self) -> PhantomCT:
        """The knee sampled on its ``scanner_grid`` (e.g. 0.4 x 0.4 x 2.1 mm voxels over 170 x 170 x 150 mm).

        This is a clinical-size volume: typically 2-15 M voxels and a few seconds; at the finest
        spacings of the default ranges up to ~670 x 670 x 400 voxels, about a minute and 2.5 GB (the
        volume, its labels and the noise; painting works in slabs). Narrow ``KneeRanges.scan_*`` for less.
        """
        grid = self.scanner_grid()
        return self.render(grid.shape, grid.spacing)

    def render(self, shape: tuple[int, int, int] = (128, 128, 128),
               spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> PhantomCT:
        """Sample the knee on an (X, Y, Z) grid of ``spacing`` mm centred on the world origin.

        The default 128^3 grid at 1 mm holds the joint and most of the leg; a large leg (up to ~170 mm
        across) or an off-centre joint may reach beyond it, as in a tight clinical field of view.

        Raises:
            InputError: ``shape`` or ``spacing`` is not three positive numbers.
        """
        grid = VoxelGrid(shape, spacing)
        streams = random_streams(self.seed)
        femur_pose = self._femur_pose()
        canvas = HUCanvas(grid, self.tissue.air)
        canvas.paint(self._leg_solid("world", femur_pose), soft_tissue_layers(self.tissue, self.skin_mm, self.fat_mm))
        texture = CancellousTexture.from_rng(streams.texture, self.tissue.texture_hu)
        knee_to_world = self._placement()

        def texture_in_knee_frame(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
            return texture(*knee_to_world.to_local(x, y, z))  # moves (and mirrors) with the knee

        for (label, solid), cortical_mm in zip(self._bone_solids("world", femur_pose).items(), self.cortical_mm):
            canvas.paint(solid, bone_layers(self.tissue, cortical_mm, texture_in_knee_frame), label)
        canvas.add_noise(self.tissue.noise_hu, streams.noise)
        return canvas.to_phantom(KNEE_LABELS)


def knee_phantom(seed: int = 0, shape: tuple[int, int, int] = (128, 128, 128),
                 spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> PhantomCT:
    """The knee of ``KneePhantom.from_seed(seed)`` sampled on an (X, Y, Z) grid of ``spacing`` mm."""
    return KneePhantom.from_seed(seed).render(shape, spacing)
