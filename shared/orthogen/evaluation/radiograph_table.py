"""The seed's Table I (MAE and PSNR of generated knee radiographs) as text, ours beside the paper's.

Mei et al. report, per method (U-Net baseline, CSM, CTM) and segmentation condition (contour,
contour+bone), the MAE and PSNR (peak 1) of the generated radiographs, mean +- std over the test
images. One evaluation run of the ``knee_radiograph_diffusion`` bundle writes one CSV
(:class:`orthogen.handlers.RadiographMetricReport`); :func:`read_report_summary` reads its MEAN and
STD rows back, and :func:`format_table_one` lays the summaries out as Table I. Table I takes five
runs: U-Net and CTM for each condition (a model per condition) and CSM twice from *one*
unconditional model, SDEdit guided by either segmentation (as the seed evaluates it)::

    rows = [read_report_summary(p) for p in csv_paths]
    logger.info(table_one_beside_paper(rows))

:data:`PAPER_TABLE_ONE` holds the paper's means (real SICAS legs, their numbers, not ours); their
stds are not transcribed here, so the paper's block shows means only.
"""
from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from orthogen.errors import InputError

METHODS = ("unet", "csm", "ctm")
"""The seed's methods, in Table I's row order (``orthogen.diffusion.METHODS`` names the same three)."""
METHOD_NAMES = {"unet": "U-Net", "csm": "CSM", "ctm": "CTM"}
CONDITIONS = ("contour", "contour_bone")
"""The segmentation conditions, in Table I's column order (the datalist's keys)."""
CONDITION_NAMES = {"contour": "contour", "contour_bone": "contour+bone"}

STD_KIND = "population (ddof=0)"
"""Which standard deviation the reports give (see :func:`orthogen.metrics.radiograph.mean_std`)."""

CSV_COLUMNS = ("image", "data_label", "method", "condition", "sampler", "prediction", "n_images", "MAE",
               "PSNR_dB")
"""Columns of a report CSV: one row per image, then a ``MEAN`` and a ``STD`` row (``image`` column)."""
SUMMARY_KEYS = ("data_label", "method", "condition", "sampler", "prediction", "n", "mae_mean", "mae_std",
                "psnr_mean", "psnr_std")
"""Keys of a report summary (:attr:`RadiographMetricReport.summary`, :func:`read_report_summary`)."""

PAPER_LABEL = "paper, real SICAS legs — their numbers, not ours"
PAPER_TABLE_ONE = {
    ("unet", "contour"): {"mae_mean": 0.0209, "psnr_mean": 29.19},
    ("unet", "contour_bone"): {"mae_mean": 0.0188, "psnr_mean": 30.30},
    ("csm", "contour"): {"mae_mean": 0.0395, "psnr_mean": 22.91},
    ("csm", "contour_bone"): {"mae_mean": 0.0507, "psnr_mean": 21.35},
    ("ctm", "contour"): {"mae_mean": 0.0193, "psnr_mean": 29.50},
    ("ctm", "contour_bone"): {"mae_mean": 0.0152, "psnr_mean": 31.68},
}
"""Mei et al., Table I, means over their test images (real SICAS legs); their numbers, not ours."""

_MISSING = "—"


def check_method_condition(method: str, condition: str) -> None:
    """Raise an InputError unless ``method`` is one of :data:`METHODS` and ``condition`` of :data:`CONDITIONS`."""
    if method not in METHODS:
        raise InputError(f"expected one of {', '.join(METHODS)}, got {method!r}", "method")
    if condition not in CONDITIONS:
        raise InputError(f"expected one of {', '.join(CONDITIONS)}, got {condition!r}", "condition")


def _mae_cell(mean: float, std: float | None = None) -> str:
    return f"{mean:.4f}" if std is None else f"{mean:.4f} +- {std:.4f}"


def _psnr_cell(mean: float, std: float | None = None) -> str:
    return f"{mean:.2f}" if std is None else f"{mean:.2f} +- {std:.2f}"


