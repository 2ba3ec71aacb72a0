"""CTImageReader: MONAI's readers behind OrthoGen's checks; the same result through LoadImaged and read_ct.

Fixtures are written in tmp_path with nibabel, pynrrd, pydicom and OrthoGen's own writers.
"""
from __future__ import annotations

import shutil

import nibabel as nib
import nrrd
import numpy as np
import pydicom
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import EnsureChannelFirstd, LoadImage, LoadImaged
from pydicom.uid import generate_uid

from orthogen.errors import InputError
from orthogen.io import CTImageReader, read_ct, write_dicom_ct_series, write_nifti

AFFINE = np.array([[0.0, 0.0, -1.2, 30.0],
                   [0.0, 0.9, 0.0, -20.0],
                   [-0.8, 0.0, 0.0, 10.0],
                   [0.0, 0.0, 0.0, 1.0]])  # view-aligned "IAL" axes


def hu_volume(shape=(6, 5, 4), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1000.0, 2000.0, shape).astype(np.float32)


def slice_files(folder) -> list:
    return sorted(folder.iterdir())


@pytest.fixture
def ct_files(tmp_path):
    """The same volume as NIfTI, NRRD (LPS) and a DICOM series (stored in the axial LPS layout)."""
    volume = hu_volume()
    write_nifti(volume, AFFINE, tmp_path / "ct.nii.gz")
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ AFFINE
    nrrd.write(str(tmp_path / "ct.nrrd"), volume, {"space": "left-posterior-superior",
                                                   "space directions": lps[:3, :3].T, "space origin": lps[:3, 3]})
    write_dicom_ct_series(volume, AFFINE, tmp_path / "series")
    return {"nifti": tmp_path / "ct.nii.gz", "nrrd": tmp_path / "ct.nrrd", "dicom": tmp_path / "series"}


@pytest.mark.parametrize("kind", ["nifti", "nrrd", "dicom"])
def test_loadimaged_with_the_reader_gives_what_read_ct_gives(ct_files, kind):
    path = ct_files[kind]
    expected = read_ct(path)
    assert isinstance(expected, MetaTensor) and expected.dtype == torch.float32 and expected.ndim == 3
    for reader in (CTImageReader(), "orthogen.io.CTImageReader"):  # instance, or a bundle config's string
        loaded = LoadImaged(keys="image", reader=reader)({"image": str(path)})["image"]
        torch.testing.assert_close(loaded.as_tensor(), expected.as_tensor())
        torch.testing.assert_close(loaded.affine, expected.affine)
        for key in ("spacing", "spatial_shape", "original_affine"):
            np.testing.assert_allclose(np.asarray(loaded.meta[key]), np.asarray(expected.meta[key]))
        assert loaded.meta["filename_or_obj"] == expected.meta["filename_or_obj"] == str(path)
        assert loaded.meta["space"] == "RAS" and loaded.meta["original_channel_dim"] == "no_channel"
    channel_first = EnsureChannelFirstd("image")({"image": expected})["image"]
    assert tuple(channel_first.shape) == (1, *expected.shape)


def test_every_format_gives_the_same_volume_in_world_space(ct_files):
    nifti, nrrd_ct = read_ct(ct_files["nifti"]), read_ct(ct_files["nrrd"])
    np.testing.assert_allclose(nrrd_ct.affine.numpy(), AFFINE, atol=1e-9)
    np.testing.assert_allclose(nifti.affine.numpy(), AFFINE, atol=1e-6)
    torch.testing.assert_close(nifti.as_tensor(), nrrd_ct.as_tensor())
    dicom = read_ct(ct_files["dicom"])  # the same voxels, stored L, P, S
    index = np.array([1, 2, 3, 1])
    world = AFFINE @ index
    dicom_index = np.rint(np.linalg.solve(dicom.affine.numpy(), world)).astype(int)
    assert abs(float(dicom[tuple(dicom_index[:3])]) - float(nifti[1, 2, 3])) <= 0.5


