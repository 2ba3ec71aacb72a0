"""Browser origins, against a real MONAI Label server of the app (its own process, orthogen.serving.label_server)
on a real, empty Orthanc's DICOMweb root: a request from another web page's origin (``Origin:
https://evil.example``) is refused with 403 and never gets an ``Access-Control-Allow-Origin`` echo (MONAI Label's
own default, ``["*"]`` with credentials, echoes every Origin); the server's own origins (http://127.0.0.1:<port>,
http://localhost:<port>) are allowed; clients without an Origin (MONAILabelClient, curl) are not affected.
Orthanc answers no CORS at all. ~30 s (a server start).
"""
from __future__ import annotations

import json

import pytest
import requests

from orthogen.serving.label_server import LabelServer, LabelServerError, checked_origin, loopback_origins
from orthogen.serving.orthanc_server import OrthancServer
from orthogen.serving.server_process import free_port

INFER_MODEL, TRAIN_MODEL = "spine_x2ct_gan", "knee_radiograph_diffusion_unet_contour_bone"
FOREIGN = ("https://evil.example", "null", "http://127.0.0.1:1")



@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(label server, orthanc): an empty Orthanc and the app's MONAI Label server on its DICOMweb root."""
    root = tmp_path_factory.mktemp("security")
    with OrthancServer(root / "orthanc", free_port()) as orthanc:
        with LabelServer(root / "label", orthanc.dicomweb_url, free_port()) as server:
            yield server, orthanc


def _requests(server: LabelServer, origin: str) -> dict[str, requests.Response]:
    """A browser's requests from ``origin``: DICOMweb through the proxy, preflights and POSTs to /infer and
    /train (the POSTs are bad requests: nothing runs), /info."""
    url = server.url
    preflight = {"Origin": origin, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type"}
    form = {"params": json.dumps({"device": "cpu"})}
    return {
        "GET /proxy/dicom/qido/studies": requests.get(f"{url}/proxy/dicom/qido/studies", headers={"Origin": origin},
                                                      timeout=60),
        "OPTIONS /infer": requests.options(f"{url}/infer/{INFER_MODEL}", headers=preflight, timeout=60),
        "POST /infer": requests.post(f"{url}/infer/{INFER_MODEL}", params={"image": "no_such_series"}, data=form,
                                     headers={"Origin": origin}, timeout=300),
        "OPTIONS /train": requests.options(f"{url}/train/{TRAIN_MODEL}", headers=preflight, timeout=60),
        "POST /train/<model>": requests.post(f"{url}/train/no_such_model", json={}, headers={"Origin": origin},
                                             timeout=60),
        "POST /train/": requests.post(f"{url}/train/", json={}, headers={"Origin": origin}, timeout=60),
        "GET /info/": requests.get(f"{url}/info/", headers={"Origin": origin}, timeout=60),
    }


def test_a_foreign_origin_is_refused_and_never_echoed(served):
    server, _ = served
    for origin in FOREIGN:
        for name, response in _requests(server, origin).items():
            assert "access-control-allow-origin" not in response.headers, (origin, name, dict(response.headers))
            assert "access-control-allow-credentials" not in response.headers, (origin, name)
            assert response.status_code == 403, (origin, name, response.status_code, response.text[:300])
            detail = response.json()["detail"]
            assert detail.startswith(f"Origin {origin}: requests from other web pages are refused") and "\n" not in detail
            assert server.url in detail, detail  # says which origin is expected
    assert requests.get(f"{server.url}/train/?all=true", timeout=60).status_code == 404  # no train task ever queued


def test_the_servers_own_origins_are_allowed(served):
    server, _ = served
    assert server.cors_origins == loopback_origins(server.port) == [server.url, f"http://localhost:{server.port}"]
    for origin in server.cors_origins:
        answers = _requests(server, origin)
        for name, response in answers.items():
            assert response.headers.get("access-control-allow-origin") == origin, (origin, name, dict(response.headers))
            assert response.status_code != 403, (origin, name, response.text[:300])
        assert answers["GET /proxy/dicom/qido/studies"].status_code == 200  # Orthanc's (empty) study list
        assert answers["GET /proxy/dicom/qido/studies"].json() == []
        assert answers["OPTIONS /infer"].status_code == answers["OPTIONS /train"].status_code == 200
        assert 400 <= answers["POST /infer"].status_code < 500  # the request itself is refused, with CORS headers
        assert answers["POST /train/<model>"].status_code == 404 and answers["POST /train/"].status_code == 400
    # MONAI Label built its CORSMiddleware with exactly these origins (its start-up line), never ["*"]
    assert f"Allow Origins: {server.cors_origins!r}" in server.log_path.read_text()


def test_clients_without_an_origin_are_not_affected(served):
    server, _ = served
    response = requests.get(f"{server.url}/info/", timeout=60)
    assert response.ok and "access-control-allow-origin" not in response.headers
    assert requests.get(f"{server.url}/proxy/dicom/qido/studies", timeout=60).status_code == 200


def test_orthanc_answers_no_cors(served):
    """Orthanc (RemoteAccessAllowed false, loopback clients only: tests/test_orthanc_server.py) has no CORS: a
    page of another origin cannot read its answers."""
    _, orthanc = served
    for origin in FOREIGN[:1]:
        response = requests.get(f"{orthanc.dicomweb_url}/studies", headers={"Origin": origin}, timeout=30)
        assert "access-control-allow-origin" not in response.headers, dict(response.headers)
        preflight = requests.options(f"{orthanc.url}/instances", headers={"Origin": origin,
                                                                          "Access-Control-Request-Method": "POST"},
                                     timeout=30)
        assert "access-control-allow-origin" not in preflight.headers, dict(preflight.headers)


def test_more_origins_must_be_exact_origins(tmp_path):
    assert checked_origin("https://label.example.org/") == "https://label.example.org"
    for bad in ("*", "null", "https://label.example.org/ohif", "label.example.org", "ftp://x"):
        with pytest.raises(ValueError, match="expected scheme://host"):
            checked_origin(bad)
        with pytest.raises(LabelServerError, match="expected scheme://host"):
            LabelServer(tmp_path, str(tmp_path), cors_origins=[bad])
    server = LabelServer(tmp_path, str(tmp_path), 8000, cors_origins=["https://label.example.org"])
    assert server.cors_origins == ["http://127.0.0.1:8000", "http://localhost:8000", "https://label.example.org"]
    environment = server.environment()
    assert environment["ORTHOGEN_LABEL_ORIGINS"] == " ".join(server.cors_origins)
    assert "MONAI_LABEL_CORS_ORIGINS" not in LabelServer(tmp_path, str(tmp_path),
                                                         env={"MONAI_LABEL_CORS_ORIGINS": "[]"}).environment()
