"""OrthoGen file IO: CT volumes (NIfTI, NRRD, DICOM series), radiographs (DICOM, PNG/JPEG, .npy) and
segmentation images (PNG, .npy, NIfTI, DICOM, a DICOM SEG of a radiograph); writers for NIfTI, PNG, DICOM CT
series and DICOM radiographs; bone surface meshes of a CT (marching cubes, in world mm) written as STL.

Every reader raises ``orthogen.errors.InputError`` naming the file on bad input; every writer writes
to a temporary sibling and renames it into place. CT reading is a MONAI ``ImageReader``
(:class:`CTImageReader`), so bundles load CTs with ``LoadImaged(keys=..., reader=CTImageReader())``.
"""
from orthogen.io.bone_mesh import bone_surface_mesh, write_stl
from orthogen.io.ct_image_reader import CTImageReader
from orthogen.io.ct_read import read_ct
from orthogen.io.dicom_ct_series import reorient_to_dicom_axial, write_dicom_ct_series
from orthogen.io.dicom_radiograph_write import write_dicom_radiograph
from orthogen.io.nifti_write import write_nifti
from orthogen.io.png import write_png
from orthogen.io.radiograph import Radiograph, read_radiograph
from orthogen.io.segmentation_image import SegmentationImage, read_segmentation_image, segmentation_stem

__all__ = ["CTImageReader", "Radiograph", "SegmentationImage", "bone_surface_mesh", "read_ct", "read_radiograph",
           "read_segmentation_image", "reorient_to_dicom_axial", "segmentation_stem", "write_dicom_ct_series",
           "write_dicom_radiograph", "write_nifti", "write_png", "write_stl"]
