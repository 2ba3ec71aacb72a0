"""Film preparation (orthogen.io.film_preparation, applied by read_radiograph): collimation found and cropped,
shutter tags honoured, clean DRRs left alone, PA and reversed laterals mirrored into the models' convention.

The films are phantom DRRs (knee and lumbar spine, 64^3 voxels of 2 mm, 128 x 128 detector) made into
what a hospital sends: an unexposed band along each edge (5-25 % of the side, the exposed field a
rectangle turned by up to 10 degrees), brighter than any anatomy, a blurred (penumbra) edge and noise,
stored as MONOCHROME1 12-bit DX (dark = bone, as a CR / DX film is stored).
"""
from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from skimage.draw import polygon2mask

from orthogen.drr import ProjectionGeometry, render_drr
from orthogen.io import read_radiograph
from orthogen.io.collimation import CollimatorEdge, detect_field, field_mask
from orthogen.phantoms import knee_phantom, spine_phantom

from dicom_builders import write_dx

SIZE, SPACING_MM = 128, (0.3, 0.3)
PHANTOMS = {"knee": knee_phantom, "spine": spine_phantom}
CLEAN = [(kind, seed) for kind, seeds in (("knee", (0, 1, 2, 3)), ("spine", (0, 1, 2))) for seed in seeds]


@pytest.fixture(scope="module")
def drrs() -> dict[tuple[str, int], dict[str, np.ndarray]]:
    """(phantom, seed) -> {"ap": (128, 128), "lateral": (128, 128)} DRRs in [0, 1], bone bright."""
    geometry = ProjectionGeometry((SIZE, SIZE), (1.2, 1.2), source_to_isocenter_mm=800.0,
                                  source_to_detector_mm=1200.0)
    views = {}
    for kind, seed in CLEAN:
        phantom = PHANTOMS[kind](seed, (64, 64, 64), (2.0, 2.0, 2.0))
        image = render_drr(phantom.volume_hu, phantom.affine, geometry, "ap,lateral").image.numpy()
        views[kind, seed] = {"ap": image[0].astype(np.float64), "lateral": image[1].astype(np.float64)}
    return views


def collimated(image: np.ndarray, bands, angle_deg: float, rng: np.random.Generator, *, anatomy_max: float = 0.88,
               noise: float = 0.006) -> tuple[np.ndarray, np.ndarray]:
    """(film bone bright in [0, ~1], true exposed mask): the exposed field is the rectangle leaving ``bands``
    (top, bottom, left, right fractions of the side) unexposed, turned by ``angle_deg`` about its centre
    (clockwise as displayed);
    outside it the film is at 1.0 (no attenuation measured), the anatomy at most ``anatomy_max``; the
    edge is a one-pixel ramp blurred by a 0.7-pixel penumbra; Gaussian noise everywhere. A pixel is exposed
    when its centre (pixel k spans [k, k + 1)) is inside the field."""
    height, width = image.shape
    top, bottom, left, right = bands
    centre_y, centre_x = (top * height + height - bottom * height) / 2, (left * width + width - right * width) / 2
    half_h, half_w = (1 - top - bottom) * height / 2, (1 - left - right) * width / 2
    a = np.radians(angle_deg)
    y, x = np.indices(image.shape) + 0.5
    u = np.cos(a) * (x - centre_x) + np.sin(a) * (y - centre_y)
    v = -np.sin(a) * (x - centre_x) + np.cos(a) * (y - centre_y)
    outside = np.maximum(np.abs(u) - half_w, np.abs(v) - half_h)  # > 0: outside the field, in pixels
    band = ndimage.gaussian_filter(np.clip(0.5 + outside, 0.0, 1.0), 0.7)
    film = (1 - band) * image * anatomy_max + band + rng.normal(0.0, noise, image.shape)
    return np.clip(film, 0.0, None), outside <= 0


