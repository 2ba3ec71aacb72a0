"""Left-right, anterior-posterior and superior-inferior pinned end to end, in the README's conventions.

World coordinates are RAS mm (+x the patient's right, +y anterior, +z superior). Each CT here holds one
bone marker 15 mm off its centre towards the patient's right, anterior or superior (a different CT per
marker, so each axis is checked on its own), on a 60 mm grid stored in neither RAS nor LPS order
(array axes towards posterior, left, superior; 1.5, 1.25, 2 mm voxels) away from the world origin.
The markers go through the DRR, the three data preparations, the DICOM CT series writer and reader
and the back-projection of views, and must land on the documented side and where the documented
geometry (``documented_geometry``, the README written out independently of ``orthogen.drr``) puts them.
"""
import h5py
import numpy as np
import pydicom
import pytest
import torch
from PIL import Image

from orthogen.data.case_layout import write_case
from orthogen.data.knee_ct_prepare import KneeCTPreparation, prepare_knee_ct
from orthogen.data.knee_radiograph_prepare import KneeRadiographPreparation, prepare_knee_radiographs
from orthogen.data.x2ct_prepare import X2CTPreparation, prepare_x2ct_dataset
from orthogen.drr import ProjectionGeometry, render_drr
from orthogen.io import read_ct, write_dicom_ct_series
from orthogen.networks.view_geometry import backprojected_views

from documented_geometry import ANTERIOR, RIGHT, SUPERIOR, VIEWS, detector_position

SHAPE = (40, 48, 30)
AXES = np.array([[0.0, -1.25, 0.0], [-1.5, 0.0, 0.0], [0.0, 0.0, 2.0]])  # columns: posterior, left, superior
CENTRE = np.array([12.0, -30.0, 85.0])  # RAS mm of the grid's centre
AFFINE = np.eye(4)
AFFINE[:3, :3], AFFINE[:3, 3] = AXES, CENTRE - AXES @ ((np.array(SHAPE) - 1) / 2)
MARKERS = {"right": RIGHT, "anterior": ANTERIOR, "superior": SUPERIOR}
OFFSET_MM, RADIUS_MM, MARKER_HU, BODY_HU, AIR_HU = 15.0, 4.0, 3000.0, 40.0, -1000.0

#: (view, marker) -> sign of the bright spot's (row, col) offset from the image centre, from the README:
#: rows run superior -> inferior, AP columns right -> left, lateral columns posterior -> anterior; 0 = on
#: the beam through the centre
IMAGE_SIDE = {
    ("ap", "right"): (0, -1), ("ap", "anterior"): (0, 0), ("ap", "superior"): (-1, 0),
    ("lateral", "right"): (0, 0), ("lateral", "anterior"): (0, 1), ("lateral", "superior"): (-1, 0),
}
#: marker -> sign of its (D, H, W) offset from the centre of a view-aligned cube: axcodes "IAL", D towards
#: inferior, H anterior, W the patient's left (orthogen.data.x2ct_hdf5, orthogen.networks.view_geometry)
CUBE_SIDE = {"right": (0, 0, -1), "anterior": (0, 1, 0), "superior": (-1, 0, 0)}


def marker_position(marker: str) -> np.ndarray:
    return CENTRE + OFFSET_MM * MARKERS[marker]


def marker_ct(marker: str, background_hu: float = BODY_HU) -> np.ndarray:
    """(40, 48, 30) HU on ``AFFINE``: ``background_hu`` with a 4 mm ball of ``MARKER_HU`` (one-voxel
    partial-volume edge) placed by its world position."""
    world = np.indices(SHAPE).reshape(3, -1).T @ AXES.T + AFFINE[:3, 3]
    distance = np.linalg.norm(world - marker_position(marker), axis=1).reshape(SHAPE)
    fraction = np.clip(0.5 + (RADIUS_MM - distance) / 1.5, 0.0, 1.0)
    return (background_hu + fraction * (MARKER_HU - background_hu)).astype(np.float32)


