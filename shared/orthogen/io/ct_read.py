"""Reading a CT volume from NIfTI, NRRD or a DICOM series folder into a MONAI MetaTensor."""
from __future__ import annotations

from pathlib import Path

from monai.data import MetaTensor
from monai.transforms.io.array import switch_endianness

from orthogen.io.ct_image_reader import NIFTI_SUFFIXES, NRRD_SUFFIXES, CTImageReader

__all__ = ["NIFTI_SUFFIXES", "NRRD_SUFFIXES", "read_ct"]


def read_ct(path: str | Path, *, check_hu: bool = False) -> MetaTensor:
    """Read a CT volume as stored, with its true voxel -> RAS mm affine.

    The same as MONAI's ``LoadImage(image_only=True)(path, reader=CTImageReader())`` (so a bundle's
    ``LoadImaged(keys=..., reader=CTImageReader())`` gives the same array, affine and metadata), done
    here by the steps LoadImage takes after the reader, because constructing a LoadImage registers all
    of MONAI's default readers, one of which (NvImgCodecPydicomReader) warns on every construction
    on a machine without nvImageCodec.

    Args:
        path: a NIfTI file (``.nii`` / ``.nii.gz``), an NRRD file (``.nrrd`` / ``.nhdr``), or a folder
            holding one DICOM CT series (``.dcm`` files or files without extension).
        check_hu: for a CT input (what a DRR is rendered from, a dataset's CT): a volume that does not say it
            is a CT (NIfTI, NRRD, DICOM without Modality) must have values that look like HU
            (:func:`orthogen.io.ct_values.check_ct_hounsfield`). Off by default: label maps, generated CTs'
            standard deviation maps and other volumes on a CT's grid are read with this function too.

    Returns:
        MetaTensor of shape (X, Y, Z), float32, in HU. ``.affine`` is the float64 4x4 voxel-index -> RAS
        world (mm) matrix describing the array exactly as returned (no reorientation is done; callers
        reorient with MONAI's ``Orientation``). ``.meta`` holds ``spacing`` (mm per array axis),
        ``filename_or_obj``, ``original_affine``, ``spatial_shape``, ``space`` ("RAS") and
        ``original_channel_dim`` ("no_channel", so ``EnsureChannelFirst`` works), besides the metadata
        of the MONAI reader used (NIfTI header fields; for DICOM the pruned geometry tags).
        For a DICOM series X is the column index, Y the row index and Z the order of increasing
        InstanceNumber (see :class:`~orthogen.io.CTImageReader`).

    Raises:
        InputError: naming the file when it is missing, empty, corrupt, not 3D, of an unknown kind, has
            NaN or infinite voxels, or a DICOM folder without images / with mixed series, sizes,
            orientation or spacing, missing geometry tags, multi-frame files, two slices at one position
            or non-uniform slice spacing, or files of another Modality than CT (naming it); with
            ``check_hu``, values unlike a CT's in HU.
    """
    reader = CTImageReader(check_hu=check_hu)
    array, meta = reader.get_data(reader.read(path))
    return MetaTensor.ensure_torch_and_prune_meta(array, switch_endianness(meta, "<"))
