"""The base of the evaluation reports: collect per-case metrics from an evaluator, then log and write a CSV.

:class:`MetricReport` is the ignite plumbing every report shares (reset at STARTED, one call per
decollated output item at ITERATION_COMPLETED, the report at COMPLETED, the engine's logger unless a
name is given, the CSV written atomically). :class:`ModelVsBaselineReport` adds the X-ray -> CT reports'
shape: each test case scored for the model and for the mean-training-volume baseline
(:mod:`orthogen.evaluation.mean_volume_baseline`), the two means logged side by side.
Subclasses: :class:`orthogen.handlers.X2CTMetricReport`, :class:`orthogen.handlers.KneeCTMetricReport`,
:class:`orthogen.handlers.RadiographMetricReport`.
"""
from __future__ import annotations

import csv
import io
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ignite.engine import Engine, Events

from orthogen.errors import InputError
from orthogen.evaluation.metric_table_text import format_metric_table
from orthogen.io.atomic_write import atomic_file


class MetricReport:
    """Ignite handler skeleton: :meth:`collect` each output item, :meth:`report` at the end.

    Args:
        output_csv: the CSV the report writes.
        data_label: what the test data are ("phantom", "real"), in the log and the CSV.
        name: logger name; None: the engine's logger (so a bundle's ``logging.conf`` governs it).
    """

    def __init__(self, output_csv: str | Path, data_label: str, name: str | None = None):
        if not isinstance(data_label, str) or not data_label.strip():
            raise InputError(f"expected a non-empty text, got {data_label!r}", "data_label")
        self.output_csv, self.data_label = Path(output_csv), data_label
        self.logger = logging.getLogger(name or type(self).__module__)
        self._name = name

    def attach(self, engine: Engine) -> None:
        if self._name is None:
            self.logger = engine.logger
        engine.add_event_handler(Events.STARTED, lambda _: self.reset())
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect_outputs)
        engine.add_event_handler(Events.COMPLETED, lambda _: self.report())

    def _collect_outputs(self, engine: Engine) -> None:
        outputs = engine.state.output if isinstance(engine.state.output, list) else [engine.state.output]
        for item in outputs:
            self.collect(item)

    def reset(self) -> None:
        """Forget the cases of an earlier run."""
        raise NotImplementedError

    def collect(self, item: dict) -> None:
        """Score one decollated output item (``pred``, ``label``, ``image``)."""
        raise NotImplementedError

    def report(self) -> None:
        """Log the table and write :attr:`output_csv`."""
        raise NotImplementedError

    def write_csv(self, rows: Sequence[dict], columns: Sequence[str], path: Path | None = None) -> None:
        """``rows`` under the header ``columns`` to ``path`` (default :attr:`output_csv`), atomically
        (temporary file, rename)."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)
        with atomic_file(self.output_csv if path is None else path) as tmp:
            tmp.write_text(buffer.getvalue())


def case_name(item: dict, default: int) -> str:
    """The file name of an output item's ``image`` (its ``filename_or_obj``), else ``default``."""
    meta = getattr(item.get("image"), "meta", {}) or {}
    return Path(str(meta.get("filename_or_obj", default))).name


class ModelVsBaselineReport(MetricReport):
    """Per-case metrics of the model's ``pred`` and of the baseline volume against ``label``; means side by side.

    Subclasses set ``model_name``, ``metric_keys`` and ``title`` and implement :meth:`case_metrics`
    (and :meth:`baseline_for` when the baseline must be fitted to the prediction's grid, :meth:`keep_case`
    when a metric of the whole set needs the volumes).

    Args:
        baseline_volume: the mean training CT (D, H, W) in [0, 1].
        output_csv, data_label, name: as for :class:`MetricReport`.
        split: which prepared split the cases are ("test", "validation"), in the log and every CSV row.

    Attributes:
        rows: one per case and method; model_mean, baseline_mean: the means (after COMPLETED).
    """

    model_name = "model"
    baseline_name = "mean training volume"
    metric_keys: Sequence[str] = ()
    title = "metric table"

    def __init__(self, baseline_volume: np.ndarray, output_csv: str | Path, data_label: str, name: str | None = None,
                 split: str = "test"):
        super().__init__(output_csv, data_label, name)
        if not isinstance(split, str) or not split.strip():
            raise InputError(f"expected the name of a split (test, validation), got {split!r}", "split")
        self.baseline = np.asarray(baseline_volume, dtype=np.float32)
        self.split = split
        self.reset()

    def reset(self) -> None:
        self.rows: list[dict] = []
        self.model_mean: dict[str, float] = {}
        self.baseline_mean: dict[str, float] = {}

    def case_metrics(self, pred: np.ndarray, label: np.ndarray, item: dict) -> dict[str, float]:
        """Every metric of one volume ``pred`` (the model's or the baseline's) against ``label`` (D, H, W)."""
        raise NotImplementedError

    def baseline_for(self, pred: np.ndarray) -> np.ndarray:
        """The baseline volume on ``pred``'s grid (here: as given)."""
        return self.baseline

    def collect(self, item: dict) -> None:
        if item.get("label") is None:
            raise InputError("no CT to evaluate against; expected prepared test cases with their CT", "label")
        pred = item["pred"][0].detach().cpu().numpy().astype(np.float32)
        label = item["label"][0].detach().cpu().numpy().astype(np.float32)
        if label.shape != self.baseline.shape:
            raise InputError(f"expected a CT of shape {self.baseline.shape} (the training CTs'), got "
                             f"{label.shape}", "label")
        case = case_name(item, len(self.rows))
        self.rows.append({"case": case, "method": self.model_name, **self.case_metrics(pred, label, item)})
        baseline = self.baseline_for(pred)
        self.rows.append({"case": case, "method": self.baseline_name,
                          **self.case_metrics(baseline, label, item)})
        self.keep_case(pred, baseline, label, item)

    def row_labels(self) -> dict[str, str]:
        """The columns that name the data and the split, in every CSV row."""
        return {"data": self.data_label, "split": self.split}

    def cases_label(self, count: int) -> str:
        """``count`` cases in words with their data and split ("10 phantom validation cases")."""
        return f"{count} {self.data_label} {self.split} cases"

    def keep_case(self, pred: np.ndarray, baseline: np.ndarray, label: np.ndarray, item: dict) -> None:
        """Called with each scored case's volumes (as :meth:`case_metrics` gets them); here: nothing kept."""

    def report(self) -> None:
        if not self.rows:
            raise InputError("no test case was evaluated", "evaluator")
        self.model_mean = mean_of(self.rows, self.model_name, self.metric_keys)
        self.baseline_mean = mean_of(self.rows, self.baseline_name, self.metric_keys)
        table = format_metric_table({self.model_name: self.model_mean, self.baseline_name: self.baseline_mean},
                                    self.metric_keys)
        self.logger.info(f"{self.title}, {self.cases_label(len(self.rows) // 2)} (mean):\n{table}")
        labels = self.row_labels()
        rows = [{**r, **labels} for r in self.rows]
        rows += [{"case": "MEAN", "method": self.model_name, **labels, **self.model_mean},
                 {"case": "MEAN", "method": self.baseline_name, **labels, **self.baseline_mean}]
        self.write_csv(rows, ["case", "method", "data", "split", *self.metric_keys])
        self.logger.info(f"per-case table: {self.output_csv}")


def mean_of(rows: Sequence[dict], method: str, keys: Sequence[str]) -> dict[str, float]:
    """The mean of each metric ``keys`` over the rows of ``method``."""
    chosen = [r for r in rows if r["method"] == method]
    return {key: float(np.mean([r[key] for r in chosen])) for key in keys}