def test_bad_series_through_loadimaged_is_an_input_error_not_a_fallback(tmp_path):
    """LoadImage swallows errors raised in a reader's read() and tries MONAI's stock readers; the checks
    must still stop a mixed folder."""
    write_dicom_ct_series(hu_volume(), AFFINE, tmp_path / "a")
    write_dicom_ct_series(hu_volume(), AFFINE, tmp_path / "b")
    shutil.copy(slice_files(tmp_path / "b")[0], tmp_path / "a" / "from_b.dcm")
    with pytest.raises(InputError, match="mixed series") as caught:
        LoadImaged(keys="image", reader=CTImageReader())({"image": str(tmp_path / "a")})
    assert str(tmp_path / "a") in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("kind", ["nifti", "nrrd"])
def test_nan_or_infinite_voxels_are_refused(tmp_path, kind):
    volume = hu_volume((4, 4, 4))
    volume[0, 0, 0], volume[1, 2, 3], volume[3, 3, 3] = np.nan, np.inf, -np.inf
    if kind == "nifti":
        path = tmp_path / "bad.nii.gz"
        nib.save(nib.Nifti1Image(volume, np.eye(4)), path)
    else:
        path = tmp_path / "bad.nrrd"
        nrrd.write(str(path), volume, {"space": "RAS", "space directions": np.eye(3), "space origin": np.zeros(3)})
    for read in (read_ct, lambda p: LoadImage(reader=CTImageReader())(str(p))):
        with pytest.raises(InputError, match=r"3 of 64 voxels are NaN or infinite") as caught:
            read(path)
        assert "bad." in str(caught.value)


def test_dicom_rescale_overflowing_float32_is_refused(tmp_path):
    write_dicom_ct_series(hu_volume(), AFFINE, tmp_path / "s")
    ds = pydicom.dcmread(slice_files(tmp_path / "s")[1])
    ds.RescaleSlope = "1e300"
    ds.save_as(slice_files(tmp_path / "s")[1])
    with pytest.warns(RuntimeWarning), pytest.raises(InputError, match="NaN or infinite"):
        read_ct(tmp_path / "s")


def modified_copy(tmp_path, name, edit, index=1):
    """A copy of a good 6 x 5 x 4 series with ``edit(dataset)`` applied to one slice file."""
    source = tmp_path / "good"
    if not source.exists():
        write_dicom_ct_series(hu_volume(), AFFINE, source)
    folder = tmp_path / name
    shutil.copytree(source, folder)
    target = slice_files(folder)[index]
    ds = pydicom.dcmread(target)
    edit(ds)
    ds.save_as(target)
    return folder, target


def test_series_checks_name_the_folder_or_file(tmp_path):
    def no_position(ds):
        del ds.ImagePositionPatient

    folder, target = modified_copy(tmp_path, "no_position", no_position)
    with pytest.raises(InputError, match="ImagePositionPatient") as caught:
        read_ct(folder)
    assert target.name in str(caught.value)

    def tilted(ds):
        ds.ImageOrientationPatient = [1, 0, 0, 0, 0.8, 0.6]

    with pytest.raises(InputError, match="mixed ImageOrientationPatient"):
        read_ct(modified_copy(tmp_path, "tilted", tilted)[0])

    def finer(ds):
        ds.PixelSpacing = [0.5, 0.5]

    with pytest.raises(InputError, match="mixed PixelSpacing"):
        read_ct(modified_copy(tmp_path, "finer", finer)[0])

    duplicate = tmp_path / "duplicate"
    shutil.copytree(tmp_path / "good", duplicate)
    ds = pydicom.dcmread(slice_files(duplicate)[2])
    ds.SOPInstanceUID = generate_uid()
    ds.save_as(duplicate / "again.dcm")
    with pytest.raises(InputError, match="same position"):
        read_ct(duplicate)

    def multi_frame(ds):
        frames = np.stack([ds.pixel_array] * 2)
        ds.NumberOfFrames = 2
        ds.PixelData = frames.tobytes()

    folder, target = modified_copy(tmp_path, "frames", multi_frame)
    with pytest.raises(InputError, match="multi-frame") as caught:
        read_ct(folder)
    assert target.name in str(caught.value)


