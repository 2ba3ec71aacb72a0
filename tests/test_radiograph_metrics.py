"""Radiograph MAE/PSNR against closed forms, the metric report handler, and the Table I layout."""
import csv
import logging
import math

import numpy as np
import pytest
import torch
from ignite.engine import Engine
from monai.data import MetaTensor

from orthogen.errors import InputError
from orthogen.evaluation.radiograph_table import (
    CSV_COLUMNS,
    PAPER_LABEL,
    SUMMARY_KEYS,
    format_table_one,
    read_report_summary,
    table_one_beside_paper,
)
from orthogen.handlers import RadiographMetricReport
from orthogen.metrics import mean_std, radiograph_mae, radiograph_metrics, radiograph_psnr
from orthogen.metrics.radiograph import PSNR_CAP_DB


@pytest.mark.parametrize("d", [0.01, 0.0625, 0.3])
@pytest.mark.parametrize("shape", [(8, 6), (1, 8, 6)])
def test_constant_offset_closed_forms(d, shape):
    target = np.full(shape, 0.5)
    pred = target + d
    assert radiograph_mae(pred, target) == pytest.approx(d, rel=1e-12)
    assert radiograph_psnr(pred, target) == pytest.approx(-20 * math.log10(d), rel=1e-12)
    assert radiograph_metrics(torch.from_numpy(target), torch.from_numpy(pred)) == pytest.approx(
        {"MAE": d, "PSNR": -20 * math.log10(d)})


def test_mixed_errors_closed_form():
    target = np.zeros((2, 2))
    pred = np.array([[0.5, 0.0], [0.0, 0.25]])
    assert radiograph_mae(pred, target) == pytest.approx(0.75 / 4)
    assert radiograph_psnr(pred, target) == pytest.approx(-10 * math.log10((0.25 + 0.0625) / 4))


def test_identical_images_give_the_cap():
    image = np.random.default_rng(0).random((5, 7))
    assert PSNR_CAP_DB == 100.0
    assert radiograph_psnr(image, image) == PSNR_CAP_DB
    assert radiograph_mae(image, image) == 0.0


@pytest.mark.parametrize("pred, target", [
    (np.zeros((4, 4)), np.zeros((4, 5))),
    (np.zeros((2, 4, 4)), np.zeros((2, 4, 4))),
    (np.full((4, 4), 1.5), np.zeros((4, 4))),
    (np.full((4, 4), np.nan), np.zeros((4, 4))),
])
def test_bad_pairs_are_refused(pred, target):
    with pytest.raises(InputError):
        radiograph_psnr(pred, target)


def test_mean_std_population_and_sample():
    assert mean_std([1.0, 2.0, 3.0, 4.0]) == pytest.approx((2.5, math.sqrt(1.25)))
    assert mean_std([1.0, 2.0, 3.0, 4.0], ddof=1) == pytest.approx((2.5, math.sqrt(5 / 3)))
    assert mean_std([7.0]) == (7.0, 0.0)
    with pytest.raises(InputError):
        mean_std([])
    with pytest.raises(InputError):
        mean_std([7.0], ddof=1)


def _item(name: str, offsets: list[float], size=(6, 5)) -> dict:
    """A decollated evaluator item: K samples label + offset_k, the real radiograph 0.5, a named segmentation."""
    label = torch.full((1, *size), 0.5)
    pred = torch.stack([label[0] + o for o in offsets])
    image = MetaTensor(torch.zeros(1, *size), meta={"filename_or_obj": f"/data/case/{name}"})
    return {"pred": pred, "label": label, "image": image}


def _run(handler: RadiographMetricReport, batches: list[list[dict]]) -> Engine:
    engine = Engine(lambda engine, batch: batch)
    handler.attach(engine)
    engine.run(batches, max_epochs=1)
    return engine


