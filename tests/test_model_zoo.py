"""The local model zoo: export a real bundle, download it with MONAI's own CLI, load the same weights back.

The shipped spine_x2ct_gan bundle (~5 MB zip) is exported once per module; a small bundle in a scratch git
repository checks which files a zip takes (tracked ones only) and how versions are chosen.
"""
import functools
import hashlib
import http.server
import importlib.util
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest
import torch

from orthogen.errors import InputError
from orthogen.model_zoo import (
    available_versions,
    export_bundle,
    fetch_bundle,
    file_digest,
    read_model_info,
    write_model_info,
)
from orthogen.serving.server_process import free_port

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "spine_x2ct_gan"
NAME = "spine_x2ct_gan"
VERSION = json.loads((BUNDLE / "configs" / "metadata.json").read_text())["version"]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """A zoo folder holding the exported spine_x2ct_gan zip and its model_info.json."""
    out = tmp_path_factory.mktemp("zoo")
    entry = export_bundle(BUNDLE, out)
    write_model_info([entry], out)
    return out, entry


def _git(cwd, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args], cwd=cwd, check=True,
                   capture_output=True)


def _small_bundle(repo: Path, name: str, version: str) -> Path:
    """A committed bundle with configs, docs, LICENSE and weights, plus ignored data/ runs/ and an untracked file."""
    bundle = repo / "bundles" / name
    (bundle / "configs").mkdir(parents=True)
    (bundle / "configs" / "metadata.json").write_text(json.dumps({"version": version}))
    (bundle / "docs").mkdir()
    (bundle / "docs" / "README.md").write_text(f"# {name}\n")
    (bundle / "LICENSE").write_text("Apache-2.0\n")
    (bundle / "models").mkdir()
    torch.save({"weight": torch.arange(6.0).reshape(2, 3)}, bundle / "models" / "model.pt")
    (repo / ".gitignore").write_text("bundles/*/data/\nbundles/*/runs/\n__pycache__/\n")
    if not (repo / ".git").exists():
        _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", f"{name} {version}")
    for ignored in ("data/case.h5", "runs/events.out", "configs/__pycache__/x.pyc"):
        (bundle / ignored).parent.mkdir(parents=True, exist_ok=True)
        (bundle / ignored).write_bytes(b"local")
    (bundle / "models" / "still_training.pt").write_bytes(b"untracked")
    return bundle


def test_zip_holds_the_tracked_bundle_files_under_its_name(zoo):
    _, entry = zoo
    tracked = subprocess.run(["git", "ls-files"], cwd=BUNDLE, capture_output=True, text=True, check=True)
    assert entry.zip_path.name == f"{NAME}_v{VERSION}.zip"
    with zipfile.ZipFile(entry.zip_path) as archive:
        names = archive.namelist()
        shipped = archive.read(f"{NAME}/models/model.pt")
    assert names == sorted(f"{NAME}/{p}" for p in tracked.stdout.split())
    assert {f"{NAME}/configs/metadata.json", f"{NAME}/configs/inference.json", f"{NAME}/LICENSE",
            f"{NAME}/docs/README.md"} <= set(names)
    assert not any(part in ("data", "runs", "eval", "__pycache__") for n in names for part in n.split("/"))
    assert shipped == (BUNDLE / "models" / "model.pt").read_bytes()


def test_ignored_and_untracked_files_stay_out(tmp_path):
    bundle = _small_bundle(tmp_path / "repo", "tiny_bundle", "0.3.0")
    entry = export_bundle(bundle, tmp_path / "zoo")
    with zipfile.ZipFile(entry.zip_path) as archive:
        assert archive.namelist() == ["tiny_bundle/LICENSE", "tiny_bundle/configs/metadata.json",
                                      "tiny_bundle/docs/README.md", "tiny_bundle/models/model.pt"]


def test_export_refuses_a_folder_git_does_not_track(tmp_path):
    (tmp_path / "loose_bundle" / "configs").mkdir(parents=True)
    (tmp_path / "loose_bundle" / "configs" / "metadata.json").write_text('{"version": "0.1.0"}')
    with pytest.raises(InputError, match=r"loose_bundle: git ls-files failed .*expected a bundle folder tracked by"):
        export_bundle(tmp_path / "loose_bundle", tmp_path / "zoo")
    (tmp_path / "loose_bundle" / "configs" / "metadata.json").write_text('{"name": "loose"}')
    with pytest.raises(InputError, match=r'metadata\.json: "version" is None; expected a version string'):
        export_bundle(tmp_path / "loose_bundle", tmp_path / "zoo")
    assert not (tmp_path / "zoo").exists()


def test_two_exports_give_the_same_sha256(zoo, tmp_path):
    _, first = zoo
    second = export_bundle(BUNDLE, tmp_path)
    assert second.sha256 == first.sha256
    assert second.sha256 == hashlib.sha256(first.zip_path.read_bytes()).hexdigest()
    assert second.size_bytes == first.zip_path.stat().st_size


