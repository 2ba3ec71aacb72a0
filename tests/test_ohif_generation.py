"""Generation inside OHIF by clicks only, every part real: our Orthanc, the label app's server, OHIF 3.13.2 as
``make serve-deps`` installed it, in headless Chromium (scripts/ohif_walkthrough.py does the clicking).

Uploaded beforehand (to Orthanc, not to the app): `make demo-study`'s phantom knee study at 32^3 / 64 px (CT,
DX AP, DX lateral, a DICOM SEG of the AP view) and a study holding one DX view. Then, as a person would:
study list -> OrthoGen mode -> CT from AP + lateral with 3 DDIM steps (the panel shows stage and step) -> the
stored CT in MPR beside the two views, anterior up and the patient's right on the left -> a segmentation
drawn on the AP view with OHIF's brush (segments "contour" and "bone") and stored by OHIF as DICOM SEG -> the
U-Net radiograph from it, beside its input -> fine-tuning clicked (refused in one line: no labelled CT) ->
back to the list -> the one-view study -> the server's one-line error in the panel. The test makes no
request to the app itself; it reads Orthanc to check what was stored.
"""
from __future__ import annotations

import json
from urllib.parse import parse_qs, urlparse

import pydicom
import pytest
import requests
from dicomweb_client import DICOMwebClient
from selenium.common.exceptions import WebDriverException

from orthogen.serving.label_server import LabelServer
from orthogen.serving.ohif_viewer import DEFAULT_DEST, installed
from orthogen.serving.orthanc_server import OrthancServer
from orthogen.serving.server_process import free_port

from repo_scripts import load_script

SIZE = 32  # the demo knee CT's grid; its DRRs are 64 x 64
STEPS = 3

load_demo_study = load_script("load_demo_study")
walkthrough = load_script("ohif_walkthrough")



def _view_files(study) -> dict[str, object]:
    found = {}
    for series in study.series:
        if series.modality == "DX":
            found["lateral" if "lateral" in series.description.lower() else "ap"] = series
    return found


@pytest.fixture(scope="module")
def viewer_stack(tmp_path_factory):
    """(Orthanc, label server, two-view study, one-view study UID), all uploaded."""
    if not installed(DEFAULT_DEST):
        pytest.fail(f"the OHIF viewer is not installed in {DEFAULT_DEST}: run `make serve-deps`")
    root = tmp_path_factory.mktemp("ohif_generation")
    with OrthancServer(root / "orthanc", free_port()) as orthanc:
        study = load_demo_study.write_demo_study(root / "study_3", seed=3, size=SIZE)
        assert load_demo_study.upload_study(study.files, orthanc.url) == SIZE + 3  # CT, 2 DX, SEG
        lonely = load_demo_study.write_demo_study(root / "study_5", seed=5, size=SIZE)
        one_view = _view_files(lonely)["ap"].files[0]
        dataset = pydicom.dcmread(one_view)
        dataset.PatientName = "OrthoGen^One View Knee"
        dataset.save_as(one_view)
        assert load_demo_study.upload_study([one_view], orthanc.url) == 1
        with LabelServer(root / "label", orthanc.dicomweb_url, free_port()) as label:
            yield orthanc, label, study, dataset.StudyInstanceUID


@pytest.fixture(scope="module")
def walked(viewer_stack, tmp_path_factory):
    """The whole walk through the viewer, once; its screenshots in a temporary folder."""
    _, label, _, _ = viewer_stack
    walk = walkthrough.Walkthrough()
    out = tmp_path_factory.mktemp("ohif_screenshots")
    driver = walkthrough.chrome_driver()
    try:
        walkthrough.ct_from_two_views(driver, label.url, "Phantom Knee", STEPS, walk, out)
        walkthrough.draw_segmentation(driver, walk, out, walkthrough.DRAWN_SEGMENTATION)
        walkthrough.radiograph_from_segmentation(driver, None, walk, out, segmentation=walkthrough.DRAWN_SEGMENTATION)
        walkthrough.fine_tune(driver, walk)
        walkthrough.one_view_error(driver, label.url, "One View Knee", walk, out)
    except (walkthrough.ViewerError, WebDriverException) as error:
        walkthrough.screenshot(driver, out, "failed", walk)
        pytest.fail(f"{str(error).splitlines()[0]} (statuses {walk.statuses[-3:]}, screenshot {walk.screenshots[-1]}, at {driver.current_url})")
    finally:
        driver.quit()
    return walk


def _shown(walk, step: str) -> dict[str, str]:
    query = parse_qs(urlparse(walk.urls[step]).query)
    return {key: values[0] for key, values in query.items()}


