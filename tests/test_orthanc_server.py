"""Our Orthanc (orthogen.serving.orthanc_server) serving the demo study (scripts/load_demo_study.py).

A real Orthanc 1.10 with the DICOMweb 1.7 plugin (Debian packages) runs on free ports with its data in
tmp_path; the phantom knee study is sent by STOW-RS and read back by QIDO-RS and WADO-RS. Without the
packages every test fails, naming scripts/install_serving_deps.sh.
"""
from __future__ import annotations

import contextlib
import http.client
import io
import json
import socket
from pathlib import Path

import numpy as np
import psutil
import pydicom
import pytest
import requests
from dicomweb_client import DICOMwebClient

from orthogen.io import read_ct
from orthogen.serving import orthanc_server
from orthogen.serving.orthanc_server import (DICOMWEB_PLUGIN, OrthancError, OrthancServer, find_orthanc_binary,
                                             stop_from_pidfile)
from orthogen.serving.server_process import free_port

from repo_scripts import load_script

SEED, SIZE = 3, 24  # a 24^3 knee CT (128 mm field of view: 5.33 mm voxels) and 48 x 48 radiographs


load_demo_study = load_script("load_demo_study")


def _require_orthanc() -> None:
    if find_orthanc_binary() is None or not DICOMWEB_PLUGIN.is_file():
        pytest.fail("Orthanc or its DICOMweb plugin is not installed: run scripts/install_serving_deps.sh "
                    "(Debian packages orthanc, orthanc-dicomweb)", pytrace=False)



def _is_running(pid: int) -> bool:
    """Whether ``pid`` is a live process (an exited child not yet reaped, a zombie, is not)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(server, study folder, the loader's stdout): our Orthanc with the demo study uploaded by the script's
    command line (``main``), its DICOM files kept in the study folder."""
    _require_orthanc()
    root = tmp_path_factory.mktemp("orthanc")
    study_dir = root / "study"
    with OrthancServer(root / "server", free_port()) as server:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            status = load_demo_study.main(["--url", server.url, "--seed", str(SEED), "--size", str(SIZE),
                                           "--out", str(study_dir)])
        assert status == 0
        yield server, study_dir, printed.getvalue()


def _study_uid(study_dir: Path) -> str:
    return pydicom.dcmread(study_dir / "dx_ap.dcm", stop_before_pixels=True).StudyInstanceUID


def _value(item: dict, keyword: str):
    """The first value of a DICOM JSON attribute (QIDO-RS answer) by keyword."""
    return item[f"{pydicom.datadict.tag_for_keyword(keyword):08X}"]["Value"][0]


def test_study_has_two_dx_one_ct_and_one_seg_series(served):
    server, study_dir, printed = served
    study_uid = _study_uid(study_dir)
    assert f"StudyInstanceUID {study_uid} " in printed
    client = DICOMwebClient(server.dicomweb_url)
    studies = client.search_for_studies(search_filters={"StudyInstanceUID": study_uid})
    assert len(studies) == 1
    assert _value(studies[0], "PatientID") == f"ORTHOGEN-KNEE-{SEED:04d}"
    series = client.search_for_series(study_uid, fields=["NumberOfSeriesRelatedInstances"])
    modalities = sorted(_value(item, "Modality") for item in series)
    assert modalities == ["CT", "DX", "DX", "SEG"]
    counts = {_value(item, "Modality"): int(_value(item, "NumberOfSeriesRelatedInstances")) for item in series}
    assert counts == {"CT": SIZE, "DX": 1, "SEG": 1}
    for item in series:  # every series the loader printed, and only those
        assert f"{_value(item, 'Modality')} {_value(item, 'SeriesInstanceUID')} " in printed


