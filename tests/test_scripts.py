"""The scripts under scripts/ that produce a documented number, each run on a tiny case so that they do not
rot: the table they print (or the JSON they write) has its rows and columns, and its numbers are finite and
sane. Each runs through its command line: ``main(argv)`` in this process (the imports of torch and MONAI
are paid once, not once per script), bench_cli_startup.py as ``python scripts/bench_cli_startup.py``.
Timings are the scripts' own output; nothing here asserts how fast anything is.

Exercised elsewhere: train_slice_features.py (test_knee_ct_metrics), export_zoo.py (test_model_zoo),
load_demo_study.py (test_orthanc_server, test_label_training), ohif_walkthrough.py (test_ohif_generation).
"""
from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from orthogen.data.case_layout import write_case
from orthogen.data.knee_ct_prepare import KneeCTPreparation, prepare_knee_ct
from orthogen.data.knee_radiograph_prepare import KneeRadiographPreparation, prepare_knee_radiographs
from orthogen.phantoms import KneePhantom

from repo_scripts import SCRIPTS, load_script

REPO = SCRIPTS.parent
RADIOGRAPH_BUNDLE = REPO / "bundles" / "knee_radiograph_diffusion"
NUMBER = r"(-?\d+(?:\.\d+)?|nan|inf|-inf)"  # what the scripts' f-strings print, non-finite values included

bench_knee_sampling = load_script("bench_knee_sampling")  # first: knee_denoiser_by_noise_level imports it
knee_denoiser_by_noise_level = load_script("knee_denoiser_by_noise_level")


@pytest.fixture(autouse=True)
def one_torch_thread(monkeypatch):
    """One torch thread here and in child processes (the tests share two cores); the count is restored after."""
    threads = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _main(script, capsys, *args: str) -> str:
    """What ``script.main(args)`` printed."""
    capsys.readouterr()
    script.main([*args])
    return capsys.readouterr().out


def _row(text: str, pattern: str) -> re.Match:
    """The one printed line matching ``pattern`` (whole line)."""
    matches = list(re.finditer(rf"^{pattern}$", text, re.MULTILINE))
    assert len(matches) == 1, f"{len(matches)} lines match {pattern!r} in:\n{text}"
    return matches[0]


def _finite(*values: str | float) -> list[float]:
    numbers = [float(v) for v in values]
    assert all(math.isfinite(v) for v in numbers), numbers
    return numbers


def _phantom_knees(folder: Path, seeds: range) -> Path:
    for seed in seeds:
        p = KneePhantom.from_seed(seed).render(shape=(32, 32, 32), spacing=(4.0, 4.0, 4.0))
        write_case(p.volume_hu, p.labels, p.affine, folder, f"knee_{seed:04d}")
    return folder


@pytest.fixture(scope="module")
def radiograph_bundle(tmp_path_factory):
    """The knee_radiograph_diffusion bundle (its configs and shipped weights, linked) with a tiny prepared
    dataset in data/knee_radiographs: 3 phantom knees, 2 DRRs each at the network's 64 x 64, one knee per
    split (2 test, 2 validation images)."""
    root = tmp_path_factory.mktemp("knee_radiograph_bundle")
    for folder in ("configs", "models"):
        (root / folder).symlink_to(RADIOGRAPH_BUNDLE / folder, target_is_directory=True)
    datalist = prepare_knee_radiographs(_phantom_knees(root / "phantoms", range(3)),
                                        root / "data" / "knee_radiographs",
                                        KneeRadiographPreparation(size=64, views=2))
    assert [len(datalist[split]) for split in ("training", "validation", "test")] == [2, 2, 2]
    return root


