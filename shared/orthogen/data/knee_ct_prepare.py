"""Knee CT dataset preparation for bi-planar X-ray -> CT models: view-aligned CT cube + AP/lateral DRRs.

For each knee CT under a folder (NIfTI, NRRD or DICOM series folders at any depth, real or the
phantoms of ``orthogen phantom knee``; ``*_seg`` label maps beside them are skipped):

1. read it in HU and note its **slice thickness** (mm): DICOM ``SliceThickness`` where the series has
   it, else the voxel size along the stored slice axis (the third array axis of the NIfTI/NRRD, the
   slice stacking axis of a DICOM series);
2. reorient it to the view-aligned axes (D, H, W) = (toward inferior, anterior, patient left), axcodes
   "IAL", the layout of :mod:`orthogen.data.x2ct_hdf5`;
3. frame it: the bounding box of the body (voxels above ``body_hu``) grown by ``margin_mm`` and clipped
   to the scan, then a **cube of isotropic voxels** centred on that box whose edge is the box's longest
   extent, so anatomy is never stretched; voxels of the cube outside the scan are air (-1000 HU). The
   cube is resampled (trilinear, anti-aliased) to ``size``^3 and its affine records its physical field of
   view (``size`` x voxel mm per edge);
4. render AP (gantry 0 deg) and lateral (90 deg) cone-beam DRRs of the cube on a ``drr_size``^2 detector
   framed on it (:func:`orthogen.drr.view_aligned.view_aligned_drrs`) and give them the preprocessing a
   real radiograph gets at inference (:func:`orthogen.data.x2ct_prepare.preprocess_drr`: crop to the
   bright region, min-max to [0, 1], pad square, resize), which also yields their pixel spacing (mm at
   the detector; / ``magnification`` at the isocenter);
5. write ``<case>.h5`` (:func:`orthogen.data.x2ct_hdf5.write_x2ct_case`, atomically) with the CT cube
   (D, H, W) float32 HU, both views (S, S) float32 [0, 1], their pixel spacings, the slice thickness,
   the source voxel size and the magnification.

The cases are split by CT (one CT = one patient's knee) into training : validation : test by a seeded
ratio (default 8:1:1), so no case is in two splits; ``datalist.json`` (MONAI's layout, paths relative
to the output folder) is written last::

    {"training": [{"h5": "knee_0100.h5", "case": "knee_0100", "ap_pixel_spacing_mm": [r, c],
                   "lateral_pixel_spacing_mm": [r, c], "slice_thickness_mm": t,
                   "slice_thickness_from": "SliceThickness" | "slice spacing", "cube_edge_mm": e}, ...],
     "validation": [...], "test": [...], "preparation": {..., "cases": N}}

This module imports only the standard library and numpy at load time, so the command line can check
its arguments with :func:`parse_split` and :class:`KneeCTPreparation` before torch and MONAI load.
"""
from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass
from numbers import Real
from pathlib import Path

import numpy as np

from orthogen.errors import InputError

SPLITS = ("training", "validation", "test")
#: Largest cube edge in voxels (512^3 float32 is ~0.5 GB per case).
MAX_SIZE = 512
#: Air, the value of cube voxels outside the scan (HU).
AIR_HU = -1000.0
_SPLIT_EXPECTED = "three ratios training:validation:test such as 8:1:1 (numbers >= 0, training above 0)"


def parse_split(value, name: str = "split") -> tuple[float, float, float]:
    """``"8:1:1"`` / ``"8,1,1"`` / ``(8, 1, 1)`` -> (training, validation, test) weights (not normalised).

    Raises:
        InputError: not three finite numbers >= 0 with training > 0.
    """
    if isinstance(value, str):
        items: list = value.replace(",", ":").split(":")
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise InputError(f"expected {_SPLIT_EXPECTED}, got {value!r}", name)
    weights = []
    for item in items:
        number = None
        if isinstance(item, Real) and not isinstance(item, bool):
            number = float(item)
        elif isinstance(item, str):
            try:
                number = float(item.strip())
            except ValueError:
                number = None
        if number is None or not math.isfinite(number) or number < 0:
            break
        weights.append(number)
    if len(items) != 3 or len(weights) != 3 or weights[0] <= 0:
        raise InputError(f"expected {_SPLIT_EXPECTED}, got {value!r}", name)
    return weights[0], weights[1], weights[2]


