"""Checks every reader makes first: the input file exists, is a file, and is not empty."""
from __future__ import annotations

from pathlib import Path

from orthogen.errors import InputError


def existing_file(path: str | Path) -> Path:
    """Return ``path`` as a Path; raise InputError when it is missing, a folder, or 0 bytes long."""
    file = Path(path)
    if not file.exists():
        raise InputError("file not found", file)
    if not file.is_file():
        raise InputError("expected a file, got a folder", file)
    if file.stat().st_size == 0:
        raise InputError("file is empty (0 bytes)", file)
    return file
