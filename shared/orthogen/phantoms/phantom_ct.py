"""The result of rendering a phantom: a CT volume in HU with its bone labels and RAS affine."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from orthogen.errors import InputError


@dataclass(frozen=True, eq=False)
class PhantomCT:
    """A rendered CT phantom.

    Attributes:
        volume_hu: (X, Y, Z) float32, Hounsfield units.
        labels: (X, Y, Z) uint8; 0 is background, every bone has its own label (see ``label_names``).
        affine: (4, 4) float64, voxel index -> RAS world mm; its diagonal is the spacing and the volume
            centre lies at the world origin.
        label_names: label value -> bone name, for every bone label the phantom defines.
    """

    volume_hu: np.ndarray
    labels: np.ndarray
    affine: np.ndarray
    label_names: dict[int, str]

    def __post_init__(self) -> None:
        if self.volume_hu.ndim != 3 or self.volume_hu.dtype != np.float32:
            raise InputError(
                f"expected a 3-D float32 array, got {self.volume_hu.dtype} of shape {self.volume_hu.shape}", "volume_hu"
            )
        if self.labels.shape != self.volume_hu.shape or self.labels.dtype != np.uint8:
            raise InputError(
                f"expected uint8 of shape {self.volume_hu.shape}, got {self.labels.dtype} of shape {self.labels.shape}",
                "labels",
            )
        if self.affine.shape != (4, 4):
            raise InputError(f"expected a 4x4 matrix, got shape {self.affine.shape}", "affine")

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size (x, y, z) in mm, the lengths of the affine's columns."""
        x, y, z = np.linalg.norm(self.affine[:3, :3], axis=0)
        return float(x), float(y), float(z)