def write_film(path, film: np.ndarray, **tags):
    """``film`` (bone bright) as a 12-bit MONOCHROME1 DX: stored values high where the film is dark."""
    stored = np.rint(4000 * (1 - film / film.max()) + 20).astype(np.uint16)
    return write_dx(path, stored, photometric="MONOCHROME1", bits_stored=12, pixel_spacing=SPACING_MM, **tags)


def write_view(path, image: np.ndarray, **tags):
    """A DRR (bone bright) as a 16-bit MONOCHROME2 DX, exactly: pixel values 0..65535."""
    return write_dx(path, np.rint(image * 65535).astype(np.uint16), photometric="MONOCHROME2",
                    pixel_spacing=SPACING_MM, **tags)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


#: (phantom, seed, view, (top, bottom, left, right) unexposed fractions, angle in degrees)
CASES = [
    ("knee", 0, "ap", (0.05, 0.05, 0.05, 0.05), 0.0),
    ("knee", 1, "lateral", (0.25, 0.25, 0.25, 0.25), 0.0),
    ("spine", 0, "ap", (0.10, 0.20, 0.15, 0.06), 0.0),
    ("knee", 2, "ap", (0.12, 0.08, 0.20, 0.10), 10.0),
    ("spine", 1, "lateral", (0.15, 0.15, 0.15, 0.15), -10.0),
    ("knee", 3, "lateral", (0.08, 0.22, 0.06, 0.18), 4.0),
    ("spine", 2, "ap", (0.25, 0.05, 0.25, 0.05), -6.5),
]
#: random cases: (seed of the case's draws); each draws a phantom, a view, four bands in [5, 25] % and an
#: angle in [-10, 10] degrees
RANDOM = list(range(8))


def random_case(seed: int):
    rng = np.random.default_rng(1000 + seed)
    kind, phantom_seed = CLEAN[int(rng.integers(len(CLEAN)))]
    view = ("ap", "lateral")[int(rng.integers(2))]
    return kind, phantom_seed, view, tuple(float(v) for v in rng.uniform(0.05, 0.25, 4)), float(rng.uniform(-10, 10))


ALL_CASES = [pytest.param(*case, id=f"{case[0]}{case[1]}-{case[2]}-{case[4]:+.1f}deg") for case in CASES] + [
    pytest.param(*random_case(seed), id=f"random{seed}") for seed in RANDOM]
MEASURED: dict[str, float] = {}


@pytest.mark.parametrize("kind, seed, view, bands, angle_deg", ALL_CASES)
def test_collimation_found_in_a_monochrome1_film_matches_the_true_field_and_is_cropped_inside_it(
        drrs, tmp_path, caplog, kind, seed, view, bands, angle_deg):
    """The field the reader records (its edges) has IoU >= 0.95 with the true one; the crop is inside the
    true field, nearly as large as the largest rectangle inside it, the spacing unchanged; one info line."""
    rng = np.random.default_rng([seed, abs(int(angle_deg * 10))])
    film, true = collimated(drrs[kind, seed][view], bands, angle_deg, rng)
    path = write_film(tmp_path / "film.dcm", film)
    with caplog.at_level(logging.INFO, logger="orthogen.io.film_preparation"):
        radiograph = read_radiograph(path)
    record = radiograph.preparation
    assert record.collimation == "detected in the image" and record.cropped
    edges = [CollimatorEdge(side, depth, np.tan(np.radians(angle))) for side, depth, angle in record.collimation_edges]
    assert sorted(edge.side for edge in edges) == ["bottom", "left", "right", "top"]
    found = iou(field_mask(edges, true.shape), true)
    MEASURED[f"{kind}{seed}-{view}-{angle_deg:+.1f}"] = found
    assert found >= 0.95
    assert abs(record.collimation_angle_deg - angle_deg) < 1.0
    top, bottom, left, right = record.crop_px
    crop = np.zeros_like(true)
    crop[top:SIZE - bottom, left:SIZE - right] = True
    assert radiograph.image.shape == (SIZE - top - bottom, SIZE - left - right)
    assert true[crop].mean() >= 0.995  # nothing unexposed left but perhaps a penumbra pixel
    assert crop.sum() >= 0.85 * largest_rectangle_area(true)
    assert radiograph.pixel_spacing_mm == SPACING_MM and radiograph.spacing_source == "PixelSpacing"
    assert radiograph.image.min() == 0.0 and radiograph.image.max() == 1.0
    lines = [r.getMessage() for r in caplog.records if "collimation" in r.getMessage()]
    assert len(lines) == 1 and "detected in the image" in lines[0] and f"{top} top" in lines[0]


