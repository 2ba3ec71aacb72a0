"""A local model zoo: pack bundles as zips, index them in ``model_info.json``, fetch and verify them.

The layout follows Project-MONAI/model-zoo: one zip per bundle version, ``<name>_v<version>.zip``, whose
single top-level folder is ``<name>/`` (what ``python -m monai.bundle download --url ...`` extracts), and
an index ``model_info.json`` keyed ``"<name>_v<version>"`` with that zip's ``"checksum"`` and
``"source"``. Two deliberate differences: the checksum is a sha256 (model-zoo's is a sha1), said by an
extra ``"hash_type": "sha256"`` key; and ``source`` may be a bare file name, read relative to the
folder or URL that holds ``model_info.json``, so a zoo folder can be copied or served as it is.

A zip holds the bundle's files that git tracks (``git ls-files``), read from the working tree: the
configs, docs, LICENSE and committed weights, never local data/, runs/, eval/ or caches (ignored by
.gitignore), nor weights still being trained (untracked). Zips are deterministic (sorted entries, a
fixed 1980-01-01 timestamp, fixed permissions), so the same bundle always gives the same sha256.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cmp_to_key
from pathlib import Path

from monai.apps.utils import download_url, extractall
from monai.utils import version_leq

from orthogen.errors import InputError
from orthogen.io.atomic_write import atomic_file

logger = logging.getLogger(__name__)

MODEL_INFO = "model_info.json"
HASH_TYPE = "sha256"
_ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can hold
_ZIP_FILE_MODE = 0o644 << 16  # -rw-r--r--, in the high bytes of external_attr


@dataclass(frozen=True)
class ZooEntry:
    """One packed bundle version.

    Attributes:
        name: the bundle's folder name, e.g. ``"spine_x2ct_gan"``.
        version: ``configs/metadata.json``'s ``version``, e.g. ``"0.2.1"``.
        zip_path: the written ``<name>_v<version>.zip``.
        sha256: hex digest of the zip.
        size_bytes: size of the zip in bytes.
    """

    name: str
    version: str
    zip_path: Path
    sha256: str
    size_bytes: int

    @property
    def key(self) -> str:
        """The entry's key in ``model_info.json``: ``<name>_v<version>``."""
        return zoo_key(self.name, self.version)


def zoo_key(name: str, version: str) -> str:
    """``<name>_v<version>``: a zoo entry's key and its zip's stem, as in model-zoo."""
    return f"{name}_v{version}"


