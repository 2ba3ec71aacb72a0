"""Train the default FID slice-feature network (orthogen.networks.SliceFeatureNet) on phantom knee slices.

Data: procedural knee phantoms (orthogen.phantoms.KneePhantom, seeds first_seed...), not patient CTs. The
task is self-supervised from the geometry: predict each slice's plane and its relative position (see
orthogen.networks.slice_features). The weights are written as a plain state_dict, with a JSON beside
them recording how they were made; FIDs computed with them are labelled ``SliceFeatureNet[<file name>]``
by ``orthogen.networks.slice_feature_network(weights=...)``.

    python scripts/train_slice_features.py --out models/slice_features.pt --knees 16 --steps 2000
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from orthogen.io.atomic_write import atomic_file
from orthogen.networks.slice_features import (
    SLICE_SIZE,
    SliceFeatureNet,
    phantom_slice_volumes,
    train_slice_features,
)


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="weights file to write (.pt)")
    parser.add_argument("--knees", type=int, default=16, help="phantom knees to slice")
    parser.add_argument("--first-seed", type=int, default=1000, help="seed of the first phantom knee")
    parser.add_argument("--grid", type=int, default=64, help="phantom grid edge, voxels")
    parser.add_argument("--spacing", type=float, default=2.5, help="phantom voxel size, mm")
    parser.add_argument("--size", type=int, default=SLICE_SIZE, help="slice side the network sees, pixels")
    parser.add_argument("--features", type=int, default=64, help="embedding length F")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    torch.manual_seed(args.seed)
    start = time.perf_counter()
    volumes = phantom_slice_volumes(args.knees, (args.grid,) * 3, (args.spacing,) * 3, first_seed=args.first_seed)
    network = SliceFeatureNet(features=args.features)
    losses = train_slice_features(network, volumes, steps=args.steps, batch_size=args.batch_size,
                                  learning_rate=args.learning_rate, seed=args.seed, size=args.size,
                                  device=args.device)
    seconds = time.perf_counter() - start
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(args.out) as tmp:
        torch.save({k: v.detach().cpu() for k, v in network.state_dict().items()}, tmp)
    record = {**{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "data": "phantom knees (orthogen.phantoms.KneePhantom)", "task": "plane + relative position",
              "loss_first_100": float(np.mean(losses[:100])), "loss_last_100": float(np.mean(losses[-100:])),
              "seconds": round(seconds, 1)}
    with atomic_file(args.out.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    logging.info("wrote %s (loss %.4f -> %.4f, %.0f s)", args.out, record["loss_first_100"],
                 record["loss_last_100"], seconds)
    return args.out


if __name__ == "__main__":
    main()