def test_slices_stack_in_instance_number_order_or_by_position(tmp_path):
    volume = hu_volume()
    write_dicom_ct_series(volume, AFFINE, tmp_path / "forward")
    forward = read_ct(tmp_path / "forward")

    reverse = tmp_path / "reverse"  # numbered from superior to inferior, as some scanners do
    shutil.copytree(tmp_path / "forward", reverse)
    files = slice_files(reverse)
    for f in files:
        ds = pydicom.dcmread(f)
        ds.InstanceNumber = len(files) + 1 - int(ds.InstanceNumber)
        ds.save_as(f)
    backward = read_ct(reverse)
    torch.testing.assert_close(backward.as_tensor(), forward.as_tensor().flip(2))
    flip_z = np.eye(4)
    flip_z[2, 2], flip_z[2, 3] = -1, forward.shape[2] - 1  # the documented slice order: against the normal
    np.testing.assert_allclose(backward.affine.numpy(), forward.affine.numpy() @ flip_z, atol=1e-6)

    for name, number in (("unnumbered", None), ("repeated", 1)):
        folder = tmp_path / name
        shutil.copytree(tmp_path / "forward", folder)
        for f in slice_files(folder):
            ds = pydicom.dcmread(f)
            ds.InstanceNumber = number
            ds.save_as(f)
        by_position = read_ct(folder)
        torch.testing.assert_close(by_position.as_tensor(), forward.as_tensor())
        torch.testing.assert_close(by_position.affine, forward.affine)


def test_one_slice_series_is_a_3d_volume_with_its_slice_axis(tmp_path):
    volume = hu_volume((6, 5, 1))
    affine = np.diag([0.8, 0.7, 2.5, 1.0])
    write_dicom_ct_series(volume, affine, tmp_path / "s")
    ct = read_ct(tmp_path / "s")
    assert tuple(ct.shape) == (6, 5, 1)
    np.testing.assert_allclose(ct.meta["spacing"], [0.8, 0.7, 2.5], atol=1e-6)
    np.testing.assert_allclose(ct.affine.numpy()[:3, 2], [0.0, 0.0, 2.5], atol=1e-6)  # + superior


def test_nrrd_spaces_and_missing_directions(tmp_path):
    data = np.arange(3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5)
    directions = np.array([[0.8, 0.0, 0.0], [0.0, 0.7, 0.0], [0.0, 0.3, 2.5]])
    expected_ras = {"LPS": np.diag([-1.0, -1.0, 1.0]), "left-anterior-superior": np.diag([-1.0, 1.0, 1.0]),
                    "right-anterior-superior": np.eye(3)}
    for space, to_ras in expected_ras.items():
        path = tmp_path / f"{space}.nrrd"
        nrrd.write(str(path), data, {"space": space, "space directions": directions,
                                     "space origin": np.array([10.0, 20.0, 30.0])})
        ct = read_ct(path)
        np.testing.assert_allclose(ct.affine.numpy()[:3, :3], to_ras @ directions.T, atol=1e-12)
        np.testing.assert_allclose(ct.affine.numpy()[:3, 3], to_ras @ [10.0, 20.0, 30.0], atol=1e-12)
        np.testing.assert_array_equal(ct.numpy(), data)

    nrrd.write(str(tmp_path / "bare.nrrd"), data, {"spacings": [1.5, 2.0, 3.0]})
    with pytest.warns(UserWarning, match=r"bare\.nrrd.*orientation unknown"):
        ct = read_ct(tmp_path / "bare.nrrd")
    np.testing.assert_allclose(ct.affine.numpy(), np.diag([1.5, 2.0, 3.0, 1.0]))

    nrrd.write(str(tmp_path / "scanner.nrrd"), data, {"space": "scanner-xyz", "space directions": directions})
    with pytest.raises(InputError, match="scanner.nrrd.*unsupported NRRD 'space'"):
        read_ct(tmp_path / "scanner.nrrd")


