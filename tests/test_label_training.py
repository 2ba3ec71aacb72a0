"""Feedback into training, against a real MONAI Label server of the app (its own process) on a local datastore
of phantom inputs (tests/label_app_studies.py): a segmentation saved by PUT /datastore/label makes the
knee radiograph U-Net's training case, POST /train/<model> fine-tunes the bundle (its own train config, in
MONAI Label's train subprocess), GET /train/ shows it, and the next /infer runs with the new weights.

A train request names one trainable model and is refused up front (one line, no task queued) when it names
none, several or an unknown one, or when the datastore holds no training case of it (lib.train_requests); those
tests are fast (one server start, no training run). The fine-tuning runs are slow-marked (make test-slow).
"""
from __future__ import annotations

import pytest

import time
from pathlib import Path

import numpy as np
import requests
from monailabel.client import MONAILabelClient
from monailabel.client.client import MONAILabelClientException
from PIL import Image

from orthogen.serving.label_server import LabelServer
from orthogen.serving.server_process import free_port

from label_app_studies import write_label_app_studies
from repo_scripts import load_script

MODEL = "knee_radiograph_diffusion_unet_contour_bone"
CT_MODEL = "knee_xray2ct_diffusion"



def _radiograph(client: MONAILabelClient) -> tuple[np.ndarray, dict]:
    """The model's radiograph of knee_ap's segmentation label, in [0, 1], and the result params."""
    image, params = client.infer(MODEL, "knee_ap", {"device": "cpu"})
    with Image.open(image) as picture:
        return np.asarray(picture, dtype=np.float64) / 65535.0, params


