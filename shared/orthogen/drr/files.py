"""Writing rendered views to disk: a PNG to look at, an NPY of the [0,1] image and a JSON sidecar.

The sidecar ``<stem>_<view>.json`` records what a reader needs to use the image as a radiograph
(pixel spacing, gantry angle, geometry, normalizer); ``orthogen.io.read_radiograph`` reads the NPY with it.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from orthogen.drr.geometry import VIEW_ANGLES_DEG, ProjectionGeometry
from orthogen.drr.render import DRR
from orthogen.io import write_png
from orthogen.io.atomic_write import atomic_file


def view_name(angle_deg: float) -> str:
    """'ap' / 'lateral' for those angles, else e.g. 'angle030'."""
    for name, angle in VIEW_ANGLES_DEG.items():
        if abs(angle_deg - angle) < 1e-6:
            return name
    return f"angle{angle_deg:05.1f}".replace(".", "p")


def save_views(drr: DRR, geometry: ProjectionGeometry, out_dir: str | Path, stem: str) -> list[Path]:
    """Write each view of ``drr`` as ``<stem>_<view>.png`` (8-bit), ``.npy`` (float32 [0,1]) and ``.json``.

    Returns the written paths, PNGs first.
    """
    out_dir = Path(out_dir)
    pngs, others = [], []
    for v, angle in enumerate(drr.angles_deg):
        base = out_dir / f"{stem}_{view_name(angle)}"
        image = drr.image[v].detach().cpu().numpy().astype(np.float32)
        pngs.append(write_png(image, base.with_suffix(".png")))
        with atomic_file(base.with_suffix(".npy")) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, image)
        sidecar = {
            "pixel_spacing_mm": list(drr.pixel_spacing_mm),
            "gantry_angle_deg": angle,
            "view": view_name(angle),
            "line_integral_normalizer": float(drr.normalizer[v]),
            "geometry": asdict(geometry),
            "convention": "[0,1], bone bright; rows superior->inferior; seen from the source",
        }
        with atomic_file(base.with_suffix(".json")) as tmp:
            tmp.write_text(json.dumps(sidecar, indent=2))
        others += [base.with_suffix(".npy"), base.with_suffix(".json")]
    return pngs + others