def test_ct_series_geometry_round_trips(served, tmp_path):
    server, study_dir, _ = served
    client = DICOMwebClient(server.dicomweb_url)
    written = sorted((pydicom.dcmread(p) for p in (study_dir / "ct").glob("*.dcm")), key=lambda d: d.InstanceNumber)
    retrieved = sorted(client.retrieve_series(_study_uid(study_dir), written[0].SeriesInstanceUID),
                       key=lambda d: d.InstanceNumber)
    assert len(retrieved) == len(written) == SIZE
    spacing = 128.0 / SIZE
    half = spacing * (SIZE - 1) / 2  # the phantom grid is centred on the origin; LPS axial layout
    for k, (back, sent) in enumerate(zip(retrieved, written)):
        assert back.SOPInstanceUID == sent.SOPInstanceUID
        assert back.ImagePositionPatient == sent.ImagePositionPatient
        assert back.ImageOrientationPatient == sent.ImageOrientationPatient
        assert back.PixelSpacing == sent.PixelSpacing
        np.testing.assert_allclose([float(v) for v in back.ImagePositionPatient], [-half, -half, -half + k * spacing],
                                   atol=1e-4)
        np.testing.assert_array_equal(back.pixel_array, sent.pixel_array)
    np.testing.assert_allclose([float(v) for v in retrieved[0].ImageOrientationPatient], [1, 0, 0, 0, 1, 0])
    np.testing.assert_allclose([float(v) for v in retrieved[0].PixelSpacing], [spacing, spacing], rtol=1e-9)
    # the retrieved files read as the same volume on the same grid as the written ones
    for dataset in retrieved:
        dataset.save_as(tmp_path / f"{dataset.InstanceNumber:04d}.dcm", write_like_original=False)
    back_ct, sent_ct = read_ct(tmp_path), read_ct(study_dir / "ct")
    np.testing.assert_allclose(back_ct.affine.numpy(), sent_ct.affine.numpy(), atol=1e-6)
    np.testing.assert_array_equal(back_ct.numpy(), sent_ct.numpy())


def test_dx_spacing_and_views_round_trip(served):
    server, study_dir, _ = served
    client = DICOMwebClient(server.dicomweb_url)
    for view, position, orientation in (("ap", "AP", ["L", "F"]), ("lateral", "LL", ["A", "F"])):
        sent = pydicom.dcmread(study_dir / f"dx_{view}.dcm")
        (back,) = client.retrieve_series(sent.StudyInstanceUID, sent.SeriesInstanceUID)
        assert back.SOPClassUID == "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray For Presentation
        assert (back.Modality, back.ViewPosition, list(back.PatientOrientation)) == ("DX", position, orientation)
        assert back.PixelSpacing == back.ImagerPixelSpacing == sent.PixelSpacing  # at the detector
        assert (back.Rows, back.Columns) == (2 * SIZE, 2 * SIZE)
        np.testing.assert_array_equal(back.pixel_array, sent.pixel_array)
        # orbit framing of a 128 mm cube at magnification 1.5: the detector spans its diagonal and more
        detector_mm = float(back.PixelSpacing[0]) * back.Rows
        assert 1.5 * 128.0 * np.sqrt(2) <= detector_mm <= 1.5 * 128.0 * np.sqrt(3) * 1.05
        assert back.pixel_array.max() > back.pixel_array.min()


def test_config_and_loopback_only(served):
    """RemoteAccessAllowed false: a client from 127.0.0.2 (a loopback address that is not 127.0.0.1, as any
    other host's address) is refused with 401, 127.0.0.1 is answered."""
    server, _, _ = served
    config = json.loads(server.config_path.read_text())
    assert config["RemoteAccessAllowed"] is False and config["AuthenticationEnabled"] is False
    assert config["HttpPort"] == server.http_port and config["DicomServerEnabled"] is False
    assert config["Plugins"] == [str(DICOMWEB_PLUGIN)] and config["DicomWeb"] == {"Enable": True, "Root": "/dicom-web/"}
    assert Path(config["StorageDirectory"]) == Path(config["IndexDirectory"]) == (server.folder / "storage").resolve()
    statuses = {}
    for source in ("127.0.0.1", "127.0.0.2"):
        connection = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10, source_address=(source, 0))
        connection.request("GET", "/system")
        statuses[source] = connection.getresponse().status
        connection.close()
    assert statuses == {"127.0.0.1": 200, "127.0.0.2": 401}