def spot(image: np.ndarray, half: int = 6) -> np.ndarray:
    """(row, col) of the bright spot: centroid of the image above its local floor, in a window about its maximum."""
    r, c = np.unravel_index(np.argmax(image), image.shape)
    r0, c0 = max(r - half, 0), max(c - half, 0)
    window = image[r0:r + half + 1, c0:c + half + 1].astype(np.float64)
    weight = window - window.min()
    rows, cols = np.indices(window.shape)
    return np.array([r0 + (weight * rows).sum() / weight.sum(), c0 + (weight * cols).sum() / weight.sum()])


def bright_centroid(volume: np.ndarray, threshold_hu: float = 1000.0) -> np.ndarray:
    """Voxel index (3,) of the marker: centroid of the volume above ``threshold_hu``, weighted by the excess."""
    weight = np.clip(np.asarray(volume, dtype=np.float64) - threshold_hu, 0.0, None)
    return np.array([(weight * index).sum() for index in np.indices(volume.shape)]) / weight.sum()


def side(offset: np.ndarray, dead_zone: float) -> tuple[int, ...]:
    return tuple(0 if abs(o) < dead_zone else int(np.sign(o)) for o in offset)


def world_to_index(affine: np.ndarray, point_mm: np.ndarray) -> np.ndarray:
    return np.linalg.solve(affine[:3, :3], point_mm - affine[:3, 3])


def check_view(image: np.ndarray, view: str, marker: str, geometry: ProjectionGeometry, isocenter_mm) -> np.ndarray:
    """The marker's spot in ``image`` is on the README's side and at the documented pixel; returns the spot."""
    found = spot(image)
    assert side(found - (np.array(image.shape) - 1) / 2, 2.0) == IMAGE_SIDE[view, marker], (view, marker, found)
    expected = detector_position(geometry, VIEWS[view][0], isocenter_mm, marker_position(marker))
    np.testing.assert_allclose(found, expected, atol=0.4, err_msg=f"{view} view, {marker} marker")
    return found


GEOMETRIES = {
    "cone": ProjectionGeometry((48, 48), (2.0, 2.0), source_to_isocenter_mm=500.0, source_to_detector_mm=750.0),
    "parallel": ProjectionGeometry((48, 48), (1.5, 1.5), parallel=True),
}


@pytest.mark.parametrize("kind", list(GEOMETRIES))
@pytest.mark.parametrize("marker", list(MARKERS))
def test_drr_shows_each_marker_on_its_documented_side_at_its_documented_pixel(kind, marker):
    """render_drr, AP and lateral: the spot's (row, col) against the README's side and against the pixel
    where the documented source -> marker ray meets the detector (isocenter = the grid's centre)."""
    geometry = GEOMETRIES[kind]
    drr = render_drr(marker_ct(marker, AIR_HU), AFFINE, geometry, "ap,lateral")
    assert drr.angles_deg == (VIEWS["ap"][0], VIEWS["lateral"][0])
    for view, image in zip(("ap", "lateral"), drr.image.numpy()):
        check_view(image, view, marker, geometry, CENTRE)


@pytest.fixture(scope="module")
def marker_cts(tmp_path_factory):
    """One CT per marker (body of 40 HU filling the grid) in the CTSpine1K layout, the mask the whole grid."""
    root = tmp_path_factory.mktemp("marker_cts")
    for marker in MARKERS:
        write_case(marker_ct(marker), np.ones(SHAPE, np.uint8), AFFINE, root, marker)
    return root


# the three preparations, small; the cube is the whole (60 mm)^3 grid (margin 0, the body/mask fills it)
X2CT = X2CTPreparation(size=32, crop="spine", margin_mm=0.0)
KNEE_CT = KneeCTPreparation(size=32, margin_mm=0.0, source_to_isocenter_mm=800.0, source_to_detector_mm=1200.0)
KNEE_RADIOGRAPHS = KneeRadiographPreparation(size=48, views=4)


