"""The ranges ``KneePhantom.from_seed`` draws each knee parameter from, uniformly; narrow or widen them.

    narrow = KneeRanges(flexion_deg=(0.0, 0.0), left_fraction=0.0)   # straight right knees only
    knee = KneePhantom.from_seed(7, narrow)

Every parameter takes one draw from the seed's anatomy stream in a fixed order whatever the ranges,
so narrowing one range leaves the other parameters of a seed as they were.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

from orthogen.errors import InputError

Range = tuple[float, float]

#: Largest knee flexion the phantom's anatomy supports (patella, joint gap and skin checked), degrees.
MAX_FLEXION_DEG = 45.0


@dataclass(frozen=True)
class KneeRanges:
    """Uniform ranges (low, high) of a knee's parameters; (v, v) fixes a parameter at v.

    The defaults span adult knee CTs: both legs, straight to moderately flexed, turned in or out on the
    table, the joint anywhere near the middle of the field of view, small to large people, and the
    pixel spacings and slice thicknesses of clinical scanners.

    Attributes:
        bone_scale: multiplies every bone dimension (1: distal femur 74 mm wide, tibial plateau 76 mm).
        leg_margin_mm: lean soft tissue (muscle, tendons) added to the lean leg outline (semi-axes
            ``knee.LEAN_LEG_RADII_MM``, 52 mm, times ``bone_scale``), drawn per axis, mm.
        fat_mm: subcutaneous fat thickness, mm; it widens the leg by as much (leg girth = bones + lean
            margin + fat).
        skin_mm: skin thickness, mm.
        joint_gap_mm: vertical clearance between the femoral condyles and the tibial plateau, mm.
        valgus_deg: femur tilt about the anterior axis, degrees (positive = valgus).
        flexion_deg: knee flexion, degrees: the tibia and fibula turn about the femoral condyles'
            transverse axis, their lower ends going posterior (0 = straight leg; at most 45).
        tibial_slope_deg: posterior slope of the tibial plateau, degrees.
        cortical_mm: cortical shell thickness of the femur, tibia, fibula and patella (one range each), mm.
        left_fraction: probability that a knee is a left knee (the right knee mirrored); 0 = all right.
        leg_rotation_deg: rotation of the whole leg about its long axis, degrees; positive = external
            (the front of the knee turns lateral).
        joint_offset_mm: where the knee centre lies in the field of view, per world axis (x, y, z), mm.
        scan_pixel_mm: in-plane pixel spacing of the simulated scan (x = y), mm.
        scan_slice_mm: slice spacing (thickness) of the simulated scan (z), mm.
        scan_fov_xy_mm: in-plane reconstruction field of view of the simulated scan, mm.
        scan_fov_z_mm: length of leg the simulated scan covers along z, mm.
    """

    bone_scale: Range = (0.8, 1.2)
    leg_margin_mm: Range = (0.0, 6.0)
    fat_mm: Range = (3.0, 15.0)
    skin_mm: Range = (1.5, 2.5)
    joint_gap_mm: Range = (3.0, 7.0)
    valgus_deg: Range = (-4.0, 6.0)
    flexion_deg: Range = (0.0, 30.0)
    tibial_slope_deg: Range = (3.0, 9.0)
    cortical_mm: tuple[Range, Range, Range, Range] = ((2.0, 3.5), (2.0, 3.5), (1.5, 2.5), (1.5, 2.5))
    left_fraction: float = 0.5
    leg_rotation_deg: Range = (-20.0, 20.0)
    joint_offset_mm: tuple[Range, Range, Range] = ((-15.0, 15.0), (-15.0, 15.0), (-15.0, 15.0))
    scan_pixel_mm: Range = (0.3, 1.0)
    scan_slice_mm: Range = (0.5, 3.0)
    scan_fov_xy_mm: Range = (140.0, 200.0)
    scan_fov_z_mm: Range = (100.0, 200.0)

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "left_fraction":
                if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
                    raise InputError(f"expected a probability in [0, 1], got {value!r}", item.name)
                continue
            ranges = value if item.name in ("cortical_mm", "joint_offset_mm") else (value,)
            for low_high in ranges:
                _check_range(item.name, low_high)
        for name in ("bone_scale", "leg_margin_mm", "fat_mm", "skin_mm", "joint_gap_mm", "scan_pixel_mm",
                     "scan_slice_mm", "scan_fov_xy_mm", "scan_fov_z_mm"):
            low = getattr(self, name)[0]
            if low < 0 or (low == 0 and name != "leg_margin_mm"):
                raise InputError(f"expected sizes above 0, got {getattr(self, name)!r}", name)
        if any(low <= 0 for low, _ in self.cortical_mm):
            raise InputError(f"expected thicknesses above 0 mm, got {self.cortical_mm!r}", "cortical_mm")
        low, high = self.flexion_deg
        if low < 0 or high > MAX_FLEXION_DEG:
            raise InputError(f"expected a range within [0, {MAX_FLEXION_DEG:g}] degrees, got {self.flexion_deg!r}",
                             "flexion_deg")


def _check_range(name: str, low_high: Range) -> None:
    try:
        low, high = (float(v) for v in low_high)
    except (TypeError, ValueError):
        raise InputError(f"expected a (low, high) pair of numbers, got {low_high!r}", name) from None
    if not (math.isfinite(low) and math.isfinite(high) and low <= high):
        raise InputError(f"expected finite low <= high, got {low_high!r}", name)