def test_stop_by_pid_and_data_kept_in_our_folder(served, tmp_path, capsys):
    """`make orthanc` / `make stop` (the module's command line), then a second server on the same folder."""
    _, study_dir, _ = served
    folder, port = tmp_path / "orthanc", free_port()
    assert orthanc_server.main(["start", "--folder", str(folder), "--http-port", str(port)]) == 0
    pid = int((folder / "orthanc.pid").read_text())
    assert _is_running(pid) and psutil.Process(pid).name() == "Orthanc"
    assert orthanc_server.main(["start", "--folder", str(folder), "--http-port", str(port)]) == 0  # make serve again
    assert capsys.readouterr().out.endswith(f"Orthanc already running (pid {pid}) on http://127.0.0.1:{port}\n")
    assert orthanc_server.main(["start", "--folder", str(folder), "--http-port", str(free_port())]) == 1
    assert f"already runs here (pid {pid}) on port {port}" in capsys.readouterr().err
    url = f"http://127.0.0.1:{port}"
    files = sorted(study_dir.rglob("*.dcm"))
    assert load_demo_study.upload_study(files, url) == len(files) == SIZE + 3  # CT, 2 DX, SEG
    assert orthanc_server.main(["stop", "--folder", str(folder)]) == 0
    assert not _is_running(pid) and not (folder / "orthanc.pid").exists()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/system", timeout=5)

    dicom_port = free_port()
    with OrthancServer(folder, free_port(), dicom_port=dicom_port) as second:
        assert second.pid != pid and _is_running(second.pid)
        assert requests.get(f"{second.url}/system", timeout=5).json()["DicomPort"] == dicom_port
        socket.create_connection(("127.0.0.1", dicom_port), timeout=5).close()  # its DICOM server is on
        series = DICOMwebClient(second.dicomweb_url).search_for_series(_study_uid(study_dir))
        assert sorted(_value(item, "Modality") for item in series) == ["CT", "DX", "DX", "SEG"]
        second_pid = second.pid
    assert not _is_running(second_pid) and not (folder / "orthanc.pid").exists()
    assert stop_from_pidfile(folder) is None  # nothing of ours left to stop


def test_startup_errors_are_one_line(served, tmp_path, monkeypatch):
    server, _, _ = served
    with pytest.raises(OrthancError, match=rf"^HTTP port {server.http_port} is in use"):
        OrthancServer(tmp_path / "busy", server.http_port).start()
    with pytest.raises(OrthancError, match="already runs here"):
        OrthancServer(server.folder, free_port()).start()

    late = OrthancServer(tmp_path / "late", free_port(), startup_timeout_s=0.0)
    with pytest.raises(OrthancError, match=r"did not answer GET .*/system within 0 s; .*orthanc\.log ends: ") as error:
        late.start()
    pid = int(str(error.value).split("(pid ")[1].split(")")[0])
    assert not _is_running(pid) and not late.pid_path.exists()  # the late server was stopped

    not_a_plugin = tmp_path / "libNotAPlugin.so"
    not_a_plugin.write_text("not a shared library")
    monkeypatch.setattr(orthanc_server, "DICOMWEB_PLUGIN", not_a_plugin)
    broken = OrthancServer(tmp_path / "broken", free_port())
    with pytest.raises(OrthancError, match=r"^Orthanc exited with status \d+ before answering GET .*orthanc\.log "
                                           r"ends: .*libNotAPlugin\.so") as error:
        broken.start()
    assert "\n" not in str(error.value) and not broken.pid_path.exists()

    monkeypatch.setattr(orthanc_server, "DICOMWEB_PLUGIN", tmp_path / "missing" / "libOrthancDicomWeb.so")
    with pytest.raises(OrthancError, match=r"not found; run scripts/install_serving_deps\.sh"):
        OrthancServer(tmp_path / "no_plugin", free_port()).start()


def test_loader_refuses_a_full_output_folder_before_rendering(tmp_path, capsys):
    (tmp_path / "old.txt").write_text("x")
    with pytest.raises(SystemExit):
        load_demo_study.main(["--out", str(tmp_path), "--url", "http://127.0.0.1:9"])
    assert f"argument --out: {tmp_path} is not empty" in capsys.readouterr().err


def test_no_server_is_one_line_before_rendering(served, capsys):
    server, _, _ = served
    port = free_port()
    assert load_demo_study.main(["--url", f"http://127.0.0.1:{port}"]) == 1
    assert capsys.readouterr().err == (f"error: http://127.0.0.1:{port}: cannot connect (ConnectionError); expected "
                                       "a running Orthanc (`make orthanc`)\n")
    with pytest.raises(load_demo_study.UploadError, match=r"/nothing/dicom-web/studies\?limit=1: answered HTTP 404"):
        load_demo_study.check_dicomweb(f"{server.url}/nothing")