def check_case_file(path, marker: str, prep) -> None:
    """An X2CT case file (``ct`` (D, H, W), ``xray1`` AP, ``xray2`` lateral, ``affine`` of ``ct``): the
    marker in the cube where its affine and the "IAL" contract put it, and in each view on the README's
    side, at the documented pixel (detector spacing from the file, SID / SDD from ``prep``) and at the
    cube's (D, W) / (D, H)."""
    with h5py.File(path, "r") as f:
        ct, ap, lateral, affine = f["ct"][()], f["xray1"][()], f["xray2"][()], f.attrs["affine"]
        spacings = f.attrs["xray1_pixel_spacing_mm"], f.attrs["xray2_pixel_spacing_mm"]
    voxel = bright_centroid(ct)
    np.testing.assert_allclose(voxel, world_to_index(affine, marker_position(marker)), atol=0.4)
    assert side(voxel - (np.array(ct.shape) - 1) / 2, 2.0) == CUBE_SIDE[marker]
    centre = affine[:3, :3] @ ((np.array(ct.shape) - 1) / 2) + affine[:3, 3]
    np.testing.assert_allclose(centre, CENTRE, atol=1e-3)
    for view, image, spacing, cube_axes in (("ap", ap, spacings[0], [0, 2]),
                                            ("lateral", lateral, spacings[1], [0, 1])):
        geometry = ProjectionGeometry(image.shape, tuple(spacing), prep.source_to_isocenter_mm,
                                      prep.source_to_detector_mm)
        found = check_view(image, view, marker, geometry, centre)
        np.testing.assert_allclose(found, voxel[cube_axes], atol=0.5)  # one pixel per voxel at the isocenter


@pytest.fixture(scope="module")
def x2ct_prepared(marker_cts, tmp_path_factory):
    out = tmp_path_factory.mktemp("x2ct_prepared")
    prepare_x2ct_dataset(marker_cts, out, X2CT)
    return out


@pytest.fixture(scope="module")
def knee_ct_prepared(marker_cts, tmp_path_factory):
    out = tmp_path_factory.mktemp("knee_ct_prepared")
    prepare_knee_ct(marker_cts / "data", out, KNEE_CT)
    return out


@pytest.fixture(scope="module")
def knee_radiographs_prepared(marker_cts, tmp_path_factory):
    out = tmp_path_factory.mktemp("knee_radiographs_prepared")
    datalist = prepare_knee_radiographs(marker_cts / "data", out, KNEE_RADIOGRAPHS)
    return out, [item for split in ("training", "validation", "test") for item in datalist[split]]


@pytest.mark.parametrize("marker", list(MARKERS))
def test_x2ct_preparation_puts_the_marker_on_its_side_of_the_cube_and_of_both_views(x2ct_prepared, marker):
    """prepare_x2ct_dataset (the spine bundle's data): <case>.h5 as written on disk, see check_case_file."""
    check_case_file(x2ct_prepared / f"{marker}.h5", marker, X2CT)


@pytest.mark.parametrize("marker", list(MARKERS))
def test_knee_ct_preparation_puts_the_marker_on_its_side_of_the_cube_and_of_both_views(knee_ct_prepared, marker):
    """prepare_knee_ct (the knee CT bundle's data): <case>.h5 as written on disk, see check_case_file."""
    check_case_file(knee_ct_prepared / f"{marker}.h5", marker, KNEE_CT)


@pytest.mark.parametrize("marker", list(MARKERS))
def test_knee_radiograph_preparation_puts_the_marker_on_its_side_of_the_ap_and_lateral_views(
        knee_radiographs_prepared, marker):
    """prepare_knee_radiographs (the knee radiograph bundle's data): the 16-bit PNGs of gantry 0 (AP) and
    90 deg (lateral) as written, against the README's side and the documented pixel (pixel spacing from
    the datalist, isocenter the CT's centre)."""
    out, items = knee_radiographs_prepared
    for view in ("ap", "lateral"):
        item = next(i for i in items if i["case"] == marker and i["angle_deg"] == VIEWS[view][0])
        with Image.open(out / item["image"]) as picture:
            image = np.asarray(picture, dtype=np.float64) / 65535.0
        geometry = ProjectionGeometry(image.shape, tuple(item["pixel_spacing_mm"]),
                                      KNEE_RADIOGRAPHS.source_to_isocenter_mm, KNEE_RADIOGRAPHS.source_to_detector_mm)
        check_view(image, view, marker, geometry, CENTRE)


