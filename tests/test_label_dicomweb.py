"""The MONAI Label app over DICOMweb, every part real: our Orthanc 1.10 (DICOMweb plugin) holding two phantom
knee studies (scripts/load_demo_study.py: CT + DX AP + DX lateral + a SEG of the AP view each), and a MONAI Label server of the app
started as its own process (orthogen.serving.label_server) on Orthanc's DICOMweb root, called with
``monailabel.client.MONAILabelClient``. The knee CT model (phantom-trained weights) runs with 5 DDIM steps.
The default run has all of it (~30-45 s here) but the two slow-marked tests, each saying why (make test-slow).
"""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import psutil
import pydicom
import pytest
import requests
from dicomweb_client import DICOMwebClient
from PIL import Image
from monailabel.client import MONAILabelClient
from monailabel.client.client import MONAILabelClientException

from orthogen.io import read_ct
from orthogen.serving.label_server import LabelServer
from orthogen.serving.orthanc_server import OrthancServer
from orthogen.serving.server_process import free_port, is_alive, port_is_free

from label_app_studies import write_label_app_studies
from repo_scripts import load_script

REPO = Path(__file__).resolve().parents[1]
MODEL = "knee_xray2ct_diffusion"
SIZE = 32  # the demo knee CT's grid (128 mm: 4 mm voxels); its DRRs are 64 x 64
REQUEST = {"slice_thickness": 1.0, "steps": 5, "seed": 0, "device": "cpu"}


load_demo_study = load_script("load_demo_study")



def _series(study) -> dict:
    """{"ap": DemoSeries, "lateral": ..., "ct": ..., "seg": ...} of a written demo study."""
    found = {}
    for series in study.series:
        kind = {"CT": "ct", "SEG": "seg"}.get(series.modality) or (
            "lateral" if "lateral" in series.description.lower() else "ap")
        found[kind] = series
    return found


def _views(study) -> dict[str, str]:
    """{"ap": SeriesInstanceUID, "lateral": ..., "ct": ..., "seg": ...} of a written demo study."""
    return {kind: series.series_instance_uid for kind, series in _series(study).items()}


