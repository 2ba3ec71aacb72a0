"""The shipped knee_radiograph_diffusion weights held to their documented figures (bundle docs, Results).

Phantom data only (the weights are phantom-trained). Two tiers:

- default run: every shipped model on unseen phantom knees (seeds 500-501, outside the training seeds
  100-132), each against the mean training radiograph (the trivial baseline that ignores the segmentation,
  here over 4 training knees' orbits): the U-Nets and the preconditioned CTMs with their documented
  samplers, the seed-network CTMs and the CSM through their one-step denoiser at sigma 0.5 (their PC
  sampler's 1000 evaluations per image belong to the slow tier).
- slow (``make test-slow``): Table I on the documented data (``make knee-radiograph-data``: 33 knees, seeds
  100-132, split 9:1:1 by knee; 12 evenly spaced test images, seed 0) run by the bundle's own evaluating
  command, each cell within a stated tolerance of the documented figure, the documented ordering, and the
  fast sampler within its documented gap of PC.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from orthogen.data.case_layout import write_case
from orthogen.data.knee_radiograph_prepare import KneeRadiographPreparation, prepare_knee_radiographs, render_case
from orthogen.diffusion import SegmentationGuidedInferer
from orthogen.metrics.radiograph import radiograph_metrics
from orthogen.phantoms import KneePhantom

from bundle_runs import bundle_log

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "knee_radiograph_diffusion"
CONFIGS = BUNDLE / "configs"
PHANTOM_GRID = {"shape": (80, 80, 80), "spacing": (2.0, 2.0, 2.0)}  # make knee-radiograph-data's phantoms
UNSEEN_SEEDS = (500, 501)
BASELINE_SEEDS = (100, 101, 102, 103)  # training knees: their orbits' mean is the trivial baseline


def _bundle_pieces(method: str, condition: str, overrides: tuple[str, ...] = ()):
    """(network with the shipped weights, checked by the bundle's loader; the SDE; the preprocessing)."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(CONFIGS / name) for name in ("inference.json", *overrides)])
    parser.update({"bundle_root": str(BUNDLE), "method": method, "condition": condition,
                   "device": "$torch.device('cpu')"})
    network = parser.get_parsed_content("network")
    parser.get_parsed_content("checkpoint_loader")(None)
    network.eval()
    return network, parser.get_parsed_content("sde"), parser.get_parsed_content("preprocessing")


def _render(root: Path, seeds, views: int) -> list[dict]:
    prep = KneeRadiographPreparation(size=64, views=views)
    items = []
    for seed in seeds:
        p = KneePhantom.from_seed(seed).render(**PHANTOM_GRID)
        case = write_case(p.volume_hu, p.labels, p.affine, root / "phantoms", f"knee_{seed:04d}")
        items += render_case(Path(case.image), root / "data", prep)
    return items


@pytest.fixture(scope="module")
def unseen(tmp_path_factory):
    """{condition: (segmentations (8, 1, 64, 64), truths (8, 1, 64, 64), baseline (1, 64, 64))}: 4 views of
    each unseen knee, and the mean of the 4 training knees' 60-view orbits."""
    root = tmp_path_factory.mktemp("unseen_knees")
    items = _render(root, UNSEEN_SEEDS, views=4)
    training = _render(root, BASELINE_SEEDS, views=60)
    *_, preprocessing = _bundle_pieces("unet", "contour_bone")
    load = partial(_load, preprocessing, root / "data")
    out = {}
    for condition in ("contour_bone", "contour"):
        segmentation, truth = load(items, condition)
        _, training_truth = load(training, condition)
        out[condition] = (segmentation, truth, training_truth.mean(dim=0))
    return out


def _load(preprocessing, data: Path, items: list[dict], condition: str) -> tuple[torch.Tensor, torch.Tensor]:
    loaded = [preprocessing({"image": str(data / i[condition]), "label": str(data / i["image"])}) for i in items]
    return (torch.stack([item["image"].as_tensor() for item in loaded]),
            torch.stack([item["label"].as_tensor() for item in loaded]))


def _scores(images: torch.Tensor, truth: torch.Tensor) -> tuple[float, float]:
    """(mean MAE, mean PSNR dB) of (N, 1, H, W) images in [0, 1] against the truth."""
    scores = [radiograph_metrics(images[i, :1], truth[i]) for i in range(len(truth))]
    return float(np.mean([s["MAE"] for s in scores])), float(np.mean([s["PSNR"] for s in scores]))


# (method, condition, bundle overrides, sampler, PSNR floor dB). Each floor is the figure measured on these 8
# unseen images (2026-12-07: 30.36, 27.29, 31.08, 27.92 dB) less 0.4 dB, so retrained weights must be at
# least as good; the 12-image phantom test split's figures are in the docs and the slow tier.
SAMPLED = [
    ("unet", "contour_bone", (), "pc", 29.96),
    ("unet", "contour", (), "pc", 26.89),
    ("ctm", "contour_bone", ("preconditioned.json",), "ode", 30.68),
    ("ctm", "contour", ("preconditioned.json",), "ode", 27.52),
]


@pytest.mark.parametrize("method, condition, overrides, sampler, floor", SAMPLED,
                         ids=[f"{m}-{c}-{s}{'-preconditioned' if o else ''}" for m, c, o, s, _ in SAMPLED])
def test_each_shipped_sampled_model_beats_the_mean_training_radiograph_on_unseen_knees(
        unseen, method, condition, overrides, sampler, floor):
    """The U-Nets (1 evaluation) and the preconditioned CTMs (Heun ODE, 50 steps, 99 evaluations, seed 0):
    PSNR over the floor and at least 5 dB over the mean training radiograph, MAE at most half of its."""
    segmentation, truth, baseline = unseen[condition]
    network, sde, _ = _bundle_pieces(method, condition, overrides)
    generated = SegmentationGuidedInferer(method, sampler, sde=sde, seed=0)(segmentation, network)
    mae, psnr = _scores(generated, truth)
    baseline_mae, baseline_psnr = _scores(baseline.expand_as(truth), truth)
    print(f"{method} {condition} {overrides}: MAE {mae:.4f} PSNR {psnr:.2f}; baseline {baseline_mae:.4f} {baseline_psnr:.2f}")
    assert psnr >= floor and psnr - baseline_psnr >= 5.0, (psnr, baseline_psnr)
    assert mae <= 0.5 * baseline_mae, (mae, baseline_mae)


# (method, condition, sigma, one-step denoiser PSNR floor dB): measured 2026-12-07 (31.44, 29.00, 31.13 dB)
# less 0.4 dB. The CSM at sigma 0.1: at 0.5 its denoiser is barely over the baseline (19.1 against 17.9
# dB), as its Table I cells are.
DENOISED = [("ctm", "contour_bone", 0.5, 31.04), ("ctm", "contour", 0.5, 28.60), ("csm", "contour_bone", 0.1, 30.73)]


@pytest.mark.parametrize("method, condition, sigma, floor", DENOISED, ids=[f"{m}-{c}" for m, c, *_ in DENOISED])
def test_each_shipped_seed_network_denoises_unseen_knees_past_the_baseline(unseen, method, condition, sigma, floor):
    """The seed's networks (the CTMs sampled by PC, the CSM by SDEdit from sigma 0.44) scored by their one-step
    denoiser D = clip(x + sigma^2 score, 0, 1) at sigma 0.5 (where SDEdit starts; PC spends its last half
    below it), the CSM's at 0.1: over the floor, 5 dB over the noisy input, 5 dB over the mean training
    radiograph."""
    segmentation, truth, baseline = unseen[condition]
    network, *_ = _bundle_pieces(method, condition)
    x = truth + sigma * torch.randn(truth.shape, generator=torch.Generator().manual_seed(0))
    inputs = torch.cat([x, segmentation], dim=1) if method == "ctm" else x
    with torch.no_grad():
        denoised = (x + sigma ** 2 * network(inputs, torch.full((len(x),), sigma))).clamp(0, 1)
    _, psnr = _scores(denoised, truth)
    _, noisy_psnr = _scores(x.clamp(0, 1), truth)
    _, baseline_psnr = _scores(baseline.expand_as(truth), truth)
    print(f"{method} {condition}: denoised {psnr:.2f} noisy {noisy_psnr:.2f} baseline {baseline_psnr:.2f}")
    assert psnr >= floor and psnr - baseline_psnr >= 5.0 and psnr >= noisy_psnr + 5.0, (psnr, baseline_psnr, noisy_psnr)


@pytest.fixture(scope="module")
def documented_data(tmp_path_factory):
    """The dataset `make knee-radiograph-data` prepares: 33 phantom knees (seeds 100-132, 80^3 at 2 mm), 60
    DRRs each at 64 x 64 with both segmentations, split 9:1:1 by knee."""
    root = tmp_path_factory.mktemp("knee_radiograph_documented")
    for seed in range(100, 133):
        p = KneePhantom.from_seed(seed).render(**PHANTOM_GRID)
        write_case(p.volume_hu, p.labels, p.affine, root / "phantoms", f"knee_{seed:04d}")
    prepare_knee_radiographs(root / "phantoms", root / "data", KneeRadiographPreparation(size=64), workers=2)
    return root / "data"


def _evaluate(dataset: Path, output: Path, method: str, condition: str, *configs: str, sampler: str = "pc") -> dict:
    """One Table I cell as the bundle's evaluating command computes it (12 evenly spaced test images, seed 0)."""
    from orthogen.evaluation.radiograph_table import read_report_summary

    bundle_log(CONFIGS, "evaluating", ["inference.json", "evaluate.json", *configs], BUNDLE,
               "--dataset_dir", str(dataset), "--output_dir", str(output), "--method", method,
               "--condition", condition, "--sampler", sampler, "--test_images", "12")
    return read_report_summary(output / f"radiograph_metrics_{method}_{condition}.csv")


# Table I as documented (bundle docs, Results; MAE, PSNR dB on the 12 phantom test images).
TABLE_ONE = {("unet", "contour"): (0.0171, 29.27), ("unet", "contour_bone"): (0.0142, 31.23),
             ("csm", "contour"): (0.0762, 17.12), ("csm", "contour_bone"): (0.0662, 18.16),
             ("ctm", "contour"): (0.0182, 28.68), ("ctm", "contour_bone"): (0.0132, 31.94)}
PRECONDITIONED_ODE = {"contour": (0.0190, 28.39), "contour_bone": (0.0139, 31.65)}
MAE_TOLERANCE, PSNR_TOLERANCE_DB = 0.0010, 0.3  # same images, seed and computation: float rounding only


@pytest.mark.slow  # ~30 min on 2 CPU cores: the CTMs' PC sampler at 1000 NFE and the CSM's at 400, 12 images each
def test_table_one_and_the_fast_sampler_reproduce_their_documented_figures(documented_data, tmp_path):
    cells = {key: _evaluate(documented_data, tmp_path / "table_one", *key) for key in TABLE_ONE}
    for key, (mae, psnr) in TABLE_ONE.items():
        assert cells[key]["n"] == 12 and cells[key]["data_label"] == "phantom"
        assert abs(cells[key]["mae_mean"] - mae) <= MAE_TOLERANCE, (key, cells[key])
        assert abs(cells[key]["psnr_mean"] - psnr) <= PSNR_TOLERANCE_DB, (key, cells[key])
    # the ordering the docs state: the contour+bone CTM beats its U-Net; the CSM is the worst method
    assert cells["ctm", "contour_bone"]["mae_mean"] < cells["unet", "contour_bone"]["mae_mean"]
    for condition in ("contour", "contour_bone"):
        assert max(cells[m, condition]["mae_mean"] for m in ("unet", "ctm")) < cells["csm", condition]["mae_mean"]
    # the fast sampler: the preconditioned CTM's Heun ODE (99 NFE) within 0.5 dB of the seed's PC (1000 NFE)
    for condition, (mae, psnr) in PRECONDITIONED_ODE.items():
        ode = _evaluate(documented_data, tmp_path / "preconditioned", "ctm", condition, "preconditioned.json",
                        sampler="ode")
        # the documented ODE figures are scripts/bench_knee_sampling.py's (one batch of 12); the evaluating
        # command samples image by image and scored better on 2026-12-08 (MAE 0.0179 / 28.61 dB contour,
        # 0.0132 / 32.22 dB contour+bone): held as floors, not worse than the docs by the tolerance
        assert ode["mae_mean"] <= mae + MAE_TOLERANCE and ode["psnr_mean"] >= psnr - PSNR_TOLERANCE_DB, ode
        assert cells["ctm", condition]["psnr_mean"] - ode["psnr_mean"] <= 0.5, (condition, ode)
