"""Checks of the DRR settings a caller passes: detector size, distances, framing, energy and views; and
whether a CT is thick enough to be projected (``thick_enough_for_drr``).

Pure Python on purpose (no numpy, no torch): the ``orthogen`` command runs these checks before it
imports the projector, so a mistyped flag is answered at once. The library runs the same checks
(``fit_detector``, ``ProjectionGeometry``, ``water_attenuation_per_mm``, ``render_drr``), so a library
caller and a command-line user get the same one-line ``InputError``: the argument, what was expected,
what came. Each check takes the argument's name, so the command can name its flag (``--sid``) and the
library its parameter (``source_to_isocenter_mm``).

Numbers may come as numbers or as text ("256", "1e3"); booleans are refused (``--size`` given without
a value arrives as ``True``).
"""
from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Sequence

from orthogen.errors import InputError

#: Largest detector side in pixels. A 4096^2 detector already needs ~2-3 GB for its rays; flat panels
#: have ~3000 pixels a side.
MAX_DETECTOR_PIXELS = 4096
#: Most views in one call (``orbit:N`` included): a tenth of a degree apart over a full orbit.
MAX_VIEWS = 3600
#: Effective photon energies the water attenuation table covers (keV).
ENERGY_RANGE_KEV = (30.0, 150.0)
#: Largest source distance accepted (mm): 100 m; beyond that use ``parallel``.
MAX_DISTANCE_MM = 1e5
FRAMINGS = ("orbit", "isocenter")
#: Fewest voxels a CT needs along every axis for a DRR. A thinner volume is a slab that the projector does
#: not bound: a one-slice CT fills every detector row, as if extruded (issue 26).
MIN_DRR_VOXELS = 4
VIEW_ANGLES_DEG: dict[str, float] = {"ap": 0.0, "lateral": 90.0}


def whole_number(value, name: str, *, minimum: int = 1, maximum: int | None = None, what: str = "") -> int:
    """``value`` as an int within [minimum, maximum]; text such as "256" is accepted, 1.5 and True are not."""
    expected = f"a whole number{' of ' + what if what else ''} " + (
        f"from {minimum} to {maximum}" if maximum is not None else f"of at least {minimum}")
    number = None
    if isinstance(value, Integral) and not isinstance(value, bool):
        number = int(value)
    elif isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            number = None
    if number is None or number < minimum or (maximum is not None and number > maximum):
        raise InputError(f"expected {expected}, got {value!r}", name)
    return number


def finite_number(value, name: str, *, what: str = "a finite number") -> float:
    """``value`` as a finite float; text such as "1e3" is accepted, True, "nan" and "inf" are not."""
    number = None
    if isinstance(value, Real) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise InputError(f"expected {what}, got {value!r}", name)
    return number


def detector_size(size, name: str = "size") -> int:
    """Detector pixels per side: a whole number from 1 to ``MAX_DETECTOR_PIXELS``."""
    return whole_number(size, name, maximum=MAX_DETECTOR_PIXELS, what="detector pixels per side")


def source_distances(source_to_isocenter_mm, source_to_detector_mm, *, sid_name: str = "source_to_isocenter_mm",
                     sdd_name: str = "source_to_detector_mm") -> tuple[float, float]:
    """Cone-beam SID and SDD (mm): finite, 0 < SID < SDD <= ``MAX_DISTANCE_MM``."""
    what = f"a distance in mm above 0 and at most {MAX_DISTANCE_MM:g}"
    sid = finite_number(source_to_isocenter_mm, sid_name, what=what)
    sdd = finite_number(source_to_detector_mm, sdd_name, what=what)
    for value, raw, name in ((sid, source_to_isocenter_mm, sid_name), (sdd, source_to_detector_mm, sdd_name)):
        if not 0.0 < value <= MAX_DISTANCE_MM:
            raise InputError(f"expected {what}, got {raw!r}", name)
    if not sid < sdd:
        raise InputError(f"expected more than {sid_name} ({sid:g} mm), the detector being beyond the isocenter; "
                         f"got {sdd:g}", sdd_name)
    return sid, sdd


def framing(value, name: str = "framing") -> str:
    """``"orbit"`` or ``"isocenter"``."""
    if not isinstance(value, str) or value not in FRAMINGS:
        raise InputError(f"expected one of {', '.join(repr(f) for f in FRAMINGS)}, got {value!r}", name)
    return value


