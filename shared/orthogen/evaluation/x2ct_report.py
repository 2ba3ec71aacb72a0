"""The X2CT metric table over a test split, for the model and for the mean-training-volume baseline.

The baseline predicts, for every case, the voxel-wise mean of the training CTs (in the [0, 1] window):
the best a generator can do that ignores its radiographs. A model that does not beat it has learnt
nothing from the X-rays.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ignite.engine import Engine, Events

from orthogen.data.x2ct_hdf5 import read_x2ct_case
from orthogen.errors import InputError
from orthogen.io.atomic_write import atomic_file
from orthogen.metrics.x2ct import METRIC_KEYS, mean_metric_table, x2ct_metric_table
from orthogen.transforms import ClipNormalizeHU


def mean_training_volume(datalist: Sequence[dict], hu_min: float, hu_max: float) -> np.ndarray:
    """Voxel-wise mean (D, H, W) in [0, 1] of the CTs of ``datalist`` items ``{"h5": path}``."""
    if not datalist:
        raise InputError("expected at least one training case for the mean-volume baseline", "datalist")
    window = ClipNormalizeHU(hu_min, hu_max)
    total = None
    for item in datalist:
        ct = np.asarray(window(read_x2ct_case(item["h5"]).ct_hu[None])[0], dtype=np.float64)
        if total is not None and ct.shape != total.shape:
            raise InputError(f"expected CTs of shape {total.shape}, got {ct.shape}", item["h5"])
        total = ct if total is None else total + ct
    return (total / len(datalist)).astype(np.float32)


class X2CTMetricReport:
    """Ignite handler: per-case X2CT metrics of ``pred`` vs ``label`` (both [0, 1]) and of the baseline.

    At the end of the run it prints the mean table (model beside baseline) and writes a CSV with one
    row per case and method plus the two means. ``data_label`` ("phantom" or "real") is printed with it.
    Results are kept in ``self.model_mean`` and ``self.baseline_mean``.
    """

    def __init__(self, baseline_volume: np.ndarray, output_csv: str | Path, data_label: str):
        self.baseline = np.asarray(baseline_volume, dtype=np.float32)
        self.output_csv = Path(output_csv)
        self.data_label = data_label
        self.rows: list[dict] = []
        self.model_mean: dict[str, float] = {}
        self.baseline_mean: dict[str, float] = {}

    def attach(self, engine: Engine) -> None:
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
            case = str(item["image"].meta.get("filename_or_obj", len(self.rows)))
            self.rows.append({"case": Path(case).name, "method": "X2CT-GAN", **x2ct_metric_table(pred, label)})
            self.rows.append({"case": Path(case).name, "method": "mean training volume",
                              **x2ct_metric_table(self.baseline, label)})

    def _report(self, engine: Engine) -> None:
        if not self.rows:
            raise InputError("no test case was evaluated", "evaluator")
        self.model_mean = mean_metric_table([_metrics(r) for r in self.rows if r["method"] == "X2CT-GAN"])
        self.baseline_mean = mean_metric_table([_metrics(r) for r in self.rows if r["method"] != "X2CT-GAN"])
        n_cases = len(self.rows) // 2
        print(f"X2CT metric table, {n_cases} {self.data_label} test cases (mean):")
        print(format_metric_table({"X2CT-GAN": self.model_mean, "mean training volume": self.baseline_mean}))
        rows = self.rows + [{"case": "MEAN", "method": "X2CT-GAN", **self.model_mean},
                            {"case": "MEAN", "method": "mean training volume", **self.baseline_mean}]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=["case", "method", *METRIC_KEYS])
        writer.writeheader()
        writer.writerows(rows)
        with atomic_file(self.output_csv) as tmp:
            tmp.write_text(buffer.getvalue())
        print(f"per-case table: {self.output_csv}")


def _metrics(row: dict) -> dict[str, float]:
    return {key: row[key] for key in METRIC_KEYS}


def format_metric_table(columns: dict[str, dict[str, float]]) -> str:
    """Metrics as rows, methods as columns, aligned for a terminal."""
    names = list(columns)
    lines = [f"{'metric':18s}" + "".join(f"{n:>22s}" for n in names)]
    for key in METRIC_KEYS:
        lines.append(f"{key:18s}" + "".join(f"{columns[n][key]:22.4f}" for n in names))
    return "\n".join(lines)
