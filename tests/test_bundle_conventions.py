"""Bundle conventions (docs/DESIGN.md): one network definition per bundle, presets as override files,
each config block written once, weights that do not fit stop with one line, X2CT's LR rule."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from orthogen.data.x2ct_prepare import X2CTPreparation, prepare_x2ct_dataset
from orthogen.engines import LinearDecayLR, linear_decay_factor
from orthogen.io import write_png

from bundle_runs import run_bundle

REPO = Path(__file__).resolve().parents[1]
BUNDLES = sorted(p for p in (REPO / "bundles").iterdir() if (p / "configs" / "inference.json").is_file())
X2CT = REPO / "bundles" / "spine_x2ct_gan"


def _run(run_id: str, config_files: list[str], bundle_root: Path, *overrides: str) -> subprocess.CompletedProcess:
    """An X2CT bundle run with its metadata.json and logging.conf; any exit status."""
    return run_bundle(X2CT / "configs", run_id, config_files, bundle_root, *overrides, meta_and_logging=True)


def _train_one_iteration_then_infer(root: Path, spine_phantom_root: Path, size: int, preset: list[str]) -> Path:
    prepare_x2ct_dataset(spine_phantom_root, root / "data" / "x2ct", X2CTPreparation(size=size))
    trained = _run("training", ["inference.json", "train.json", *preset], root,
                   "--max_epochs", "1", "--train#trainer#epoch_length", "1")
    assert trained.returncode == 0, trained.stderr[-4000:]
    checkpoints = list((root / "models").glob("*.pt"))
    assert len(checkpoints) == 1
    inferred = _run("inference", ["inference.json", *preset], root)
    assert inferred.returncode == 0, inferred.stderr[-4000:]
    return checkpoints[0]


def test_default_training_writes_weights_that_default_inference_loads(tmp_path, spine_phantom_root):
    checkpoint = _train_one_iteration_then_infer(tmp_path, spine_phantom_root, 32, [])
    assert checkpoint.name == "model.pt"
    test_cases = json.loads((tmp_path / "data" / "x2ct" / "datalist.json").read_text())["test"]
    assert sorted(p.name for p in (tmp_path / "eval").glob("*_ct.nii.gz")) == sorted(
        f"{item['h5'].removesuffix('.h5')}_ct.nii.gz" for item in test_cases)


@pytest.mark.slow
def test_paper_scale_training_writes_weights_that_paper_scale_inference_loads(tmp_path, spine_phantom_root):
    checkpoint = _train_one_iteration_then_infer(tmp_path, spine_phantom_root, 128,
                                                 ["paper_scale.json"])
    assert checkpoint.name == "model_paper_scale.pt"
    assert list((tmp_path / "eval").glob("*_ct.nii.gz"))


def test_shipped_weights_under_the_paper_scale_network_stop_with_one_line_naming_the_fitting_preset(tmp_path):
    disk = np.zeros((64, 64))
    disk[np.hypot(*np.mgrid[-32:32, -32:32]) < 24] = 0.8
    views = [write_png(disk, tmp_path / "inputs" / f"{view}.png", bit_depth=16) for view in ("ap", "lateral")]
    out = tmp_path / "out"
    result = _run("inference", ["inference.json", "paper_scale.json"], X2CT,
                  "--ckpt_path", str(X2CT / "models" / "model.pt"), "--output_dir", str(out),
                  "--input_ap", str(views[0]), "--input_lateral", str(views[1]), "--pixel_spacing", "2.0")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {X2CT / 'models' / 'model.pt'}: the weights do not fit the configured network")
    # both shapes of the first differing tensor, then the preset that fits
    assert " in the file but " in last and " in the configured network" in last
    assert last.endswith("they fit the default network (no override)")
    assert not out.exists()


def _blocks(node, where: str):
    """Every dict and every list of two or more items in a parsed config, with where it is."""
    if isinstance(node, dict):
        if len(node) >= 2:
            yield where, node
        for key, value in node.items():
            yield from _blocks(value, f"{where}#{key}")
    elif isinstance(node, list):
        if len(node) >= 2:
            yield where, node
        for index, value in enumerate(node):
            yield from _blocks(value, f"{where}#{index}")


@pytest.mark.parametrize("bundle", BUNDLES, ids=[b.name for b in BUNDLES])
def test_no_config_block_appears_twice_in_a_bundle(bundle):
    seen: dict[str, str] = {}
    for config in sorted((bundle / "configs").glob("*.json")):
        if config.name == "metadata.json":
            continue
        for where, block in _blocks(json.loads(config.read_text()), config.name):
            text = json.dumps(block, sort_keys=True)
            assert text not in seen, f"{where} repeats {seen[text]}: {text[:200]}"
            seen[text] = where


@pytest.mark.parametrize("bundle", BUNDLES, ids=[b.name for b in BUNDLES])
def test_network_is_defined_only_in_the_base_config_and_the_presets(bundle):
    for config in sorted((bundle / "configs").glob("*.json")):
        defines = "network_def" in json.loads(config.read_text())
        assert defines == (config.name in ("inference.json", "paper_scale.json")), config.name


def test_linear_decay_follows_the_x2ct_rule_full_for_49_epochs_then_to_exactly_zero_at_epoch_100():
    factors = [linear_decay_factor(epoch, 50, 50) for epoch in range(100)]
    assert factors[:49] == [1.0] * 49
    assert factors[49] == pytest.approx(50 / 51) and factors[98] == pytest.approx(1 / 51)
    assert factors[99] == 0.0 and linear_decay_factor(120, 50, 50) == 0.0
    steps = [b - a for a, b in zip(factors[48:], factors[49:])]
    assert all(step == pytest.approx(-1 / 51) for step in steps)


def test_linear_decay_lr_scales_the_optimizer_per_epoch():
    import torch

    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=2e-4)
    schedule = LinearDecayLR(optimizer, constant_epochs=2, decay_epochs=2)
    rates = []
    for _ in range(5):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates == pytest.approx([2e-4, 2e-4 * 2 / 3, 2e-4 / 3, 0.0, 0.0])
