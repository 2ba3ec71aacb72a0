"""The voxel grid a phantom is sampled on: shape, spacing, RAS affine and world coordinates.

The grid is centred on the world origin and axis-aligned (diagonal affine), so voxel ``i`` along an
axis of ``n`` voxels with spacing ``s`` lies at ``(i - (n - 1) / 2) * s`` mm.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Sequence

import numpy as np

from orthogen.errors import InputError

#: Largest grid: 2^30 voxels (1024^3), already ~4 GB per float32 array and hours of painting on a CPU.
MAX_VOXELS = 2**30
#: Largest voxel size: 100 mm (a CT voxel is ~0.3-5 mm; beyond this the anatomy falls inside a voxel).
MAX_SPACING_MM = 100.0

# Three broadcastable float32 arrays x, y, z of world (or local) coordinates in mm.
Coords = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class VoxelGrid:
    """An (X, Y, Z) grid of voxels with the given spacing (mm), centred on the world origin.

    Raises:
        InputError: ``shape`` is not three positive integers (at most ``MAX_VOXELS`` in all) or
            ``spacing`` not three finite voxel sizes in (0, ``MAX_SPACING_MM``] mm.
    """

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", _checked_shape(self.shape))
        object.__setattr__(self, "spacing", _checked_spacing(self.spacing))

    @property
    def affine(self) -> np.ndarray:
        """(4, 4) float64 voxel index -> RAS world mm; diagonal = spacing, centre voxel at the origin."""
        affine = np.diag([*self.spacing, 1.0])
        affine[:3, 3] = [-s * (n - 1) / 2 for n, s in zip(self.shape, self.spacing)]
        return affine

    @property
    def ramp_mm(self) -> float:
        """Width (mm) of the partial-volume ramp across a surface: the mean voxel size."""
        return float(np.mean(self.spacing))

    def sub_box(self, lower_mm: np.ndarray, upper_mm: np.ndarray) -> tuple[tuple[slice, slice, slice], Coords] | None:
        """The voxels whose centres lie within the world box ``[lower_mm, upper_mm]`` (mm, per axis).

        Returns:
            The index slices of the box and its world coordinates as broadcastable float32 arrays of
            shapes (nx, 1, 1), (1, ny, 1), (1, 1, nz); None when the box misses the grid.
        """
        slices = []
        coords = []
        for axis, (n, s) in enumerate(zip(self.shape, self.spacing)):
            offset = -s * (n - 1) / 2
            start = max(0, math.ceil((lower_mm[axis] - offset) / s))
            stop = min(n, math.floor((upper_mm[axis] - offset) / s) + 1)
            if stop <= start:
                return None
            slices.append(slice(start, stop))
            shape = [1, 1, 1]
            shape[axis] = stop - start
            coords.append((offset + s * np.arange(start, stop)).astype(np.float32).reshape(shape))
        return (slices[0], slices[1], slices[2]), (coords[0], coords[1], coords[2])


def _checked_shape(shape: Sequence[int]) -> tuple[int, int, int]:
    try:
        items = tuple(shape)
    except TypeError:
        raise InputError(f"expected three voxel counts (X, Y, Z), got {shape!r}", "shape") from None
    if len(items) != 3 or not all(isinstance(n, Integral) and not isinstance(n, bool) and n > 0 for n in items):
        raise InputError(f"expected three positive integers (X, Y, Z), got {shape!r}", "shape")
    if math.prod(int(n) for n in items) > MAX_VOXELS:
        raise InputError(f"expected at most {MAX_VOXELS} voxels (1024^3) in all, got {shape!r} = "
                         f"{math.prod(int(n) for n in items)}", "shape")
    return int(items[0]), int(items[1]), int(items[2])


def _checked_spacing(spacing: Sequence[float]) -> tuple[float, float, float]:
    try:
        items = tuple(spacing)
    except TypeError:
        raise InputError(f"expected three voxel sizes in mm (x, y, z), got {spacing!r}", "spacing") from None
    if len(items) != 3 or not all(
        isinstance(s, Real) and not isinstance(s, bool) and math.isfinite(s) and 0 < s <= MAX_SPACING_MM for s in items
    ):
        raise InputError(f"expected three voxel sizes in mm (x, y, z), each above 0 and at most {MAX_SPACING_MM:g}, "
                         f"got {spacing!r}", "spacing")
    return float(items[0]), float(items[1]), float(items[2])