def test_bench_drr_times_orthogen_on_one_small_case_without_the_reference(capsys):
    """``--edge`` (one small case instead of the 128^3 and 256^3 ones) and ``--no-reference`` (DiffDRR lives
    in a separate venv, which the tests do not have): orthogen's time is printed, DiffDRR's columns are '-'."""
    out = _main(load_script("bench_drr"), capsys, "--edge", "16", "--repeats", "1", "--threads", "1",
                "--no-reference")
    assert "procedural knee phantom (seed 0), 1 CPU threads" in out and "median of 1 after a warm-up" in out
    _row(out, r"case\s+orthogen s\s+DiffDRR s\s+speed-up\s+max norm diff")
    row = _row(out, rf"16\^3 -> AP \+ lateral 16\^2\s+{NUMBER}\s+-\s+-\s+-")
    assert _finite(row[1])[0] >= 0.0  # printed with 3 decimals: a 16^3 render may read 0.000
    assert len(out.strip().splitlines()) == 3  # the two header lines and the one case


def test_bench_knee_sampling_scores_each_sampler_and_the_mean_image_baseline(radiograph_bundle, tmp_path, capsys):
    """The shipped CTM on 1 phantom test image with 2 noise levels per sampler (``--steps``): PC evaluates
    the network twice per level, the Heun samplers 2 steps - 1 times; the JSON holds what the table prints."""
    results = tmp_path / "sampling.json"
    out = _main(bench_knee_sampling, capsys, "--bundle", str(radiograph_bundle), "--images", "1", "--steps", "2",
                "--threads", "1", "--json", str(results))
    assert "CTM (contour_bone)" in out and "1 phantom test images at (64, 64)" in out
    assert f"weights {radiograph_bundle / 'models' / 'model.pt'}" in out  # the CTM contour+bone
    _row(out, r"sampler\s+NFE/image\s+s/image\s+MAE\s+PSNR dB")
    rows = json.loads(results.read_text())
    assert [r["sampler"] for r in rows] == ["pc", "ode", "stochastic_heun", "mean training radiograph (baseline)"]
    assert [r["nfe_per_image"] for r in rows] == [4, 3, 3, 0]
    for r in rows:
        assert (r["images"], r["split"], r["data"]) == (1, "test", "phantom")
        mae, mae_std, psnr, psnr_std = _finite(*r["mae"], *r["psnr_db"])
        assert 0.0 <= mae <= 1.0 and 0.0 < psnr < 80.0 and mae_std == psnr_std == 0.0  # one image: no spread
        name = "baseline" if r["nfe_per_image"] == 0 else r["sampler"]
        printed = _row(out, rf"{name}\s+(\d+)\s+{NUMBER}\s+{NUMBER} \+- {NUMBER}\s+{NUMBER} \+- {NUMBER}"
                       + (r"\s+\(the mean training radiograph; it ignores the segmentation\)" if name == "baseline"
                          else ""))
        assert int(printed[1]) == r["nfe_per_image"]
        assert float(printed[3]) == pytest.approx(mae, abs=5e-5) and float(printed[5]) == pytest.approx(psnr, abs=5e-3)
        if name == "baseline":
            assert r["seconds_per_image"] == 0.0
        else:
            assert r["seconds_per_image"] > 0.0


def test_knee_denoiser_by_noise_level_prints_psnr_per_sigma_with_own_and_other_segmentation(radiograph_bundle,
                                                                                             capsys):
    """As documented (``--config preconditioned.json``, validation split), on 2 phantom images and 2 noise
    levels: the preconditioned CTM's weights are the ones loaded, and its one-step denoiser is better at
    sigma 0.1 (the noisy image is nearly the answer) than at sigma 10."""
    out = _main(knee_denoiser_by_noise_level, capsys, "--bundle", str(radiograph_bundle), "--config",
                "preconditioned.json", "--images", "2", "--sigmas", "0.1", "10", "--threads", "1")
    assert f"weights {radiograph_bundle / 'models' / 'ctm_contour_bone_preconditioned.pt'}" in out
    assert "on 2 phantom validation images, seed 0" in out
    baselines = _row(out, rf"U-Net baseline \(segmentation only\): {NUMBER}; mean training radiograph: {NUMBER}")
    assert all(0.0 < v < 80.0 for v in _finite(baselines[1], baselines[2]))
    _row(out, r"\s+sigma\s+own segmentation\s+other segmentation")
    psnr = {}
    for sigma in ("0.10", "10.00"):
        row = _row(out, rf"\s+{re.escape(sigma)}\s+{NUMBER}\s+{NUMBER}")
        psnr[sigma] = _finite(row[1], row[2])
        assert all(0.0 < v < 80.0 for v in psnr[sigma])
    assert psnr["0.10"][0] > psnr["10.00"][0]


