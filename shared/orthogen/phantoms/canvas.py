"""Painting solids into a CT volume, with partial-volume anti-aliasing at every surface.

Each voxel takes the fraction ``f = clip(0.5 - d / w, 0, 1)`` of a tissue whose surface is at signed
distance ``d`` (mm), with ``w`` one voxel; a linear ramp over one voxel is a cheap stand-in for the
exact partial volume, so that DRRs of the phantoms have no staircase edges. Painting over is a mix
``hu <- hu + f * (tissue - hu)``, so later solids cover earlier ones.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from orthogen.phantoms.grid import VoxelGrid
from orthogen.phantoms.phantom_ct import PhantomCT
from orthogen.phantoms.shapes import Solid
from orthogen.phantoms.tissue import TissueLayer

#: Most voxels ``HUCanvas.paint`` evaluates at once (~4 M: a few hundred MB of temporaries).
SLAB_VOXELS = 2**22


class HUCanvas:
    """A CT volume (HU) and its label volume being painted on a ``VoxelGrid``."""

    def __init__(self, grid: VoxelGrid, background_hu: float):
        self.grid = grid
        self.volume_hu = np.full(grid.shape, background_hu, np.float32)
        self.labels = np.zeros(grid.shape, np.uint8)

    def paint(self, solid: Solid, layers: Sequence[TissueLayer], label: int = 0) -> None:
        """Paint ``layers`` (outermost first) into ``solid``; voxels whose centre lies inside the
        solid get ``label`` unless it is 0. Only the solid's bounding box is evaluated, in slabs of at
        most ``SLAB_VOXELS`` voxels along x so that large grids need little memory (every voxel is
        computed on its own, so the slabs do not change the result)."""
        ramp = self.grid.ramp_mm
        lower, upper = solid.world_bounds()
        box = self.grid.sub_box(lower - ramp, upper + ramp)
        if box is None:
            return
        (sx, sy, sz), (x, y, z) = box
        step = max(1, SLAB_VOXELS // max(1, y.size * z.size))
        for start in range(0, x.shape[0], step):
            slab_x = x[start:start + step]
            self._paint_box((slice(sx.start + start, sx.start + start + slab_x.shape[0]), sy, sz), (slab_x, y, z),
                            solid, layers, label, ramp)

    def _paint_box(self, slices: tuple[slice, slice, slice], coords: tuple[np.ndarray, np.ndarray, np.ndarray],
                   solid: Solid, layers: Sequence[TissueLayer], label: int, ramp: float) -> None:
        x, y, z = coords
        distance = solid.signed_distance(x, y, z)
        hu = self.volume_hu[slices]
        for layer in layers:
            fraction = np.clip(np.float32(0.5) - (distance + np.float32(layer.depth_mm)) / np.float32(ramp), 0.0, 1.0)
            target = np.float32(layer.hu) if layer.texture is None else np.float32(layer.hu) + layer.texture(x, y, z)
            hu += fraction * (target - hu)
        if label:
            self.labels[slices][distance <= 0] = label

    def add_noise(self, std_hu: float, rng: np.random.Generator) -> None:
        """Add white Gaussian CT noise of standard deviation ``std_hu`` (HU) to every voxel."""
        self.volume_hu += np.float32(std_hu) * rng.standard_normal(self.grid.shape, dtype=np.float32)

    def to_phantom(self, label_names: dict[int, str]) -> PhantomCT:
        """The painted volume as a ``PhantomCT``."""
        return PhantomCT(self.volume_hu, self.labels, self.grid.affine, dict(label_names))