def _aligned(lines: Sequence[Sequence[str]]) -> list[str]:
    """Rows of cells -> text lines with every column as wide as its widest cell."""
    widths = [max(len(row[i]) for row in lines) for i in range(len(lines[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in lines]


def format_summary_row(summary: Mapping) -> str:
    """One report summary as a two-line table: method, condition, sampler, data, n, MAE and PSNR."""
    return "\n".join(_aligned([
        ("method", "condition", "sampler", "data", "n", "MAE (mean +- std)", "PSNR dB (mean +- std)"),
        (METHOD_NAMES.get(summary["method"], summary["method"]),
         CONDITION_NAMES.get(summary["condition"], summary["condition"]), summary["sampler"],
         summary["data_label"], str(summary["n"]), _mae_cell(summary["mae_mean"], summary["mae_std"]),
         _psnr_cell(summary["psnr_mean"], summary["psnr_std"])),
    ]))


def _header_cells() -> list[str]:
    return (["method"] + [f"MAE {CONDITION_NAMES[c]}" for c in CONDITIONS]
            + [f"PSNR dB {CONDITION_NAMES[c]}" for c in CONDITIONS])


def _cells_by_key(rows: Sequence[Mapping]) -> dict[tuple[str, str], Mapping]:
    cells: dict[tuple[str, str], Mapping] = {}
    for index, row in enumerate(rows):
        missing = [k for k in SUMMARY_KEYS if k not in row]
        if missing:
            raise InputError(f"expected a report summary with keys {', '.join(SUMMARY_KEYS)}; missing "
                             f"{', '.join(missing)}", f"rows[{index}]")
        check_method_condition(row["method"], row["condition"])
        key = (row["method"], row["condition"])
        if key in cells:
            raise InputError(f"two summaries for {METHOD_NAMES[key[0]]}, {CONDITION_NAMES[key[1]]}; expected "
                             "one per method and condition", f"rows[{index}]")
        cells[key] = row
    return cells


def format_table_one(rows: Sequence[Mapping]) -> str:
    """Report summaries -> the seed's Table I: methods as rows, MAE and PSNR per condition as columns.

    Every cell is "mean +- std" over the test images (population std); a method or condition without
    a summary shows "—". The first line names the data (every summary must come from one
    ``data_label``); the lines after the table give each cell's n, sampler and prediction (K).
    """
    if not rows:
        raise InputError("expected at least one report summary, got none", "rows")
    cells = _cells_by_key(rows)
    labels = sorted({str(r["data_label"]) for r in rows})
    if len(labels) > 1:
        raise InputError(f"expected summaries of one data set, got data labels {', '.join(labels)}", "rows")
    lines = [_header_cells()]
    for method in METHODS:
        line = [METHOD_NAMES[method]]
        for metric, cell in (("mae", _mae_cell), ("psnr", _psnr_cell)):
            for condition in CONDITIONS:
                row = cells.get((method, condition))
                line.append(_MISSING if row is None
                            else cell(float(row[f"{metric}_mean"]), float(row[f"{metric}_std"])))
        lines.append(line)
    text = [f"Table I, ours — data: {labels[0]}; mean +- std over test images ({STD_KIND} std), PSNR peak 1"]
    text += _aligned(lines)
    for method in METHODS:
        for condition in CONDITIONS:
            row = cells.get((method, condition))
            if row is not None:
                text.append(f"  {METHOD_NAMES[method]}, {CONDITION_NAMES[condition]}: n = {row['n']}, "
                            f"sampler: {row['sampler']}, prediction: {row['prediction']}")
    if any(method == "csm" for method, _ in cells):
        text.append("  CSM: one unconditional score model for both conditions, SDEdit guided by either segmentation")
    return "\n".join(text)


def format_paper_table_one() -> str:
    """The paper's Table I (means only), in :func:`format_table_one`'s columns, labelled as theirs."""
    lines = [_header_cells()]
    for method in METHODS:
        lines.append([METHOD_NAMES[method]]
                     + [_mae_cell(PAPER_TABLE_ONE[(method, c)]["mae_mean"]) for c in CONDITIONS]
                     + [_psnr_cell(PAPER_TABLE_ONE[(method, c)]["psnr_mean"]) for c in CONDITIONS])
    return "\n".join([f"Table I, {PAPER_LABEL} (means; their stds not transcribed)"] + _aligned(lines))


def table_one_beside_paper(rows: Sequence[Mapping]) -> str:
    """Our Table I (:func:`format_table_one`) followed by the paper's, each block labelled with its data."""
    return format_table_one(rows) + "\n\n" + format_paper_table_one()


def write_table_one(report_dir: str | Path, output_csv: str | Path, data_label: str) -> str:
    """Gather the report CSVs of ``data_label`` in ``report_dir`` into Table I: written, returned as text.

    Every ``*.csv`` in the folder that reads as a report (:func:`read_report_summary`) of that data
    label is one cell (other files are skipped); ``output_csv`` gets one row per cell (columns
    :data:`SUMMARY_KEYS`, in Table I's order), written atomically. Returns :func:`table_one_beside_paper`.
    """
    from orthogen.io.atomic_write import atomic_file

    output_csv = Path(output_csv)
    rows = []
    for path in sorted(Path(report_dir).glob("*.csv")):
        if path.resolve() == output_csv.resolve():
            continue
        try:
            summary = read_report_summary(path)
        except InputError:
            continue
        if summary["data_label"] == data_label:
            rows.append(summary)
    order = {(m, c): i for i, (m, c) in enumerate((m, c) for m in METHODS for c in CONDITIONS)}
    rows.sort(key=lambda row: order[(row["method"], row["condition"])])
    text = table_one_beside_paper(rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(SUMMARY_KEYS))
    writer.writeheader()
    writer.writerows(rows)
    with atomic_file(output_csv) as tmp:
        tmp.write_text(buffer.getvalue())
    return text


def read_report_summary(csv_path: str | Path) -> dict:
    """The summary (keys :data:`SUMMARY_KEYS`) of a report CSV, from its MEAN and STD rows."""
    path = Path(csv_path)
    if not path.is_file():
        raise InputError("file not found; expected a radiograph metric report CSV", path)
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not set(CSV_COLUMNS) <= set(reader.fieldnames):
            raise InputError(f"expected the columns {', '.join(CSV_COLUMNS)}, got {reader.fieldnames}", path)
        by_image = {row["image"]: row for row in reader if row["image"] in ("MEAN", "STD")}
    if set(by_image) != {"MEAN", "STD"}:
        raise InputError("expected a MEAN and a STD row (column image); the report is incomplete", path)
    mean, std = by_image["MEAN"], by_image["STD"]
    try:
        summary = {
            "data_label": mean["data_label"], "method": mean["method"], "condition": mean["condition"],
            "sampler": mean["sampler"], "prediction": mean["prediction"], "n": int(mean["n_images"]),
            "mae_mean": float(mean["MAE"]), "mae_std": float(std["MAE"]),
            "psnr_mean": float(mean["PSNR_dB"]), "psnr_std": float(std["PSNR_dB"]),
        }
    except ValueError as error:
        raise InputError(f"expected numbers in the MEAN and STD rows: {error}", path) from None
    if not all(math.isfinite(summary[k]) for k in ("mae_mean", "mae_std", "psnr_mean", "psnr_std")):
        raise InputError("expected finite MEAN and STD values", path)
    try:
        check_method_condition(summary["method"], summary["condition"])
    except InputError as error:
        raise InputError(f"{error.source}: {error.problem}", path) from None
    return summary
