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
    trained = _run("training", ["train.json", *preset], root,
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


STANDALONE = ("inference.json", "train.json")
SECOND_NETWORK_TRAININGS = {"train_sr.json": "sr_network_def"}
"""Standalone training configs of another network of a bundle's pipeline (knee CT's patch super-resolution),
with the id of its definition, which inference.json defines too."""
RUN_SPECIFIC = {
    "output_dir": "each run writes to its own folder",
    "require_label": "training reads the CT of each case, inference does not",
    "preprocessing": "training reads prepared cases, inference also radiograph files with their spacing",
    "inferer": "inference can go on past the trained cascade (super-resolution, K samples, guidance)",
}
"""Ids both standalone configs define that may read differently, and why."""


def _runs(bundle: Path) -> list[tuple[str, ...]]:
    """The sets of config files merged into one run: each standalone config, its overlays, the presets."""
    configs = {p.name for p in (bundle / "configs").glob("*.json")} - {"metadata.json"}
    method_overlays = sorted(c for c in configs if c.startswith("train_") and c not in SECOND_NETWORK_TRAININGS)
    presets = [c for c in ("paper_scale.json", "preconditioned.json") if c in configs]
    trainings = [("train.json", m) for m in method_overlays] or [("train.json",)]
    runs = [("inference.json", *presets), ("inference.json", "evaluate.json", *presets)]
    runs += [(*t, *presets) for t in trainings]
    runs += [(*t, "multi_gpu_train.json", *presets) for t in trainings if "multi_gpu_train.json" in configs]
    runs += [(c, *presets) for c in sorted(configs & SECOND_NETWORK_TRAININGS.keys())]
    return runs


@pytest.mark.parametrize("bundle", BUNDLES, ids=[b.name for b in BUNDLES])
def test_no_config_block_appears_twice_in_one_run(bundle):
    for run in _runs(bundle):
        seen: dict[str, str] = {}
        for name in run:
            for where, block in _blocks(json.loads((bundle / "configs" / name).read_text()), name):
                text = json.dumps(block, sort_keys=True)
                assert text not in seen, f"{where} repeats {seen[text]}: {text[:200]}"
                seen[text] = where


@pytest.mark.parametrize("bundle", BUNDLES, ids=[b.name for b in BUNDLES])
def test_ids_both_standalone_configs_define_read_the_same(bundle):
    inference, train = (json.loads((bundle / "configs" / name).read_text()) for name in STANDALONE)
    differing = {key for key in inference.keys() & train.keys() if inference[key] != train[key]}
    assert differing <= RUN_SPECIFIC.keys(), sorted(differing - RUN_SPECIFIC.keys())
    assert {"imports", "network_preset", "network_def", "image_size", "device"} <= inference.keys() & train.keys()


@pytest.mark.parametrize("bundle", BUNDLES, ids=[b.name for b in BUNDLES])
def test_network_def_is_written_only_in_the_standalone_configs_and_names_a_preset(bundle):
    for config in sorted((bundle / "configs").glob("*.json")):
        content = json.loads(config.read_text())
        assert ("network_def" in content) == (config.name in STANDALONE), config.name
        if "network_def" in content:
            assert content["network_def"]["preset"] == "@network_preset", config.name


def _network_shapes(bundle: Path, files: tuple[str, ...], overrides: dict,
                    network_id: str = "network_def") -> dict[str, tuple[int, ...]]:
    """The tensor shapes of ``network_id`` parsed from ``files`` (merged) with ``overrides``, on the meta device."""
    import torch
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(bundle / "configs" / name) for name in files])
    parser.update(overrides)
    with torch.device("meta"):
        network = parser.get_parsed_content(network_id)
    return {key: tuple(value.shape) for key, value in network.state_dict().items()}


@pytest.mark.parametrize("bundle", BUNDLES, ids=[b.name for b in BUNDLES])
@pytest.mark.parametrize("preset", [(), ("paper_scale.json",)], ids=["default", "paper_scale"])
def test_training_alone_builds_the_network_inference_alone_builds(bundle, preset):
    overlays = sorted(p.name for p in (bundle / "configs").glob("train_*.json")
                      if p.name not in SECOND_NETWORK_TRAININGS) or [None]
    network_def = json.dumps(json.loads((bundle / "configs" / "inference.json").read_text())["network_def"])
    for overlay in overlays:
        # the overlay's ids that network_def reads (a method, a cascade's resolutions), given to inference too
        content = {} if overlay is None else json.loads((bundle / "configs" / overlay).read_text())
        chosen = {key: value for key, value in content.items() if f"@{key}" in network_def}
        assert overlay is None or chosen, f"{overlay} changes nothing network_def reads"
        trained = _network_shapes(bundle, ("train.json", *([overlay] if overlay else []), *preset), {})
        inferred = _network_shapes(bundle, ("inference.json", *preset), chosen)
        assert trained == inferred, overlay
    default = _network_shapes(bundle, ("inference.json",), {})
    assert (default == _network_shapes(bundle, ("inference.json", *preset), {})) == (not preset)


@pytest.mark.parametrize("preset", [(), ("paper_scale.json",)], ids=["default", "paper_scale"])
@pytest.mark.parametrize("config, network_id", sorted(SECOND_NETWORK_TRAININGS.items()))
def test_a_second_networks_training_builds_the_network_inference_builds(config, network_id, preset):
    bundles = [b for b in BUNDLES if (b / "configs" / config).is_file()]
    assert bundles, f"no bundle has {config}"
    for bundle in bundles:
        assert network_id not in json.loads((bundle / "configs" / "train.json").read_text())
        trained = _network_shapes(bundle, (config, *preset), {}, network_id)
        assert trained == _network_shapes(bundle, ("inference.json", *preset), {}, network_id)
        assert (trained == _network_shapes(bundle, (config,), {}, network_id)) == (not preset)


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
