"""The OHIF viewer the label app serves at /ohif/: ``@ohif/app`` 3.13.2's prebuilt ``dist/`` from the npm
registry, pinned by version and the tarball's sha256, pruned and re-based from ``/`` to ``/ohif/``.

Fetched by ``npm pack`` (``make serve-deps`` installs node/npm first), checked, unpacked into a temporary
folder beside the destination and renamed into place, so an interrupted set-up leaves no half viewer. What
is pruned: the source maps (~38 MB) and onnxruntime-web (``ort/``, ~136 MB: only OHIF's AI segmentation
tools load it; the OrthoGen mode does not offer them). The published build assumes it is served at ``/``;
:func:`rebase` rewrites index.html's links, ``window.PUBLIC_URL`` and the bundler's public path. Our
``app-config.js`` and the OrthoGen mode / extension are not written here: the app serves them from
``apps/orthogen_label/ohif/`` in front of the build (``lib/ohif_files.py``).

Command line (``make serve-deps``)::

    python -m orthogen.serving.ohif_viewer install --dest build/ohif-viewer
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from orthogen.errors import OrthoGenError

__all__ = ["OHIF_PACKAGE", "OHIF_SHA256", "OHIF_VERSION", "DEFAULT_DEST", "OhifViewerError", "install", "installed",
           "rebase"]

OHIF_PACKAGE = "@ohif/app"
OHIF_VERSION = "3.13.2"
#: sha256 of ``npm pack @ohif/app@3.13.2`` (ohif-app-3.13.2.tgz, 49,906,651 bytes; the registry's sha512
#: integrity is WZdxmpmG7rqF...).
OHIF_SHA256 = "b189d3963bfc58e9394a9db8c7be75d07beb029ec211dbb126d47b62969dd3f1"
#: Where ``make serve-deps`` puts the viewer (git-ignored build/), relative to the repository.
DEFAULT_DEST = Path(__file__).resolve().parents[3] / "build" / "ohif-viewer"
#: The URL path the app serves the viewer under.
PUBLIC_PATH = "/ohif/"
STAMP = ".orthogen-ohif.json"
PRUNED = ("ort",)


class OhifViewerError(OrthoGenError):
    """The viewer cannot be fetched, checked or prepared (one line)."""


def installed(dest: str | Path = DEFAULT_DEST) -> bool:
    """Whether ``dest`` holds this module's pinned viewer (its stamp names the version and sha256)."""
    stamp = Path(dest) / STAMP
    try:
        recorded = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return False
    return recorded.get("version") == OHIF_VERSION and recorded.get("sha256") == OHIF_SHA256


def _npm_pack(folder: Path) -> Path:
    """``npm pack @ohif/app@<version>`` into ``folder``; the tarball's path."""
    npm = shutil.which("npm")
    if npm is None:
        raise OhifViewerError("npm is not on PATH: run `make serve-deps` (installs Debian's nodejs and npm as root)")
    spec = f"{OHIF_PACKAGE}@{OHIF_VERSION}"
    done = subprocess.run([npm, "pack", spec, "--pack-destination", str(folder), "--silent"],
                          capture_output=True, text=True)
    tarballs = sorted(folder.glob("*.tgz"))
    if done.returncode != 0 or len(tarballs) != 1:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise OhifViewerError(f"npm pack {spec} failed (exit {done.returncode}): {tail[0]}")
    return tarballs[0]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _replace_once_or_more(path: Path, pattern: str, replacement: str) -> None:
    """Rewrite ``pattern`` (a regex) in ``path``; a build where it is absent is not the one this module knows."""
    text = path.read_text(encoding="utf-8")
    rewritten, count = re.subn(pattern, replacement, text)
    if count == 0:
        raise OhifViewerError(f"{path.name}: expected {pattern!r} in OHIF {OHIF_VERSION}'s build, found none")
    path.write_text(rewritten, encoding="utf-8")