def split_counts(n_cases: int, weights: tuple[float, float, float]) -> tuple[int, int, int]:
    """Cases per split: the ratio's share of ``n_cases`` (largest remainder), at least one in each split
    whose weight is above 0. Raises InputError when there are fewer cases than such splits."""
    wanted = [i for i, w in enumerate(weights) if w > 0]
    if n_cases < len(wanted):
        names = " : ".join(SPLITS[i] for i in wanted)
        raise InputError(f"expected at least {len(wanted)} CTs to split into {names}, found {n_cases}", "split")
    raw = [n_cases * w / sum(weights) for w in weights]
    counts = [math.floor(r) for r in raw]
    for i in sorted(range(3), key=lambda i: (counts[i] - raw[i], i))[: n_cases - sum(counts)]:
        counts[i] += 1
    for i in wanted:
        while counts[i] == 0:  # take the case from the largest split
            counts[max(range(3), key=lambda j: counts[j])] -= 1
            counts[i] += 1
    return counts[0], counts[1], counts[2]


def split_cases(names: list[str], weights: tuple[float, float, float], seed: int) -> dict[str, list[str]]:
    """Seeded split of case names into training / validation / test (each sorted); a case is in one split only."""
    ordered = sorted(names)
    order = [ordered[i] for i in random.Random(seed).sample(range(len(ordered)), len(ordered))]
    n_train, n_validation, _ = split_counts(len(ordered), weights)
    chosen = {"training": order[:n_train], "validation": order[n_train: n_train + n_validation],
              "test": order[n_train + n_validation:]}
    return {split: sorted(chosen[split]) for split in SPLITS}


@dataclass(frozen=True)
class KneeCTPreparation:
    """Settings of :func:`prepare_knee_ct`.

    Attributes:
        size: CT cube edge in voxels (32, 64, 128 for the knee X-ray -> CT diffusion model); 8-512.
        drr_size: DRR side in pixels; None: ``size``.
        margin_mm: margin around the body's bounding box, mm (clipped to the scan).
        body_hu: HU above which a voxel is body (air is -1000, fat about -100).
        source_to_isocenter_mm, source_to_detector_mm: cone-beam geometry of the DRRs.
        energy_kev: effective photon energy of the DRRs.
        xray_threshold: threshold of the radiograph preprocessing (that of
            :class:`orthogen.data.biplanar_input.LoadBiplanarInputd` at inference, 0.02 by default).
        split: training : validation : test ratio by case.
        seed: seed of the split.
    """

    size: int = 128
    drr_size: int | None = None
    margin_mm: float = 5.0
    body_hu: float = -500.0
    source_to_isocenter_mm: float = 1000.0
    source_to_detector_mm: float = 1500.0
    energy_kev: float = 60.0
    xray_threshold: float | str = 0.02
    split: tuple[float, float, float] = (8.0, 1.0, 1.0)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("size", "drr_size"):
            value = getattr(self, name)
            if name == "drr_size" and value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or not 8 <= value <= MAX_SIZE:
                raise InputError(f"expected a whole number from 8 to {MAX_SIZE}, got {value!r}", name)
        for name in ("margin_mm", "body_hu", "energy_kev"):
            value = getattr(self, name)
            if not isinstance(value, Real) or isinstance(value, bool) or not math.isfinite(value):
                raise InputError(f"expected a finite number, got {value!r}", name)
        if self.margin_mm < 0:
            raise InputError(f"expected a margin in mm, 0 or more, got {self.margin_mm!r}", "margin_mm")
        if not 0.0 < self.source_to_isocenter_mm < self.source_to_detector_mm:
            raise InputError(f"expected 0 < source_to_isocenter_mm < source_to_detector_mm, got "
                             f"{self.source_to_isocenter_mm!r} and {self.source_to_detector_mm!r}",
                             "source_to_detector_mm")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise InputError(f"expected a whole number of at least 0, got {self.seed!r}", "seed")
        object.__setattr__(self, "split", parse_split(tuple(self.split) if not isinstance(self.split, str)
                                                      else self.split))

    @property
    def magnification(self) -> float:
        """Source-to-detector / source-to-isocenter distance of the DRRs."""
        return self.source_to_detector_mm / self.source_to_isocenter_mm

    @property
    def detector_pixels(self) -> int:
        """The DRRs' side in pixels."""
        return self.size if self.drr_size is None else self.drr_size


