"""Atomic writing: build a file or folder under a temporary name beside its target, then rename it.

A reader never sees a half-written output: on any failure the temporary is removed and the target is
left as it was (absent, or its previous content).
"""
from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from orthogen.errors import InputError


def _temporary_sibling(target: Path) -> Path:
    """A hidden name in the target's folder that keeps the target's suffixes (``.nii.gz`` stays last)."""
    return target.with_name(f".tmp-{uuid.uuid4().hex[:12]}-{target.name}")


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` with ``os.replace``.

    The parent folder is created when missing. If the body raises, the temporary file is deleted and
    ``path`` is untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_sibling(target)
    try:
        yield temporary
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


@contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder to fill; on success it is renamed to ``path``.

    ``path`` must not exist or be an empty folder (a non-empty one is never overwritten). If the body
    raises, the temporary folder and everything in it is deleted.
    """
    target = Path(path)
    if target.exists() and not (target.is_dir() and not any(target.iterdir())):
        raise InputError("output folder already exists and is not empty; expected a new or empty folder",
                         target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_sibling(target)
    temporary.mkdir()
    try:
        yield temporary
        if target.exists():
            target.rmdir()
        os.replace(temporary, target)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary)
