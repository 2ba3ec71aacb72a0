"""A bundle run the way a user runs it: `python -m monai.bundle run <run_id>` in a subprocess."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_bundle(configs: Path, run_id: str, config_files: list[str], bundle_root: Path, *overrides: str,
               meta_and_logging: bool = False) -> subprocess.CompletedProcess:
    """Run ``run_id`` of the config files ``config_files`` (names in the folder ``configs``, merged in order)
    with ``bundle_root`` as bundle root and working folder (OMP_NUM_THREADS=2). ``meta_and_logging`` also
    passes the folder's metadata.json and logging.conf. The finished process, whatever its exit status."""
    files = "[" + ",".join(f"'{configs / f}'" for f in config_files) + "]"
    command = [sys.executable, "-m", "monai.bundle", "run", run_id, "--config_file", files]
    if meta_and_logging:
        command += ["--meta_file", str(configs / "metadata.json"), "--logging_file", str(configs / "logging.conf")]
    command += ["--bundle_root", str(bundle_root), *overrides]
    return subprocess.run(command, capture_output=True, text=True, cwd=bundle_root,
                          env={**os.environ, "OMP_NUM_THREADS": "2"})


def bundle_log(configs: Path, run_id: str, config_files: list[str], bundle_root: Path, *overrides: str) -> str:
    """``run_bundle`` that must succeed (the output's tails otherwise); its stdout + stderr."""
    result = run_bundle(configs, run_id, config_files, bundle_root, *overrides)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result.stdout + result.stderr