def test_sha256_does_not_depend_on_file_times(tmp_path):
    bundle = _small_bundle(tmp_path / "repo", "tiny_bundle", "0.3.0")
    first = export_bundle(bundle, tmp_path / "one")
    for path in bundle.rglob("*"):
        os.utime(path, (1_700_000_000, 1_700_000_000))
    second = export_bundle(bundle, tmp_path / "two")
    assert second.sha256 == first.sha256
    with zipfile.ZipFile(second.zip_path) as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_model_info_follows_model_zoo_layout(zoo):
    out, entry = zoo
    index = json.loads((out / "model_info.json").read_text())
    assert index == {f"{NAME}_v{VERSION}": {"checksum": entry.sha256, "hash_type": "sha256",
                                         "source": f"{NAME}_v{VERSION}.zip"}}
    assert read_model_info(out) == index


def test_source_url_is_written_as_given(zoo, tmp_path):
    _, entry = zoo
    write_model_info([entry], tmp_path, source_url="https://example.org/zoo/")
    assert read_model_info(tmp_path)[entry.key]["source"] == f"https://example.org/zoo/{NAME}_v{VERSION}.zip"


def test_monai_download_then_load_gives_the_shipped_weights(zoo, tmp_path, monkeypatch):
    import monai.bundle

    _, entry = zoo
    result = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "download", "--name", NAME, "--version", entry.version,
         "--url", entry.zip_path.as_uri(), "--bundle_dir", str(tmp_path), "--progress", "False"],
        capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / NAME / "models" / "model.pt").is_file()
    # the bundle's initialize step installs orthogen's excepthook; keep pytest's
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    network = monai.bundle.load(name=NAME, bundle_dir=tmp_path, workflow_type="inference", device="cpu",
                                source="github")  # source is only used to download a missing model file
    assert type(network).__name__ == "X2CTGenerator"
    shipped = torch.load(BUNDLE / "models" / "model.pt", weights_only=True)
    loaded = network.state_dict()
    assert set(loaded) == set(shipped)
    assert all(torch.equal(loaded[k], shipped[k]) for k in shipped)


def test_fetch_bundle_from_folder_verifies_and_extracts(zoo, tmp_path):
    out, _ = zoo
    target = fetch_bundle(NAME, out, tmp_path / "bundles")
    assert target == tmp_path / "bundles" / NAME
    assert sorted(p.name for p in (tmp_path / "bundles").iterdir()) == [NAME]  # no staging folder left
    assert (target / "models" / "model.pt").read_bytes() == (BUNDLE / "models" / "model.pt").read_bytes()
    assert (target / "configs" / "metadata.json").read_text() == (BUNDLE / "configs" / "metadata.json").read_text()
    assert fetch_bundle(NAME, out, tmp_path / "bundles", version=VERSION) == target  # already there


def test_fetch_bundle_over_http(zoo, tmp_path):
    out, _ = zoo
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(out))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        target = fetch_bundle(NAME, f"http://127.0.0.1:{server.server_port}/", tmp_path)
    finally:
        server.shutdown()
        thread.join()
    assert (target / "models" / "model.pt").read_bytes() == (BUNDLE / "models" / "model.pt").read_bytes()


def test_entry_hash_type_is_honoured(zoo, tmp_path):
    out, entry = zoo
    sha1 = hashlib.sha1(entry.zip_path.read_bytes()).hexdigest()
    (tmp_path / "model_info.json").write_text(json.dumps(
        {entry.key: {"checksum": sha1, "hash_type": "sha1", "source": entry.zip_path.as_uri()}}))
    target = fetch_bundle(NAME, tmp_path, tmp_path / "bundles")
    assert (target / "models" / "model.pt").read_bytes() == (BUNDLE / "models" / "model.pt").read_bytes()
    (tmp_path / "model_info.json").write_text(json.dumps(
        {entry.key: {"checksum": sha1, "hash_type": "crc99", "source": entry.zip_path.as_uri()}}))
    with pytest.raises(InputError, match=r"has hash_type 'crc99'; expected \"sha256\""):
        fetch_bundle(NAME, tmp_path, tmp_path / "other")


def test_corrupted_zip_fails_the_checksum_and_leaves_nothing(zoo, tmp_path):
    out, entry = zoo
    bad_zoo = tmp_path / "zoo"
    bad_zoo.mkdir()
    (bad_zoo / "model_info.json").write_bytes((out / "model_info.json").read_bytes())
    data = bytearray(entry.zip_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bad_zoo / entry.zip_path.name).write_bytes(bytes(data))
    got = hashlib.sha256(bytes(data)).hexdigest()
    with pytest.raises(InputError) as error:
        fetch_bundle(NAME, bad_zoo, tmp_path / "bundles")
    message = str(error.value)
    assert "\n" not in message
    assert entry.zip_path.name in message
    assert f"sha256 checksum mismatch: expected {entry.sha256}, got {got}" in message
    assert list((tmp_path / "bundles").iterdir()) == []


