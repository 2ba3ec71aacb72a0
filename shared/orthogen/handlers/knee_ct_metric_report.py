"""The knee CT metric report: bone Dice / ASSD after registration, PSNR / SSIM and re-projection PSNR.

For each test case the generated CT (``pred``, (1, r, r, r) in the HU window's [0, 1]) is scored against
the real one (``label``, (1, R, R, R), R a multiple of r) and so is the mean-training-volume baseline
(:func:`orthogen.evaluation.mean_training_volume`, average-pooled to r), which ignores the radiographs:

- ``bone_dice``, ``bone_assd_mm`` (and ``*_unregistered``): bone (HU > 200) of the generated CT against
  the real one after a SimpleITK rigid registration (:func:`orthogen.metrics.bone_overlap`), on the
  real CT's grid (the generated grid covers the same cube: :func:`orthogen.transforms.prediction_grid.affine_for_grid`);
- ``PSNR_3D``, ``SSIM`` and the rest of the X2CT table (:func:`orthogen.metrics.x2ct_metric_table`) against
  the real CT average-pooled to r;
- ``reprojection_psnr_ap`` / ``_lateral`` / ``_mean``: the generated CT rendered in the DRR geometry of
  the data preparation (:func:`orthogen.data.x2ct_prepare.view_aligned_drrs`, the detector framed on the
  cube with the input views' pixel count) and preprocessed as the input views were
  (:func:`orthogen.data.x2ct_prepare.preprocess_drr`), PSNR (peak 1) against the input views.

At the end of the run the mean table (model beside baseline) is logged at INFO level with
``data_label`` and a CSV with one row per case and method plus the two means is written atomically.
The slice FID (:mod:`orthogen.metrics.slice_fid`) is not part of it: it needs a feature network and
many cases (see the bundle's docs).
"""
from __future__ import annotations

import csv
import io
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from ignite.engine import Engine, Events

from orthogen.errors import InputError
from orthogen.evaluation.metric_table_text import format_metric_table
from orthogen.io.atomic_write import atomic_file
from orthogen.metrics.bone_overlap import BONE_THRESHOLD_HU, bone_overlap
from orthogen.metrics.radiograph import radiograph_psnr
from orthogen.metrics.x2ct import METRIC_KEYS, x2ct_metric_table
from orthogen.transforms.prediction_grid import affine_for_grid

MODEL, BASELINE = "nested diffusion", "mean training volume"
BONE_KEYS = ("bone_dice", "bone_assd_mm", "bone_dice_unregistered", "bone_assd_unregistered_mm")
REPROJECTION_KEYS = ("reprojection_psnr_ap", "reprojection_psnr_lateral", "reprojection_psnr_mean")
KNEE_CT_METRIC_KEYS = (*BONE_KEYS, "PSNR_3D", "SSIM", *REPROJECTION_KEYS,
                       *(k for k in METRIC_KEYS if k not in ("PSNR_3D", "SSIM")))