def largest_rectangle_area(mask: np.ndarray) -> int:
    """Area of the largest axis-aligned rectangle of True pixels (brute force over row pairs; convex mask)."""
    rows = np.flatnonzero(mask.any(axis=1))
    first = np.array([np.flatnonzero(mask[r])[0] for r in rows])
    last = np.array([np.flatnonzero(mask[r])[-1] for r in rows])
    best = 0
    for i in range(len(rows)):
        width = np.minimum(last[i], last[i:]) - np.maximum(first[i], first[i:]) + 1
        best = max(best, int((np.clip(width, 0, None) * (rows[i:] - rows[i] + 1)).max()))
    return best


def test_the_measured_iou_over_the_cases():
    """Runs after the cases (file order): the IoU figures, for the record (min / mean)."""
    if not MEASURED:
        pytest.skip("the collimation cases did not run")
    values = np.array(list(MEASURED.values()))
    print(f"\nIoU of the detected exposed field over {len(values)} cases: min {values.min():.4f}, "
          f"mean {values.mean():.4f}")
    assert values.min() >= 0.95


def test_collimation_in_a_png_is_cropped_too(drrs, tmp_path):
    film, true = collimated(drrs["knee", 0]["ap"], (0.1, 0.15, 0.2, 0.1), 3.0, np.random.default_rng(5))
    Image.fromarray(np.rint(np.clip(film, 0, 1) * 255).astype(np.uint8)).save(tmp_path / "film.png")
    radiograph = read_radiograph(tmp_path / "film.png")
    top, bottom, left, right = radiograph.preparation.crop_px
    assert radiograph.preparation.cropped and true[top:SIZE - bottom, left:SIZE - right].all()
    assert radiograph.preparation.orientation == "taken as given" and not radiograph.preparation.mirrored


@pytest.mark.parametrize("kind, seed", CLEAN)
def test_clean_drrs_are_not_cropped(drrs, tmp_path, kind, seed):
    """No false collimation on phantom DRRs: in the image itself, 8-bit quantized, as a MONOCHROME1 DX and
    as a PNG, both views."""
    for view, image in drrs[kind, seed].items():
        assert detect_field(image) is None, view
        assert detect_field(np.rint(image * 255) / 255) is None, view
        dicom = read_radiograph(write_film(tmp_path / f"{view}.dcm", image))
        assert not dicom.preparation.cropped and dicom.preparation.collimation == "none found"
        assert dicom.image.shape == image.shape
        Image.fromarray(np.rint(image * 255).astype(np.uint8)).save(tmp_path / f"{view}.png")
        assert not read_radiograph(tmp_path / f"{view}.png").preparation.cropped