def test_newest_version_is_fetched_unless_one_is_asked(tmp_path, caplog):
    repo, zoo = tmp_path / "repo", tmp_path / "zoo"
    with caplog.at_level(logging.WARNING, logger="orthogen.model_zoo"):
        old = export_bundle(_small_bundle(repo, "tiny_bundle", "0.9.1"), zoo)
        assert caplog.messages == []
        write_model_info([old], zoo)
        (repo / "bundles" / "tiny_bundle" / "configs" / "metadata.json").write_text(json.dumps({"version": "0.10.0"}))
        write_model_info([export_bundle(repo / "bundles" / "tiny_bundle", zoo)], zoo)
    bundle = repo / "bundles" / "tiny_bundle"
    assert caplog.messages == [f"{bundle}: packing uncommitted changes to configs/metadata.json"]
    assert available_versions(read_model_info(zoo), "tiny_bundle") == ["0.9.1", "0.10.0"]
    newest = fetch_bundle("tiny_bundle", zoo, tmp_path / "a")
    assert json.loads((newest / "configs" / "metadata.json").read_text())["version"] == "0.10.0"
    asked = fetch_bundle("tiny_bundle", zoo, tmp_path / "b", version="0.9.1")
    assert json.loads((asked / "configs" / "metadata.json").read_text())["version"] == "0.9.1"
    assert torch.equal(torch.load(asked / "models" / "model.pt", weights_only=True)["weight"],
                       torch.arange(6.0).reshape(2, 3))
    with pytest.raises(InputError, match=r"holds version 0\.10\.0; expected 0\.9\.1"):
        fetch_bundle("tiny_bundle", zoo, tmp_path / "a", version="0.9.1")


def test_unknown_name_or_version_is_one_line(zoo, tmp_path):
    out, _ = zoo
    unknown = r"model_info\.json: no bundle 'knee_ct'; expected one of \['spine_x2ct_gan'\]$"
    with pytest.raises(InputError, match=unknown):
        fetch_bundle("knee_ct", out, tmp_path)
    with pytest.raises(InputError, match=rf"no version 9\.9\.9 of 'spine_x2ct_gan'; expected one of \['{re.escape(VERSION)}'\]"):
        fetch_bundle(NAME, out, tmp_path, version="9.9.9")
    with pytest.raises(InputError, match=r"cannot read the zoo index"):
        fetch_bundle(NAME, tmp_path / "no_zoo", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_export_script_prints_one_line_per_bundle(tmp_path, capsys, monkeypatch):
    spec = importlib.util.spec_from_file_location("export_zoo", REPO / "scripts" / "export_zoo.py")
    export_zoo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(export_zoo)
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # main() installs orthogen's one-line hook
    _small_bundle(tmp_path / "repo", "tiny_bundle", "0.3.0")
    export_zoo.main(["--out", str(tmp_path / "zoo"), "--bundles-dir", str(tmp_path / "repo" / "bundles"),
                     "--source-url", "file:///srv/zoo"])
    sha = hashlib.sha256((tmp_path / "zoo" / "tiny_bundle_v0.3.0.zip").read_bytes()).hexdigest()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["tiny_bundle", "0.3.0", "0.0", "MB", "sha256", sha]
    assert lines[1] == f"index: {tmp_path / 'zoo' / 'model_info.json'}"
    index = read_model_info(tmp_path / "zoo")
    assert index["tiny_bundle_v0.3.0"]["source"] == "file:///srv/zoo/tiny_bundle_v0.3.0.zip"


def test_the_label_app_serves_its_bundles_from_a_zoo(zoo, tmp_path):
    """A real MONAI Label server of apps/orthogen_label with conf orthogen_zoo: the zoo's bundle is fetched
    (sha256 checked) into the bundles folder and served from there; a corrupted zip stops the start-up
    with the checksum line."""
    import requests

    from orthogen.serving.label_server import LabelServer, LabelServerError

    folder, entry = zoo
    studies = tmp_path / "studies"
    studies.mkdir()
    fetched = tmp_path / "fetched"
    conf = {"orthogen_zoo": str(folder), "bundles": str(fetched)}
    with LabelServer(tmp_path / "label", str(studies), free_port(), conf=conf) as server:
        info = requests.get(f"{server.url}/info/", timeout=30).json()
    assert set(info["models"]) == {"spine_x2ct_gan"} and info["bundles"] == str(fetched)
    weights = Path(info["models"]["spine_x2ct_gan"]["bundle"]["weights_file"])
    assert weights == fetched / "spine_x2ct_gan" / "models" / "model.pt"
    assert file_digest(weights) == file_digest(BUNDLE / "models" / "model.pt")  # the shipped weights

    corrupted = tmp_path / "corrupted_zoo"
    shutil.copytree(folder, corrupted)
    zip_path = corrupted / f"spine_x2ct_gan_v{entry.version}.zip"
    zip_path.write_bytes(zip_path.read_bytes()[:-100] + bytes(100))
    conf = {"orthogen_zoo": str(corrupted), "bundles": str(tmp_path / "fetched_again")}
    with pytest.raises(LabelServerError, match="sha256 checksum mismatch"):
        LabelServer(tmp_path / "label_corrupted", str(studies), free_port(), conf=conf).start()
    assert not (tmp_path / "fetched_again" / "spine_x2ct_gan").exists()