def file_digest(path: str | Path, hash_type: str = HASH_TYPE) -> str:
    """Hex digest of a file (sha256 unless ``hash_type`` names another hashlib algorithm), read in chunks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, hash_type).hexdigest()


def bundle_version(bundle_dir: str | Path) -> str:
    """The ``version`` string of ``<bundle_dir>/configs/metadata.json``; InputError when missing or bad."""
    metadata_file = Path(bundle_dir) / "configs" / "metadata.json"
    try:
        metadata = json.loads(metadata_file.read_text())
    except FileNotFoundError:
        raise InputError("no bundle metadata; expected configs/metadata.json in a MONAI bundle folder",
                         metadata_file) from None
    except json.JSONDecodeError as error:
        raise InputError(f"not valid JSON ({error}); expected the bundle's metadata", metadata_file) from None
    version = metadata.get("version") if isinstance(metadata, dict) else None
    if not isinstance(version, str):
        raise InputError(f'"version" is {version!r}; expected a version string such as "0.1.0"', metadata_file)
    return version


def shipped_files(bundle_dir: str | Path) -> list[str]:
    """The bundle's git-tracked files, as sorted POSIX paths relative to ``bundle_dir``.

    Their content is read from the working tree; uncommitted changes to them are logged as a warning.
    Raises InputError when ``bundle_dir`` is not inside a git work tree, tracks nothing, or a tracked file
    is missing from the working tree (a half-finished change is not packed).
    """
    bundle_dir = Path(bundle_dir)
    result = subprocess.run(["git", "-C", str(bundle_dir), "ls-files", "-z", "--cached", "--", "."],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise InputError(f"git ls-files failed ({result.stderr.strip()}); expected a bundle folder tracked by "
                         "git (the zip holds the tracked files)", bundle_dir)
    files = sorted(p for p in result.stdout.split("\0") if p)
    if not files:
        raise InputError("git tracks no files here; expected a committed bundle", bundle_dir)
    missing = [p for p in files if not (bundle_dir / p).is_file()]
    if missing:
        raise InputError(f"tracked file {missing[0]} is missing from the working tree; expected every tracked "
                         "file present (commit or restore it)", bundle_dir)
    diff = subprocess.run(["git", "-C", str(bundle_dir), "diff", "-z", "--name-only", "--relative", "HEAD", "--", "."],
                          capture_output=True, text=True)
    changed = sorted(p for p in diff.stdout.split("\0") if p)
    if changed:
        logger.warning("%s: packing uncommitted changes to %s", bundle_dir, ", ".join(changed))
    return files


def export_bundle(bundle_dir: str | Path, out_dir: str | Path) -> ZooEntry:
    """Pack a bundle as ``<out_dir>/<name>_v<version>.zip`` with the top-level folder ``<name>/``.

    The name is the bundle folder's name, the version its metadata's. Entries are the tracked files
    (``shipped_files``) in sorted order with fixed timestamps and permissions, deflate-compressed, so two
    exports of the same files have the same sha256. Written atomically (temporary sibling, then rename).
    """
    bundle_dir = Path(bundle_dir).resolve()
    name, version = bundle_dir.name, bundle_version(bundle_dir)
    files = shipped_files(bundle_dir)
    if "configs/metadata.json" not in files:
        raise InputError("configs/metadata.json is not tracked by git; expected it committed", bundle_dir)
    zip_path = Path(out_dir) / f"{zoo_key(name, version)}.zip"
    with atomic_file(zip_path) as temporary:
        with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for relative in files:
                info = zipfile.ZipInfo(f"{name}/{relative}", date_time=_ZIP_TIMESTAMP)
                info.external_attr = _ZIP_FILE_MODE
                info.compress_type = zipfile.ZIP_DEFLATED
                with open(bundle_dir / relative, "rb") as source, archive.open(info, "w") as target:
                    while chunk := source.read(1 << 20):
                        target.write(chunk)
    return ZooEntry(name, version, zip_path, file_digest(zip_path), zip_path.stat().st_size)


def write_model_info(entries: Iterable[ZooEntry], out_dir: str | Path, source_url: str | None = None) -> Path:
    """Add ``entries`` to ``<out_dir>/model_info.json`` (created if missing) and return its path.

    Each entry becomes ``"<name>_v<version>": {"checksum": sha256, "hash_type": "sha256", "source": ...}``;
    ``source`` is ``<source_url>/<zip name>`` when a base URL is given, else the zip's file name (relative
    to the index). Entries already in the file for other versions stay, as in model-zoo's index; keys are
    written sorted.
    """
    index_path = Path(out_dir) / MODEL_INFO
    index = _parse_index(index_path.read_text(), index_path) if index_path.exists() else {}
    for entry in entries:
        zip_name = entry.zip_path.name
        source = f"{source_url.rstrip('/')}/{zip_name}" if source_url else zip_name
        index[entry.key] = {"checksum": entry.sha256, "hash_type": HASH_TYPE, "source": source}
    with atomic_file(index_path) as temporary:
        temporary.write_text(json.dumps(dict(sorted(index.items())), indent=4) + "\n")
    return index_path


def zoo_url(zoo: str | Path) -> str:
    """The zoo's base URL: a folder path becomes a ``file://`` URL; ``file://`` / ``http(s)://`` stay."""
    text = str(zoo)
    if urllib.parse.urlparse(text).scheme in ("file", "http", "https"):
        return text.rstrip("/")
    return Path(text).resolve().as_uri()


def read_model_info(zoo: str | Path) -> dict[str, dict[str, str]]:
    """The ``model_info.json`` of a zoo folder or URL, checked to map keys to ``checksum`` + ``source``."""
    index_url = f"{zoo_url(zoo)}/{MODEL_INFO}"
    try:
        with urllib.request.urlopen(index_url, timeout=60) as response:
            text = response.read().decode("utf-8")
    except (urllib.error.URLError, OSError) as error:
        raise InputError(f"cannot read the zoo index ({error}); expected a {MODEL_INFO} written by "
                         "scripts/export_zoo.py", index_url) from None
    return _parse_index(text, index_url)


def _parse_index(text: str, where: str | Path) -> dict[str, dict[str, str]]:
    try:
        index = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(f"not valid JSON ({error}); expected a model-zoo model_info.json", where) from None
    if not isinstance(index, dict):
        raise InputError(f"holds a {type(index).__name__}; expected an object of '<name>_v<version>' entries",
                         where)
    for key, value in index.items():
        if not (isinstance(value, dict) and isinstance(value.get("checksum"), str)
                and isinstance(value.get("source"), str)):
            raise InputError(f'entry "{key}" is {value!r}; expected {{"checksum": ..., "source": ...}}', where)
    return index


