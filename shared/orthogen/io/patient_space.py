"""Patient coordinate systems: DICOM/ITK LPS versus the RAS convention OrthoGen's affines use."""
from __future__ import annotations

import numpy as np

#: Multiplying a 4x4 LPS affine on the left by this gives the RAS affine (and back: it is its own inverse).
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def voxel_spacing(affine: np.ndarray) -> tuple[float, ...]:
    """Voxel size in mm along each array axis: the lengths of the affine's first columns."""
    affine = np.asarray(affine, dtype=np.float64)
    return tuple(float(s) for s in np.linalg.norm(affine[:-1, :-1], axis=0))