def test_handler_logs_and_writes_the_csv(tmp_path, caplog):
    csv_path = tmp_path / "out" / "ctm_contour.csv"
    handler = RadiographMetricReport(csv_path, "phantom", "ctm", "contour", "PC, 500 steps, NFE 1000",
                                     name="test_radiograph_report")
    # K = 2: the mean of the samples is scored (offsets 0.1 and 0.3 -> 0.2; 0.0 and 0.2 -> 0.1; ...)
    batches = [[_item("a.png", [0.1, 0.3]), _item("b.png", [0.0, 0.2])], [_item("c.png", [0.35, 0.45])]]
    with caplog.at_level(logging.INFO, logger="test_radiograph_report"):
        _run(handler, batches)
    expected_mae = [0.2, 0.1, 0.4]
    expected_psnr = [-20 * math.log10(d) for d in expected_mae]
    assert handler.images == ["a.png", "b.png", "c.png"]
    assert handler.mae == pytest.approx(expected_mae)
    assert handler.psnr == pytest.approx(expected_psnr)
    assert set(handler.summary) == set(SUMMARY_KEYS)
    assert handler.summary["n"] == 3
    assert handler.summary["prediction"] == "mean of 2 samples"
    assert handler.summary["mae_mean"] == pytest.approx(np.mean(expected_mae))
    assert handler.summary["mae_std"] == pytest.approx(np.std(expected_mae))
    assert handler.summary["psnr_mean"] == pytest.approx(np.mean(expected_psnr))

    log = caplog.text
    for text in ("CTM", "contour", "PC, 500 steps, NFE 1000", "phantom", "3", "mean of 2 samples",
                 f"{np.mean(expected_mae):.4f} +- {np.std(expected_mae):.4f}"):
        assert text in log

    with csv_path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == CSV_COLUMNS
        rows = list(reader)
    assert [r["image"] for r in rows] == ["a.png", "b.png", "c.png", "MEAN", "STD"]
    for row in rows:
        assert (row["data_label"], row["method"], row["condition"], row["sampler"]) == (
            "phantom", "ctm", "contour", "PC, 500 steps, NFE 1000")
        assert row["prediction"] == "mean of 2 samples"
    assert float(rows[3]["MAE"]) == pytest.approx(np.mean(expected_mae))
    assert float(rows[4]["PSNR_dB"]) == pytest.approx(np.std(expected_psnr))
    assert rows[3]["n_images"] == "3"
    assert not list(csv_path.parent.glob(".tmp-*"))

    summary = read_report_summary(csv_path)
    assert summary == pytest.approx(handler.summary)


def test_handler_with_one_sample_and_a_monai_evaluator(tmp_path):
    from monai.engines import SupervisedEvaluator

    data = [{"image": MetaTensor(torch.zeros(1, 1, 4, 4), meta={"filename_or_obj": [f"seg{i}.png"]}),
             "label": torch.full((1, 1, 4, 4), 0.25)} for i in range(2)]
    evaluator = SupervisedEvaluator(device=torch.device("cpu"), val_data_loader=data,
                                    network=torch.nn.Identity(), inferer=lambda x, net: net(x) + 0.5)
    handler = RadiographMetricReport(tmp_path / "unet.csv", "real", "unet", "contour_bone",
                                     "none (one forward pass)")
    handler.attach(evaluator)
    evaluator.run()
    assert handler.mae == pytest.approx([0.25, 0.25])
    assert handler.summary["prediction"] == "1 sample"
    assert handler.images == ["seg0.png", "seg1.png"]
    assert read_report_summary(tmp_path / "unet.csv")["psnr_std"] == pytest.approx(0.0)


def test_handler_refuses_bad_arguments_and_empty_runs(tmp_path):
    with pytest.raises(InputError, match="method"):
        RadiographMetricReport(tmp_path / "x.csv", "phantom", "gan", "contour", "pc")
    with pytest.raises(InputError, match="condition"):
        RadiographMetricReport(tmp_path / "x.csv", "phantom", "ctm", "bone", "pc")
    with pytest.raises(InputError, match="data_label"):
        RadiographMetricReport(tmp_path / "x.csv", "", "ctm", "contour", "pc")
    with pytest.raises(InputError, match="no test image"):
        _run(RadiographMetricReport(tmp_path / "x.csv", "phantom", "ctm", "contour", "pc"), [[]])
    assert not (tmp_path / "x.csv").exists()


def _summary(method, condition, mae, psnr, data_label="phantom"):
    return {"data_label": data_label, "method": method, "condition": condition, "sampler": "PC, NFE 1000",
            "prediction": "1 sample", "n": 4, "mae_mean": mae, "mae_std": mae / 10, "psnr_mean": psnr,
            "psnr_std": psnr / 100}


