"""How fast the ``orthogen`` command answers before it does any work: help, and inputs it refuses.

Each case is a whole process, start to exit, timed from outside with a monotonic clock (warm-up runs
first, then the median of ``--runs``), beside two yardsticks: the bare interpreter and ``import torch``
(what every call used to pay before looking at its arguments). Run from the repository root:

    .venv/bin/python scripts/bench_cli_startup.py            # 7 runs per case
    .venv/bin/python scripts/bench_cli_startup.py --runs 15 --json startup.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _orthogen() -> list[str]:
    script = Path(sys.executable).with_name("orthogen")
    return [str(script)] if script.exists() else [sys.executable, "-m", "orthogen.cli"]


def cases(work: Path) -> list[tuple[str, list[str], bool]]:
    """(name, argv, whether it should succeed)."""
    cli = _orthogen()
    empty = work / "empty.nii.gz"
    empty.write_bytes(b"")
    some_file = work / "ct.nii.gz"  # exists and is not empty: the flag check, not the path check, refuses
    some_file.write_bytes(b"\0" * 352)
    return [
        ("python -c pass (yardstick)", [sys.executable, "-c", "pass"], True),
        ("python -c 'import torch' (yardstick)", [sys.executable, "-c", "import torch"], True),
        ("orthogen drr --help", [*cli, "drr", "--help"], True),
        ("orthogen drr missing.nii.gz", [*cli, "drr", str(work / "missing.nii.gz"), "--out", str(work / "out")], False),
        ("orthogen drr empty.nii.gz", [*cli, "drr", str(empty), "--out", str(work / "out")], False),
        ("orthogen drr ct.nii.gz --size 0", [*cli, "drr", str(some_file), "--size", "0"], False),
        ("orthogen phantom spine --count 0", [*cli, "phantom", "spine", "--count", "0", "--out", str(work / "out")], False),
    ]


def time_case(argv: list[str], runs: int, warmup: int) -> tuple[list[float], int]:
    times, code = [], 0
    for i in range(warmup + runs):
        start = time.perf_counter()
        done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        elapsed = time.perf_counter() - start
        code = done.returncode
        if i >= warmup:
            times.append(elapsed)
    return times, code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per case (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first (file cache)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, argv, should_succeed in cases(Path(tmp)):
            times, code = time_case(argv, args.runs, args.warmup)
            ok = (code == 0) == should_succeed
            rows.append({"case": name, "median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
                         "exit": code, "as_expected": ok})
    width = max(len(r["case"]) for r in rows)
    print(f"{'case':<{width}}  median s    min s    max s  exit   (whole process, {args.runs} runs)")
    for r in rows:
        flag = "" if r["as_expected"] else "  <- unexpected exit status"
        print(f"{r['case']:<{width}}  {r['median_s']:8.3f} {r['min_s']:8.3f} {r['max_s']:8.3f}  {r['exit']:4d}{flag}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
