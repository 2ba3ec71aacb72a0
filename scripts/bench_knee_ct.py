"""Knee CT generation speed and memory: seconds per stage and peak memory for 128^3 and 512^3 CTs.

Runs the knee_xray2ct_diffusion bundle's default inference (the shipped phantom-trained 32^3 cascade and
patch super-resolution weights) through ``python -m monai.bundle run inference`` once per output
resolution, on one prepared phantom knee (seed 399, 96^3 at 1.6 mm -> 64^3 cube + two 128^2 DRRs: phantom
data), each run a child process, and prints per run:

- each stage's seconds and network calls, from the bundle's own ``stage ...`` log lines (the nested
  cascade's DDIM sampling; each x4 patch super-resolution pass with its DDIM steps and window size);
- the run's wall-clock seconds (model loading and writing the NIfTI, the DICOM series and the bone
  mesh included) and its peak resident memory (the child's ``ru_maxrss`` from ``os.wait4``);
- the device (CUDA when torch sees one: the bundle picks it itself).

    python scripts/bench_knee_ct.py                                   # 128^3 and 512^3, bundle defaults
    python scripts/bench_knee_ct.py --resolutions 128 --sr_steps 4    # quicker
    python scripts/bench_knee_ct.py --sr_patch_sizes 64,128           # memory at other window counts

The seed's figures for comparison (an A100, real knees; the seed's, not ours): 128^3 in 147 s, 512^3
super-resolution about 6 minutes, under 9 minutes end to end.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "knee_xray2ct_diffusion"
STAGE = re.compile(r"stage (?P<name>.+?): (?P<steps>\d+) DDIM steps(?P<rest>.*?), (?P<calls>\d+) network calls, "
                   r"(?P<seconds>[\d.]+) s")


def phantom_case(folder: Path) -> Path:
    """One phantom knee prepared as the bundle's data are: its case file (CT cube + AP + lateral DRRs)."""
    from orthogen.data.case_layout import write_case
    from orthogen.data.knee_ct_prepare import KneeCTPreparation, prepare_knee_ct
    from orthogen.phantoms import KneePhantom

    phantom = KneePhantom.from_seed(399).render(shape=(96, 96, 96), spacing=(1.6, 1.6, 1.6))
    write_case(phantom.volume_hu, phantom.labels, phantom.affine, folder / "phantom", "knee_0399")
    prepare_knee_ct(folder / "phantom", folder / "data", KneeCTPreparation(size=64, drr_size=128, split=(1, 0, 0)))
    return next((folder / "data").glob("*.h5"))


def run_inference(case: Path, out: Path, resolution: int, args, patch: int) -> tuple[float, float, str]:
    """(wall seconds, peak RSS GB, log) of one bundle inference run in a child process."""
    command = [sys.executable, "-m", "monai.bundle", "run", "inference",
               "--config_file", "configs/inference.json", "--meta_file", "configs/metadata.json",
               "--logging_file", "configs/logging.conf", "--input_h5", str(case), "--output_dir", str(out),
               "--resolution", str(resolution), "--steps", str(args.steps), "--sr_steps", str(args.sr_steps),
               "--sr_patch_size", str(patch), "--samples", str(args.samples), "--output_format", "dicom"]
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as log:
        child = subprocess.Popen(command, cwd=BUNDLE, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        log.seek(0)
        text = log.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"inference at {resolution}^3 failed:\n{text[-3000:]}")
    return wall, usage.ru_maxrss / 2**20, text  # ru_maxrss: KiB on Linux


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolutions", default="128,512", help="output cube edges (default 128,512)")
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps of the 32^3 cascade (bundle default 50)")
    parser.add_argument("--sr_steps", type=int, default=10, help="DDIM steps per super-resolution pass (default 10)")
    parser.add_argument("--sr_patch_sizes", default="64", help="super-resolution window edges to compare (default 64)")
    parser.add_argument("--samples", type=int, default=1, help="CTs per input (K; default 1)")
    args = parser.parse_args(argv)

    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU, {os.cpu_count()} cores"
    print(f"device: {device}; torch {torch.__version__}; data: one phantom knee (seed 399), shipped phantom-trained "
          f"weights; cascade {args.steps} DDIM steps, super-resolution {args.sr_steps} DDIM steps per pass, "
          f"K = {args.samples}")
    with tempfile.TemporaryDirectory(dir=REPO / "output" if (REPO / "output").is_dir() else None) as tmp:
        case = phantom_case(Path(tmp))
        print(f"{'output':>7s} {'window':>7s} {'stage':<32s} {'steps':>5s} {'calls':>7s} {'seconds':>9s}")
        for resolution in (int(r) for r in args.resolutions.split(",")):
            for patch in (int(p) for p in args.sr_patch_sizes.split(",")):
                wall, peak_gb, log = run_inference(case, Path(tmp) / f"out_{resolution}_{patch}", resolution, args,
                                                   patch)
                for match in STAGE.finditer(log):
                    print(f"{resolution:>5d}^3 {patch:>5d}^3 {match['name'] + match['rest']:<32s} {match['steps']:>5s} "
                          f"{match['calls']:>7s} {float(match['seconds']):>9.1f}")
                print(f"{resolution:>5d}^3 {patch:>5d}^3 {'end to end (load, sample, write)':<32s} {'':>5s} {'':>7s} "
                      f"{wall:>9.1f}   peak memory {peak_gb:.2f} GB")


if __name__ == "__main__":
    main()