def test_trailing_singleton_axes_are_dropped(tmp_path):
    volume = hu_volume((4, 3, 2))
    nib.save(nib.Nifti1Image(volume[..., None], AFFINE), tmp_path / "ct4d.nii.gz")
    ct = read_ct(tmp_path / "ct4d.nii.gz")
    assert tuple(ct.shape) == (4, 3, 2) and list(ct.meta["spatial_shape"]) == [4, 3, 2]
    np.testing.assert_array_equal(ct.numpy(), volume)


def test_rgb_nifti_is_refused_in_one_line(tmp_path):
    rgb = np.zeros((4, 4, 4), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    nib.save(nib.Nifti1Image(rgb, np.eye(4)), tmp_path / "rgb.nii.gz")
    with pytest.raises(InputError, match=r"rgb\.nii\.gz: expected one HU number per voxel.*RGB"):
        read_ct(tmp_path / "rgb.nii.gz")


# ---- what a CT input must be (issue 26): Modality CT, values like HU, one slice's thickness

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
SLICE_GEOMETRY = {"ImageOrientationPatient": [1, 0, 0, 0, 1, 0], "ImagePositionPatient": [0, 0, 0],
                  "PixelSpacing": [1.0, 1.0], "SliceThickness": 5.0}


def test_a_dicom_folder_of_another_modality_is_refused_naming_it(tmp_path):
    from dicom_builders import write_dx

    (tmp_path / "cr").mkdir()  # a CR film in a CT folder: no geometry tags, refused for what it is
    film = write_dx(tmp_path / "cr" / "film.dcm", np.zeros((32, 32), np.uint16), modality="CR",
                    sop_class=CR_IMAGE_STORAGE)
    with pytest.raises(InputError) as caught:
        read_ct(tmp_path / "cr")
    assert str(caught.value) == (f"{film}: not a CT: Modality CR (computed radiography); expected a CT series "
                                 "(Modality CT)")
    (tmp_path / "mr").mkdir()  # an MR slice with all the geometry a CT slice has
    write_dx(tmp_path / "mr" / "slice.dcm", np.full((32, 32), 400, np.uint16), modality="MR",
             sop_class=MR_IMAGE_STORAGE, **SLICE_GEOMETRY)
    with pytest.raises(InputError, match=r"slice\.dcm: not a CT: Modality MR \(magnetic resonance\)"):
        read_ct(tmp_path / "mr")


def test_one_slice_series_takes_its_slice_thickness_not_the_spacing_between_slices(tmp_path):
    volume = np.full((16, 16, 1), -1000.0, np.float32)
    volume[4:12, 4:12] = 40.0
    write_dicom_ct_series(volume, np.diag([0.8, 0.8, 2.5, 1.0]), tmp_path / "s")
    (file,) = slice_files(tmp_path / "s")
    ds = pydicom.dcmread(file)
    ds.SliceThickness, ds.SpacingBetweenSlices = 5.0, 20.0
    ds.save_as(file)
    ct = read_ct(tmp_path / "s")
    np.testing.assert_allclose(ct.meta["spacing"], [0.8, 0.8, 5.0], atol=1e-6)
    del ds.SliceThickness  # without SliceThickness: SpacingBetweenSlices
    ds.save_as(file)
    np.testing.assert_allclose(read_ct(tmp_path / "s").meta["spacing"], [0.8, 0.8, 20.0], atol=1e-6)


def _crops(phantom_ct):
    """Every label's bounding box of a rendered phantom: a vertebra, a bone, cut tight (no air in most)."""
    crops = {}
    for label in sorted(set(np.unique(phantom_ct.labels).tolist()) - {0}):
        index = np.argwhere(phantom_ct.labels == label)
        crops[label] = phantom_ct.volume_hu[tuple(slice(a, b) for a, b in zip(index.min(0), index.max(0) + 1))]
    return crops


@pytest.mark.parametrize("kind", ["knee", "spine"])
def test_every_phantom_kind_whole_and_cropped_reads_as_hu(kind):
    from orthogen.io.ct_values import check_ct_hounsfield
    from orthogen.phantoms import KneePhantom, SpinePhantom

    model = {"knee": KneePhantom, "spine": SpinePhantom}[kind]
    for seed in (0, 1, 2):
        rendered = model.from_seed(seed).render((48, 48, 48), (3.0, 3.0, 3.0))
        check_ct_hounsfield(rendered.volume_hu, f"{kind} {seed}")
        crops = _crops(rendered)
        assert crops
        for label, crop in crops.items():
            check_ct_hounsfield(crop, f"{kind} {seed} label {label}")
    # the spine's vertebra crops hold no air at all (the case the rule's second branch is for)
    vertebrae = _crops(SpinePhantom.from_seed(0).render((48, 48, 48), (3.0, 3.0, 3.0)))
    assert max(float(crop.min()) for crop in vertebrae.values()) > -50


def test_values_unlike_hu_are_refused_in_one_line(tmp_path):
    from orthogen.phantoms import KneePhantom

    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[:32, :32]
    mr = np.zeros((32, 32, 32), np.float32)  # an MR volume in arbitrary units 0..4000, tissue filling most of it
    leg = np.hypot(rows - 16, cols - 16) < 15
    mr[leg] = rng.uniform(300.0, 4000.0, (int(leg.sum()), 32))
    knee = KneePhantom.from_seed(0).render((32, 32, 32), (4.0, 4.0, 4.0)).volume_hu
    cases = {"mr": mr, "no_intercept": np.clip(knee + 1024.0, 0.0, None),  # air 0, water 1024
             "normalised": rng.uniform(0.0, 1.0, (16, 16, 16)), "raw_16_bit": rng.uniform(0.0, 65535.0, (16, 16, 16))}
    for name, volume in cases.items():
        write_nifti(volume.astype(np.float32), np.diag([2.0, 2.0, 2.0, 1.0]), tmp_path / f"{name}.nii.gz")
        read_ct(tmp_path / f"{name}.nii.gz")  # a volume, read as it is without the check
        with pytest.raises(InputError) as caught:
            read_ct(tmp_path / f"{name}.nii.gz", check_hu=True)
        message = str(caught.value)
        assert message.startswith(f"{tmp_path / name}.nii.gz: values do not look like a CT in Hounsfield units "
                                  "(values ")
        assert "below -200 HU" in message and "\n" not in message
    write_nifti(knee, np.diag([4.0, 4.0, 4.0, 1.0]), tmp_path / "knee.nii.gz")
    read_ct(tmp_path / "knee.nii.gz", check_hu=True)


def test_a_dicom_ct_is_trusted_and_a_dicom_without_modality_is_checked(tmp_path):
    volume = np.random.default_rng(1).uniform(0.0, 1.0, (8, 8, 6)).astype(np.float32)  # not HU at all
    write_dicom_ct_series(volume, np.diag([1.0, 1.0, 2.0, 1.0]), tmp_path / "ct")
    read_ct(tmp_path / "ct", check_hu=True)  # Modality CT: the scanner's rescale says HU
    for file in slice_files(tmp_path / "ct"):
        ds = pydicom.dcmread(file)
        del ds.Modality
        ds.save_as(file)
    read_ct(tmp_path / "ct")
    with pytest.raises(InputError, match=r"ct: values do not look like a CT in Hounsfield units"):
        read_ct(tmp_path / "ct", check_hu=True)