def test_bench_knee_ct_reports_the_cascade_stage_and_the_whole_run(capsys):
    """The bundle's inference in a child process at 32^3 (the cascade alone, no super-resolution pass) with 2
    DDIM steps: the cascade's stage line from the bundle's log, the end-to-end seconds and peak memory."""
    out = _main(load_script("bench_knee_ct"), capsys, "--resolutions", "32", "--steps", "2", "--sr_steps", "1")
    assert "data: one phantom knee (seed 399)" in out and "cascade 2 DDIM steps" in out
    _row(out, r"\s+output\s+window\s+stage\s+steps\s+calls\s+seconds")
    stage = _row(out, rf"\s+32\^3\s+64\^3 cascade 32\^3\s+(\d+)\s+(\d+)\s+{NUMBER}")
    assert int(stage[1]) == 2 and int(stage[2]) >= 2 and _finite(stage[3])[0] >= 0.0
    whole = _row(out, rf"\s+32\^3\s+64\^3 end to end \(load, sample, write\)\s+{NUMBER}\s+peak memory {NUMBER} GB")
    seconds, peak_gb = _finite(whole[1], whole[2])
    assert seconds > 0.0 and 0.0 < peak_gb < 128.0
    assert "patch SR" not in out  # 32^3 is the cascade's own resolution


def test_eval_knee_super_resolution_scores_the_model_and_trilinear_per_case_and_on_average(tmp_path, capsys):
    """Two phantom knees prepared at 32^3 (one training, one test case): 8^3 -> 32^3 with 2 DDIM steps in one
    32^3 window; PSNR, MAE, bone Dice and the gradient ratio of both methods; trilinear upsampling of the
    pooled cube is smoother than the truth (gradient ratio under 1)."""
    data = tmp_path / "knee_ct_sr"
    datalist = prepare_knee_ct(_phantom_knees(tmp_path / "phantoms", range(2)), data,
                               KneeCTPreparation(size=32, drr_size=16, split=(1, 0, 1)))
    (case,) = [item["case"] for item in datalist["test"]]
    out = _main(load_script("eval_knee_super_resolution"), capsys, "--dataset_dir", str(data), "--steps", "2",
                "--patch_size", "32")
    _row(out, r"case\s+method\s+PSNR dB\s+MAE HU\s+Dice\s+grad")
    for method in ("SR", "trilinear"):
        row = _row(out, rf"{re.escape(case)}\s+{method}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}")
        psnr, mae, dice, gradient = _finite(*row.groups())
        assert 0.0 < psnr < 80.0 and 0.0 <= mae < 2500.0 and 0.0 <= dice <= 1.0 and gradient > 0.0
    assert "phantom test split (1 cases), 8^3 -> 32^3, SR 2 DDIM steps, 32^3 windows, seed 0" in out
    means = {}
    for name in ("PSNR dB (HU window)", "MAE HU", "bone Dice (> 200 HU)", "gradient / truth"):
        row = _row(out, rf"\s+{re.escape(name)}\s+SR {NUMBER} \+- {NUMBER}\s+trilinear {NUMBER} \+- {NUMBER}")
        sr, sr_std, trilinear, trilinear_std = _finite(*row.groups())
        assert sr_std == trilinear_std == 0.0  # one case
        means[name] = (sr, trilinear)
    assert all(0.0 < v < 80.0 for v in means["PSNR dB (HU window)"])
    assert means["gradient / truth"][1] < 1.0
    assert _finite(_row(out, rf"\s+seconds per case \(SR\) {NUMBER}")[1])[0] >= 0.0


