"""Feedback into training, against a real MONAI Label server of the app (its own process) on a local datastore
of phantom inputs (tests/label_app_studies.py): a segmentation saved by PUT /datastore/label makes the
knee radiograph U-Net's training case, POST /train/<model> fine-tunes the bundle (its own train config, in
MONAI Label's train subprocess), GET /train/ shows it, and the next /infer runs with the new weights.
"""
from __future__ import annotations

import pytest

import time
from pathlib import Path

import numpy as np
import requests
from monailabel.client import MONAILabelClient
from PIL import Image

from orthogen.serving.label_server import LabelServer

from label_app_studies import write_label_app_studies
from repo_scripts import load_script

pytestmark = pytest.mark.slow  # a MONAI Label server that fine-tunes two bundles: ~1.5 min (make test-slow)

MODEL = "knee_radiograph_diffusion_unet_contour_bone"


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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


def test_a_saved_segmentation_fine_tunes_the_model_and_the_next_infer_uses_it(tmp_path):
    studies = tmp_path / "studies"
    studies.mkdir()
    write_label_app_studies(tmp_path / "inputs", studies)
    segmentation = studies / "labels" / "final" / "knee_ap.png"
    corrected = tmp_path / "corrected.png"
    segmentation.rename(corrected)  # the datastore starts without labels: the user saves one
    with Image.open(studies / "knee_ap.png") as picture:
        truth = np.asarray(picture, dtype=np.float64) / 65535.0  # the phantom's true DRR

    with LabelServer(tmp_path / "label", str(studies), _free_port()) as server:
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


def test_training_without_a_labelled_image_fails_naming_the_datastore(tmp_path):
    studies = tmp_path / "studies"
    studies.mkdir()
    write_label_app_studies(tmp_path / "inputs", studies)
    (studies / "labels" / "final" / "knee_ap.png").unlink()
    with LabelServer(tmp_path / "label", str(studies), _free_port()) as server:
        client = MONAILabelClient(server.url, tmpdir=str(tmp_path))
        client.train_start(MODEL, {"max_epochs": 1, "device": "cpu"})
        status = _wait_for_training(client, 300.0)
        assert status["status"] == "ERROR"
        assert any("datastore: no labelled image in the datastore" in line for line in status["details"])
        assert not (tmp_path / "label" / "finetuned" / f"{MODEL}.pt").exists()


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

    with LabelServer(tmp_path / "label", str(studies), _free_port()) as server:
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