def _status_and_detail(error: MONAILabelClientException) -> tuple[int, str]:
    """The HTTP status and the server's one-line detail of a failed MONAILabelClient.infer (its message is
    ``Status: N; Response: {"detail": ...}``)."""
    status, _, body = error.msg.partition("; Response: ")
    return int(status.removeprefix("Status: ")), json.loads(body)["detail"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """(Orthanc, label server, [study of seed 3, study of seed 4]) with both studies uploaded."""
    root = tmp_path_factory.mktemp("dicomweb_stack")
    with OrthancServer(root / "orthanc", free_port()) as orthanc:
        studies = [load_demo_study.write_demo_study(root / f"study_{seed}", seed=seed, size=SIZE) for seed in (3, 4)]
        for study in studies:
            assert load_demo_study.upload_study(study.files, orthanc.url) == SIZE + 3  # CT, 2 DX, SEG
        with LabelServer(root / "label", orthanc.dicomweb_url, free_port()) as label:
            yield orthanc, label, studies


@pytest.fixture(scope="module")
def generated(stack, tmp_path_factory):
    """The knee CT model's answer to study 3's AP + lateral series: (NIfTI path, result params)."""
    _, label, studies = stack
    views = _views(studies[0])
    client = MONAILabelClient(label.url, tmpdir=str(tmp_path_factory.mktemp("infer")))
    image, params = client.infer(MODEL, views["ap"], {**REQUEST, "lateral": views["lateral"]})
    return Path(image), params


def test_the_server_listens_on_loopback_only_and_lists_the_models(stack):
    _, label, _ = stack
    listening = {conn.laddr.ip for conn in psutil.Process(label.pid).net_connections()
                 if conn.status == psutil.CONN_LISTEN}
    assert listening == {"127.0.0.1"}
    assert not port_is_free(label.port, "127.0.0.1")
    info = MONAILabelClient(label.url).info()
    assert MODEL in info["models"] and "spine_x2ct_gan" in info["models"]


def test_the_generated_ct_is_stored_in_the_studys_uid_with_its_geometry(stack, generated, tmp_path):
    orthanc, _, studies = stack
    nifti, params = generated
    study_uid = studies[0].study_instance_uid
    stored = params["stored_series"]
    assert stored["StudyInstanceUID"] == study_uid and stored["Modality"] == "CT"
    assert stored["instances"] == nib.load(nifti).shape[2] == 32  # the shipped 32^3 stage
    assert stored["SeriesDescription"].startswith("Synthetic knee_xray2ct s0 5 steps") and "phantom-trained" in stored["SeriesDescription"]

    client = DICOMwebClient(orthanc.dicomweb_url)
    series = client.search_for_series(study_uid)
    uids = {item["0020000E"]["Value"][0]: item["00080060"]["Value"][0] for item in series}
    assert uids[stored["SeriesInstanceUID"]] == "CT" and sorted(uids.values()) == ["CT", "CT", "DX", "DX", "SEG"]
    retrieved = client.retrieve_series(study_uid, stored["SeriesInstanceUID"])
    for dataset in retrieved:
        assert dataset.StudyInstanceUID == study_uid and dataset.PatientID == "ORTHOGEN-KNEE-0003"
        assert "DERIVED" in dataset.ImageType
        dataset.save_as(tmp_path / f"{dataset.InstanceNumber:04d}.dcm", write_like_original=False)
    back, sent = read_ct(tmp_path), nib.load(nifti)
    # the series read back from Orthanc is the NIfTI the app returned: same world grid, same HU (int16)
    back_world = back.affine.numpy() @ np.array([[0, 0, 0, 1], [31, 31, 31, 1]], dtype=float).T
    sent_world = sent.affine @ np.array([[0, 0, 0, 1], [31, 31, 31, 1]], dtype=float).T
    np.testing.assert_allclose(np.sort(back_world[:3], axis=1), np.sort(sent_world[:3], axis=1), atol=1e-3)
    np.testing.assert_allclose(sorted(np.abs(np.diag(back.affine.numpy()[:3, :3]))),
                               sorted(np.abs(np.linalg.svd(sent.affine[:3, :3])[1])), rtol=1e-5)
    back_hu = np.sort(back.numpy().ravel())
    sent_hu = np.sort(sent.get_fdata().ravel())
    np.testing.assert_allclose(back_hu, sent_hu, atol=0.51)  # rounded to whole HU
    assert back_hu[-1] - back_hu[0] > 500  # bone and air, not a constant


# slow: the bundle run again on the DX files as a `monai.bundle run` subprocess (torch + MONAI start-up + the 5
# steps: ~15-24 s, the file's largest cost); it checks the app against the bundle, not the DICOMweb path
# (the default-run tests above and below cover that)
@pytest.mark.slow
def test_the_generated_ct_is_what_the_bundle_writes_from_the_same_dicom_files(stack, generated, tmp_path):
    """The app is a thin adapter: the bundle run directly on the DX files gives the same CT."""
    from bundle_runs import bundle_log

    _, _, studies = stack
    nifti, params = generated
    bundle = REPO / "bundles" / MODEL
    files = {kind: str(series.files[0]) for kind, series in _series(studies[0]).items()}
    bundle_log(bundle / "configs", "inference", ["inference.json"], bundle,
               "--input_ap", files["ap"], "--input_lateral", files["lateral"],
               "--slice_thickness", "1.0", "--steps", "5", "--seed", "0", "--output_dir", str(tmp_path))
    (direct,) = tmp_path.glob("*_ct.nii.gz")
    np.testing.assert_allclose(nib.load(direct).get_fdata(), nib.load(nifti).get_fdata(), atol=0.5)
    np.testing.assert_allclose(nib.load(direct).affine, nib.load(nifti).affine, atol=1e-5)


@pytest.mark.parametrize("case, params, field, words", [
    ("views of two studies", {"lateral": "other-study"}, "lateral", "expected the two views of one study"),
    ("one view only", {}, "lateral", "missing"),
    ("unknown series", {"lateral": "1.2.3.4.5"}, "lateral", "no series 1.2.3.4.5 on the DICOMweb server"),
    ("a path as the id", {"lateral": "../../../../etc/passwd"}, "lateral", "is not a DICOM UID"),
])
def test_bad_dicomweb_requests_are_400_naming_the_field_and_store_nothing(stack, case, params, field, words):
    orthanc, label, studies = stack
    views, other = _views(studies[0]), _views(studies[1])
    if params.get("lateral") == "other-study":
        params = {"lateral": other["lateral"]}
    before = requests.get(f"{orthanc.url}/instances", timeout=10).json()
    with pytest.raises(MONAILabelClientException) as error:
        MONAILabelClient(label.url).infer(MODEL, views["ap"], {**REQUEST, **params})
    status, detail = _status_and_detail(error.value)
    assert status == 400, case
    assert f"{field}: " in detail and words in detail, (case, detail)
    assert "Traceback" not in detail
    assert requests.get(f"{orthanc.url}/instances", timeout=10).json() == before  # nothing half-stored
    assert requests.get(f"{label.url}/info/", timeout=10).ok


# slow: a second label server process (~6 s) only for the command line's start / stop by pid file; the
# default run starts and stops the stack's server through LabelServer
@pytest.mark.slow
def test_the_label_server_stops_by_pid(tmp_path):
    from orthogen.serving import label_server

    folder, port = tmp_path / "label", free_port()
    assert label_server.main(["start", "--folder", str(folder), "--studies", str(tmp_path / "studies"),
                              "--port", str(port)]) == 0
    pid = int((folder / "label_server.pid").read_text())
    assert requests.get(f"http://127.0.0.1:{port}/info/", timeout=10).ok
    assert label_server.main(["stop", "--folder", str(folder)]) == 0
    assert not (folder / "label_server.pid").exists() and not is_alive(pid)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/info/", timeout=5)


def test_a_segmentation_series_gives_a_radiograph_stored_in_its_study(stack, tmp_path):
    """Segmentation -> radiograph over DICOMweb: a contour+bone segmentation (a phantom knee's, 64 px) stored
    as a DICOM image in study 3; the U-Net's radiograph comes back and is stored as a new series there."""
    from orthogen.io import read_segmentation_image, write_dicom_radiograph

    orthanc, label, studies = stack
    write_label_app_studies(tmp_path / "inputs", tmp_path / "studies")
    segmentation = read_segmentation_image(tmp_path / "studies" / "labels" / "final" / "knee_ap.png").image
    ap_file = _series(studies[0])["ap"].files[0]
    path = tmp_path / "segmentation.dcm"
    write_dicom_radiograph(segmentation, path, reference=ap_file, series_description="Knee segmentation (phantom)",
                           series_number=2000, derivation_description="contour+bone segmentation of a phantom knee")
    assert load_demo_study.upload_study([path], orthanc.url) == 1
    series_uid = pydicom.dcmread(path, stop_before_pixels=True).SeriesInstanceUID

    client = MONAILabelClient(label.url, tmpdir=str(tmp_path))
    image, params = client.infer("knee_radiograph_diffusion_unet_contour_bone", series_uid, {"device": "cpu"})
    with Image.open(image) as picture:
        assert picture.size == (64, 64)
    stored = params["stored_series"]
    assert stored["StudyInstanceUID"] == studies[0].study_instance_uid and stored["instances"] == 1
    assert stored["SeriesDescription"].startswith("Synthetic unet_contour_bone")
    (back,) = DICOMwebClient(orthanc.dicomweb_url).retrieve_series(stored["StudyInstanceUID"],
                                                                   stored["SeriesInstanceUID"])
    assert back.PatientID == "ORTHOGEN-KNEE-0003" and back.SourceImageSequence[0].ReferencedSOPInstanceUID == \
        pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID
    with Image.open(image) as picture:
        np.testing.assert_allclose(back.pixel_array / 65535.0, np.asarray(picture) / 65535.0, atol=1 / 65535.0)


def _infer_json(label, image: str, params: dict) -> dict:
    """POST /infer/<MODEL>?output=json as MONAI Label's client sends it (params as a form field)."""
    answer = requests.post(f"{label.url}/infer/{MODEL}", params={"image": image, "output": "json"},
                           data={"params": json.dumps(params)}, timeout=300)
    assert answer.ok, answer.text
    return answer.json()


def test_the_same_request_returns_the_stored_series_and_a_new_seed_makes_a_new_one(stack, generated):
    """lib/generated_series.py: the series UID follows from model, weights, inputs and parameters."""
    orthanc, label, studies = stack
    _, first = generated
    views = _views(studies[0])
    client = DICOMwebClient(orthanc.dicomweb_url)

    def series() -> list[str]:
        return [s["0020000E"]["Value"][0] for s in client.search_for_series(studies[0].study_instance_uid)]

    before = series()
    again = _infer_json(label, views["ap"], {**REQUEST, "lateral": views["lateral"]})["stored_series"]
    assert series() == before  # nothing stored again
    assert again["reused"] is True and first["stored_series"]["reused"] is False
    assert again["SeriesInstanceUID"] == first["stored_series"]["SeriesInstanceUID"]
    assert again["SeriesDescription"] == first["stored_series"]["SeriesDescription"]
    other = _infer_json(label, views["ap"], {**REQUEST, "steps": 2, "seed": 7, "lateral": views["lateral"]})
    assert other["stored_series"]["reused"] is False and other["stored_series"]["SeriesInstanceUID"] != \
        again["SeriesInstanceUID"] and other["stored_series"]["SeriesDescription"].startswith(
        "Synthetic knee_xray2ct s7 2 steps")
    assert sorted(series()) == sorted([*before, other["stored_series"]["SeriesInstanceUID"]])
    (instance, *_) = client.retrieve_series(studies[0].study_instance_uid, other["stored_series"]["SeriesInstanceUID"])
    provenance = json.loads(instance.ImageComments)
    assert provenance["model"] == MODEL and provenance["parameters"]["seed"] == 7
    assert provenance["inputs"] == {"image": views["ap"], "lateral": views["lateral"]}


def _job(label, body: dict, timeout_s: float = 120.0) -> dict:
    """POST /orthogen/jobs, then poll its GET until it ends; every answer's stage is kept in ``stages``."""
    import time

    answer = requests.post(f"{label.url}/orthogen/jobs", json=body, timeout=10)
    assert answer.status_code == 202, answer.text
    job, stages = answer.json(), []
    deadline = time.monotonic() + timeout_s
    while job["state"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.2)
        job = requests.get(f"{label.url}/orthogen/jobs/{job['id']}", timeout=10).json()
        stages.append((job["stage"], job["step"], job["steps"]))
    return {**job, "stages": stages}


def test_generation_jobs_report_their_stage_and_the_servers_one_line_error(stack, generated):
    """lib/generation_jobs.py: the viewer's way in; a bad request fails with the line POST /infer answers."""
    _, label, studies = stack
    views = _views(studies[0])
    failed = _job(label, {"model": MODEL, "image": views["ap"], "params": {**REQUEST, "lateral": ""}})
    assert failed["state"] == "failed" and failed["status"] == 400 and failed["error"].startswith("lateral")
    assert "\n" not in failed["error"]
    sampled = _job(label, {"model": MODEL, "image": views["ap"],
                           "params": {**REQUEST, "steps": 2, "seed": 11, "lateral": views["lateral"]}})
    assert sampled["state"] == "done" and sampled["result"]["stored_series"]["reused"] is False
    assert ("nested DDIM sampling", 2, 2) in sampled["stages"] or sampled["stage"] == "done"
    unknown = requests.post(f"{label.url}/orthogen/jobs", json={"model": "knee_x3ct", "image": views["ap"]}, timeout=10)
    assert unknown.status_code == 404 and "no such model" in unknown.json()["detail"]
    assert requests.get(f"{label.url}/orthogen/jobs/no-such-job", timeout=10).status_code == 404


def test_a_dicom_seg_drawn_on_the_ap_view_gives_a_radiograph_stored_in_the_segs_study(stack, tmp_path):
    """A DICOM SEG as OHIF saves one on study 3's AP radiograph (segments "contour" and "bone", a phantom
    knee's contour+bone segmentation on the DX's 64 px grid; built by highdicom) is the request's image
    series: the U-Net's radiograph is stored as a new series in the SEG's study, referencing the SEG; a
    contour-only SEG is a 400 for this contour+bone model."""
    from dicom_builders import write_seg
    from orthogen.io import read_segmentation_image

    orthanc, label, studies = stack
    write_label_app_studies(tmp_path / "inputs", tmp_path / "studies")
    levels = np.round(read_segmentation_image(tmp_path / "studies" / "labels" / "final" / "knee_ap.png").image * 2) / 2
    ap = pydicom.dcmread(_series(studies[0])["ap"].files[0])
    path = write_seg(tmp_path / "knee_seg.dcm", ap, {"contour": levels == 0.5, "bone": levels == 1.0})
    assert load_demo_study.upload_study([path], orthanc.url) == 1
    seg = pydicom.dcmread(path, stop_before_pixels=True)
    assert seg.StudyInstanceUID == studies[0].study_instance_uid and seg.Modality == "SEG"

    client = MONAILabelClient(label.url, tmpdir=str(tmp_path))
    image, params = client.infer("knee_radiograph_diffusion_unet_contour_bone", seg.SeriesInstanceUID,
                                 {"device": "cpu"})
    with Image.open(image) as picture:
        generated = np.asarray(picture) / 65535.0
    assert generated.shape == (64, 64)
    assert generated[levels == 1.0].mean() > generated[levels == 0.5].mean() > generated[levels == 0.0].mean()
    stored = params["stored_series"]
    assert stored["StudyInstanceUID"] == seg.StudyInstanceUID and stored["instances"] == 1
    (back,) = DICOMwebClient(orthanc.dicomweb_url).retrieve_series(stored["StudyInstanceUID"],
                                                                   stored["SeriesInstanceUID"])
    assert back.SourceImageSequence[0].ReferencedSOPInstanceUID == seg.SOPInstanceUID

    contour_only = write_seg(tmp_path / "contour_only.dcm", ap, {"contour": levels > 0})
    assert load_demo_study.upload_study([contour_only], orthanc.url) == 1
    with pytest.raises(MONAILabelClientException) as refused:
        client.infer("knee_radiograph_diffusion_unet_contour_bone",
                     pydicom.dcmread(contour_only, stop_before_pixels=True).SeriesInstanceUID, {"device": "cpu"})
    status, detail = _status_and_detail(refused.value)
    assert status == 400 and "DICOM SEG with no bone drawn" in detail and "\n" not in detail