def test_bench_cli_startup_times_every_case_and_each_exits_as_expected(tmp_path):
    """One run per case, no warm-up: help succeeds, each refused input exits non-zero (``as_expected``)."""
    results = tmp_path / "startup.json"
    command = [sys.executable, str(SCRIPTS / "bench_cli_startup.py"), "--runs", "1", "--warmup", "0", "--json",
               str(results)]
    finished = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr[-3000:]
    out = finished.stdout
    rows = json.loads(results.read_text())
    assert [r["case"] for r in rows] == [
        "python -c pass (yardstick)", "python -c 'import torch' (yardstick)", "orthogen drr --help",
        "orthogen drr missing.nii.gz", "orthogen drr empty.nii.gz", "orthogen drr ct.nii.gz --size 0",
        "orthogen phantom spine --count 0"]
    assert [r["exit"] == 0 for r in rows] == [True, True, True, False, False, False, False]
    assert all(r["as_expected"] for r in rows) and "unexpected exit status" not in out
    for r in rows:
        assert 0.0 < r["min_s"] == r["median_s"] == r["max_s"]  # one run
        _row(out, rf"{re.escape(r['case'])}\s+{r['median_s']:.3f}\s+{r['min_s']:.3f}\s+{r['max_s']:.3f}\s+{r['exit']}")


def test_bench_nested_denoiser_counts_parameters_and_times_both_forwards(capsys):
    """Parameter counts of both presets at 1-3 resolutions (more resolutions, more parameters; the paper
    preset far larger) and one timed forward of the (32,) and (32, 64) phantom_cpu networks."""
    out = _main(load_script("bench_nested_denoiser"), capsys, "--repeats", "1")
    assert "1 thread(s)" in out
    counts = {}
    for preset in ("phantom_cpu", "paper"):
        for resolutions in ("(32,)", "(32, 64)", "(32, 64, 128)"):
            row = _row(out, rf"\s+nested_denoiser {preset}\s+{re.escape(resolutions)}\s+([\d,]+)")
            counts[preset, resolutions] = int(row[1].replace(",", ""))
        assert int(_row(out, rf"\s+radiograph_encoder {preset}\s+([\d,]+)")[1].replace(",", "")) > 0
        assert 0 < counts[preset, "(32,)"] < counts[preset, "(32, 64)"] < counts[preset, "(32, 64, 128)"]
    assert counts["paper", "(32,)"] > 10 * counts["phantom_cpu", "(32,)"]
    assert "phantom_cpu, batch 1, 128 tokens, median of 1 after one warm-up:" in out
    for resolutions in ("(32,)", "(32, 64)"):
        row = _row(out, rf"\s+forward\s+{re.escape(resolutions)}\s+{NUMBER} s \(min {NUMBER}, max {NUMBER}\)")
        median, low, high = _finite(*row.groups())
        assert median == low == high >= 0.0  # one call; printed with 2 decimals


def test_compare_ncsnpp_with_score_sde_maps_every_parameter_and_refuses_a_folder_that_is_no_checkout(tmp_path):
    """The comparison itself needs a score_sde_pytorch checkout (run by hand: the knee radiograph bundle docs
    give the command and its result); without one the script must stop at the door with one line, and its
    forward-order walk of our network must reach every parameter (the weight copy relies on it)."""
    from orthogen.networks.ncsnpp import NCSNPP_PRESETS, NCSNpp

    script = load_script("compare_ncsnpp_with_score_sde")
    with pytest.raises(SystemExit, match="is not a score_sde_pytorch checkout"):
        script.main(["--reference", str(tmp_path)])
    network = NCSNpp(**NCSNPP_PRESETS["phantom_cpu"], in_channels=2, image_size=64)
    walked = {id(p) for _, module in script.ours_in_forward_order(network) for p in module.parameters()}
    assert walked == {id(p) for p in network.parameters()}