def pooled(volume: np.ndarray, size: int) -> np.ndarray:
    """A (D, H, W) cube average-pooled to ``size``^3 (unchanged when it has that size)."""
    if volume.shape[-1] == size:
        return volume
    if volume.shape[-1] % size:
        raise InputError(f"expected a CT whose size is a multiple of {size}, got {volume.shape}", "label")
    return F.avg_pool3d(torch.from_numpy(np.ascontiguousarray(volume))[None, None], volume.shape[-1] // size)[0, 0].numpy()


class KneeCTMetricReport:
    """Ignite handler: the knee CT metrics of ``pred`` vs ``label`` and of the baseline (see the module docstring).

    Args:
        baseline_volume: the mean training CT (D, H, W) in [0, 1].
        output_csv: where the per-case table goes.
        data_label: "phantom" or "real", in the log and the CSV.
        hu_min, hu_max: the HU window of [0, 1].
        preparation: the DRR settings of the data preparation (:class:`orthogen.data.knee_ct_prepare.KneeCTPreparation`);
            None: its defaults.
        bone_threshold_hu, registration: bone threshold and keyword arguments of
            :func:`orthogen.metrics.bone_overlap` (e.g. ``shrink_factors`` for small cubes).
        name: logger name (default: the engine's).
    """

    def __init__(self, baseline_volume: np.ndarray, output_csv: str | Path, data_label: str,
                 hu_min: float = -1024.0, hu_max: float = 1476.0, preparation=None,
                 bone_threshold_hu: float = BONE_THRESHOLD_HU, registration: dict | None = None,
                 name: str | None = None):
        from orthogen.data.knee_ct_prepare import KneeCTPreparation

        self.baseline = np.asarray(baseline_volume, dtype=np.float32)
        self.output_csv, self.data_label = Path(output_csv), data_label
        self.hu_min, self.hu_max = float(hu_min), float(hu_max)
        self.preparation = preparation or KneeCTPreparation()
        self.bone_threshold_hu, self.registration = bone_threshold_hu, dict(registration or {})
        self.logger = logging.getLogger(name or __name__)
        self._name = name
        self.rows: list[dict] = []
        self.model_mean: dict[str, float] = {}
        self.baseline_mean: dict[str, float] = {}

    def attach(self, engine: Engine) -> None:
        if self._name is None:
            self.logger = engine.logger
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.COMPLETED, self._report)

    def _hu(self, volume: np.ndarray) -> np.ndarray:
        return (np.clip(volume, 0.0, 1.0) * (self.hu_max - self.hu_min) + self.hu_min).astype(np.float32)

    def case_metrics(self, pred: np.ndarray, label: np.ndarray, affine, views: np.ndarray) -> dict[str, float]:
        """Every metric of one generated CT (r^3, [0, 1]) against the real one (R^3, [0, 1], ``affine``)."""
        from orthogen.data.x2ct_prepare import preprocess_drr, view_aligned_drrs

        size = pred.shape[-1]
        affine = np.asarray(affine, dtype=np.float64)
        pred_affine = affine_for_grid(affine, label.shape, pred.shape)
        row = x2ct_metric_table(pred, pooled(label, size))
        overlap = bone_overlap(self._hu(pred), pred_affine, self._hu(label), affine,
                               bone_threshold_hu=self.bone_threshold_hu, **self.registration)
        row.update(bone_dice=overlap.dice, bone_assd_mm=overlap.assd_mm,
                   bone_dice_unregistered=overlap.dice_unregistered,
                   bone_assd_unregistered_mm=overlap.assd_unregistered_mm)
        pixels = views.shape[-1]
        ap, lateral, ap_sp, lateral_sp = view_aligned_drrs(torch.from_numpy(self._hu(pred)), pred_affine,
                                                           self.preparation, detector_pixels=pixels)
        scores = []
        for name, image, spacing, view in (("ap", ap, ap_sp, views[0]), ("lateral", lateral, lateral_sp, views[1])):
            rendered, _ = preprocess_drr(image, spacing, self.preparation, f"re-projected {name}", size=pixels)
            scores.append(radiograph_psnr(rendered, view))
            row[f"reprojection_psnr_{name}"] = scores[-1]
        row["reprojection_psnr_mean"] = float(np.mean(scores))
        return row

    def _collect(self, engine: Engine) -> None:
        outputs = engine.state.output if isinstance(engine.state.output, list) else [engine.state.output]
        for item in outputs:
            if item.get("label") is None:
                raise InputError("no CT to evaluate against; expected prepared test cases with their CT", "label")
            pred = item["pred"][0].detach().cpu().numpy().astype(np.float32)
            label = item["label"][0].detach().cpu().numpy().astype(np.float32)
            if label.shape != self.baseline.shape:
                raise InputError(f"expected a CT of shape {self.baseline.shape} (the training CTs'), got "
                                 f"{label.shape}", "label")
            image = item["image"]
            affine = image.meta["affine"]
            views = image.detach().cpu().numpy()
            case = Path(str(image.meta.get("filename_or_obj", len(self.rows)))).name
            baseline = pooled(self.baseline, pred.shape[-1])
            self.rows.append({"case": case, "method": MODEL, **self.case_metrics(pred, label, affine, views)})
            self.rows.append({"case": case, "method": BASELINE, **self.case_metrics(baseline, label, affine, views)})

    def _report(self, engine: Engine) -> None:
        if not self.rows:
            raise InputError("no test case was evaluated", "evaluator")
        self.model_mean = _mean([r for r in self.rows if r["method"] == MODEL])
        self.baseline_mean = _mean([r for r in self.rows if r["method"] == BASELINE])
        table = format_metric_table({MODEL: self.model_mean, BASELINE: self.baseline_mean}, KNEE_CT_METRIC_KEYS)
        self.logger.info(f"knee CT metric table, {len(self.rows) // 2} {self.data_label} test cases (mean):\n{table}")
        rows = [{**r, "data": self.data_label} for r in self.rows]
        rows += [{"case": "MEAN", "method": MODEL, "data": self.data_label, **self.model_mean},
                 {"case": "MEAN", "method": BASELINE, "data": self.data_label, **self.baseline_mean}]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=["case", "method", "data", *KNEE_CT_METRIC_KEYS])
        writer.writeheader()
        writer.writerows(rows)
        with atomic_file(self.output_csv) as tmp:
            tmp.write_text(buffer.getvalue())
        self.logger.info(f"per-case table: {self.output_csv}")


def _mean(rows: Sequence[dict]) -> dict[str, float]:
    return {key: float(np.mean([r[key] for r in rows])) for key in KNEE_CT_METRIC_KEYS}
