"""The bad-request catalogue and concurrent requests, against a real MONAI Label server of the app (its own
process, orthogen.serving.label_server) on a local datastore folder of phantom inputs
(tests/label_app_studies.py). Every bad request gets a 4xx whose detail names the problem in one line;
afterwards the server still answers /info, the datastore folder is unchanged and no run folder is left.
The DICOMweb cases (views of two studies, unknown series) are in tests/test_label_dicomweb.py.
"""
from __future__ import annotations

import gzip
import io
import json
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import requests
from PIL import Image
from requests_toolbelt.multipart.decoder import MultipartDecoder

from orthogen.serving.label_server import LabelServer
from orthogen.serving.server_process import free_port

from dicom_builders import write_dx
from label_app_studies import SPINE_SIZE, write_label_app_studies

SPINE, KNEE_UNET = "spine_x2ct_gan", "knee_radiograph_diffusion_unet_contour_bone"
MAX_UPLOAD_MB = 1



@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(server, datastore folder, spine detector spacing mm) with uploads limited to 1 MB."""
    root = tmp_path_factory.mktemp("studies")
    spacing = write_label_app_studies(tmp_path_factory.mktemp("inputs"), root)
    with LabelServer(tmp_path_factory.mktemp("label"), str(root), free_port(),
                     conf={"max_upload_mb": str(MAX_UPLOAD_MB)}) as server:
        yield server, root, spacing


def _post(server, model: str, image: str = "", files=None, **params) -> requests.Response:
    return requests.post(f"{server.url}/infer/{model}", params={"image": image},
                         data={"params": json.dumps(params)}, files=files, timeout=300)


def _snapshot(root: Path) -> dict[str, int]:
    """Every file of the datastore folder with its size (MONAI Label's datastore.json excluded: it records
    access times)."""
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*")
            if p.is_file() and p.name != "datastore_v2.json"}


def _run_folders() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("orthogen_label_*")}


def _png_bytes(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return out.getvalue()


def _nifti_gz_bytes(array: np.ndarray) -> bytes:
    return gzip.compress(nib.Nifti1Image(array, np.eye(4)).to_bytes())


def _dicom_bytes(tmp_path: Path) -> bytes:
    """A valid 32 x 32 DICOM DX (tests/dicom_builders.py)."""
    return write_dx(tmp_path / "ap.dcm", np.full((32, 32), 1000, dtype=np.uint16), pixel_spacing=(1.0, 1.0)).read_bytes()


def _cases(tmp_path: Path, spacing: float):
    """(name, model, image id, files, params, status, words in the detail) of each bad request."""
    spine = {"lateral": "spine_lateral", "pixel_spacing": spacing}
    dicom = _dicom_bytes(tmp_path)
    huge = _png_bytes(np.zeros((16384, 16384), dtype=np.uint8))  # 268 M pixels, ~0.3 MB compressed
    nan_segmentation = np.full((64, 64), 0.5, dtype=np.float32)
    nan_segmentation[10, 10] = np.nan
    return [
        ("unknown model", "spine_x3ct", "spine_ap", None, spine, 404, "'spine_x3ct': no such model"),
        ("one view only", SPINE, "spine_ap", None, {"pixel_spacing": spacing}, 400, "lateral: missing"),
        ("corrupt DICOM", SPINE, "", {"file": ("ap.dcm", dicom[: len(dicom) // 2])}, spine, 400,
         "the uploaded file (image): cannot decode the pixel data"),
        ("a PNG posted as DICOM", SPINE, "", {"file": ("ap.dcm", _png_bytes(np.zeros((32, 32), np.uint8)))},
         spine, 400, "DICOM"),
        ("a 16k x 16k image", SPINE, "", {"file": ("ap.png", huge)}, spine, 400,
         "the uploaded file (image): image too large"),
        ("NaN in a NIfTI", KNEE_UNET, "knee_ap", {"label": ("seg.nii.gz", _nifti_gz_bytes(nan_segmentation))},
         {}, 400, "NaN"),
        ("a path-traversal image id", SPINE, "../../../../etc/passwd", None, spine, 400,
         "not a datastore id"),
        ("an absolute path as the lateral id", SPINE, "spine_ap", None, {**spine, "lateral": "/etc/hostname"}, 400,
         "lateral: '/etc/hostname' is a path on the server, not a datastore id"),
        ("an oversized upload", SPINE, "", {"file": ("ap.png", bytes(2 * 2**20))}, spine, 413,
         f"expected at most {MAX_UPLOAD_MB} MB"),
    ]


def test_the_bad_request_catalogue(served, tmp_path):
    server, root, spacing = served
    before, folders = _snapshot(root), _run_folders()
    answers = {}
    for name, model, image, files, params, status, words in _cases(tmp_path, spacing):
        response = _post(server, model, image, files, **{**params, "device": "cpu"})
        detail = response.json().get("detail", "") if response.headers["content-type"].startswith("application/json") else ""
        answers[name] = (response.status_code, detail)
        assert response.status_code == status, (name, response.status_code, response.text[:500])
        assert words in detail and "\n" not in detail and "Traceback" not in detail, (name, detail)
        assert requests.get(f"{server.url}/info/", timeout=30).ok, name  # the server still answers
    assert _snapshot(root) == before  # nothing written to the datastore
    assert _run_folders() <= folders  # no run folder or half-written result left
    print(json.dumps(answers, indent=1))


def _ct_of(response: requests.Response) -> np.ndarray:
    assert response.status_code == 200, response.text[:300]
    for part in MultipartDecoder(response.content, response.headers["content-type"]).parts:
        if b'name="image"' in part.headers[b"Content-Disposition"]:
            return nib.Nifti1Image.from_bytes(gzip.decompress(part.content)).get_fdata()
    raise AssertionError("no image part in the answer")


def test_eight_concurrent_requests_all_complete_with_the_single_requests_result(served):
    server, _, spacing = served
    params = {"lateral": "spine_lateral", "pixel_spacing": spacing, "device": "cpu"}
    single = _ct_of(_post(server, SPINE, "spine_ap", **params))
    assert single.shape == (SPINE_SIZE,) * 3 and np.ptp(single) > 500
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: _post(server, SPINE, "spine_ap", **params), range(8)))
    for k, answer in enumerate(answers):
        np.testing.assert_allclose(_ct_of(answer), single, atol=0.5, err_msg=f"request {k}")  # the GAN is deterministic
    assert requests.get(f"{server.url}/info/", timeout=30).ok
