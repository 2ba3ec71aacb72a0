"""The X2CT metric report over a test split, for the model and for the mean-training-volume baseline."""
from __future__ import annotations

import numpy as np

from orthogen.handlers.metric_report import ModelVsBaselineReport
from orthogen.metrics.x2ct import METRIC_KEYS, x2ct_metric_table


class X2CTMetricReport(ModelVsBaselineReport):
    """Ignite handler: per-case X2CT metrics of ``pred`` vs ``label`` (both [0, 1]) and of the baseline.

    At the end of the run it logs the mean table (model beside baseline, see
    :mod:`orthogen.evaluation.mean_volume_baseline`) at INFO level, and writes a CSV with one row per
    case and method plus the two means (atomically); ``data_label`` ("phantom" or "real") is in the log
    and in every row (:class:`orthogen.handlers.metric_report.ModelVsBaselineReport`). Results are kept in
    ``self.model_mean`` and ``self.baseline_mean``.
    """

    model_name = "X2CT-GAN"
    metric_keys = METRIC_KEYS
    title = "X2CT metric table"

    def case_metrics(self, pred: np.ndarray, label: np.ndarray, item: dict) -> dict[str, float]:
        return x2ct_metric_table(pred, label)
