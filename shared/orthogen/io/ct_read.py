"""Reading a CT volume from NIfTI, NRRD or a DICOM series folder into a MONAI MetaTensor."""
from __future__ import annotations

import warnings
from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np
import torch
from monai.data import MetaTensor

from orthogen.errors import InputError
from orthogen.io.dicom_ct_series import is_dicom_file_name, read_dicom_ct_series
from orthogen.io.input_file import existing_file
from orthogen.io.patient_space import voxel_spacing

NIFTI_SUFFIXES = (".nii", ".nii.gz")
NRRD_SUFFIXES = (".nrrd", ".nhdr")

#: How NRRD "space" values map onto RAS: a sign per world axis.
_NRRD_SPACE_TO_RAS_SIGNS = {
    "right-anterior-superior": (1.0, 1.0, 1.0),
    "ras": (1.0, 1.0, 1.0),
    "left-anterior-superior": (-1.0, 1.0, 1.0),
    "las": (-1.0, 1.0, 1.0),
    "left-posterior-superior": (-1.0, -1.0, 1.0),
    "lps": (-1.0, -1.0, 1.0),
}


def read_ct(path: str | Path) -> MetaTensor:
    """Read a CT volume as stored, with its true voxel -> RAS mm affine.

    Args:
        path: a NIfTI file (``.nii`` / ``.nii.gz``), an NRRD file (``.nrrd`` / ``.nhdr``), or a folder
            holding one DICOM CT series (``.dcm`` files or files without extension).

    Returns:
        MetaTensor of shape (X, Y, Z), float32, in HU. ``.affine`` is the float64 4x4 voxel-index -> RAS
        world (mm) matrix describing the array exactly as returned (no reorientation is done; callers
        reorient with MONAI's ``Orientation``). ``.meta`` holds ``spacing`` (mm per array axis),
        ``filename_or_obj``, ``original_affine``, ``spatial_shape``, ``space`` ("RAS") and
        ``original_channel_dim`` ("no_channel", so ``EnsureChannelFirst`` works).

    Raises:
        InputError: naming the file when it is missing, empty, corrupt, not 3D, of an unknown kind, or a
            DICOM folder without images / with mixed series, sizes or non-uniform slice spacing.
    """
    source = Path(path)
    if source.is_dir():
        volume, affine = read_dicom_ct_series(source)
    else:
        file = existing_file(source)
        name = file.name.lower()
        if name.endswith(NIFTI_SUFFIXES):
            volume, affine = _read_nifti(file)
        elif name.endswith(NRRD_SUFFIXES):
            volume, affine = _read_nrrd(file)
        elif is_dicom_file_name(file):
            raise InputError("expected a DICOM series folder, got a single DICOM file; pass its folder",
                             file)
        else:
            raise InputError(f"unknown CT file type {file.suffix!r}; expected .nii, .nii.gz, .nrrd, .nhdr "
                             "or a DICOM series folder", file)
    return _ct_metatensor(volume, affine, source)


def _ct_metatensor(volume: np.ndarray, affine: np.ndarray, source: Path) -> MetaTensor:
    """(X, Y, Z) float32 MetaTensor with the RAS affine and the metadata MONAI's LoadImage would give."""
    affine = torch.as_tensor(affine, dtype=torch.float64)
    meta = {
        "spacing": voxel_spacing(affine.numpy()),
        "filename_or_obj": str(source),
        "original_affine": affine.clone(),
        "spatial_shape": np.asarray(volume.shape),
        "space": "RAS",
        "original_channel_dim": "no_channel",
    }
    array = torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32))
    return MetaTensor(array, affine=affine, meta=meta)


def _as_3d(data_shape: tuple[int, ...], file: Path) -> tuple[int, int, int]:
    """The 3D shape of a volume whose trailing axes beyond the third all have length 1."""
    if len(data_shape) < 3 or any(size != 1 for size in data_shape[3:]):
        raise InputError(f"expected a 3D volume (X, Y, Z), got shape {tuple(data_shape)}", file)
    return tuple(data_shape[:3])


def _read_nifti(file: Path) -> tuple[np.ndarray, np.ndarray]:
    """Array (X, Y, Z) float32 with scl_slope/scl_inter applied, and the sform (else qform) affine."""
    try:
        image = nib.load(file)
        shape = _as_3d(image.shape, file)
        volume = np.asarray(image.get_fdata(dtype=np.float32)).reshape(shape)
        affine = np.asarray(image.affine, dtype=np.float64)
    except InputError:
        raise
    except Exception as exc:  # nibabel raises ImageFileError, EOFError, OSError, zlib errors, ...
        raise InputError(f"not a readable NIfTI file, or truncated ({type(exc).__name__}: {exc})",
                         file) from exc
    return volume, affine


def _read_nrrd(file: Path) -> tuple[np.ndarray, np.ndarray]:
    """Array in NRRD axis order (fastest first, i.e. (X, Y, Z)) and its RAS affine.

    The affine's columns are the 'space directions' rows and its translation is 'space origin', both
    converted from the header's 'space' (LPS, LAS or RAS) to RAS. A file without 'space directions'
    gets a diagonal affine from 'spacings' (default 1 mm) with a warning that its orientation is unknown.
    """
    try:
        data, header = nrrd.read(str(file), index_order="F")
    except Exception as exc:  # pynrrd raises NRRDError, ValueError, OSError, ...
        raise InputError(f"not a readable NRRD file, or truncated ({type(exc).__name__}: {exc})",
                         file) from exc
    shape = _as_3d(data.shape, file)
    affine = np.eye(4)
    if "space directions" in header:
        directions = np.asarray(header["space directions"], dtype=np.float64)
        if directions.ndim != 2 or directions.shape[1] != 3 or not np.all(np.isfinite(directions[:3])):
            raise InputError("expected 3 spatial axes first in 'space directions', "
                             f"got {directions.tolist()}", file)
        affine[:3, :3] = directions[:3].T
        affine[:3, 3] = np.asarray(header.get("space origin", np.zeros(3)), dtype=np.float64)
        space = str(header.get("space", "")).lower()
        if space not in _NRRD_SPACE_TO_RAS_SIGNS:
            raise InputError(f"unsupported NRRD 'space' {header.get('space')!r}; expected one of "
                             "right-anterior-superior (RAS), left-anterior-superior (LAS), "
                             "left-posterior-superior (LPS)", file)
        affine = np.diag([*_NRRD_SPACE_TO_RAS_SIGNS[space], 1.0]) @ affine
    else:
        spacings = np.asarray(header.get("spacings", np.ones(3)), dtype=np.float64)[:3]
        affine[:3, :3] = np.diag(np.where(np.isfinite(spacings), spacings, 1.0))
        warnings.warn(f"{file}: NRRD has no 'space directions'; orientation unknown, assuming RAS axes "
                      f"with spacing {affine.diagonal()[:3].tolist()} mm and origin 0", stacklevel=3)
    return data.reshape(shape).astype(np.float32), affine

