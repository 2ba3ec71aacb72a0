"""Knee radiograph dataset preparation: leg CTs -> an orbit of cone-beam DRRs, each with its two segmentations.

As Mei et al. (segmentation-guided knee radiograph generation) prepare the SICAS leg CTs: for each CT,
``views`` cone-beam DRRs over 360 degrees about the leg axis (world S, the CT's z; 60 views = 6-degree
steps) on a ``size`` x ``size`` detector, each normalised to [0, 1] by its own maximum; for each DRR a
``contour`` segmentation (DRR > 0.1 -> 0.5) and a ``contour+bone`` one (the CT thresholded for bone and
forward-projected; bone pixels inside the contour + 0.5, so bone = 1.0), see
:mod:`orthogen.transforms.radiograph_segmentation`.

The split is 9:1:1 (training : validation : test) by CT volume, seeded, so no leg appears in two sets.
The seed paper split the images at random, which puts near-identical neighbouring views of one leg in
training and test; ``split_by="image"`` reproduces that for comparison.

Layout written under ``out_dir``::

    <case>/<case>_a000_radiograph.png     16-bit, [0, 1] bone bright
    <case>/<case>_a000_contour.png        8-bit, levels 0 / 128 / 255 = 0 / 0.5 / 1
    <case>/<case>_a000_contour_bone.png   8-bit, same levels
    datalist.json                         {"training": [{"image", "contour", "contour_bone", "case",
                                           "angle_deg", "pixel_spacing_mm"}, ...], "validation": [...],
                                           "test": [...], "preparation": {...}}
"""
from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from orthogen.data.ct_folder import case_name, ct_volumes_with_unique_names, render_each_ct
from orthogen.errors import InputError
from orthogen.io.atomic_write import atomic_file

SPLITS = ("training", "validation", "test")
SPLIT_BY = ("volume", "image")


@dataclass(frozen=True)
class KneeRadiographPreparation:
    """Settings of :func:`prepare_knee_radiographs` (the seed's values by default).

    Attributes:
        size: detector pixels per side.
        views: DRRs per CT, evenly over 360 degrees (60 = 6-degree steps).
        source_to_isocenter_mm, source_to_detector_mm: cone-beam geometry.
        energy_kev: effective photon energy of the DRRs.
        bone_hu: CT threshold for bone in the contour+bone segmentation.
        contour_threshold: DRR value above which a pixel is leg.
        split_by: ``"volume"`` (default: no CT in two splits) or ``"image"`` (the seed's random split).
        seed: seed of the split.
    """

    size: int = 256
    views: int = 60
    source_to_isocenter_mm: float = 1000.0
    source_to_detector_mm: float = 1500.0
    energy_kev: float = 60.0
    bone_hu: float = 200.0
    contour_threshold: float = 0.1
    split_by: str = "volume"
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("size", "views"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"expected a whole number >= 1, got {value!r}", name)
        if self.size < 8:
            raise InputError(f"expected at least 8 detector pixels, got {self.size}", "size")
        if self.split_by not in SPLIT_BY:
            raise InputError(f"expected one of {', '.join(SPLIT_BY)}, got {self.split_by!r}", "split_by")
        if not 0.0 < self.contour_threshold < 1.0:
            raise InputError(f"expected a number in (0, 1), got {self.contour_threshold!r}", "contour_threshold")


def render_case(ct_path: Path, out_dir: Path, prep: KneeRadiographPreparation) -> list[dict]:
    """Render one CT's orbit and segmentations into ``out_dir/<case>/``; returns one item per view."""
    import torch

    from orthogen.drr import fit_detector, project_labels, read_ct_for_drr, render_drr
    from orthogen.io import write_png
    from orthogen.transforms.radiograph_segmentation import leg_contour, leg_contour_and_bone

    volume = read_ct_for_drr(ct_path)
    affine = volume.affine.numpy()
    geometry = fit_detector(volume.shape, affine, prep.size, source_to_isocenter_mm=prep.source_to_isocenter_mm,
                            source_to_detector_mm=prep.source_to_detector_mm)
    views = f"orbit:{prep.views}"
    drr = render_drr(volume.as_tensor(), affine, geometry, views, energy_kev=prep.energy_kev)
    bone = (volume.as_tensor() > prep.bone_hu).to(torch.int64)
    bone_path = project_labels(bone, affine, geometry, list(drr.angles_deg), label_values=[1]).sum(dim=1) \
        if bool(bone.any()) else torch.zeros_like(drr.image)
    name = case_name(ct_path)
    items = []
    for v, angle in enumerate(drr.angles_deg):
        image = drr.image[v].numpy()
        base = out_dir / name / f"{name}_a{round(angle):03d}"
        files = {
            "image": write_png(image, f"{base}_radiograph.png", bit_depth=16),
            "contour": write_png(leg_contour(image, prep.contour_threshold), f"{base}_contour.png"),
            "contour_bone": write_png(leg_contour_and_bone(image, bone_path[v].numpy(), prep.contour_threshold),
                                      f"{base}_contour_bone.png"),
        }
        items.append({**{k: str(p.relative_to(out_dir)) for k, p in files.items()}, "case": name,
                      "angle_deg": float(angle), "pixel_spacing_mm": list(drr.pixel_spacing_mm)})
    return items


def split_items(items_by_case: dict[str, list[dict]], prep: KneeRadiographPreparation) -> dict[str, list[dict]]:
    """9:1:1 split, seeded: by CT volume (whole cases), or by image (the seed paper's way)."""
    rng = random.Random(prep.seed)
    if prep.split_by == "volume":
        units = [list(items_by_case[name]) for name in sorted(items_by_case)]
    else:
        units = [[item] for name in sorted(items_by_case) for item in items_by_case[name]]
    if len(units) < 3:
        raise InputError(f"expected at least 3 {'CTs' if prep.split_by == 'volume' else 'images'} to split into "
                         f"training, validation and test, got {len(units)}", "split")
    order = rng.sample(range(len(units)), len(units))
    n_small = max(1, round(len(units) / 11))
    chosen = {"test": order[:n_small], "validation": order[n_small: 2 * n_small], "training": order[2 * n_small:]}
    return {split: [item for i in sorted(chosen[split]) for item in units[i]] for split in SPLITS}


def prepare_knee_radiographs(source_dir: str | Path, out_dir: str | Path,
                             prep: KneeRadiographPreparation = KneeRadiographPreparation(), workers: int = 1) -> dict:
    """Prepare every CT under ``source_dir`` into ``out_dir``; returns the datalist also written as datalist.json.

    ``workers`` CTs are rendered in parallel (processes, one thread each); a progress bar (one step per
    CT) shows on a terminal only. Every file is written atomically, the datalist last.
    """
    volumes = ct_volumes_with_unique_names(source_dir)
    if prep.split_by == "volume" and len(volumes) < 3:
        raise InputError(f"expected at least 3 CTs to split by volume, found {len(volumes)}", source_dir)
    out_dir = Path(out_dir)
    items_by_case = render_each_ct(render_case, volumes, out_dir, prep, workers)
    datalist: dict = split_items(items_by_case, prep)
    datalist["preparation"] = {**asdict(prep), "cases": len(volumes)}
    with atomic_file(out_dir / "datalist.json") as tmp:
        tmp.write_text(json.dumps(datalist, indent=1))
    return datalist