def test_rectangular_shutter_tags_give_the_crop_exactly(drrs, tmp_path, caplog):
    """ShutterShape RECTANGULAR (1-based, inclusive edges): the image is the stored image's rows 11..100,
    columns 21..110, min-maxed again; no detection is tried."""
    image = drrs["spine", 0]["ap"]
    path = write_film(tmp_path / "shutter.dcm", image, ShutterShape="RECTANGULAR", ShutterLeftVerticalEdge=21,
                      ShutterRightVerticalEdge=110, ShutterUpperHorizontalEdge=11, ShutterLowerHorizontalEdge=100)
    whole = read_radiograph(write_film(tmp_path / "whole.dcm", image)).image.astype(np.float64)
    with caplog.at_level(logging.INFO, logger="orthogen.io.film_preparation"):
        radiograph = read_radiograph(path)
    record = radiograph.preparation
    assert record.collimation == "ShutterShape RECTANGULAR" and record.crop_px == (10, 28, 20, 18)
    assert record.collimation_edges == () and record.collimation_angle_deg == 0.0
    expected = whole[10:100, 20:110]
    expected = (expected - expected.min()) / (expected.max() - expected.min())
    np.testing.assert_allclose(radiograph.image, expected, atol=1e-6)
    assert radiograph.pixel_spacing_mm == SPACING_MM
    assert any("ShutterShape RECTANGULAR: cropped 10 top, 28 bottom, 20 left, 18 right" in r.getMessage()
               for r in caplog.records)


def test_circular_shutter_and_collimator_tags_crop_inside_their_field(drrs, tmp_path):
    image = drrs["knee", 1]["ap"]
    circle = read_radiograph(write_film(tmp_path / "circle.dcm", image, ShutterShape="CIRCULAR",
                                        CenterOfCircularShutter=[65, 60], RadiusOfCircularShutter=50))
    top, bottom, left, right = circle.preparation.crop_px
    rows, cols = np.array([top, SIZE - 1 - bottom]), np.array([left, SIZE - 1 - right])
    corners = (rows[:, None] - 64) ** 2 + (cols[None, :] - 59) ** 2
    assert corners.max() <= 50 ** 2 and circle.image.shape[0] * circle.image.shape[1] >= 0.95 * 2 * 50 ** 2
    collimator = read_radiograph(write_film(tmp_path / "collimator.dcm", image, CollimatorShape="RECTANGULAR",
                                            CollimatorLeftVerticalEdge=5, CollimatorRightVerticalEdge=120,
                                            CollimatorUpperHorizontalEdge=9, CollimatorLowerHorizontalEdge=128))
    assert collimator.preparation.collimation == "CollimatorShape RECTANGULAR"
    assert collimator.preparation.crop_px == (8, 0, 4, 8)
    hexagon = [[11, 40], [11, 90], [64, 120], [117, 90], [117, 40], [64, 10]]  # (row, col), 1-based
    polygon = read_radiograph(write_film(tmp_path / "polygon.dcm", image, ShutterShape="POLYGONAL",
                                         VerticesOfThePolygonalShutter=[v for vertex in hexagon for v in vertex]))
    top, bottom, left, right = polygon.preparation.crop_px
    inside = polygon2mask((SIZE, SIZE), np.array(hexagon, dtype=float) - 1)
    assert polygon.preparation.collimation == "ShutterShape POLYGONAL"
    assert inside[top:SIZE - bottom, left:SIZE - right].all()
    assert polygon.image.size == largest_rectangle_area(inside)


def test_unusable_shutter_tags_fall_back_to_detection_with_a_warning(drrs, tmp_path, caplog):
    film, _ = collimated(drrs["knee", 2]["lateral"], (0.1, 0.1, 0.1, 0.1), 2.0, np.random.default_rng(3))
    with caplog.at_level(logging.WARNING, logger="orthogen.io.film_preparation"):
        radiograph = read_radiograph(write_film(tmp_path / "broken.dcm", film, ShutterShape="RECTANGULAR",
                                                ShutterLeftVerticalEdge=3))
    assert radiograph.preparation.collimation == "detected in the image" and radiograph.preparation.cropped
    assert "ShutterShape RECTANGULAR not usable" in radiograph.preparation.collimation_note
    assert any("ShutterRightVerticalEdge missing" in r.getMessage() for r in caplog.records)


