"""``make demo``: the whole chain on embedded data — phantom CTs -> AP/lateral DRRs -> files and a montage.

Everything here is phantom data generated on the spot; the montage says so.
"""
from __future__ import annotations

from pathlib import Path

import torch

from orthogen.data.case_layout import write_case
from orthogen.drr import fit_detector, project_labels, render_drr
from orthogen.drr.files import save_views
from orthogen.montage import MontageRow, write_montage
from orthogen.phantoms import KneePhantom, PhantomCT, SpinePhantom

DEMO_SHAPE = (128, 128, 128)
DRR_SIZE = 256


def _phantom_row(title: str, case: str, phantom: PhantomCT, out_dir: Path) -> tuple[MontageRow, list[Path]]:
    files = write_case(phantom.volume_hu, phantom.labels, phantom.affine, out_dir / "phantoms", case)
    paths = [files.image, files.mask]
    geometry = fit_detector(phantom.volume_hu.shape, phantom.affine, DRR_SIZE)
    drr = render_drr(torch.from_numpy(phantom.volume_hu), phantom.affine, geometry, "ap,lateral")
    paths += save_views(drr, geometry, out_dir / "drr", case)
    bone_ap = project_labels(phantom.labels, phantom.affine, geometry, "ap").sum(dim=1)[0].numpy()
    images = [("DRR AP", drr.image[0].numpy()), ("DRR lateral", drr.image[1].numpy()),
              ("bone-only AP (path length)", bone_ap / max(float(bone_ap.max()), 1e-6))]
    return MontageRow(title, phantom.volume_hu, phantom.affine, images), paths


def run_demo(out_dir: str | Path = "output/demo", seed: int = 0) -> list[Path]:
    """Generate the demo outputs under ``out_dir`` and return their paths (the montage last)."""
    out_dir = Path(out_dir)
    knee = KneePhantom.from_seed(seed).render(shape=DEMO_SHAPE)
    spine = SpinePhantom.from_seed(seed).render(shape=DEMO_SHAPE)
    rows, paths = [], []
    for title, case, phantom in ((f"phantom knee, seed {seed}", f"knee_{seed:04d}", knee),
                                 (f"phantom lumbar spine, seed {seed}", f"spine_{seed:04d}", spine)):
        row, written = _phantom_row(title, case, phantom, out_dir)
        rows.append(row)
        paths += written
    montage = write_montage(rows, out_dir / "montage.png",
                            "OrthoGen demo: procedural phantom CTs (not patient data) and their DRRs")
    return paths + [montage]

