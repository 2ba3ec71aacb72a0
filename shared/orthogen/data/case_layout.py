"""The on-disk layout of CT + mask pairs, as CTSpine1K ships them.

``ROOT/data/<case>.nii.gz`` holds the CT (HU) and ``ROOT/label/<case>_seg.nii.gz`` its label map; CTSpine1K
nests these one level deeper per source collection (``ROOT/<collection>/data/...``), which is accepted too.
``orthogen phantom`` writes phantoms in this layout, so real and phantom data take the same path.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from orthogen.errors import InputError
from orthogen.io import write_nifti

MASK_SUFFIX = "_seg"


@dataclass(frozen=True)
class CasePaths:
    """One case: its name, CT file and mask file."""

    name: str
    image: Path
    mask: Path


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def write_case(volume_hu: np.ndarray, labels: np.ndarray, affine: np.ndarray, root: str | Path, case: str) -> CasePaths:
    """Write a CT (float32 HU) and its label map (uint8) as one case under ``root``."""
    root = Path(root)
    image = write_nifti(np.asarray(volume_hu, dtype=np.float32), affine, root / "data" / f"{case}.nii.gz")
    mask = write_nifti(np.asarray(labels, dtype=np.uint8), affine, root / "label" / f"{case}{MASK_SUFFIX}.nii.gz")
    return CasePaths(case, image, mask)


def find_cases(root: str | Path) -> list[CasePaths]:
    """All CT + mask pairs under ``root`` (``data/`` and ``label/`` folders at any depth), sorted by name.

    Raises:
        InputError: ``root`` is missing, holds no ``data/*.nii*`` file, or a CT has no mask.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError("expected a folder with data/ and label/ subfolders (CTSpine1K layout)", root)
    cases = []
    for image in sorted(root.rglob("data/*.nii*")):
        name = _stem(image)
        candidates = [image.parent.parent / "label" / f"{name}{MASK_SUFFIX}{s}" for s in (".nii.gz", ".nii")]
        mask = next((c for c in candidates if c.exists()), None)
        if mask is None:
            raise InputError(f"no mask for this CT; expected {candidates[0]}", image)
        cases.append(CasePaths(name, image, mask))
    if not cases:
        raise InputError("no CT found; expected data/<case>.nii.gz with label/<case>_seg.nii.gz", root)
    return cases
