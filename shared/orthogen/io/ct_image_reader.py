"""``CTImageReader``: a MONAI ``ImageReader`` for CT volumes (NIfTI, NRRD, DICOM series folder) in HU.

Use it with the stock loader, ``LoadImaged(keys="image", reader=CTImageReader())`` (in a bundle config
``"reader": "orthogen.io.CTImageReader"``), or through :func:`orthogen.io.read_ct`, which is exactly
``LoadImage(image_only=True)(path, reader=CTImageReader())``.

The pixels and affines come from MONAI's own readers (``NibabelReader``, ``NrrdReader``,
``PydicomReader``); this class adds OrthoGen's input checks (one InputError line naming the file) and
gives every format the same output: (X, Y, Z) float32 HU, no channel, a float64 voxel -> RAS mm affine.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from monai.config import PathLike
from monai.data import ImageReader, NibabelReader, NrrdReader, PydicomReader
from monai.data.image_reader import NrrdImage
from monai.data.utils import affine_to_spacing
from monai.utils import MetaKeys, SpaceKeys, ensure_tuple
from pydicom.pixel_data_handlers.util import apply_modality_lut

from orthogen.errors import InputError
from orthogen.io.ct_series_checks import CheckedCTSeries, is_dicom_file_name, read_checked_ct_series
from orthogen.io.ct_values import check_ct_hounsfield
from orthogen.io.dicom_modality import CT_MODALITY
from orthogen.io.input_file import existing_file
from orthogen.io.patient_space import LPS_TO_RAS

NIFTI_SUFFIXES = (".nii", ".nii.gz")
NRRD_SUFFIXES = (".nrrd", ".nhdr")

#: Per world axis, the sign that takes an NRRD "space" to LPS (the one space MONAI's NrrdReader converts).
_NRRD_SPACE_TO_LPS_SIGNS = {
    "left-posterior-superior": (1.0, 1.0, 1.0),
    "lps": (1.0, 1.0, 1.0),
    "right-anterior-superior": (-1.0, -1.0, 1.0),
    "ras": (-1.0, -1.0, 1.0),
    "left-anterior-superior": (1.0, -1.0, 1.0),
    "las": (1.0, -1.0, 1.0),
}


class CheckedDicomSeriesReader(PydicomReader):
    """MONAI's ``PydicomReader`` on one CT series folder, after :func:`read_checked_ct_series`.

    ``get_data`` is MONAI's (stacking by InstanceNumber, (Columns, Rows, slices) with ``swap_ij``, LPS ->
    RAS affine with the slice step from the first and last positions, pruned metadata). Two pieces are
    our own, and why:

    * ``read``: MONAI globs every file of the folder and skips unreadable ones with a warning; here the
      slice files are chosen by name, read once, and checked (each failure an InputError naming the
      file), and the checked series is kept in ``self.checked``.
    * ``_get_array_data``: MONAI applies RescaleSlope / RescaleIntercept in float32 arithmetic (up to
      2 float32 steps off, 0.004 HU at 60000 HU) and ignores a Modality LUT Sequence; here pydicom's
      ``apply_modality_lut`` is applied in float64 and the result rounded once to float32.
    """

    def __init__(self):
        super().__init__(affine_lps_to_ras=True, swap_ij=True, prune_metadata=True)
        self.checked: CheckedCTSeries | None = None

    def read(self, data: Sequence[PathLike] | PathLike, **kwargs):
        """Check and read the series in the one folder ``data``: a dataset list (one dataset if one slice)."""
        (folder,) = ensure_tuple(data)
        self.checked = read_checked_ct_series(Path(folder))
        names = [str(f) for f in self.checked.files]
        self.has_series = len(names) > 1
        self.filenames = [names] if self.has_series else names
        return self.checked.datasets if self.has_series else self.checked.datasets[0]

    def _get_array_data(self, img, filename):
        """(Rows, Columns) float32 HU: the stored pixels through the Modality LUT (rescale), in float64."""
        return np.asarray(apply_modality_lut(img.pixel_array, img), dtype=np.float32)


class CTImageReader(ImageReader):
    """MONAI ImageReader: a CT file or DICOM series folder -> (X, Y, Z) float32 HU and its metadata.

    Accepts a NIfTI file (``.nii`` / ``.nii.gz``), an NRRD file (``.nrrd`` / ``.nhdr``), or a folder
    holding one DICOM CT series (``.dcm`` files or files without extension). ``get_data`` returns:

    * the array, shape (X, Y, Z), float32, in HU (NIfTI scl_slope / DICOM Modality LUT applied), exactly
      as stored: no reorientation (callers reorient with MONAI's ``Orientation``). For DICOM X is the
      column index, Y the row index, Z the slice order of increasing InstanceNumber (along or against
      the slice normal, whichever the numbering runs; by position along the normal when the numbers are
      missing, repeated or out of order);
    * the metadata of the MONAI reader used, with ``affine`` and ``original_affine`` (float64 4x4 voxel
      -> RAS mm, describing the array as returned), ``spacing`` (mm per array axis), ``spatial_shape``,
      ``space`` ("RAS"), ``original_channel_dim`` ("no_channel", for ``EnsureChannelFirst``) and
      ``filename_or_obj``.

    All reading happens in ``get_data``; ``read`` only returns the path. ``LoadImage`` catches errors
    raised in ``read`` and silently tries its other readers (which would read a series these checks
    reject), but lets errors of ``get_data`` through: so bad input always ends in one
    ``orthogen.errors.InputError`` naming the file or folder, including for NaN / infinite voxels.

    A DICOM series must be Modality CT (a CR film or an MR series is refused naming its Modality). With
    ``check_hu`` the values of a volume that does not say it is a CT (NIfTI, NRRD, a DICOM series without
    Modality) must look like HU (:func:`orthogen.io.ct_values.check_ct_hounsfield`: air, or soft tissue and
    bone); it is off by default because label maps and other volumes on a CT's grid are read here too.

    Own pieces where a MONAI reader cannot do it: a one-slice DICOM series (MONAI returns a 2D image
    with an identity slice axis) gets the slice axis normal x SliceThickness (else
    SpacingBetweenSlices); NRRD headers are put
    in LPS first (MONAI's NrrdReader converts only the exact spelling "left-posterior-superior" and takes
    any other space, e.g. LAS, as RAS), and a header without "space directions" (which MONAI cannot
    read) gets a diagonal RAS affine from "spacings" with a warning that its orientation is unknown.

    The MONAI readers keep per-read state (``filenames``), so a fresh one is made for every
    ``get_data``: one CTImageReader can serve the threads of a ``CacheDataset`` and holds no slices
    between reads.

    Args:
        check_hu: refuse a volume without Modality CT whose values do not look like HU (for CT inputs; off
            for label maps and other volumes read as "a volume on a CT's grid").
    """

    def __init__(self, check_hu: bool = False):
        super().__init__()
        self.check_hu = bool(check_hu)

    def verify_suffix(self, filename: Sequence[PathLike] | PathLike) -> bool:
        """True for one path naming a NIfTI or NRRD file or a folder (a DICOM series)."""
        names = ensure_tuple(filename)
        return len(names) == 1 and (Path(names[0]).is_dir()
                                    or str(names[0]).lower().endswith(NIFTI_SUFFIXES + NRRD_SUFFIXES))

    def read(self, data: Sequence[PathLike] | PathLike, **kwargs) -> Path | tuple[Path, ...]:
        """The path(s) to read; nothing is opened yet (see the class docstring for why)."""
        paths = tuple(Path(p).expanduser() for p in ensure_tuple(data))
        return paths[0] if len(paths) == 1 else paths

    def get_data(self, img: Path | tuple[Path, ...]) -> tuple[np.ndarray, dict]:
        """Read the CT at ``img`` (a path from ``read``): ((X, Y, Z) float32 HU, metadata dict).

        Raises:
            InputError: naming the file or folder when it is missing, empty, corrupt, not 3D, of an unknown
                kind, has NaN or infinite voxels, or is a DICOM folder that fails
                :func:`~orthogen.io.ct_series_checks.read_checked_ct_series` (another Modality than CT
                included); with ``check_hu``, when a volume without Modality CT has values unlike HU.
        """
        if isinstance(img, tuple):
            raise InputError(f"expected one CT file or DICOM series folder, got {len(img)} paths",
                             ", ".join(str(p) for p in img))
        source = Path(img)
        modality = ""
        if source.is_dir():
            array, meta, modality = self._read_dicom_series(source)
        else:
            file = existing_file(source)
            name = file.name.lower()
            if name.endswith(NIFTI_SUFFIXES):
                array, meta = self._read_nifti(file)
            elif name.endswith(NRRD_SUFFIXES):
                array, meta = self._read_nrrd(file)
            elif is_dicom_file_name(file):
                raise InputError("expected a DICOM series folder, got a single DICOM file; pass its folder",
                                 file)
            else:
                raise InputError(f"unknown CT file type {file.suffix!r}; expected .nii, .nii.gz, .nrrd, "
                                 ".nhdr or a DICOM series folder", file)
        array, meta = _finite_ct(array, meta, source)
        if self.check_hu and modality != CT_MODALITY:
            check_ct_hounsfield(array, source)
        return array, meta

    def _read_nifti(self, file: Path) -> tuple[np.ndarray, dict]:
        """MONAI NibabelReader: the data (scl_slope applied) and the header's sform (else qform) affine."""
        try:
            reader = NibabelReader()
            array, meta = reader.get_data(reader.read(str(file)))
        except Exception as exc:  # nibabel raises ImageFileError, EOFError, OSError, zlib errors, ...
            raise InputError(f"not a readable NIfTI file, or truncated ({type(exc).__name__}: {exc})",
                             file) from exc
        return array.reshape(_as_3d(array.shape, file)), meta

    def _read_nrrd(self, file: Path) -> tuple[np.ndarray, dict]:
        """MONAI NrrdReader on the data in NRRD axis order (fastest first: (X, Y, Z)), header put in LPS."""
        reader = NrrdReader(dtype=np.float32, index_order="F", affine_lps_to_ras=True)
        try:
            image = reader.read(str(file))
        except Exception as exc:  # pynrrd raises NRRDError, ValueError, OSError, ...
            raise InputError(f"not a readable NRRD file, or truncated ({type(exc).__name__}: {exc})",
                             file) from exc
        shape = _as_3d(image.array.shape, file)
        header = _nrrd_header_in_lps(image.header, shape, file)
        return reader.get_data(NrrdImage(image.array.reshape(shape), header))

    def _read_dicom_series(self, folder: Path) -> tuple[np.ndarray, dict, str]:
        """Checked series, stacked by MONAI's PydicomReader (a one-slice series gets its slice axis), and its
        Modality ("CT", or "" when the files give none)."""
        reader = CheckedDicomSeriesReader()
        datasets = reader.read(folder)
        try:
            array, meta = reader.get_data(datasets)
        except Exception as exc:  # the checks should leave nothing for MONAI to fail on; name the folder
            raise InputError(f"MONAI's PydicomReader could not stack the series ({type(exc).__name__}: {exc})",
                             folder) from exc
        if array.ndim == 2:
            checked = reader.checked
            array = array[:, :, None]
            meta[MetaKeys.AFFINE][:3, 2] = (LPS_TO_RAS[:3, :3] @ checked.normal_lps) * checked.slice_gap_mm
        return array, meta, reader.checked.modality


def _as_3d(data_shape: tuple[int, ...], file: Path) -> tuple[int, int, int]:
    """The 3D shape of a volume whose trailing axes beyond the third all have length 1."""
    if len(data_shape) < 3 or any(size != 1 for size in data_shape[3:]):
        raise InputError(f"expected a 3D volume (X, Y, Z), got shape {tuple(data_shape)}", file)
    return tuple(data_shape[:3])


def _nrrd_header_in_lps(header: dict, shape: tuple[int, int, int], file: Path) -> dict:
    """A copy of a 3D NRRD header that MONAI's NrrdReader turns into the right RAS affine.

    'space directions' rows (one per array axis) and 'space origin' are converted to LPS and 'space' set
    to "left-posterior-superior". A header without 'space directions' gets a diagonal RAS affine from
    'spacings' (default 1 mm) and origin 0, with a warning that its orientation is unknown.
    """
    header = dict(header)
    header["sizes"] = np.asarray(shape)
    if "space directions" not in header:
        spacings = np.asarray(header.get("spacings", np.ones(3)), dtype=np.float64)[:3]
        spacings = np.where(np.isfinite(spacings), spacings, 1.0)
        warnings.warn(f"{file}: NRRD has no 'space directions'; orientation unknown, assuming RAS axes "
                      f"with spacing {spacings.tolist()} mm and origin 0", stacklevel=4)
        directions, origin, space = np.diag(spacings), np.zeros(3), "ras"
    else:
        directions = np.asarray(header["space directions"], dtype=np.float64)
        if directions.ndim != 2 or directions.shape[1] != 3 or not np.all(np.isfinite(directions[:3])):
            raise InputError("expected 3 spatial axes first in 'space directions', "
                             f"got {directions.tolist()}", file)
        directions = directions[:3]
        origin = np.asarray(header.get("space origin", np.zeros(3)), dtype=np.float64)
        space = str(header.get("space", "")).lower()
        if space not in _NRRD_SPACE_TO_LPS_SIGNS:
            raise InputError(f"unsupported NRRD 'space' {header.get('space')!r}; expected one of "
                             "right-anterior-superior (RAS), left-anterior-superior (LAS), "
                             "left-posterior-superior (LPS)", file)
        if origin.shape != (3,) or not np.all(np.isfinite(origin)):
            raise InputError(f"expected 3 finite numbers in 'space origin', got {origin.tolist()}", file)
    signs = np.asarray(_NRRD_SPACE_TO_LPS_SIGNS[space])
    header["space directions"] = directions * signs
    header["space origin"] = origin * signs
    header["space"] = "left-posterior-superior"
    return header


def _finite_ct(array: np.ndarray, meta: dict, source: Path) -> tuple[np.ndarray, dict]:
    """(X, Y, Z) contiguous float32 HU with all-finite voxels, and the metadata every format shares."""
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
            or array.dtype == bool):
        raise InputError(f"expected one HU number per voxel, got voxels of type {array.dtype} "
                         "(an RGB / colour image?)", source)
    array = np.ascontiguousarray(array, dtype=np.float32)
    bad = int(array.size - np.count_nonzero(np.isfinite(array)))
    if bad:
        raise InputError(f"{bad} of {array.size} voxels are NaN or infinite; expected finite HU", source)
    affine = np.array(meta[MetaKeys.AFFINE], dtype=np.float64)
    meta.update({
        MetaKeys.AFFINE: affine,
        MetaKeys.ORIGINAL_AFFINE: affine.copy(),
        "spacing": affine_to_spacing(affine, r=3),
        MetaKeys.SPATIAL_SHAPE: np.asarray(array.shape),
        MetaKeys.SPACE: SpaceKeys.RAS,
        MetaKeys.ORIGINAL_CHANNEL_DIM: "no_channel",
        "filename_or_obj": str(source),
    })
    return array, meta