def rebase(dist: Path, public_path: str = PUBLIC_PATH) -> None:
    """Make the build at ``dist`` load everything from ``public_path`` instead of ``/``: index.html's
    ``href="/..."`` / ``src="/..."`` and ``window.PUBLIC_URL``; the bundler's public path
    (``__webpack_require__.p``, from which every chunk, wasm and font is fetched) in the app bundle and in
    each worker bundle that sets its own; ``url(/...)`` in the style sheets; the manifest's icons."""
    index = dist / "index.html"
    _replace_once_or_more(index, r'window\.PUBLIC_URL="/"', f'window.PUBLIC_URL="{public_path}"')
    _replace_once_or_more(index, r'(href|src)="/(?!/)', rf'\1="{public_path}')
    bundles = sorted(dist.glob("app.bundle.*.js"))
    if len(bundles) != 1:
        raise OhifViewerError(f"{dist}: expected one app.bundle.*.js, found {len(bundles)}")
    public = r'__webpack_require__\.p = "/";'
    for bundle in [*bundles, *(b for b in sorted(dist.glob("*.js")) if b not in bundles)]:
        if bundle in bundles or re.search(public, bundle.read_text(encoding="utf-8")):
            _replace_once_or_more(bundle, public, f'__webpack_require__.p = "{public_path}";')
    _replace_once_or_more(dist / "app.bundle.css", r'url\(/(?!/)', f'url({public_path}')
    _replace_once_or_more(dist / "manifest.json", r'"/assets/', f'"{public_path}assets/')


def prune(dist: Path) -> None:
    """Remove the source maps and the folders OrthoGen never loads (:data:`PRUNED`)."""
    for source_map in dist.rglob("*.map"):
        source_map.unlink()
    for name in PRUNED:
        shutil.rmtree(dist / name, ignore_errors=True)


def install(dest: str | Path = DEFAULT_DEST, tarball: str | Path | None = None) -> Path:
    """The pinned viewer in ``dest`` (fetched with npm unless already there, or unpacked from ``tarball``);
    its sha256 checked before anything is unpacked."""
    dest = Path(dest).resolve()
    if installed(dest):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".ohif-", dir=dest.parent) as scratch:
        scratch = Path(scratch)
        package = Path(tarball) if tarball else _npm_pack(scratch)
        digest = sha256_of(package)
        if digest != OHIF_SHA256:
            raise OhifViewerError(f"{package.name}: sha256 {digest}, expected {OHIF_SHA256} "
                                  f"({OHIF_PACKAGE}@{OHIF_VERSION}); not unpacked")
        with tarfile.open(package) as archive:
            members = [m for m in archive.getmembers() if m.name.startswith("package/dist/")]
            archive.extractall(scratch / "unpacked", members=members, filter="data")
        dist = scratch / "unpacked" / "package" / "dist"
        prune(dist)
        rebase(dist)
        (dist / STAMP).write_text(json.dumps({"package": OHIF_PACKAGE, "version": OHIF_VERSION, "sha256": OHIF_SHA256,
                                              "public_path": PUBLIC_PATH, "pruned": ["*.map", *PRUNED]}, indent=1))
        if dest.exists():
            shutil.rmtree(dest)
        dist.rename(dest)
    return dest


def folder_size_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    install_parser = sub.add_parser("install", help="fetch, check, prune and re-base the pinned viewer")
    install_parser.add_argument("--dest", default=str(DEFAULT_DEST))
    install_parser.add_argument("--tarball", help="an already downloaded ohif-app-<version>.tgz (sha256-checked)")
    args = parser.parse_args(argv)
    try:
        already = installed(args.dest)
        dest = install(args.dest, args.tarball)
    except OhifViewerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    state = "already installed" if already else "installed"
    print(f"OHIF {OHIF_VERSION} {state} in {dest} ({folder_size_mb(dest):.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
