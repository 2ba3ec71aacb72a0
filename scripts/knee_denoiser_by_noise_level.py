"""Knee radiograph score model: how good its one-step denoiser is at each noise level, and whether it uses the segmentation there.

For images of a prepared split (phantom knees unless you prepared real CTs) and noise levels sigma, the
script noises each radiograph x0 to x = x0 + sigma z (one seeded z for every level) and prints the PSNR
against x0 of the conditional model's denoiser D = clip(x + sigma^2 score(x, sigma), 0, 1), once with
the image's own segmentation and once with another image's. Beside them: the U-Net baseline (the
segmentation alone: the level a conditional denoiser should reach at high noise, where x says nothing)
and the mean training radiograph (ignores everything). A deterministic sampler is only as good as D over
the mid noise levels: where D falls under the U-Net, or stops caring which segmentation it was given,
the model does not use its condition.

    python scripts/knee_denoiser_by_noise_level.py --bundle bundles/knee_radiograph_diffusion --split validation
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from bench_knee_sampling import bundle_pieces, mean_training_radiograph
from orthogen.data.segmentation_input import segmentation_datalist
from orthogen.metrics.radiograph import radiograph_metrics

SIGMAS = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 128.0)


def mean_psnr(images: torch.Tensor, truth: torch.Tensor) -> float:
    """Mean PSNR (dB) of (N, 1, H, W) images in [0, 1] against the truth."""
    return sum(radiograph_metrics(images[i], truth[i])["PSNR"] for i in range(len(images))) / len(images)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=Path("bundles/knee_radiograph_diffusion"))
    parser.add_argument("--condition", default="contour_bone", choices=["contour", "contour_bone"])
    parser.add_argument("--weights", type=Path, default=None,
                        help="the CTM's weights (default: the bundle's ckpt_path: models/model.pt for "
                             "contour_bone, models/ctm_contour.pt for contour)")
    parser.add_argument("--config", nargs="*", default=[],
                        help="bundle config files merged over inference.json (e.g. preconditioned.json)")
    parser.add_argument("--split", default="validation", choices=["test", "validation"])
    parser.add_argument("--images", type=int, default=12, help="images, evenly spaced over the split")
    parser.add_argument("--sigmas", type=float, nargs="+", default=list(SIGMAS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-label", default="phantom", help="what the prepared dataset is: phantom or real")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    ctm, _, preprocessing, training, weights = bundle_pieces(args.bundle, "ctm", args.condition, args.weights,
                                                             tuple(args.config))
    unet, *_ = bundle_pieces(args.bundle, "unet", args.condition, None)
    datalist = segmentation_datalist("", args.bundle / "data" / "knee_radiographs", args.split, args.condition,
                                     images=args.images)
    items = [preprocessing(item) for item in datalist]
    segmentation = torch.stack([item["image"].as_tensor() for item in items])
    truth = torch.stack([item["label"].as_tensor() for item in items])
    other = segmentation.roll(len(items) // 2, dims=0)  # another image's segmentation, same split
    noise = torch.randn(truth.shape, generator=torch.Generator().manual_seed(args.seed))
    with torch.no_grad():
        unet_psnr = mean_psnr(unet(segmentation).clamp(0, 1), truth)
        baseline = mean_training_radiograph(training, preprocessing)
        baseline_psnr = mean_psnr(baseline.expand_as(truth), truth)
        print(f"One-step denoiser of the CTM ({args.condition}, weights {weights}) on {len(items)} "
              f"{args.data_label} {args.split} images, seed {args.seed}: PSNR dB against the real radiograph")
        print(f"U-Net baseline (segmentation only): {unet_psnr:.2f}; mean training radiograph: {baseline_psnr:.2f}")
        print(f"{'sigma':>8s} {'own segmentation':>17s} {'other segmentation':>19s}")
        for sigma in args.sigmas:
            x = truth + sigma * noise
            level = torch.full((len(items),), float(sigma))
            psnr = [mean_psnr((x + sigma ** 2 * ctm(torch.cat([x, condition], 1), level)).clamp(0, 1), truth)
                    for condition in (segmentation, other)]
            print(f"{sigma:8.2f} {psnr[0]:17.2f} {psnr[1]:19.2f}", flush=True)


if __name__ == "__main__":
    main()
