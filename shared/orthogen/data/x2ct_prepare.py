"""X2CT dataset preparation: CT + vertebra masks -> cropped cube CT + AP/lateral DRRs, one HDF5 per case.

Per case (CTSpine1K layout, real or phantom): reorient the CT to the view-aligned axes (axcodes "IAL"),
crop it to the bounding box of its vertebra mask (the whole lumbar mask, or each vertebra on its own),
resample the crop to a ``size``^3 cube keeping its physical extent, render AP and lateral cone-beam DRRs
framed so that a detector pixel back-projected to the isocenter is one voxel of the cube, apply the
radiograph preprocessing used on real X-rays (:class:`orthogen.transforms.XrayPreprocess`), and write
``<case>.h5``. A seeded random 80/20 train/test split is drawn by *source case*, so the vertebrae of one
spine never land on both sides, and written as ``train.txt`` / ``test.txt`` and ``datalist.json``. One in
ten training source cases (at least one) is listed apart as ``validation`` for model selection, so
that the test split is never looked at during training.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import EnsureChannelFirstd, Orientationd
from tqdm import tqdm

from orthogen.data.case_layout import CasePaths, find_cases
from orthogen.data.x2ct_hdf5 import VIEW_ALIGNED_AXCODES, X2CTCase, write_x2ct_case
from orthogen.drr.ct_input import read_ct_for_drr
from orthogen.drr.view_aligned import view_aligned_drrs
from orthogen.errors import InputError
from orthogen.io import read_ct
from orthogen.io.atomic_write import atomic_file
from orthogen.transforms import CropToMaskd, ResampleToShaped, XrayPreprocess

CROP_MODES = ("spine", "vertebra")
RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))  # axis code pairs of nibabel's RAS world


@dataclass(frozen=True)
class X2CTPreparation:
    """How cases are made (the defaults follow X2CT-GAN: 128^3 CT, 128^2 radiographs).

    Attributes:
        size: cube edge in voxels, also the radiographs' side in pixels.
        crop: "spine" (one case per CT, the whole mask's box) or "vertebra" (one case per vertebra label).
        margin_mm: margin around the mask's box.
        source_to_isocenter_mm, source_to_detector_mm: cone-beam geometry of the DRRs.
        energy_kev: effective energy of the DRRs.
        xray_threshold: threshold of the radiograph preprocessing. A DRR of a cropped box is bright
            wherever the box projects, so a low fixed threshold keeps the box's whole projection and the
            radiograph stays aligned with the CT grid (Otsu would crop to the vertebral body alone).
        test_fraction: share of source cases held out for testing.
        validation_fraction: share of the training source cases listed as validation (at least one).
        seed: seed of the train/test split.
    """

    size: int = 128
    crop: str = "vertebra"
    margin_mm: float = 4.0
    source_to_isocenter_mm: float = 1000.0
    source_to_detector_mm: float = 1500.0
    energy_kev: float = 60.0
    xray_threshold: float | str = 0.02
    test_fraction: float = 0.2
    validation_fraction: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.crop not in CROP_MODES:
            raise InputError(f"expected one of {CROP_MODES}, got {self.crop!r}", "crop")
        if self.size < 8:
            raise InputError(f"expected a cube of at least 8 voxels, got {self.size}", "size")
        if not 0.0 < self.test_fraction < 1.0:
            raise InputError(f"expected a fraction in (0, 1), got {self.test_fraction}", "test_fraction")

    @property
    def magnification(self) -> float:
        return self.source_to_detector_mm / self.source_to_isocenter_mm


class RadiographPreprocessing(Protocol):
    """What :func:`preprocess_drr` needs of a preparation (:class:`X2CTPreparation`, the knee CT one)."""

    size: int
    xray_threshold: float | str


def preprocess_drr(image: np.ndarray, spacing: tuple[float, float], prep: RadiographPreprocessing, source: str,
                   size: int | None = None):
    """:class:`XrayPreprocess` (threshold ``prep.xray_threshold``) on an (R, C) [0, 1] DRR, as a real
    radiograph gets it at inference; returns the (S, S) [0, 1] image (S = ``size``, default ``prep.size``)
    and its (row, col) pixel spacing in mm (``spacing`` / the preprocessing's scale)."""
    size = prep.size if size is None else size
    out = XrayPreprocess(size=size, threshold=prep.xray_threshold).preprocess(
        MetaTensor(torch.from_numpy(image[None]), meta={"pixel_spacing_mm": spacing}), source)
    return out[0].numpy(), tuple(out.meta["pixel_spacing_mm"])


def cases_of(paths: CasePaths, prep: X2CTPreparation) -> list[tuple[str, X2CTCase]]:
    """The X2CT cases of one CT + mask pair: one (spine crop) or one per vertebra label."""
    data = {"ct": read_ct_for_drr(paths.image), "mask": read_ct(paths.mask)}
    if tuple(data["ct"].shape) != tuple(data["mask"].shape):
        raise InputError(f"mask shape {tuple(data['mask'].shape)} differs from the CT's {tuple(data['ct'].shape)}",
                         paths.mask)
    data = EnsureChannelFirstd(["ct", "mask"], channel_dim="no_channel")(data)
    data = Orientationd(["ct", "mask"], axcodes=VIEW_ALIGNED_AXCODES, labels=RAS_LABELS)(data)
    labels = sorted(int(v) for v in torch.unique(data["mask"].round()) if v > 0)
    if not labels:
        raise InputError("the vertebra mask is empty", paths.mask)
    groups = [(paths.name, None)] if prep.crop == "spine" else [(f"{paths.name}_v{label}", [label]) for label in labels]
    resample = ResampleToShaped(["ct"], shape=(prep.size,) * 3)
    cases = []
    for name, selected in groups:
        cropped = CropToMaskd(["ct"], mask_key="mask", margin_mm=prep.margin_mm, labels=selected)(dict(data))
        cube = resample(cropped)["ct"]
        affine = cube.affine.numpy().astype(np.float64)
        ap, lateral, ap_sp, lat_sp = view_aligned_drrs(cube[0].as_tensor(), affine, prep)
        ap, ap_sp = preprocess_drr(ap, ap_sp, prep, f"{name} AP DRR")
        lateral, lat_sp = preprocess_drr(lateral, lat_sp, prep, f"{name} lateral DRR")
        cases.append((name, X2CTCase(ap, lateral, cube[0].numpy().astype(np.float32), affine, ap_sp, lat_sp,
                                     source=str(paths.image))))
    return cases


def prepare_x2ct_dataset(source_dir: str | Path, out_dir: str | Path, prep: X2CTPreparation = X2CTPreparation()) -> dict:
    """Prepare every case under ``source_dir`` into ``out_dir``; returns the datalist that is also written.

    The datalist (``datalist.json``) is MONAI's: ``{"training": [{"h5": path}, ...], "validation": [...],
    "test": [...]}`` with paths relative to ``out_dir``; ``train.txt`` (training + validation, the 80 of
    80/20) and ``test.txt`` list the same files. A progress bar (one step per source CT) shows on a
    terminal only.
    """
    out_dir = Path(out_dir)
    sources = find_cases(source_dir)
    if len(sources) < 3:
        raise InputError(f"expected at least 3 cases to split into train, validation and test, found {len(sources)}",
                         source_dir)
    order = [sources[i].name for i in random.Random(prep.seed).sample(range(len(sources)), len(sources))]
    n_test = max(1, round(prep.test_fraction * len(sources)))
    n_validation = max(1, round(prep.validation_fraction * (len(sources) - n_test)))
    split_of = {name: "test" for name in order[:n_test]}
    split_of.update({name: "validation" for name in order[n_test : n_test + n_validation]})
    split: dict[str, list[str]] = {"training": [], "validation": [], "test": []}
    for paths in tqdm(sources, desc="X2CT cases", unit="CT", disable=None):
        for name, case in cases_of(paths, prep):
            write_x2ct_case(out_dir / f"{name}.h5", case)
            split[split_of.get(paths.name, "training")].append(f"{name}.h5")
    datalist = {key: [{"h5": name} for name in names] for key, names in split.items()}
    datalist["preparation"] = prep.__dict__
    for file_name, text in (("train.txt", "\n".join(split["training"] + split["validation"]) + "\n"),
                            ("test.txt", "\n".join(split["test"]) + "\n"),
                            ("datalist.json", json.dumps(datalist, indent=2))):
        with atomic_file(out_dir / file_name) as tmp:
            tmp.write_text(text)
    return datalist