def energy_kev(value, name: str = "energy_kev") -> float:
    """Effective photon energy in keV within ``ENERGY_RANGE_KEV``."""
    low, high = ENERGY_RANGE_KEV
    what = f"an effective energy in {low:g}-{high:g} keV"
    energy = finite_number(value, name, what=what)
    if not low <= energy <= high:
        raise InputError(f"expected {what}, got {value!r}", name)
    return energy


def thick_enough_for_drr(shape: Sequence[int], source) -> None:
    """InputError naming ``source`` when a volume of ``shape`` has fewer than MIN_DRR_VOXELS voxels along an
    axis (a one-slice CT, a 2D image stored as a volume)."""
    sizes = [int(n) for n in shape]
    if len(sizes) == 3 and min(sizes) >= MIN_DRR_VOXELS:
        return
    if len(sizes) != 3:
        raise InputError(f"expected a 3D volume for a DRR, got shape {tuple(sizes)}", source)
    thin = ", ".join(f"{n} voxel{'s' if n != 1 else ''} along {axis}"
                     for axis, n in zip("XYZ", sizes) if n < MIN_DRR_VOXELS)
    raise InputError(f"volume of {' x '.join(map(str, sizes))} voxels is too thin for a DRR ({thin}); expected at "
                     f"least {MIN_DRR_VOXELS} voxels along every axis (a slice or two cannot be projected: give the "
                     "whole series)", source)


def orbit_angles(n_views: int, start_deg: float = 0.0, span_deg: float = 360.0) -> list[float]:
    """``n_views`` gantry angles evenly spaced over ``span_deg`` starting at ``start_deg``."""
    n_views = whole_number(n_views, "n_views", maximum=MAX_VIEWS, what="views")
    return [start_deg + span_deg * i / n_views for i in range(n_views)]


_VIEWS_EXPECTED = "'ap', 'lateral', 'orbit:N' or an angle in degrees, comma-separated"


def parse_views(views: str | float | Sequence[str | float], name: str = "views") -> list[float]:
    """Gantry angles in degrees from view names and/or numbers.

    ``"ap,lateral"``, ``["AP", 30.0]``, ``"orbit:60"`` (60 views evenly over 360 deg) are all accepted;
    at most ``MAX_VIEWS`` views, every angle finite.
    """
    if isinstance(views, bool):
        raise InputError(f"expected {_VIEWS_EXPECTED}, got {views!r}", name)
    if isinstance(views, Real):
        items: list = [views]
    elif isinstance(views, str):
        items = views.split(",")
    else:
        try:
            items = list(views)
        except TypeError:
            raise InputError(f"expected {_VIEWS_EXPECTED}, got {views!r}", name) from None
    angles: list[float] = []
    for item in items:
        if isinstance(item, str) and not item.strip():
            continue  # "ap," or "": blank items are skipped; no view at all is refused below
        if isinstance(item, Real) and not isinstance(item, bool):
            angle = float(item)
            if not math.isfinite(angle):
                raise InputError(f"expected a finite angle in degrees, got {item!r}", name)
            angles.append(angle)
        elif not isinstance(item, str):
            raise InputError(f"unknown view {item!r}; expected {_VIEWS_EXPECTED}", name)
        elif item.strip().lower() in VIEW_ANGLES_DEG:
            angles.append(VIEW_ANGLES_DEG[item.strip().lower()])
        elif item.strip().lower().startswith("orbit:"):
            count = item.strip().split(":", 1)[1]
            angles.extend(orbit_angles(whole_number(count, name, maximum=MAX_VIEWS, what="views in the orbit")))
        else:
            try:
                angle = float(item)
            except ValueError:
                raise InputError(f"unknown view {item.strip()!r}; expected {_VIEWS_EXPECTED}", name) from None
            if not math.isfinite(angle):
                raise InputError(f"expected a finite angle in degrees, got {item.strip()!r}", name)
            angles.append(angle)
        if len(angles) > MAX_VIEWS:
            raise InputError(f"expected at most {MAX_VIEWS} views, got more", name)
    if not angles:
        raise InputError(f"no view given; expected {_VIEWS_EXPECTED}, e.g. 'ap,lateral'", name)
    return angles
