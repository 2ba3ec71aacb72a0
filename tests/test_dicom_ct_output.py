"""write_dicom_ct_series: the conventional axial layout a viewer expects, round trips, joining a study.

A viewer (OHIF, any PACS) shows a slice's stored pixels with rows top to bottom and columns left to
right; for an axial CT that must put anterior at the top and the patient's right on the image left.
Remember RAS: +x is the patient's Right, +y Anterior, +z Superior. Fixtures are made here with numpy
and pydicom.
"""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pydicom
import pytest
from monai.transforms import EnsureChannelFirst, Orientation
from nibabel.affines import apply_affine
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from orthogen.drr.view_aligned import view_aligned_affine
from orthogen.errors import InputError
from orthogen.io import read_ct, reorient_to_dicom_axial, write_dicom_ct_series

from dicom_builders import dx_dataset

AIR_HU, MARKER_HU, TOP_HU = -1000.0, 1500.0, 800.0


def rotation_xyz(ax: float, ay: float, az: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def centred_affine(rotation: np.ndarray, spacing, shape) -> np.ndarray:
    """Voxel -> RAS affine with the given axes whose volume centre is the world origin."""
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag(spacing)
    affine[:3, 3] = -affine[:3, :3] @ ((np.asarray(shape) - 1) / 2)
    return affine


SIZE = 16
AFFINES = {
    "ras_diagonal": centred_affine(np.eye(3), (1.0, 1.1, 1.2), (SIZE,) * 3),
    "oblique": centred_affine(rotation_xyz(0.12, -0.1, 0.2), (1.0, 1.0, 1.3), (SIZE,) * 3),
    "view_aligned_IAL": view_aligned_affine((1.0, 1.0, 1.0), SIZE),
}


def phantom(affine: np.ndarray) -> np.ndarray:
    """(S, S, S) HU: air, a block at the patient's right-anterior (RAS x > 3, y > 3, |z| < 3 mm) and a
    layer at the top of the head (z > 5 mm), placed by world coordinates so any affine works."""
    world = apply_affine(affine, np.stack(np.indices((SIZE,) * 3), axis=-1))
    x, y, z = world[..., 0], world[..., 1], world[..., 2]
    volume = np.full((SIZE,) * 3, AIR_HU, dtype=np.float32)
    volume[(x > 3) & (y > 3) & (np.abs(z) < 3)] = MARKER_HU
    volume[z > 5] = TOP_HU
    return volume


def slices_in_viewer_order(folder) -> list[pydicom.Dataset]:
    return sorted((pydicom.dcmread(f) for f in folder.iterdir()), key=lambda ds: int(ds.InstanceNumber))


@pytest.mark.parametrize("name", list(AFFINES))
def test_viewer_shows_anterior_up_and_patient_right_on_the_image_left(tmp_path, name):
    affine = AFFINES[name]
    write_dicom_ct_series(phantom(affine), affine, tmp_path / "s")
    slices = slices_in_viewer_order(tmp_path / "s")

    orientation = np.array([float(v) for v in slices[0].ImageOrientationPatient])
    np.testing.assert_allclose(orientation, [1, 0, 0, 0, 1, 0], atol=0.25)  # rows -> left, columns -> posterior
    normal = np.cross(orientation[:3], orientation[3:])
    heights = [np.array([float(v) for v in ds.ImagePositionPatient]) @ normal for ds in slices]
    assert np.all(np.diff(heights) > 0)  # InstanceNumber 1..N along row x column (inferior -> superior)

    middle = slices[len(slices) // 2].pixel_array * float(slices[0].RescaleSlope) + float(slices[0].RescaleIntercept)
    rows, columns = np.nonzero(middle == MARKER_HU)
    assert rows.size > 0
    assert rows.max() < middle.shape[0] / 2, "marker (anterior) must be in the top half"
    assert columns.max() < middle.shape[1] / 2, "marker (patient's right) must be on the image left"
    # the top-of-head layer is in the last slices only
    has_top = [bool(np.any(ds.pixel_array == TOP_HU)) for ds in slices]
    assert has_top[-1] and not has_top[0]


@pytest.mark.parametrize("name", list(AFFINES))
def test_written_series_reads_back_with_the_documented_reorientation(tmp_path, name):
    affine = AFFINES[name]
    volume = np.random.default_rng(4).uniform(-1000, 2000, (SIZE, SIZE, SIZE)).astype(np.float32)
    write_dicom_ct_series(volume, affine, tmp_path / "s")
    ct = read_ct(tmp_path / "s")

    stored_volume, stored_affine = reorient_to_dicom_axial(volume, affine)
    assert nib.aff2axcodes(ct.affine.numpy()) == ("L", "P", "S")
    np.testing.assert_allclose(ct.affine.numpy(), stored_affine, atol=1e-4)
    assert np.max(np.abs(ct.numpy() - stored_volume)) <= 0.5 + 1e-4

    # brought back to the input's axis codes, the array and affine are the input's
    codes = "".join(nib.aff2axcodes(affine))
    back = Orientation(axcodes=codes, labels=None)(EnsureChannelFirst()(ct))
    np.testing.assert_allclose(back.affine.numpy(), affine, atol=1e-4)
    assert np.max(np.abs(back[0].numpy() - volume)) <= 0.5 + 1e-4


def dx_reference(**overrides) -> Dataset:
    """A DX radiograph dataset of an existing study, as a modality would send it."""
    return dx_dataset(np.zeros((8, 8), np.uint16), bits_stored=12, study_uid=generate_uid(),
                      PatientName="Doe^Jane", PatientID="PAT-0042", PatientBirthDate="19700101", PatientSex="F",
                      StudyDate="20260105", StudyTime="101500", StudyID="S17", AccessionNumber="ACC123",
                      ReferringPhysicianName="House^Greg", StudyDescription="Lumbar spine", **overrides)


@pytest.mark.parametrize("as_file", [False, True])
def test_series_joins_the_study_of_a_reference_radiograph(tmp_path, as_file):
    reference = dx_reference()
    if as_file:
        reference.save_as(tmp_path / "ap.dcm", write_like_original=False)
    affine = AFFINES["view_aligned_IAL"]
    series_uid = write_dicom_ct_series(phantom(affine), affine, tmp_path / "ct",
                                       reference=tmp_path / "ap.dcm" if as_file else reference,
                                       series_description="Spine X2CT-GAN synthetic CT (phantom-trained)")
    slices = slices_in_viewer_order(tmp_path / "ct")
    assert len(slices) == SIZE
    for ds in slices:
        for keyword in ("StudyInstanceUID", "PatientID", "PatientName", "PatientBirthDate", "PatientSex",
                        "StudyDate", "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName",
                        "StudyDescription"):
            assert ds[keyword].value == reference[keyword].value, keyword
        assert ds.SeriesInstanceUID == series_uid != reference.SeriesInstanceUID
        assert ds.SeriesDescription == "Spine X2CT-GAN synthetic CT (phantom-trained)"
        assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"] and ds.BurnedInAnnotation == "NO"
        assert "synthetic" in ds.DerivationDescription.lower()
        assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == reference.SOPInstanceUID
        assert ds.Modality == "CT"
    sop_uids = {ds.SOPInstanceUID for ds in slices}
    assert len(sop_uids) == SIZE and reference.SOPInstanceUID not in sop_uids
    assert read_ct(tmp_path / "ct").shape == (SIZE, SIZE, SIZE)

    again = write_dicom_ct_series(phantom(affine), affine, tmp_path / "ct2", reference=reference)
    assert again != series_uid  # every write is a new series of the same study
    assert pydicom.dcmread(next((tmp_path / "ct2").iterdir())).StudyInstanceUID == reference.StudyInstanceUID


def test_bad_references_are_refused_before_anything_is_written(tmp_path):
    volume, affine = phantom(AFFINES["ras_diagonal"]), AFFINES["ras_diagonal"]
    reference = dx_reference()
    with pytest.raises(InputError, match="study_instance_uid"):
        write_dicom_ct_series(volume, affine, tmp_path / "a", reference=reference, study_instance_uid=generate_uid())
    with pytest.raises(InputError, match="patient_id"):
        write_dicom_ct_series(volume, affine, tmp_path / "b", reference=reference, patient_id="SOMEONE-ELSE")
    no_study = dx_reference()
    del no_study.StudyInstanceUID
    with pytest.raises(InputError, match="StudyInstanceUID"):
        write_dicom_ct_series(volume, affine, tmp_path / "c", reference=no_study)
    (tmp_path / "junk.dcm").write_bytes(b"not DICOM" * 20)
    with pytest.raises(InputError, match="junk.dcm"):
        write_dicom_ct_series(volume, affine, tmp_path / "d", reference=tmp_path / "junk.dcm")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.dcm"]
