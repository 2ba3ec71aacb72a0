"""The X2CT metric report over a test split, for the model and for the mean-training-volume baseline."""
from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

import numpy as np
from ignite.engine import Engine, Events

from orthogen.errors import InputError
from orthogen.evaluation.metric_table_text import format_metric_table
from orthogen.io.atomic_write import atomic_file
from orthogen.metrics.x2ct import METRIC_KEYS, mean_metric_table, x2ct_metric_table

MODEL, BASELINE = "X2CT-GAN", "mean training volume"


class X2CTMetricReport:
    """Ignite handler: per-case X2CT metrics of ``pred`` vs ``label`` (both [0, 1]) and of the baseline.

    At the end of the run it logs the mean table (model beside baseline, see
    :mod:`orthogen.evaluation.mean_volume_baseline`) at INFO level, and writes a CSV with one row per
    case and method plus the two means (atomically). ``data_label`` ("phantom" or "real") is logged with
    it. The log goes to the logger ``name`` (default: the engine's), so the bundle's ``logging.conf``
    silences or redirects it. Results are kept in ``self.model_mean`` and ``self.baseline_mean``.
    """

    def __init__(self, baseline_volume: np.ndarray, output_csv: str | Path, data_label: str,
                 name: str | None = None):
        self.baseline = np.asarray(baseline_volume, dtype=np.float32)
        self.output_csv = Path(output_csv)
        self.data_label = data_label
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

    def _collect(self, engine: Engine) -> None:
        outputs = engine.state.output if isinstance(engine.state.output, list) else [engine.state.output]
        for item in outputs:
            pred = item["pred"][0].detach().cpu().numpy()
            label = item["label"][0].detach().cpu().numpy()
            if label.shape != self.baseline.shape:
                raise InputError(f"expected a CT of shape {self.baseline.shape} (the training CTs'), got "
                                 f"{label.shape}", "label")
            case = Path(str(item["image"].meta.get("filename_or_obj", len(self.rows)))).name
            self.rows.append({"case": case, "method": MODEL, **x2ct_metric_table(pred, label)})
            self.rows.append({"case": case, "method": BASELINE, **x2ct_metric_table(self.baseline, label)})

    def _report(self, engine: Engine) -> None:
        if not self.rows:
            raise InputError("no test case was evaluated", "evaluator")
        self.model_mean = mean_metric_table([_metrics(r) for r in self.rows if r["method"] == MODEL])
        self.baseline_mean = mean_metric_table([_metrics(r) for r in self.rows if r["method"] == BASELINE])
        table = format_metric_table({MODEL: self.model_mean, BASELINE: self.baseline_mean})
        self.logger.info(f"X2CT metric table, {len(self.rows) // 2} {self.data_label} test cases (mean):\n{table}")
        rows = self.rows + [{"case": "MEAN", "method": MODEL, **self.model_mean},
                            {"case": "MEAN", "method": BASELINE, **self.baseline_mean}]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=["case", "method", *METRIC_KEYS])
        writer.writeheader()
        writer.writerows(rows)
        with atomic_file(self.output_csv) as tmp:
            tmp.write_text(buffer.getvalue())
        self.logger.info(f"per-case table: {self.output_csv}")


def _metrics(row: dict) -> dict[str, float]:
    return {key: row[key] for key in METRIC_KEYS}