def slice_thickness(ct_path: Path, spacing_xyz) -> tuple[float, str]:
    """(slice thickness in mm, where it came from) of a CT: DICOM SliceThickness, else the stored slice
    axis' voxel size ``spacing_xyz[2]`` (mm)."""
    if ct_path.is_dir():
        import pydicom

        from orthogen.io.ct_series_checks import dicom_series_files

        first = dicom_series_files(ct_path)[0]
        value = pydicom.dcmread(first, stop_before_pixels=True, specific_tags=["SliceThickness"]).get("SliceThickness")
        try:
            thickness = float(value)
        except (TypeError, ValueError):
            thickness = float("nan")
        if math.isfinite(thickness) and thickness > 0:
            return thickness, "SliceThickness"
    return float(spacing_xyz[2]), "slice spacing"


def knee_ct_case(ct_path: str | Path, prep: KneeCTPreparation = KneeCTPreparation()):
    """One knee CT -> its :class:`~orthogen.data.x2ct_hdf5.X2CTCase` (steps 1-4 of the module docstring).

    Returns an X2CTCase with ``ct_hu`` (size, size, size) float32 HU on a view-aligned isotropic cube,
    ``ap`` / ``lateral`` (drr_size, drr_size) float32 [0, 1], their (row, col) detector pixel spacings
    in mm, ``slice_thickness_mm``, ``source_spacing_mm`` (x, y, z stored axes) and ``magnification``.

    Raises:
        InputError: naming the file, for an unreadable CT, one whose values are not HU or thinner than 4 voxels
            (:func:`orthogen.drr.ct_input.read_ct_for_drr`), or one without body (no voxel above ``body_hu``).
    """
    import torch
    from monai.transforms import EnsureChannelFirst, Orientation

    from orthogen.data.ct_folder import case_name
    from orthogen.data.x2ct_hdf5 import VIEW_ALIGNED_AXCODES, X2CTCase
    from orthogen.data.x2ct_prepare import RAS_LABELS, preprocess_drr
    from orthogen.drr.ct_input import read_ct_for_drr
    from orthogen.drr.view_aligned import view_aligned_drrs
    from orthogen.transforms import CropToMask
    from orthogen.transforms.spatial import resample_to_grid

    ct_path = Path(ct_path)
    volume = read_ct_for_drr(ct_path)  # HU (Modality CT or values like HU), >= 4 voxels per axis, one-line errors
    source_spacing = tuple(float(v) for v in np.linalg.norm(volume.affine.numpy()[:3, :3], axis=0))
    thickness, _ = slice_thickness(ct_path, source_spacing)
    ct = Orientation(axcodes=VIEW_ALIGNED_AXCODES, labels=RAS_LABELS)(EnsureChannelFirst(channel_dim="no_channel")(volume))
    body = (ct > prep.body_hu).to(torch.uint8)
    if not bool(body.any()):
        raise InputError(f"no body in the CT: no voxel above {prep.body_hu:g} HU (max {float(ct.max()):g}); "
                         "expected a CT in HU", ct_path)
    box = CropToMask(margin_mm=prep.margin_mm)(ct, body)  # (1, d, h, w), clipped to the scan
    box_spacing = np.linalg.norm(box.affine.numpy()[:3, :3], axis=0)
    box_shape = np.asarray(box.shape[1:], dtype=np.float64)
    edge_mm = float((box_shape * box_spacing).max())
    voxel_mm = edge_mm / prep.size
    cube = resample_to_grid(box, (prep.size,) * 3, np.full(3, voxel_mm), "bilinear", "border", True)
    # border padding repeats the scan's edge; cube voxels whose centre lies outside the scan are air
    centre_out = (prep.size - 1) / 2.0
    index = np.arange(prep.size, dtype=np.float64) - centre_out
    inside = [np.abs(index * voxel_mm / s) <= n / 2.0 for s, n in zip(box_spacing, box_shape)]
    outside = ~(inside[0][:, None, None] & inside[1][None, :, None] & inside[2][None, None, :])
    values = cube[0].as_tensor().clone()
    values[torch.from_numpy(outside)] = AIR_HU
    affine = cube.affine.numpy().astype(np.float64)
    name = case_name(ct_path)
    ap, lateral, ap_sp, lat_sp = view_aligned_drrs(values, affine, prep, detector_pixels=prep.detector_pixels)
    ap, ap_sp = preprocess_drr(ap, ap_sp, prep, f"{name} AP DRR", size=prep.detector_pixels)
    lateral, lat_sp = preprocess_drr(lateral, lat_sp, prep, f"{name} lateral DRR", size=prep.detector_pixels)
    return X2CTCase(ap, lateral, values.numpy().astype(np.float32), affine, ap_sp, lat_sp, source=str(ct_path),
                    slice_thickness_mm=thickness, source_spacing_mm=source_spacing, magnification=prep.magnification)


