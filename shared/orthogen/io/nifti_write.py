"""Writing a volume or image to NIfTI (``.nii`` / ``.nii.gz``) atomically."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from orthogen.errors import InputError
from orthogen.io.array_argument import numpy_array
from orthogen.io.atomic_write import atomic_file


def write_nifti(volume, affine, path: str | Path) -> Path:
    """Write ``volume`` with its voxel -> RAS mm ``affine`` to ``path`` and return the path.

    Args:
        volume: (X, Y, Z) volume or (H, W) image, numpy or torch. Floats are stored as float32 (HU or
            [0,1] as given); integer and boolean arrays (label maps) keep an integer type
            (64-bit ones narrowed to a NIfTI-compatible one that holds their values).
        affine: 4x4 voxel -> RAS mm, numpy or torch; stored as both qform and sform (code "scanner").
        path: ending in ``.nii`` or ``.nii.gz``; written to a temporary sibling, then renamed.
    """
    target = Path(path)
    if not target.name.lower().endswith((".nii", ".nii.gz")):
        raise InputError(f"expected a .nii or .nii.gz file name, got {target.name!r}", target)
    array = numpy_array(volume, "volume")
    if array.ndim not in (2, 3):
        raise InputError(f"expected a 2D (H, W) or 3D (X, Y, Z) array, got shape {array.shape}", "volume")
    matrix = numpy_array(affine, "affine").astype(np.float64)
    if matrix.shape != (4, 4):
        raise InputError(f"expected a 4x4 affine, got shape {matrix.shape}", "affine")
    if np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float32)
    image = nib.Nifti1Image(array, matrix, dtype="compat")  # int64 -> a NIfTI integer type that fits
    image.set_qform(matrix, code="scanner")
    image.set_sform(matrix, code="scanner")
    image.header.set_xyzt_units(xyz="mm")
    with atomic_file(target) as temporary:
        nib.save(image, temporary)
    return target