@pytest.mark.parametrize("marker", list(MARKERS))
def test_dicom_ct_series_keeps_the_marker_at_its_patient_position(tmp_path, marker):
    """write_dicom_ct_series then (1) orthogen's read_ct: the marker at its RAS position; (2) the raw tags
    with pydicom: ImagePositionPatient + column * PixelSpacing[1] * ImageOrientationPatient[:3] + row *
    PixelSpacing[0] * ImageOrientationPatient[3:] puts it at its LPS position, RAS with x and y negated
    (the right marker at the more negative LPS x)."""
    write_dicom_ct_series(marker_ct(marker), AFFINE, tmp_path / "series")
    volume = read_ct(tmp_path / "series")
    affine = volume.affine.numpy()
    np.testing.assert_allclose(affine[:3, :3] @ bright_centroid(volume.numpy()) + affine[:3, 3],
                               marker_position(marker), atol=0.3)
    weight, position = 0.0, np.zeros(3)
    for path in sorted((tmp_path / "series").iterdir()):
        ds = pydicom.dcmread(path)
        hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        excess = np.clip(hu - 1000.0, 0.0, None)
        rows, cols = np.indices(hu.shape)
        orientation = np.array(ds.ImageOrientationPatient, dtype=np.float64)
        row_spacing, col_spacing = (float(v) for v in ds.PixelSpacing)
        lps = (np.array(ds.ImagePositionPatient, dtype=np.float64)
               + (cols * col_spacing)[..., None] * orientation[:3] + (rows * row_spacing)[..., None] * orientation[3:])
        weight += excess.sum()
        position += (excess[..., None] * lps).reshape(-1, 3).sum(axis=0)
    lps_marker = position / weight
    np.testing.assert_allclose(lps_marker, marker_position(marker) * [-1, -1, 1], atol=0.3)
    assert side(lps_marker - CENTRE * [-1, -1, 1], 2.0) == {"right": (-1, 0, 0), "anterior": (0, -1, 0),
                                                           "superior": (0, 0, 1)}[marker]


@pytest.mark.parametrize("marker", list(MARKERS))
def test_spots_at_the_documented_pixels_back_project_onto_the_beams_through_the_marker(marker):
    """backprojected_views on a view-aligned ("IAL") 15^3 grid of 3 mm voxels centred on CENTRE: a spot in
    each view at the pixel where the documented parallel beam (one pixel per voxel) carries the marker
    lights exactly the voxels on that beam through the marker (world mm), and the two lines meet at the
    marker's voxel only."""
    size, voxel = 15, 3.0
    affine = np.eye(4)
    affine[:3, :3] = np.stack([-SUPERIOR, ANTERIOR, -RIGHT], axis=1) * voxel  # D inferior, H anterior, W left
    affine[:3, 3] = CENTRE - affine[:3, :3] @ np.full(3, (size - 1) / 2)
    geometry = ProjectionGeometry((size, size), (voxel, voxel), parallel=True)
    views = torch.zeros(1, 2, size, size)
    for channel, view in enumerate(("ap", "lateral")):
        row, col = np.rint(detector_position(geometry, VIEWS[view][0], CENTRE, marker_position(marker))).astype(int)
        views[0, channel, row, col] = 1.0
    volume = backprojected_views(views, size)[0].numpy()
    for channel, view in enumerate(("ap", "lateral")):
        lit = np.argwhere(volume[channel] > 0) @ affine[:3, :3].T + affine[:3, 3]  # world mm
        assert len(lit) == size
        np.testing.assert_allclose(np.cross(lit - marker_position(marker), VIEWS[view][1]), 0.0, atol=1e-9)
    marker_voxel = np.rint(world_to_index(affine, marker_position(marker))).astype(int)
    assert np.argwhere(volume[0] * volume[1] > 0).tolist() == [marker_voxel.tolist()]
