"""The `orthogen` command line: phantom -> drr -> files a reader can use; demo end to end; clear errors."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from orthogen.io import read_ct, read_radiograph

REPO = Path(__file__).resolve().parents[1]


def _orthogen(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orthogen.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_phantom_then_drr_writes_images_with_spacing(tmp_path):
    done = _orthogen("phantom", "knee", "--seed", "3", "--shape", "64", "--spacing", "2.0", "--out",
                     str(tmp_path / "ph"))
    assert done.returncode == 0, done.stderr
    ct_path = tmp_path / "ph" / "data" / "knee_0003.nii.gz"
    seg_path = tmp_path / "ph" / "label" / "knee_0003_seg.nii.gz"
    assert done.stdout.split() == [str(ct_path), str(seg_path)]
    ct = read_ct(ct_path)
    assert tuple(ct.shape) == (64, 64, 64) and list(ct.meta["spacing"]) == [2.0, 2.0, 2.0]

    done = _orthogen("drr", str(ct_path), "--views", "ap,lateral", "--size", "96", "--out", str(tmp_path / "drr"),
                     "--labels", str(seg_path))
    assert done.returncode == 0, done.stderr
    for view in ("ap", "lateral"):
        png = tmp_path / "drr" / f"knee_0003_{view}.png"
        assert str(png) in done.stdout and Image.open(png).size == (96, 96)
        sidecar = json.loads((tmp_path / "drr" / f"knee_0003_{view}.json").read_text())
        radiograph = read_radiograph(tmp_path / "drr" / f"knee_0003_{view}.npy")
        assert radiograph.pixel_spacing_mm == tuple(sidecar["pixel_spacing_mm"])
        assert radiograph.image.max() == 1.0 and radiograph.image.min() >= 0.0
        bone = read_radiograph(tmp_path / "drr" / f"knee_0003_bone_{view}.npy").image
        # bone-only projection: bright only where the full DRR is bright too
        assert radiograph.image[bone > 0.5].mean() > radiograph.image[bone == 0].mean() + 0.2
    assert json.loads((tmp_path / "drr" / "knee_0003_ap.json").read_text())["gantry_angle_deg"] == 0.0


def test_bad_input_gives_one_clear_line(tmp_path):
    done = _orthogen("drr", str(tmp_path / "missing.nii.gz"), "--out", str(tmp_path / "o"))
    assert done.returncode != 0
    assert "orthogen: error:" in done.stderr and "missing.nii.gz" in done.stderr
    assert "Traceback" not in done.stderr
    done = _orthogen("phantom", "spine", "--spacing", "1,-1,1", "--out", str(tmp_path / "p"))
    assert done.returncode != 0 and "spacing" in done.stderr and "Traceback" not in done.stderr


def test_demo_writes_the_montage_and_the_x2ct_result(tmp_path):
    done = _orthogen("demo", "--out", str(tmp_path / "demo"))
    assert done.returncode == 0, done.stderr[-3000:]
    printed = done.stdout.split()
    montage = tmp_path / "demo" / "montage.png"
    assert printed[-1] == str(montage)
    width, height = Image.open(montage).size
    assert width > 1000 and height > 1000  # four rows of panels
    for expected in ("knee_0000_ap.png", "spine_0000_lateral.png", "knee_0000.nii.gz", "spine_0007_v22_ct.nii.gz"):
        assert any(p.endswith(expected) for p in printed), expected
    ct = read_ct(next(p for p in printed if p.endswith("_ct.nii.gz")))
    assert np.isfinite(ct.numpy()).all() and float(ct.max()) > 300  # bone was reconstructed