def available_versions(index: dict[str, dict[str, str]], name: str) -> list[str]:
    """The versions of bundle ``name`` in a zoo index, oldest first (version order: 0.10.0 after 0.9.1)."""
    versions = [version for key_name, _, version in (key.rpartition("_v") for key in index) if key_name == name]
    return sorted(versions, key=cmp_to_key(lambda a, b: 0 if a == b else -1 if version_leq(a, b) else 1))


def fetch_bundle(name: str, zoo: str | Path, bundle_dir: str | Path, version: str | None = None) -> Path:
    """Download bundle ``name`` from a zoo, verify its sha256, extract it to ``<bundle_dir>/<name>``.

    Args:
        name: bundle name, e.g. ``"spine_x2ct_gan"``.
        zoo: the folder or ``file://`` / ``http(s)://`` URL holding ``model_info.json``.
        bundle_dir: where bundles live; the bundle lands in ``<bundle_dir>/<name>``.
        version: the version to fetch; ``None`` takes the newest in the index.

    Returns:
        ``<bundle_dir>/<name>``. When it already holds the requested version nothing is downloaded.

    The zip is downloaded with MONAI's ``download_url`` into a hidden staging folder inside
    ``bundle_dir``; its digest (the entry's ``hash_type``, sha256 when absent) is checked here rather
    than through ``download_url(hash_val=...)`` so that a mismatch names both digests. A mismatch, a zip
    without the single ``<name>/`` folder or with another metadata version raises InputError, and the
    staging folder is removed: nothing half extracted is left. The verified bundle is moved into place
    with one rename.
    """
    index = read_model_info(zoo)
    versions = available_versions(index, name)
    index_url = f"{zoo_url(zoo)}/{MODEL_INFO}"
    if not versions:
        names = sorted({key.rsplit("_v", 1)[0] for key in index})
        raise InputError(f"no bundle '{name}'; expected one of {names}", index_url)
    version = versions[-1] if version is None else version
    if version not in versions:
        raise InputError(f"no version {version} of '{name}'; expected one of {versions}", index_url)
    entry = index[zoo_key(name, version)]
    bundle_dir = Path(bundle_dir)
    target = bundle_dir / name
    if (target / "configs" / "metadata.json").exists():
        present = bundle_version(target)
        if present == version:
            logger.info("%s %s is already in %s", name, version, target)
            return target
        raise InputError(f"holds version {present}; expected {version} or no folder (remove it to replace it)",
                         target)
    if target.exists() and any(target.iterdir()):
        raise InputError("folder exists and is not a bundle; expected a new or empty folder", target)
    hash_type = entry.get("hash_type", HASH_TYPE)
    if hash_type not in hashlib.algorithms_available:
        raise InputError(f'entry "{zoo_key(name, version)}" has hash_type {hash_type!r}; expected "sha256" (or '
                         "another hashlib algorithm)", index_url)
    zip_name = f"{zoo_key(name, version)}.zip"
    url = urllib.parse.urljoin(f"{zoo_url(zoo)}/", entry["source"])
    bundle_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=bundle_dir, prefix=f".fetch-{name}-") as staging:
        zip_path = Path(staging) / zip_name
        with warnings.catch_warnings():  # the digest is checked just below, with both values in the error
            warnings.filterwarnings("ignore", message="No hash value provided", category=UserWarning)
            download_url(url=url, filepath=zip_path, hash_val=None, progress=False)
        got = file_digest(zip_path, hash_type)
        if got != entry["checksum"]:
            raise InputError(f"{hash_type} checksum mismatch: expected {entry['checksum']}, got {got}; the zip "
                             f"is corrupted or not the one {MODEL_INFO} lists", url)
        extracted = Path(staging) / "extracted"
        extractall(filepath=zip_path, output_dir=extracted, has_base=True)
        top_level = sorted(p.name for p in extracted.iterdir()) if extracted.exists() else []
        if top_level != [name]:
            raise InputError(f"top-level entries {top_level}; expected the single folder '{name}/'", url)
        packed_version = bundle_version(extracted / name)
        if packed_version != version:
            raise InputError(f"metadata version is {packed_version}; expected {version} as its zoo key says", url)
        if target.exists():
            target.rmdir()  # empty, checked above
        os.replace(extracted / name, target)
    logger.info("fetched %s %s (%s %s) into %s", name, version, hash_type, got, target)
    return target