def render_knee_ct(ct_path: Path, out_dir: Path, prep: KneeCTPreparation) -> dict:
    """Prepare one CT and write ``out_dir/<case>.h5`` atomically; returns its datalist item."""
    from orthogen.data.ct_folder import case_name
    from orthogen.data.x2ct_hdf5 import write_x2ct_case

    case = knee_ct_case(ct_path, prep)
    name = case_name(Path(ct_path))
    write_x2ct_case(Path(out_dir) / f"{name}.h5", case)
    _, thickness_from = slice_thickness(Path(ct_path), case.source_spacing_mm)
    return {"h5": f"{name}.h5", "case": name,
            "ap_pixel_spacing_mm": [float(v) for v in case.ap_pixel_spacing_mm],
            "lateral_pixel_spacing_mm": [float(v) for v in case.lateral_pixel_spacing_mm],
            "slice_thickness_mm": float(case.slice_thickness_mm), "slice_thickness_from": thickness_from,
            "cube_edge_mm": float(np.linalg.norm(case.affine[:3, 0]) * case.ct_hu.shape[0])}


def prepare_knee_ct(source_dir: str | Path, out_dir: str | Path, prep: KneeCTPreparation = KneeCTPreparation(),
                    workers: int = 1) -> dict:
    """Prepare every knee CT under ``source_dir`` into ``out_dir``; returns the datalist also written.

    Checks come first (folder, CTs found, unique case names, enough CTs for the split), then ``workers``
    CTs are prepared in parallel (processes with one torch thread each; same files as ``workers=1``),
    with a progress bar (one step per CT) on a terminal only. Each case file is written atomically and
    ``datalist.json`` last, so a failure leaves no datalist naming missing files.
    """
    from orthogen.data.ct_folder import case_name, ct_volumes_with_unique_names, render_each_ct
    from orthogen.io.atomic_write import atomic_file

    volumes = ct_volumes_with_unique_names(source_dir)
    names = [case_name(p) for p in volumes]
    try:
        split_of = {name: split for split, cases in split_cases(names, prep.split, prep.seed).items() for name in cases}
    except InputError as error:
        raise InputError(error.problem, source_dir) from None
    out_dir = Path(out_dir)
    items = render_each_ct(render_knee_ct, volumes, out_dir, prep, workers)
    datalist: dict = {split: [items[name] for name in sorted(items) if split_of[name] == split] for split in SPLITS}
    datalist["preparation"] = {**asdict(prep), "split": list(prep.split), "cases": len(volumes),
                               "axcodes": "IAL", "magnification": prep.magnification,
                               "detector_pixels": prep.detector_pixels}
    with atomic_file(out_dir / "datalist.json") as tmp:
        tmp.write_text(json.dumps(datalist, indent=1))
    return datalist
