"""Nested 3D denoiser speed and size: seconds per forward at 32^3 and 64^3, parameter counts of the presets.

Runs the ``phantom_cpu`` preset of :func:`orthogen.networks.nested_denoiser` (random weights, eval mode,
no gradients) on batch 1 with 128 radiograph tokens (the phantom_cpu radiograph encoder's count for
two 128^2 views): a (32,) network on a 32^3 volume, a (32, 64) network on 32^3 + 64^3 volumes, and
optionally forward + backward (one training step's compute). Prints the median of ``--repeats`` timed
calls after one warm-up, and the trainable parameter counts of both presets at (32,), (32, 64) and
(32, 64, 128) (the paper preset built on the meta device: no memory), with the radiograph encoders'.

    OMP_NUM_THREADS=1 python scripts/bench_nested_denoiser.py --threads 1 --repeats 3
"""
from __future__ import annotations

import argparse
import statistics
import time


def count(module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per case (default 3)")
    parser.add_argument("--backward", action="store_true", help="also time forward + backward")
    args = parser.parse_args(argv)

    import torch

    from orthogen.networks import nested_denoiser, radiograph_encoder

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    print("parameters (trainable):")
    for preset in ("phantom_cpu", "paper"):
        for resolutions in ((32,), (32, 64), (32, 64, 128)):
            with torch.device("meta" if preset == "paper" else "cpu"):
                network = nested_denoiser(preset, resolutions)
            print(f"  nested_denoiser {preset:12s} {str(resolutions):14s} {count(network):>13,d}")
        with torch.device("meta" if preset == "paper" else "cpu"):
            encoder = radiograph_encoder(preset)
        print(f"  radiograph_encoder {preset:9s} {'':14s} {count(encoder):>13,d}")

    torch.manual_seed(0)
    context = torch.randn(1, 128, 64)
    print(f"phantom_cpu, batch 1, 128 tokens, median of {args.repeats} after one warm-up:")
    for resolutions in ((32,), (32, 64)):
        network = nested_denoiser("phantom_cpu", resolutions)
        x = [torch.randn(1, 1, r, r, r) for r in resolutions]
        t = torch.tensor([500.0])

        def forward():
            with torch.no_grad():
                network.eval()(x, t, context, 0.4, 1.0)

        def step():
            network.train()
            network.zero_grad()
            sum(o.square().mean() for o in network(x, t, context, 0.4, 1.0)).backward()

        for name, call in (("forward", forward), ("forward+backward", step))[: 2 if args.backward else 1]:
            call()
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                call()
                times.append(time.perf_counter() - start)
            print(f"  {name:17s} {str(resolutions):9s} {statistics.median(times):6.2f} s "
                  f"(min {min(times):.2f}, max {max(times):.2f})")


if __name__ == "__main__":
    main()
