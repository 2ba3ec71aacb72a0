"""A folder of CT volumes as a dataset's source: finding them, naming the cases, rendering each in parallel.

The dataset preparations (:mod:`orthogen.data.knee_radiograph_prepare`, :mod:`orthogen.data.knee_ct_prepare`)
read real or phantom CTs from one folder; this module is what they share.
"""
from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import TypeVar

from tqdm import tqdm

from orthogen.errors import InputError

CT_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr")
MASK_SUFFIX = "_seg"
"""Files named ``<case>_seg.<suffix>`` are label maps, not CTs."""

Settings = TypeVar("Settings")
Result = TypeVar("Result")


def find_ct_volumes(root: str | Path) -> list[Path]:
    """CT volumes under ``root`` at any depth: NIfTI/NRRD files (not ``*_seg`` masks) and DICOM series folders.

    Sorted by path. Raises InputError when ``root`` is not a folder or holds no CT.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError("expected a folder of CT volumes (NIfTI, NRRD or DICOM series folders)", root)
    volumes = []
    for path in sorted(root.rglob("*")):
        name = path.name.lower()
        if path.is_file() and name.endswith(CT_SUFFIXES):
            stem = name[: -len(next(s for s in CT_SUFFIXES if name.endswith(s)))]
            if not stem.endswith(MASK_SUFFIX):
                volumes.append(path)
        elif path.is_dir() and any(p.suffix.lower() == ".dcm" for p in path.iterdir() if p.is_file()):
            volumes.append(path)
    if not volumes:
        raise InputError("no CT found; expected .nii/.nii.gz/.nrrd files or DICOM series folders", root)
    return volumes


def case_name(path: Path) -> str:
    """The case name of a CT path: the file name without its CT suffix, or the DICOM folder's name."""
    name = path.name
    for suffix in CT_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def ct_volumes_with_unique_names(source_dir: str | Path) -> list[Path]:
    """:func:`find_ct_volumes`, refused with one line when two CTs would give the same case name."""
    volumes = find_ct_volumes(source_dir)
    names = [case_name(p) for p in volumes]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"two CTs share the case name {duplicates[0]!r}; expected unique names", source_dir)
    return volumes


def one_thread_per_worker() -> None:
    """Worker-process initializer: one torch thread each, so N workers use N cores."""
    import torch

    torch.set_num_threads(1)


def render_each_ct(render: Callable[[Path, Path, Settings], Result], volumes: list[Path], out_dir: Path,
                   settings: Settings, workers: int = 1) -> dict[str, Result]:
    """``render(ct_path, out_dir, settings)`` for every CT, ``workers`` at a time; results by case name.

    Workers are processes with one torch thread each (the same files as ``workers=1``); a progress bar
    (one step per CT) shows on a terminal only. A failing CT cancels the CTs not yet started.
    """
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise InputError(f"expected a whole number >= 1, got {workers!r}", "workers")
    results: dict[str, Result] = {}
    progress = tqdm(total=len(volumes), desc="CTs", unit="CT", disable=None)
    try:
        if workers == 1:
            for path in volumes:
                results[case_name(path)] = render(path, out_dir, settings)
                progress.update()
        else:
            with ProcessPoolExecutor(max_workers=workers, initializer=one_thread_per_worker) as pool:
                futures = {pool.submit(render, path, out_dir, settings): path for path in volumes}
                try:
                    for future in as_completed(futures):
                        results[case_name(futures[future])] = future.result()
                        progress.update()
                except BaseException:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
    finally:
        progress.close()
    return results
