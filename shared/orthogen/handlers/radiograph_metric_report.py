"""MAE and PSNR of generated knee radiographs over a test split: one Table I cell (method, condition)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from orthogen.errors import InputError
from orthogen.evaluation.radiograph_table import (
    CSV_COLUMNS,
    STD_KIND,
    check_method_condition,
    format_summary_row,
    write_table_one,
)
from orthogen.handlers.metric_report import MetricReport, case_name
from orthogen.metrics.radiograph import mean_std, radiograph_metrics


class RadiographMetricReport(MetricReport):
    """Ignite handler: per-image MAE and PSNR (peak 1) of ``pred`` against ``label``, for one method and condition.

    Each output item (a decollated item of a MONAI ``SupervisedEvaluator``) has ``pred`` (K, H, W), the
    K generated radiographs of one segmentation in [0, 1], ``label`` (1, H, W), the real radiograph, and
    ``image``, the segmentation (a MetaTensor whose ``filename_or_obj`` names the row). With K > 1 the
    image scored is the mean of the K samples; the CSV's ``prediction`` column says which ("1 sample" or
    "mean of K samples"). Metrics are :mod:`orthogen.metrics.radiograph` (identical images: 100 dB).

    At COMPLETED it logs a one-row table (method, condition, sampler, data label, n, MAE and PSNR as
    mean +- std over images, population std) at INFO level and writes ``output_csv`` atomically: one row
    per image, then a ``MEAN`` and a ``STD`` row (columns
    :data:`orthogen.evaluation.radiograph_table.CSV_COLUMNS`); every row names the data, method,
    condition and sampler. :func:`orthogen.evaluation.radiograph_table.read_report_summary` reads it back.

    Args:
        output_csv: the CSV to write.
        data_label: what the test images are ("phantom", "real"), in every row and the log.
        method: ``"unet"``, ``"csm"`` or ``"ctm"``.
        condition: ``"contour"`` or ``"contour_bone"``.
        sampler_description: sampler and network evaluations, e.g. ``"PC, 500 steps, NFE 1000"``, or a
            callable giving it when the report is made (the bundle passes its inferer's ``describe``,
            which knows the network evaluations only after sampling).
        table_one_csv: if given, after writing its own CSV the report gathers every report CSV of the
            same data label in ``output_csv``'s folder into the seed's Table I, writes it here and logs
            it beside the paper's (:func:`orthogen.evaluation.radiograph_table.write_table_one`); so the
            five evaluation runs of Table I fill one table.
        name: logger name; None: the engine's logger.

    Attributes:
        images, mae, psnr: per-image names and metrics of the last run, in order.
        summary: keys :data:`orthogen.evaluation.radiograph_table.SUMMARY_KEYS` (after COMPLETED).
    """

    def __init__(self, output_csv: str | Path, data_label: str, method: str, condition: str,
                 sampler_description: str | Callable[[], str], table_one_csv: str | Path | None = None, name: str | None = None):
        check_method_condition(method, condition)
        super().__init__(output_csv, data_label, name)
        if not callable(sampler_description) and (not isinstance(sampler_description, str)
                                                  or not sampler_description.strip()):
            raise InputError(f"expected a non-empty text, got {sampler_description!r}", "sampler_description")
        self.method, self.condition = method, condition
        self.sampler_description = sampler_description
        self.table_one_csv = None if table_one_csv in (None, "") else Path(table_one_csv)
        self.reset()

    def reset(self) -> None:
        self.images: list[str] = []
        self.samples: list[int] = []
        self.mae: list[float] = []
        self.psnr: list[float] = []
        self.summary: dict = {}

    def collect(self, item: dict) -> None:
        pred = _array(item.get("pred"), "pred")
        if pred.ndim == 2:
            pred = pred[None]
        if pred.ndim != 3:
            raise InputError(f"expected the K samples of one image, (K, H, W), got {pred.shape} (is the "
                             "evaluator's decollate off?)", "pred")
        metrics = radiograph_metrics(pred.mean(axis=0), _array(item.get("label"), "label"))
        self.images.append(case_name(item, len(self.images)))
        self.samples.append(pred.shape[0])
        self.mae.append(metrics["MAE"])
        self.psnr.append(metrics["PSNR"])

    def report(self) -> None:
        if not self.mae:
            raise InputError("no test image was evaluated", "evaluator")
        if callable(self.sampler_description):
            self.sampler_description = self.sampler_description()
        mae_mean, mae_std = mean_std(self.mae)
        psnr_mean, psnr_std = mean_std(self.psnr)
        self.summary = {
            "data_label": self.data_label, "method": self.method, "condition": self.condition,
            "sampler": self.sampler_description, "prediction": _prediction(sorted(set(self.samples))),
            "n": len(self.mae), "mae_mean": mae_mean, "mae_std": mae_std, "psnr_mean": psnr_mean,
            "psnr_std": psnr_std,
        }
        self.logger.info(f"radiograph metrics, {len(self.mae)} {self.data_label} test images, "
                         f"{self.summary['prediction']} per image (mean +- {STD_KIND} std):\n"
                         f"{format_summary_row(self.summary)}")
        common = {"data_label": self.data_label, "method": self.method, "condition": self.condition,
                  "sampler": self.sampler_description}
        rows = [{"image": image, **common, "prediction": _prediction([k]), "n_images": 1, "MAE": m, "PSNR_dB": p}
                for image, k, m, p in zip(self.images, self.samples, self.mae, self.psnr)]
        for statistic, mae, psnr in (("MEAN", mae_mean, psnr_mean), ("STD", mae_std, psnr_std)):
            rows.append({"image": statistic, **common, "prediction": self.summary["prediction"],
                         "n_images": len(self.mae), "MAE": mae, "PSNR_dB": psnr})
        self.write_csv(rows, CSV_COLUMNS)
        self.logger.info(f"per-image table: {self.output_csv}")
        if self.table_one_csv is not None:
            table = write_table_one(self.output_csv.parent, self.table_one_csv, self.data_label)
            self.logger.info(f"{table}\nTable I (ours) as CSV: {self.table_one_csv}")


def _array(value, name: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy().astype(np.float64)
    if value is None:
        raise InputError("missing from the evaluator's output", name)
    return np.asarray(value, dtype=np.float64)


def _prediction(samples: list[int]) -> str:
    """What was scored: "1 sample", "mean of 4 samples" (or "mean of 1-4 samples" if K varied)."""
    if samples == [1]:
        return "1 sample"
    k = str(samples[0]) if len(samples) == 1 else f"{samples[0]}-{samples[-1]}"
    return f"mean of {k} samples"