def _wait_for_training(client: MONAILabelClient, timeout_s: float = 600.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = client.train_status()
        if status.get("status") in ("DONE", "ERROR"):
            return status
        time.sleep(2.0)
    raise AssertionError(f"training did not finish within {timeout_s:g} s: {client.train_status()}")


@pytest.mark.slow  # a fine-tuning run in MONAI Label's train subprocess (make test-slow)
def test_a_saved_segmentation_fine_tunes_the_model_and_the_next_infer_uses_it(tmp_path):
    studies = tmp_path / "studies"
    studies.mkdir()
    write_label_app_studies(tmp_path / "inputs", studies)
    segmentation = studies / "labels" / "final" / "knee_ap.png"
    corrected = tmp_path / "corrected.png"
    segmentation.rename(corrected)  # the datastore starts without labels: the user saves one
    with Image.open(studies / "knee_ap.png") as picture:
        truth = np.asarray(picture, dtype=np.float64) / 65535.0  # the phantom's true DRR

    with LabelServer(tmp_path / "label", str(studies), free_port()) as server:
        client = MONAILabelClient(server.url, tmpdir=str(tmp_path))
        assert MODEL in client.info()["trainers"]
        client.save_label("knee_ap", str(corrected), tag="final")  # PUT /datastore/label
        before, params = _radiograph(client)
        assert params["weights"] == "phantom-trained"

        started = client.train_start(MODEL, {"max_epochs": 20, "learning_rate": 1e-4, "device": "cpu"})
        assert started["status"] in ("SUBMITTED", "RUNNING") or started.get("id"), started
        status = _wait_for_training(client)
        progress = "\n".join(status.get("details", []))
        assert status["status"] == "DONE", progress[-3000:]
        assert "Epoch: 20/20" in progress  # the bundle trainer's own progress lines, shown by GET /train/
        finetuned = tmp_path / "label" / "finetuned" / f"{MODEL}.pt"
        assert finetuned.is_file()

        after, params = _radiograph(client)
        assert params["weights"].startswith("fine-tuned") and params["weights_file"] == str(finetuned)
        # fine-tuned on this very pair: the radiograph moves toward the true DRR
        mae_before, mae_after = np.abs(before - truth).mean(), np.abs(after - truth).mean()
        print(f"phantom knee seed 7: MAE against its DRR {mae_before:.4f} shipped, {mae_after:.4f} fine-tuned")
        assert mae_after < 0.9 * mae_before
        assert requests.get(f"{server.url}/info/", timeout=30).ok

        shipped = Path(params["inputs"]["input_segmentation"])  # the saved label, in the datastore
        assert shipped.is_file() and shipped.parent.name == "final"


@pytest.fixture(scope="module")
def unlabelled(tmp_path_factory):
    """(server, client, the knee radiograph's segmentation file): the app's server on the phantom inputs with no
    label saved yet."""
    studies = tmp_path_factory.mktemp("studies")
    write_label_app_studies(tmp_path_factory.mktemp("inputs"), studies)
    segmentation = tmp_path_factory.mktemp("saved") / "knee_ap_segmentation.png"
    (studies / "labels" / "final" / "knee_ap.png").rename(segmentation)
    folder = tmp_path_factory.mktemp("label")
    with LabelServer(folder, str(studies), free_port()) as server:
        yield server, MONAILabelClient(server.url, tmpdir=str(folder)), segmentation


def _refusal(response: requests.Response, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.text[:500])
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and "Traceback" not in detail, detail
    return detail


def _assert_no_train_task(server: LabelServer, client: MONAILabelClient) -> None:
    """Nothing runs (OHIF's and MONAILabelClient's check) and no train task was ever queued."""
    running = requests.get(f"{server.url}/train/", params={"check_if_running": "true"}, timeout=30)
    assert running.status_code == 204, (running.status_code, running.text)  # not MONAI Label's 404
    assert client.train_status(check_if_running=True) is False
    assert _refusal(requests.get(f"{server.url}/train/", params={"all": "true"}, timeout=30), 404) == \
        "No Train Tasks Found"
    assert not (server.folder / "finetuned").exists() or not any((server.folder / "finetuned").iterdir())


def test_a_train_request_must_name_one_trainable_model(unlabelled):
    """OHIF's "Update Model" (POST /train/ without a model) used to queue one task per trainer, each failing in
    its subprocess while OHIF said STARTED; now it, and a request naming several or an unknown model, is refused
    in one line naming the field and the trainable models."""
    server, client, _ = unlabelled
    trainers = sorted(client.info()["trainers"])
    assert MODEL in trainers and CT_MODEL in trainers and "spine_x2ct_gan" not in trainers
    listed = ", ".join(trainers)
    for body in ({}, {"max_epochs": 1}, {MODEL: {"max_epochs": 1}}):
        detail = _refusal(requests.post(f"{server.url}/train/", json=body, timeout=30), 400)
        assert detail == f"model: missing; expected one model to fine-tune: POST /train/<model> with one of {listed}"
    detail = _refusal(requests.post(f"{server.url}/train/", json={"model": [MODEL, CT_MODEL]}, timeout=30), 400)
    assert detail.startswith(f"model: 2 models named ({MODEL}, {CT_MODEL}); expected one model") and listed in detail
    detail = _refusal(requests.post(f"{server.url}/train/{MODEL}", json={"model": CT_MODEL}, timeout=30), 400)
    assert detail.startswith(f"model: the path names {MODEL!r}, the body {CT_MODEL!r}")
    for unknown in ("spine_x3ct", "spine_x2ct_gan"):  # a typo; a model that serves /infer but cannot be fine-tuned
        detail = _refusal(requests.post(f"{server.url}/train/{unknown}", json={}, timeout=30), 404)
        assert detail == f"model {unknown!r}: no such trainable model; expected one of {listed}"
    _assert_no_train_task(server, client)


def test_training_without_a_training_case_is_refused_before_a_task_is_queued(unlabelled):
    """No labelled image: refused at once (it used to fail ~10 s later in the train subprocess); a 2D segmentation
    saved as a label is a case of the knee radiograph models, not of the knee CT model (a CT is)."""
    server, client, segmentation = unlabelled
    for request in (lambda: requests.post(f"{server.url}/train/{MODEL}", json={"max_epochs": 1}, timeout=30),
                    lambda: requests.post(f"{server.url}/train/", json={"model": MODEL}, timeout=30)):
        detail = _refusal(request(), 409)
        assert detail == (f"datastore: no training case of {MODEL} (no labelled image); expected a radiograph with "
                          f"its segmentation (a 2D image) as its 'final' label, saved by PUT /datastore/label")
    with pytest.raises(MONAILabelClientException, match="Status: 409"):
        client.train_start(MODEL, {"max_epochs": 1})
    client.save_label("knee_ap", str(segmentation), tag="final")  # now a case of the radiograph models only
    detail = _refusal(requests.post(f"{server.url}/train/{CT_MODEL}", json={}, timeout=30), 409)
    assert detail.startswith(f"datastore: no training case of {CT_MODEL} (none of its 1 labelled images is one); "
                             f"expected an AP radiograph with the patient's CT (a 3D volume")
    _assert_no_train_task(server, client)


@pytest.mark.slow  # a data preparation and a fine-tuning run (make test-slow)
def test_a_ct_saved_for_a_radiograph_fine_tunes_the_knee_ct_model(tmp_path):
    """X-ray -> CT: a phantom knee's CT saved as the label of its AP radiograph is prepared as the bundle's
    metadata declares (orthogen_preparation: DRRs rendered from the CT) and fine-tunes the knee CT model;
    the next /infer runs with the new weights."""
    import nibabel as nib

    from orthogen.io import read_ct, read_radiograph, write_nifti, write_png

    load_demo_study = load_script("load_demo_study")
    demo = tmp_path / "demo"
    load_demo_study.write_demo_study(demo, seed=3, size=32)
    studies = tmp_path / "studies"
    studies.mkdir()
    spacing = None
    for view in ("ap", "lateral"):
        radiograph = read_radiograph(demo / f"dx_{view}.dcm")
        write_png(radiograph.image, studies / f"knee_{view}.png", bit_depth=16)
        spacing = radiograph.pixel_spacing_mm[0]
    ct = read_ct(demo / "ct")
    ct_file = write_nifti(ct.numpy(), ct.affine.numpy(), tmp_path / "knee_ct.nii.gz")  # (X, Y, Z) HU
    request = {"lateral": "knee_lateral", "pixel_spacing": spacing, "slice_thickness": 4.0, "steps": 5,
               "seed": 0, "device": "cpu"}

    with LabelServer(tmp_path / "label", str(studies), free_port()) as server:
        client = MONAILabelClient(server.url, tmpdir=str(tmp_path))
        assert "knee_xray2ct_diffusion" in client.info()["trainers"]
        assert "spine_x2ct_gan" not in client.info()["trainers"]  # declares no preparation of CTs
        client.save_label("knee_ap", str(ct_file), tag="final")
        before, params = client.infer("knee_xray2ct_diffusion", "knee_ap", request)
        before = nib.load(before).get_fdata()
        assert params["weights"] == "phantom-trained"
        client.train_start("knee_xray2ct_diffusion", {"max_epochs": 2, "device": "cpu"})
        status = _wait_for_training(client)
        progress = "\n".join(status.get("details", []))
        assert status["status"] == "DONE", progress[-3000:]
        assert "Epoch: 2/2" in progress
        after, params = client.infer("knee_xray2ct_diffusion", "knee_ap", request)
        after = nib.load(after).get_fdata()
    assert params["weights"].startswith("fine-tuned")
    assert params["weights_file"] == str(tmp_path / "label" / "finetuned" / "knee_xray2ct_diffusion.pt")
    assert after.shape == before.shape and np.abs(after - before).mean() > 1.0  # HU: other weights, other CT