def test_a_pa_film_gives_exactly_the_mirrored_ap_image_and_says_why(drrs, tmp_path, caplog):
    """The PA film is the AP DRR seen from behind (columns mirrored); PatientOrientation R\\F says so."""
    image = drrs["knee", 0]["ap"]
    ap = read_radiograph(write_view(tmp_path / "ap.dcm", image, ViewPosition="AP", PatientOrientation=["L", "F"]))
    with caplog.at_level(logging.INFO, logger="orthogen.io.film_preparation"):
        pa = read_radiograph(write_view(tmp_path / "pa.dcm", image[:, ::-1], ViewPosition="PA",
                                        PatientOrientation=["R", "F"], ImageLaterality="R"))
    np.testing.assert_array_equal(pa.image, ap.image)
    assert not ap.preparation.mirrored and "already in the AP convention" in ap.preparation.orientation
    record = pa.preparation
    assert record.mirrored and not record.flipped and not record.cropped
    assert (record.view_position, record.image_laterality, record.patient_orientation) == ("PA", "R", ("R", "F"))
    assert "ViewPosition PA" in record.orientation and "PatientOrientation R\\F" in record.orientation
    assert "mirrored left-right into the AP convention" in record.orientation
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and record.orientation in lines[0]
    # without PatientOrientation a PA film is taken as seen from the source, and mirrored too
    bare = read_radiograph(write_view(tmp_path / "pa_bare.dcm", image[:, ::-1], ViewPosition="PA"))
    np.testing.assert_array_equal(bare.image, ap.image)
    assert bare.preparation.mirrored and "no PatientOrientation" in bare.preparation.orientation
    # a PA film already turned into the AP convention by the modality (PatientOrientation L\F) is left as is
    shown = read_radiograph(write_view(tmp_path / "pa_shown.dcm", image, ViewPosition="PA",
                                       PatientOrientation=["L", "F"]))
    np.testing.assert_array_equal(shown.image, ap.image)
    assert not shown.preparation.mirrored


def test_a_lateral_whose_columns_run_anterior_to_posterior_is_mirrored(drrs, tmp_path):
    image = drrs["spine", 1]["lateral"]
    lateral = read_radiograph(write_view(tmp_path / "ll.dcm", image, ViewPosition="LL", PatientOrientation=["A", "F"]))
    reversed_ = read_radiograph(write_view(tmp_path / "rl.dcm", image[:, ::-1], ViewPosition="RL",
                                           PatientOrientation=["P", "F"]))
    np.testing.assert_array_equal(reversed_.image, lateral.image)
    assert not lateral.preparation.mirrored
    assert reversed_.preparation.mirrored and "PatientOrientation P\\F" in reversed_.preparation.orientation
    assert "lateral convention (columns posterior -> anterior" in reversed_.preparation.orientation
    upside_down = read_radiograph(write_view(tmp_path / "up.dcm", image[::-1], ViewPosition="LAT",
                                             PatientOrientation=["A", "H"]))
    np.testing.assert_array_equal(upside_down.image, lateral.image)
    assert upside_down.preparation.flipped and not upside_down.preparation.mirrored


def test_films_without_view_tags_and_npy_drrs_are_taken_as_given(drrs, tmp_path):
    image = drrs["knee", 1]["ap"]
    plain = read_radiograph(write_view(tmp_path / "plain.dcm", image))
    assert not plain.preparation.mirrored and "no ViewPosition or PatientOrientation" in plain.preparation.orientation
    odd = read_radiograph(write_view(tmp_path / "odd.dcm", image, ViewPosition="AP", PatientOrientation=["A", "F"]))
    assert not odd.preparation.mirrored and "does not fit a frontal view" in odd.preparation.orientation
    np.save(tmp_path / "drr.npy", image.astype(np.float32))
    assert read_radiograph(tmp_path / "drr.npy").preparation is None
    assert plain.preparation.as_dict()["crop_px"] == {"top": 0, "bottom": 0, "left": 0, "right": 0}
