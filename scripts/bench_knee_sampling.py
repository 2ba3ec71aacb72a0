"""Knee radiograph sampling: the seed's predictor-corrector sampler against the two fast Heun samplers.

The PC sampler (1000 network evaluations), the deterministic Heun probability-flow ODE and the stochastic
Heun sampler (Karras et al.'s churn; 99 evaluations each) run in one process on the same test images of the bundle's prepared dataset (phantom
knees unless you prepared real CTs), from the same trained CTM weights and the same seed, and the
script prints per sampler: network evaluations (NFE) per image, seconds per image, and MAE and PSNR
(mean +- std over the images) of the generated radiographs against the real ones (DRRs), beside a
trivial baseline scored on the same images: the pixel-wise mean of the training radiographs, which
ignores the segmentation.

    python scripts/bench_knee_sampling.py --bundle bundles/knee_radiograph_diffusion --images 8

``--steps N`` gives every sampler N noise levels instead (quick checks only: the documented figures are the
default run's, PC at the SDE's 500 levels and the Heun samplers at 50).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from monai.bundle import ConfigParser

from orthogen.data.segmentation_input import segmentation_datalist
from orthogen.diffusion import SegmentationGuidedInferer
from orthogen.metrics.radiograph import mean_std, radiograph_metrics

SAMPLERS = [("pc", None), ("ode", 50), ("stochastic_heun", 50)]  # (sampler, steps): PC at the SDE's N = 500 levels


def bundle_pieces(bundle: Path, method: str, condition: str, weights: Path | None, overrides: tuple[str, ...] = ()):
    """The bundle's own network (with its trained weights), SDE, preprocessing and training datalist.

    ``overrides``: config files of the bundle merged over inference.json, e.g. ``("preconditioned.json",)``.
    """
    parser = ConfigParser()
    parser.read_config([str(bundle / "configs" / name) for name in ("inference.json", *overrides)])
    parser.read_meta(str(bundle / "configs" / "metadata.json"))
    parser.update({"bundle_root": str(bundle), "method": method, "condition": condition,
                   "device": "$torch.device('cpu')"})
    network = parser.get_parsed_content("network")
    path = weights or Path(parser.get_parsed_content("ckpt_path"))
    network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    network.eval()
    training = segmentation_datalist("", parser.get_parsed_content("dataset_dir"), "training", condition)
    return network, parser.get_parsed_content("sde"), parser.get_parsed_content("preprocessing"), training, path


def mean_training_radiograph(training: list[dict], preprocessing) -> torch.Tensor:
    """(1, H, W): the pixel-wise mean of the training radiographs (the baseline that ignores its input)."""
    total = None
    for item in training:
        label = preprocessing(item)["label"].as_tensor().double()
        total = label if total is None else total + label
    return (total / len(training)).float()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=Path("bundles/knee_radiograph_diffusion"))
    parser.add_argument("--method", default="ctm", choices=["ctm", "csm"])
    parser.add_argument("--condition", default="contour_bone", choices=["contour", "contour_bone"])
    parser.add_argument("--weights", type=Path, default=None,
                        help="default: the bundle's ckpt_path (models/model.pt for the CTM contour+bone, "
                             "else models/<name>.pt)")
    parser.add_argument("--config", nargs="*", default=[],
                        help="bundle config files merged over inference.json (e.g. preconditioned.json)")
    parser.add_argument("--images", type=int, default=8,
                        help="images, evenly spaced over the split (as evaluate.json's --test_images)")
    parser.add_argument("--split", default="test", choices=["test", "validation"],
                        help="the prepared split to sample (validation: to choose weights without the test split)")
    names = [name for name, _ in SAMPLERS]
    parser.add_argument("--samplers", nargs="+", default=names, choices=names, help="which samplers to run (default all)")
    parser.add_argument("--steps", type=int, default=None,
                        help="noise levels of every sampler (quick checks; default: 500 PC, 50 Heun samplers)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-label", default="phantom", help="what the prepared dataset is: phantom or real")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    network, sde, preprocessing, training, weights = bundle_pieces(args.bundle, args.method, args.condition,
                                                                   args.weights, tuple(args.config))
    dataset_dir = args.bundle / "data" / "knee_radiographs"
    datalist = segmentation_datalist("", dataset_dir, args.split, args.condition, images=args.images)
    items = [preprocessing(item) for item in datalist]
    segmentation = torch.stack([item["image"].as_tensor() for item in items])
    truth = [item["label"].as_tensor() for item in items]
    print(f"Knee radiograph sampling, {args.method.upper()} ({args.condition}), weights {weights}, "
          f"{len(items)} {args.data_label} {args.split} images at {tuple(segmentation.shape[-2:])}, "
          f"{args.threads} CPU threads, seed {args.seed}")
    print(f"{'sampler':15s} {'NFE/image':>10s} {'s/image':>9s} {'MAE':>18s} {'PSNR dB':>16s}")
    results = []
    for sampler, steps in (entry for entry in SAMPLERS if entry[0] in args.samplers):
        inferer = SegmentationGuidedInferer(args.method, sampler, steps=steps if args.steps is None else args.steps,
                                            sde=sde, seed=args.seed)
        start = time.perf_counter()
        generated = inferer(segmentation, network)
        seconds = (time.perf_counter() - start) / len(items)
        scores = [radiograph_metrics(generated[i, :1], truth[i]) for i in range(len(items))]
        mae, psnr = (mean_std([s[key] for s in scores]) for key in ("MAE", "PSNR"))
        results.append({"sampler": sampler, "nfe_per_image": inferer.nfe, "seconds_per_image": seconds,
                        "mae": mae, "psnr_db": psnr, "images": len(items), "split": args.split,
                        "data": args.data_label})
        print(f"{sampler:15s} {inferer.nfe:10d} {seconds:9.2f} {mae[0]:9.4f} +- {mae[1]:.4f} "
              f"{psnr[0]:8.2f} +- {psnr[1]:.2f}", flush=True)
    baseline = mean_training_radiograph(training, preprocessing)
    scores = [radiograph_metrics(baseline, truth[i]) for i in range(len(items))]
    mae, psnr = (mean_std([s[key] for s in scores]) for key in ("MAE", "PSNR"))
    results.append({"sampler": "mean training radiograph (baseline)", "nfe_per_image": 0, "seconds_per_image": 0.0,
                    "mae": mae, "psnr_db": psnr, "images": len(items), "split": args.split,
                    "data": args.data_label})
    print(f"{'baseline':15s} {0:10d} {0.0:9.2f} {mae[0]:9.4f} +- {mae[1]:.4f} {psnr[0]:8.2f} +- {psnr[1]:.2f}"
          "   (the mean training radiograph; it ignores the segmentation)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