def test_table_one_layout():
    rows = [_summary("ctm", "contour_bone", 0.0111, 33.33), _summary("unet", "contour", 0.0222, 28.88),
            _summary("unet", "contour_bone", 0.0333, 27.77), _summary("csm", "contour", 0.0444, 21.11),
            _summary("csm", "contour_bone", 0.0555, 20.22)]
    text = format_table_one(rows)
    lines = text.splitlines()
    assert "phantom" in lines[0] and "mean +- std" in lines[0]
    header = lines[1]
    for column in ("method", "MAE contour", "MAE contour+bone", "PSNR dB contour", "PSNR dB contour+bone"):
        assert column in header
    assert [line.split()[0] for line in lines[2:5]] == ["U-Net", "CSM", "CTM"]
    unet, csm, ctm = lines[2:5]
    assert unet.split("  ")[0] == "U-Net"
    assert "0.0222 +- 0.0022" in unet and "0.0333 +- 0.0033" in unet and "28.88 +- 0.29" in unet
    assert "0.0444 +- 0.0044" in csm and "20.22 +- 0.20" in csm
    assert "—" in ctm and "0.0111 +- 0.0011" in ctm and "33.33 +- 0.33" in ctm
    # the cells line up under their headers
    assert unet.index("0.0222") == header.index("MAE contour")
    assert "one unconditional score model" in text

    both = table_one_beside_paper(rows)
    assert both.startswith(text)
    paper = both[len(text):]
    assert PAPER_LABEL in paper and "their numbers, not ours" in paper
    paper_lines = paper.strip().splitlines()
    assert [line.split()[0] for line in paper_lines[2:5]] == ["U-Net", "CSM", "CTM"]
    for line, numbers in zip(paper_lines[2:5], [("0.0209", "0.0188", "29.19", "30.30"),
                                                ("0.0395", "0.0507", "22.91", "21.35"),
                                                ("0.0193", "0.0152", "29.50", "31.68")]):
        assert line.split()[1:] == list(numbers)


def test_table_one_refuses_mixed_data_and_duplicates():
    with pytest.raises(InputError, match="data"):
        format_table_one([_summary("ctm", "contour", 0.01, 30.0), _summary("unet", "contour", 0.02, 29.0, "real")])
    with pytest.raises(InputError, match="two summaries"):
        format_table_one([_summary("ctm", "contour", 0.01, 30.0), _summary("ctm", "contour", 0.02, 29.0)])


def test_read_report_summary_refuses_a_bad_csv(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("image,MAE\na.png,0.1\n")
    with pytest.raises(InputError, match="columns"):
        read_report_summary(path)
    with pytest.raises(InputError, match="not found"):
        read_report_summary(tmp_path / "missing.csv")


def test_reports_of_one_data_label_gather_into_table_one(tmp_path, caplog):
    table_csv = tmp_path / "table_one_phantom.csv"
    for method, condition, offset, label in (("unet", "contour", 0.1, "phantom"), ("ctm", "contour", 0.05, "phantom"),
                                             ("ctm", "contour_bone", 0.2, "real")):
        handler = RadiographMetricReport(tmp_path / f"radiograph_metrics_{method}_{condition}_{label}.csv", label,
                                         method, condition, "PC, NFE 1000",
                                         table_one_csv=table_csv if label == "phantom" else None,
                                         name="test_table_one")
        with caplog.at_level(logging.INFO, logger="test_table_one"):
            _run(handler, [[_item("a.png", [offset]), _item("b.png", [offset])]])
    (tmp_path / "notes.csv").write_text("a,b\n1,2\n")  # not a report: skipped
    with table_csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["method"], r["condition"], r["data_label"]) for r in rows] == [
        ("unet", "contour", "phantom"), ("ctm", "contour", "phantom")]  # Table I's order; the real run not mixed in
    assert [float(r["mae_mean"]) for r in rows] == pytest.approx([0.1, 0.05])
    table = caplog.text[caplog.text.rindex("Table I, ours"):]  # the table after the last phantom run
    ctm_line = next(line for line in table.splitlines() if line.startswith("CTM"))
    assert "0.0500 +- 0.0000" in ctm_line and "—" in ctm_line
    assert PAPER_LABEL in table
