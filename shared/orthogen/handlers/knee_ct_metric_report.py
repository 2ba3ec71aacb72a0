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
  the data preparation (:func:`orthogen.drr.view_aligned.view_aligned_drrs`, the detector framed on the
  cube with the input views' pixel count) and preprocessed as the input views were
  (:func:`orthogen.data.x2ct_prepare.preprocess_drr`), PSNR (peak 1) against the input views.

At the end of the run the mean table (model beside baseline) is logged at INFO level with
``data_label`` and a CSV with one row per case and method plus the two means is written atomically.

With a ``feature_network`` the report adds the slice FID (:mod:`orthogen.metrics.slice_fid`), a metric of
the whole set rather than of a case: the axial, coronal and sagittal slices of all generated CTs against
those of all real CTs (average-pooled to the generated grid, as for PSNR), and the same for the baseline
(the one mean volume on every case's grid). Each FID is logged with the feature network's name, and the
two rows go to ``<output_csv stem>_fid.csv`` (method, data, feature network, FID per plane, overall).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from orthogen.errors import InputError
from orthogen.handlers.metric_report import ModelVsBaselineReport
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


class KneeCTMetricReport(ModelVsBaselineReport):
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
        feature_network: the slice FID's feature network ((N, 1, H, W) [0, 1] -> (N, F), its ``name``
            printed with every FID; e.g. :func:`orthogen.networks.slice_feature_network`); None: no FID.
        name: logger name (default: the engine's).
        split: which prepared split the cases are, in the log and the CSVs.

    Attributes:
        fid: method -> :class:`orthogen.metrics.slice_fid.SliceFID` (after COMPLETED, with a feature network).
    """

    model_name = MODEL
    metric_keys = KNEE_CT_METRIC_KEYS
    title = "knee CT metric table"

    def __init__(self, baseline_volume: np.ndarray, output_csv: str | Path, data_label: str,
                 hu_min: float = -1024.0, hu_max: float = 1476.0, preparation=None,
                 bone_threshold_hu: float = BONE_THRESHOLD_HU, registration: dict | None = None,
                 feature_network: nn.Module | None = None, name: str | None = None, split: str = "test"):
        from orthogen.data.knee_ct_prepare import KneeCTPreparation

        super().__init__(baseline_volume, output_csv, data_label, name, split)
        self.hu_min, self.hu_max = float(hu_min), float(hu_max)
        self.preparation = preparation or KneeCTPreparation()
        self.bone_threshold_hu, self.registration = bone_threshold_hu, dict(registration or {})
        self.feature_network = feature_network

    def reset(self) -> None:
        super().reset()
        self.volumes: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"real": [], MODEL: [], BASELINE: []}
        self.fid: dict = {}

    def keep_case(self, pred: np.ndarray, baseline: np.ndarray, label: np.ndarray, item: dict) -> None:
        """Keep the case's three CTs (HU, the generated grid's affine) for the slice FID, if one is asked."""
        if self.feature_network is None:
            return
        pred_affine = affine_for_grid(np.asarray(item["image"].meta["affine"], dtype=np.float64),
                                      label.shape, pred.shape)
        for method, volume in (("real", pooled(label, pred.shape[-1])), (MODEL, pred), (BASELINE, baseline)):
            self.volumes[method].append((self._hu(volume), pred_affine))

    def report(self) -> None:
        """The per-case table (see :class:`ModelVsBaselineReport`), then the slice FIDs if asked."""
        super().report()
        if self.feature_network is None:
            return
        from orthogen.metrics.slice_fid import feature_network_name, slice_features, slice_fid_of_features

        network = feature_network_name(self.feature_network)
        real = slice_features(self.volumes["real"], self.feature_network, name="real CTs")
        rows = []
        for method in (MODEL, BASELINE):
            features = slice_features(self.volumes[method], self.feature_network, name=method)
            self.fid[method] = slice_fid_of_features(features, real, network, names=(method, "real CTs"))
            self.logger.info(f"slice FID, {method} vs the real CTs, {self.cases_label(len(self.volumes['real']))}: "
                             f"{self.fid[method]}")
            rows.append({"method": method, **self.row_labels(), **self.fid[method].as_dict()})
        path = self.output_csv.with_name(self.output_csv.stem + "_fid.csv")
        self.write_csv(rows, list(rows[0]), path)
        self.logger.info(f"slice FID table: {path}")

    def _hu(self, volume: np.ndarray) -> np.ndarray:
        return (np.clip(volume, 0.0, 1.0) * (self.hu_max - self.hu_min) + self.hu_min).astype(np.float32)

    def baseline_for(self, pred: np.ndarray) -> np.ndarray:
        """The baseline average-pooled to the prediction's cube."""
        return pooled(self.baseline, pred.shape[-1])

    def case_metrics(self, pred: np.ndarray, label: np.ndarray, item: dict) -> dict[str, float]:
        """Every metric of one generated CT (r^3, [0, 1]) against the real one (R^3, [0, 1]) of ``item``
        (its ``image``: the input views (2, S, S) with the real CT's ``affine`` in their metadata)."""
        image = item["image"]
        return self.scores(pred, label, image.meta["affine"], image.detach().cpu().numpy())

    def scores(self, pred: np.ndarray, label: np.ndarray, affine, views: np.ndarray) -> dict[str, float]:
        """Every metric of one generated CT (r^3, [0, 1]) against the real one (R^3, [0, 1], ``affine``)."""
        from orthogen.data.x2ct_prepare import preprocess_drr
        from orthogen.drr.view_aligned import view_aligned_drrs

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
