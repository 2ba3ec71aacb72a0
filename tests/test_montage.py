"""Montage slicing: display orientation and slices through a chosen world point."""
import numpy as np

from orthogen.montage import ras_slices


def _marked_volume():
    """(20, 30, 40) volume of 2 mm voxels stored LAS (first axis toward patient left), one bright voxel."""
    volume = np.zeros((20, 30, 40), dtype=np.float32)
    volume[5, 7, 31] = 1.0
    affine = np.diag([-2.0, 2.0, 2.0, 1.0])  # voxel i runs right -> left in RAS terms (x = -2 i)
    affine[:3, 3] = (100.0, -50.0, 10.0)
    return volume, affine


def test_default_slices_pass_through_the_middle_voxel():
    volume, affine = _marked_volume()
    slices = {name: image for name, image, _ in ras_slices(volume, affine)}
    assert slices["axial"].shape == (30, 20)  # rows A->P, cols R->L
    assert slices["coronal"].shape == (40, 20)
    assert slices["sagittal"].shape == (40, 30)
    assert all(image.max() == 0.0 for image in slices.values())  # the mark is off every mid-slice


def test_slices_through_a_world_point_show_it_where_radiologists_expect():
    volume, affine = _marked_volume()
    point = affine[:3, :3] @ np.array([5.0, 7.0, 31.0]) + affine[:3, 3]
    slices = {name: image for name, image, _ in ras_slices(volume, affine, centre_mm=tuple(point))}
    # canonical (RAS) voxel of the mark: x index flips (20 - 1 - 5 = 14); y = 7; z = 31
    axial_rc = np.argwhere(slices["axial"] == 1.0)
    coronal_rc = np.argwhere(slices["coronal"] == 1.0)
    sagittal_rc = np.argwhere(slices["sagittal"] == 1.0)
    assert axial_rc.tolist() == [[30 - 1 - 7, 20 - 1 - 14]]  # rows anterior first, cols patient right first
    assert coronal_rc.tolist() == [[40 - 1 - 31, 20 - 1 - 14]]  # rows superior first
    assert sagittal_rc.tolist() == [[40 - 1 - 31, 30 - 1 - 7]]  # cols anterior first


def test_a_point_outside_the_volume_is_clamped_to_its_edge():
    volume, affine = _marked_volume()
    volume[:, :, -1] = 2.0  # the most superior slice
    point = affine[:3, :3] @ np.array([5.0, 7.0, 31.0]) + affine[:3, 3]
    above = (point[0], point[1], 1e4)  # far superior of the volume, in line with the mark
    slices = {name: image for name, image, _ in ras_slices(volume, affine, centre_mm=above)}
    assert np.all(slices["axial"] == 2.0)  # clamped to the top slice
    assert (slices["coronal"] == 1.0).sum() == 1 and (slices["sagittal"] == 1.0).sum() == 1