def test_the_viewer_is_ohif_3_13_2_on_the_apps_origin_with_our_config(viewer_stack):
    _, label, _, _ = viewer_stack
    index = requests.get(f"{label.url}/ohif/", timeout=10)
    assert index.ok and 'window.PUBLIC_URL="/ohif/"' in index.text and "https://" not in index.text
    config = requests.get(f"{label.url}/ohif/app-config.js", timeout=10)
    assert "/proxy/dicom/qido" in config.text and "orthogen-mode.js" in config.text
    assert requests.get(f"{label.url}/ohif/orthogen/orthogen-panel.js", timeout=10).headers["content-type"].startswith(
        "text/javascript")
    assert requests.get(f"{label.url}/ohif/no-such-chunk.js", timeout=10).status_code == 404
    assert not list(DEFAULT_DEST.rglob("*.map")) and not (DEFAULT_DEST / "ort").exists()  # pruned


def test_a_ct_generated_by_clicks_is_shown_in_mpr_beside_its_views(viewer_stack, walked):
    orthanc, _, study, _ = viewer_stack
    sampling = [s for s in walked.statuses if "nested DDIM sampling" in s]
    assert sampling and any(f"/{STEPS}" in s for s in sampling)  # the progress the server reported
    shown = _shown(walked, "ct")
    views = _view_files(study)
    assert shown["orthogenInputs"].split(",") == [views["ap"].series_instance_uid,
                                                  views["lateral"].series_instance_uid]  # pre-selected by tag
    (stored,) = [s for s in DICOMwebClient(orthanc.dicomweb_url).search_for_series(study.study_instance_uid)
                 if s["0020000E"]["Value"][0] == shown["orthogenShow"]]
    description = stored["0008103E"]["Value"][0]
    assert description.startswith("Synthetic knee_xray2ct s0 3 steps") and "phantom-trained" in description
    assert walked.markers["orthogen-axial"] == {"top-mid": "A", "left-mid": "R"}
    assert walked.markers["orthogen-coronal"]["left-mid"] == "R"
    assert walked.markers["orthogen-sagittal"]["left-mid"] == "A"
    assert min(walked.canvas_std[v] for v in ("orthogen-axial", "orthogen-coronal", "orthogen-sagittal")) > 10


def test_a_segmentation_drawn_with_ohifs_tools_is_stored_as_dicom_seg_of_the_ap_view(viewer_stack, walked):
    orthanc, _, study, _ = viewer_stack
    client = DICOMwebClient(orthanc.dicomweb_url)
    (drawn,) = [s for s in client.search_for_series(study.study_instance_uid, search_filters={"Modality": "SEG"})
                if s.get("0008103E", {}).get("Value") == [walkthrough.DRAWN_SEGMENTATION]]
    (seg,) = client.retrieve_series(study.study_instance_uid, drawn["0020000E"]["Value"][0])
    assert [item.SegmentLabel for item in seg.SegmentSequence] == ["contour", "bone"]
    ap = pydicom.dcmread(_view_files(study)["ap"].files[0], stop_before_pixels=True)
    from orthogen.io.dicom_segmentation import read_dicom_segmentation

    read = read_dicom_segmentation(seg, "drawn in OHIF")
    # OHIF 3.13.2 at times references a UID of its own (2.25...) instead of the radiograph's: the app reads the
    # SEG on its own grid, so what matters is that grid and the referenced image being a radiograph
    assert (seg.Rows, seg.Columns) == (ap.Rows, ap.Columns)
    assert read.referenced_instance == ap.SOPInstanceUID or read.referenced_instance.startswith("2.25.")
    assert seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPClassUID == ap.SOPClassUID
    levels = read.levels()
    assert levels.shape == (ap.Rows, ap.Columns)
    bone, leg = (levels == 1.0).mean(), (levels >= 0.5).mean()
    assert 0.02 < bone < leg < 0.9  # two strokes of the brush: bone inside a larger leg


def test_a_radiograph_generated_from_the_drawn_segmentation_is_shown_beside_its_input(viewer_stack, walked):
    orthanc, _, study, _ = viewer_stack
    shown = _shown(walked, "radiograph")
    assert shown["orthogenKind"] == "radiograph"
    assert shown["orthogenInputs"] == _view_files(study)["ap"].series_instance_uid  # the SEG's radiograph
    (back,) = DICOMwebClient(orthanc.dicomweb_url).retrieve_series(study.study_instance_uid, shown["orthogenShow"])
    assert back.SeriesDescription.startswith("Synthetic unet_contour_bone")
    assert json.loads(back.ImageComments)["model"] == walkthrough.RADIOGRAPH_MODEL
    assert walked.canvas_std["orthogen-result"] > 10 and walked.canvas_std["orthogen-input"] > 10


def test_fine_tuning_from_the_viewer_names_one_model_and_is_refused_without_a_case(walked):
    """The study has no labelled CT: the app refuses the one model clicked, in one line, before any task."""
    assert walked.fine_tune.startswith("knee_xray2ct_diffusion") or "knee_xray2ct_diffusion" in walked.fine_tune
    assert "started" not in walked.fine_tune and "\n" not in walked.fine_tune


def test_the_viewer_fetched_nothing_from_another_origin(walked):
    assert walked.screenshots and walked.foreign_requests == []
