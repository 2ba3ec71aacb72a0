"""The knee CT super-resolution model against trilinear upsampling, on a prepared test split.

For each test case of a prepared knee CT folder (``orthogen prepare knee-ct ... --size 128``; the shipped
model's is ``bundles/knee_xray2ct_diffusion/data/knee_ct_sr``, ``make knee-ct-sr-data``): the CT cube in the
bundle's HU window -> average-pooled by 4 (as the cascade makes its low resolutions) -> back to full size by
the patch diffusion super-resolution (``orthogen.diffusion.PatchSuperResolution``, the bundle's weights) and by
trilinear upsampling; scores against the cube: PSNR over the HU window, MAE (HU), bone Dice (> 200 HU) and
the mean gradient magnitude relative to the truth's (1 = as sharp as the truth). Prints per case and
mean +- std, naming the data (phantom unless ``--data real``).

    python scripts/eval_knee_super_resolution.py --steps 10 --patch_size 128
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "knee_xray2ct_diffusion"
HU_MIN, HU_MAX, BONE_HU = -1024.0, 1476.0, 200.0


def scores(volume: np.ndarray, truth: np.ndarray) -> list[float]:
    """[PSNR dB, MAE HU, bone Dice, gradient magnitude ratio] of a [0, 1] volume against the [0, 1] truth
    (PSNR and Dice by MONAI's metrics; the gradient ratio is this script's own sharpness check)."""
    import torch
    from monai.metrics import PSNRMetric, compute_dice

    bone_level = (BONE_HU - HU_MIN) / (HU_MAX - HU_MIN)
    pred, target = (torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64))[None, None] for v in (volume, truth))
    psnr = float(PSNRMetric(max_val=1.0)(pred, target))
    dice = float(compute_dice((pred > bone_level).double(), (target > bone_level).double(), include_background=True))

    def gradient(v):
        return sum(float(np.mean(np.abs(np.diff(v, axis=a)))) for a in range(3))

    return [psnr, float(np.mean(np.abs(volume - truth))) * (HU_MAX - HU_MIN), dice, gradient(volume) / gradient(truth)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset_dir", default=str(BUNDLE / "data" / "knee_ct_sr"))
    parser.add_argument("--weights", default=str(BUNDLE / "models" / "model_sr.pt"))
    parser.add_argument("--preset", default="phantom_cpu")
    parser.add_argument("--steps", type=int, default=10, help="DDIM steps (default 10)")
    parser.add_argument("--patch_size", type=int, default=128, help="window edge (default 128)")
    parser.add_argument("--residual_scale", type=float, default=4.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default="phantom", help="what the cases are: phantom or real")
    args = parser.parse_args(argv)

    import h5py
    import torch
    import torch.nn.functional as F

    from orthogen.diffusion import PatchSuperResolution
    from orthogen.networks import patch_super_resolution_network
    from orthogen.transforms.super_resolution_pair import upsample_volume

    network = patch_super_resolution_network(args.preset)
    network.load_state_dict(torch.load(args.weights, weights_only=True))
    sr = PatchSuperResolution(network.eval(), passes=1, patch_size=args.patch_size, steps=args.steps,
                              residual_scale=args.residual_scale)
    cases = json.loads((Path(args.dataset_dir) / "datalist.json").read_text())["test"]
    rows = []
    print(f"{'case':14s} {'method':10s} {'PSNR dB':>8s} {'MAE HU':>7s} {'Dice':>6s} {'grad':>5s}")
    for case in cases:
        with h5py.File(Path(args.dataset_dir) / case["h5"]) as f:
            truth = np.clip((f["ct"][()] - HU_MIN) / (HU_MAX - HU_MIN), 0, 1).astype(np.float32)
        low = F.avg_pool3d(torch.from_numpy(truth)[None, None], 4)
        start = time.perf_counter()
        generated = sr(low, seed=args.seed)[0, 0].numpy()
        seconds = time.perf_counter() - start
        trilinear = upsample_volume(low)[0, 0].clamp(0, 1).numpy()
        rows.append(scores(generated, truth) + scores(trilinear, truth) + [seconds])
        for name, values in (("SR", rows[-1][:4]), ("trilinear", rows[-1][4:8])):
            print(f"{case['case']:14s} {name:10s} {values[0]:8.2f} {values[1]:7.1f} {values[2]:6.3f} {values[3]:5.2f}")
    table = np.array(rows)
    edge = int(low.shape[-1])
    print(f"{args.data} test split ({len(rows)} cases), {edge}^3 -> {4 * edge}^3, SR {args.steps} DDIM steps, "
          f"{args.patch_size}^3 windows, seed {args.seed}; mean +- std:")
    for i, name in enumerate(("PSNR dB (HU window)", "MAE HU", "bone Dice (> 200 HU)", "gradient / truth")):
        print(f"  {name:24s} SR {table[:, i].mean():.3f} +- {table[:, i].std():.3f}   "
              f"trilinear {table[:, 4 + i].mean():.3f} +- {table[:, 4 + i].std():.3f}")
    print(f"  seconds per case (SR) {table[:, 8].mean():.1f}")


if __name__ == "__main__":
    main()
