"""One-page PNG montages: CT slices in three planes beside radiographs, each panel labelled.

Display follows the radiological convention: axial and coronal slices show the patient's right on the
viewer's left, sagittal slices show anterior on the left, superior is up; slices keep their mm aspect.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402

from orthogen.io.atomic_write import atomic_file  # noqa: E402

#: HU window for display: wide enough for bone and soft tissue.
DISPLAY_WINDOW_HU = (-400.0, 1400.0)


@dataclass
class MontageRow:
    """One row of a montage: a CT (three mid-slices) and any number of 2D images.

    Attributes:
        title: row label, which must say what the data is (e.g. "phantom knee, seed 0").
        volume_hu: (X, Y, Z) CT in HU, or None.
        affine: (4, 4) voxel -> RAS mm of ``volume_hu``.
        images: 2D panels (H, W) in [0, 1] with their captions.
        note: text printed beside the row (e.g. a metric table).
        centre_mm: world (RAS) point the three slices pass through; None = the volume's centre.
        window_hu: (low, high) display window of ``volume_hu`` (e.g. (0, 200) for a per-voxel std map).
    """

    title: str
    volume_hu: np.ndarray | None = None
    affine: np.ndarray | None = None
    images: list[tuple[str, np.ndarray]] = field(default_factory=list)
    note: str = ""
    centre_mm: tuple[float, float, float] | None = None
    window_hu: tuple[float, float] = DISPLAY_WINDOW_HU


def ras_slices(volume: np.ndarray, affine: np.ndarray, centre_mm=None) -> list[tuple[str, np.ndarray, float]]:
    """Axial, coronal and sagittal slices through ``centre_mm`` (default: the middle voxel) in display
    orientation, with each slice's row/col aspect."""
    image = nib.as_closest_canonical(nib.Nifti1Image(np.asarray(volume, dtype=np.float32), np.asarray(affine)))
    vol = np.asarray(image.dataobj)
    sx, sy, sz = image.header.get_zooms()[:3]
    if centre_mm is None:
        cx, cy, cz = (n // 2 for n in vol.shape)
    else:
        index = np.linalg.inv(image.affine) @ np.append(np.asarray(centre_mm, dtype=np.float64), 1.0)
        cx, cy, cz = (int(np.clip(round(i), 0, n - 1)) for i, n in zip(index[:3], vol.shape))
    axial = vol[::-1, ::-1, cz].T  # rows anterior -> posterior, cols patient right -> left
    coronal = vol[::-1, cy, ::-1].T  # rows superior -> inferior, cols right -> left
    sagittal = vol[cx, ::-1, ::-1].T  # rows superior -> inferior, cols anterior -> posterior
    return [("axial", axial, sy / sx), ("coronal", coronal, sz / sx), ("sagittal", sagittal, sz / sy)]


def write_montage(rows: Sequence[MontageRow], path: str | Path, title: str) -> Path:
    """Render ``rows`` to one PNG at ``path`` (written to a temporary file, then renamed)."""
    path = Path(path)
    n_cols = max((3 if r.volume_hu is not None else 0) + len(r.images) + (1 if r.note else 0) for r in rows)
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(2.6 * n_cols, 2.9 * len(rows)), squeeze=False)
    for r, row in enumerate(rows):
        panels: list[tuple[str, np.ndarray, float, tuple[float, float]]] = []
        if row.volume_hu is not None:
            for name, sl, aspect in ras_slices(row.volume_hu, row.affine, row.centre_mm):
                panels.append((f"CT {name}", sl, aspect, row.window_hu))
        panels += [(caption, img, 1.0, (0.0, 1.0)) for caption, img in row.images]
        for c, ax in enumerate(axes[r]):
            ax.axis("off")
            if c < len(panels):
                caption, img, aspect, (lo, hi) = panels[c]
                ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, aspect=aspect, interpolation="nearest")
                ax.set_title(caption, fontsize=8)
            elif c == len(panels) and row.note:
                ax.text(0.0, 1.0, row.note, va="top", ha="left", family="monospace", fontsize=6.5)
        axes[r][0].text(-0.08, 0.5, row.title, transform=axes[r][0].transAxes, rotation=90, va="center",
                        ha="right", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    try:
        with atomic_file(path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)
    return path
