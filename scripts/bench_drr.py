"""DRR speed: orthogen's projector against DiffDRR 0.6.1 (Siddon), side by side in one run.

Data: the procedural knee phantom (seed 0) — a phantom, not a patient CT. Both renderers get the same
attenuation volume (orthogen's HU -> mu at 60 keV) and the same cone-beam geometry (SID 1000 mm,
SDD 1500 mm, square detector framed on the volume), and the script prints per case: the median render
time of each (after one warm-up call), the speed ratio, and the normalized max difference
``max |a / max(a) - b / max(b)|`` between the images.

DiffDRR is a reference only: it lives in a separate venv (``make bench-setup``), because its declared
dependencies pull a CUDA torch; this script calls that venv's Python in a subprocess (``--worker``).

    python scripts/bench_drr.py --reference-python .venv-bench/bin/python

``--edge N`` replaces the three cases by one small one (an N^3 phantom -> AP + lateral at N^2) and
``--no-reference`` times orthogen alone (no DiffDRR venv; its columns print ``-``): quick checks only,
the documented figures are the default run's.

    python scripts/bench_drr.py --edge 32 --repeats 1 --no-reference
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

import numpy as np

SID_MM, SDD_MM = 1000.0, 1500.0
REFERENCE_VIEWS_PER_CALL = 6  # views per DiffDRR call (memory bound, see worker)
CASES = [  # (name, volume edge in voxels, spacing mm, views, detector pixels)
    ("128^3 -> AP + lateral 256^2", 128, 1.0, [0.0, 90.0], 256),
    ("256^3 -> AP + lateral 256^2", 256, 0.5, [0.0, 90.0], 256),
    ("128^3 -> 60-view orbit 256^2", 128, 1.0, [6.0 * i for i in range(60)], 256),
]


def _median_time(render, repeats: int) -> tuple[float, np.ndarray]:
    images = render()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        images = render()
        times.append(time.perf_counter() - start)
    return statistics.median(times), images


def worker(args: argparse.Namespace) -> None:
    """Runs inside the DiffDRR venv: render the saved attenuation volume, save images and time."""
    import torch
    from diffdrr.data import read
    from diffdrr.drr import DRR
    from torchio import ScalarImage

    torch.set_num_threads(args.threads)
    job = json.loads(Path(args.worker).read_text())
    subject = read(job["nifti"], orientation="AP")
    mu = torch.from_numpy(np.load(job["mu"]))
    subject["density"] = ScalarImage(tensor=mu[None], affine=subject["density"].affine)
    subject.update_attributes()  # torchio keeps images as attributes too; DRR reads subject.density
    drr = DRR(subject, sdd=SDD_MM, height=job["size"], delx=job["pixel_mm"], renderer="siddon")
    # DiffDRR's camera: ZXY Euler angles about the isocenter; +y translation puts the source anterior.
    # Our gantry angle a puts the source at (sin a, cos a, 0): a rotation of -a about z.
    angles = torch.tensor(job["angles"], dtype=torch.float32)
    rotations = torch.stack([-torch.deg2rad(angles), torch.zeros_like(angles), torch.zeros_like(angles)], dim=1)
    translations = torch.tensor([[0.0, SID_MM, 0.0]]).expand(len(angles), 3)

    def render():
        # DiffDRR's Siddon keeps every ray's plane crossings in memory at once: 60 views of 256^2 rays need
        # well over 24 GB, so views go through it a few at a time (timed together: the same work)
        with torch.no_grad():
            return np.concatenate([
                drr(rotations[i:i + REFERENCE_VIEWS_PER_CALL], translations[i:i + REFERENCE_VIEWS_PER_CALL],
                    parameterization="euler_angles", convention="ZXY")[:, 0].numpy()
                for i in range(0, len(angles), REFERENCE_VIEWS_PER_CALL)])

    seconds, images = _median_time(render, job["repeats"])
    np.save(job["out"], images)
    print(json.dumps({"seconds": seconds}))


def orthogen_render(volume_hu, affine, angles, size, repeats):
    import torch

    from orthogen.drr import fit_detector, render_drr

    geometry = fit_detector(volume_hu.shape, affine, size, source_to_isocenter_mm=SID_MM,
                            source_to_detector_mm=SDD_MM)
    volume = torch.from_numpy(volume_hu)

    def render():
        with torch.no_grad():
            return render_drr(volume, affine, geometry, angles).line_integral.numpy()

    seconds, images = _median_time(render, repeats)
    return seconds, images, geometry.pixel_spacing_mm[0]


def _normalized_max_difference(ours: np.ndarray, reference: np.ndarray) -> float:
    """max over views of max |a/max(a) - b/max(b)| (the two renderers' images share one orientation)."""
    return max(float(np.abs(a / a.max() - b / b.max()).max()) for a, b in zip(ours, reference))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference-python", default=".venv-bench/bin/python", help="python of the DiffDRR venv")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--edge", type=int, default=None,
                        help="one case instead of the three: an EDGE^3 phantom -> AP + lateral EDGE^2 (quick checks)")
    parser.add_argument("--no-reference", action="store_true",
                        help="time orthogen alone, without the DiffDRR venv (its columns print '-')")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.edge is not None and args.edge < 8:
        parser.error(f"--edge: expected at least 8 voxels, got {args.edge}")
    cases = CASES if args.edge is None else [(f"{args.edge}^3 -> AP + lateral {args.edge}^2", args.edge,
                                              128.0 / args.edge, [0.0, 90.0], args.edge)]
    if args.worker:
        worker(args)
        return

    import nibabel as nib
    import torch

    from orthogen.drr import hu_to_attenuation
    from orthogen.phantoms import knee_phantom

    torch.set_num_threads(args.threads)
    print(f"DRR benchmark on the procedural knee phantom (seed 0), {args.threads} CPU threads, "
          f"cone beam SID {SID_MM:.0f} mm / SDD {SDD_MM:.0f} mm, median of {args.repeats} after a warm-up")
    print(f"{'case':34s} {'orthogen s':>11s} {'DiffDRR s':>10s} {'speed-up':>9s} {'max norm diff':>14s}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, edge, spacing, angles, size in cases:
            phantom = knee_phantom(seed=0, shape=(edge, edge, edge), spacing=(128 / edge,) * 3)
            ours_s, ours, pixel_mm = orthogen_render(phantom.volume_hu, phantom.affine, angles, size, args.repeats)
            if args.no_reference:
                print(f"{name:34s} {ours_s:11.3f} {'-':>10s} {'-':>9s} {'-':>14s}", flush=True)
                continue
            nifti, mu, out, job = (Path(tmp) / f"{edge}.nii.gz", Path(tmp) / f"{edge}_mu.npy",
                                   Path(tmp) / "ref.npy", Path(tmp) / "job.json")
            nib.save(nib.Nifti1Image(phantom.volume_hu, phantom.affine), nifti)
            np.save(mu, hu_to_attenuation(torch.from_numpy(phantom.volume_hu)).numpy())
            job.write_text(json.dumps({"nifti": str(nifti), "mu": str(mu), "out": str(out), "angles": angles,
                                       "size": size, "pixel_mm": pixel_mm, "repeats": args.repeats}))
            result = subprocess.run([args.reference_python, __file__, "--worker", str(job), "--threads",
                                     str(args.threads)], capture_output=True, text=True)
            if result.returncode != 0:
                cause = f"killed by signal {-result.returncode} (out of memory?)" if result.returncode < 0 \
                    else f"exit status {result.returncode}"
                sys.exit(f"DiffDRR worker failed on {name} ({args.reference_python}, {cause}):\n"
                         f"{result.stderr[-2000:]}")
            ref_s = json.loads(result.stdout.strip().splitlines()[-1])["seconds"]
            diff = _normalized_max_difference(ours, np.load(out))
            print(f"{name:34s} {ours_s:11.3f} {ref_s:10.3f} {ref_s / ours_s:8.1f}x {diff:14.4f}", flush=True)


if __name__ == "__main__":
    main()
