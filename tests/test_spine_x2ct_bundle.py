"""The spine_x2ct_gan bundle run by `python -m monai.bundle`: training, inference and evaluation (CPU config)."""
import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import ImplicitVRLittleEndian

from orthogen.data.x2ct_hdf5 import read_x2ct_case
from orthogen.data.x2ct_prepare import X2CTPreparation, prepare_x2ct_dataset
from orthogen.io import read_ct, write_png

from bundle_runs import bundle_log
from dicom_builders import write_dx

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "bundles" / "spine_x2ct_gan" / "configs"
SIZE = 32  # the default (phantom-trained) network's cube
TRAINING = ["train.json"]


_bundle = partial(bundle_log, CONFIGS)  # _bundle(run_id, config_files, bundle_root, *overrides) -> log


@pytest.fixture(scope="module")
def trained(tmp_path_factory, spine_phantom_root):
    """A phantom dataset and a CPU-config model trained on it for two epochs."""
    root = tmp_path_factory.mktemp("bundle")
    prepare_x2ct_dataset(spine_phantom_root, root / "data" / "x2ct", X2CTPreparation(size=SIZE))
    log = _bundle("training", TRAINING, root, "--constant_lr_epochs", "1", "--decay_lr_epochs", "1")
    return root, log


def test_training_writes_the_best_model_and_logs(trained):
    """models/model.pt holds the weights that scored the best validation PSNR-3D: evaluated again on the
    validation split, it scores the best value the training log reports."""
    import re

    root, log = trained
    assert "val_psnr_3d_x2ct" in log and "Epoch[2] Complete" in log
    assert list((root / "runs").glob("events.out.tfevents.*"))
    assert list((root / "runs").glob("training_state_checkpoint_epoch=2.pt"))
    best = float(re.findall(r"Key metric: val_psnr_3d_x2ct best value: ([-\d.]+) at epoch", log)[-1])
    again = _bundle("evaluating", ["inference.json", "evaluate.json"], root, "--split", "validation",
                    "--output_dir", str(root / "eval_validation"))
    model, _ = (float(v) for v in next(l for l in again.splitlines() if l.startswith("PSNR_3D ")).split()[1:])
    assert abs(model - best) < 0.01, (model, best)


def test_inference_from_radiograph_files_writes_ct_and_montage(trained):
    root, _ = trained
    datalist = json.loads((root / "data" / "x2ct" / "datalist.json").read_text())
    case = read_x2ct_case(root / "data" / "x2ct" / datalist["test"][0]["h5"])
    write_png(case.ap, root / "inputs" / "case_ap.png", bit_depth=16)
    write_png(case.lateral, root / "inputs" / "case_lateral.png", bit_depth=16)
    detector_spacing = 1.5 * float(np.linalg.norm(case.affine[:3, 0]))  # the case's voxels, at the detector
    log = _bundle("inference", ["inference.json"], root, "--input_ap", str(root / "inputs" / "case_ap.png"),
                  "--input_lateral", str(root / "inputs" / "case_lateral.png"), "--pixel_spacing",
                  str(detector_spacing))
    ct_path = root / "eval" / "case_ap_ct.nii.gz"
    assert str(ct_path) in log and (root / "eval" / "case_ap_montage.png").is_file()
    ct = read_ct(ct_path)
    assert tuple(ct.shape) == (SIZE,) * 3
    assert -1024.0 <= float(ct.min()) and float(ct.max()) <= 1476.0
    # PNGs carry no spacing: the given detector spacing over the radiograph magnification (1.5)
    np.testing.assert_allclose(ct.meta["spacing"], [detector_spacing / 1.5] * 3, rtol=1e-5)


def test_inference_on_the_test_split_and_one_case_file(trained):
    root, _ = trained
    datalist = json.loads((root / "data" / "x2ct" / "datalist.json").read_text())
    _bundle("inference", ["inference.json"], root)
    split_cts = {}
    for item in datalist["test"]:
        name = item["h5"].removesuffix(".h5")
        ct = read_ct(root / "eval" / f"{name}_ct.nii.gz")
        case = read_x2ct_case(root / "data" / "x2ct" / item["h5"])
        np.testing.assert_allclose(ct.affine.numpy(), case.affine, atol=1e-5)  # the case's geometry
        split_cts[name] = ct.numpy()
    # one case file on the command line: the same CT as the split run gave that case, in its own folder
    name = datalist["test"][0]["h5"].removesuffix(".h5")
    _bundle("inference", ["inference.json"], root, "--input_h5", str(root / "data" / "x2ct" / f"{name}.h5"),
            "--output_dir", str(root / "one_case"))
    np.testing.assert_allclose(read_ct(root / "one_case" / f"{name}_ct.nii.gz").numpy(), split_cts[name], atol=1e-3)


def test_evaluation_prints_model_and_baseline_and_writes_csv(trained):
    root, _ = trained
    log = _bundle("evaluating", ["inference.json", "evaluate.json"], root)
    assert "phantom test cases" in log
    header = next(line for line in log.splitlines() if line.startswith("metric"))
    assert "X2CT-GAN" in header and "mean training volume" in header
    psnr = next(line for line in log.splitlines() if line.startswith("PSNR_3D "))
    assert len(psnr.split()) == 3 and all(10.0 < float(v) < 60.0 for v in psnr.split()[1:])
    rows = (root / "eval" / "x2ct_metrics.csv").read_text().splitlines()
    assert rows[0].startswith("case,method,data,split,MAE0")
    assert all(row.split(",")[2:4] == ["phantom", "test"] for row in rows[1:])  # every row names its data and split
    n_test = len(json.loads((root / "data" / "x2ct" / "datalist.json").read_text())["test"])
    assert len(rows) == 1 + 2 * n_test + 2


def test_multi_process_training_with_gloo_on_cpu(trained, tmp_path):
    root, _ = trained
    (tmp_path / "data").symlink_to(root / "data")
    files = "[" + ",".join(f"'{CONFIGS / f}'" for f in (*TRAINING, "multi_gpu_train.json")) + "]"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "-m", "monai.bundle", "run",
               "training", "--config_file", files, "--bundle_root", str(tmp_path), "--constant_lr_epochs", "1",
               "--decay_lr_epochs", "1"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-5000:]
    log = result.stdout + result.stderr
    assert log.count("X2CTGanTrainer - INFO - Epoch[2] Complete") == 2  # both ranks trained
    assert (tmp_path / "models" / "model.pt").is_file()
    # rank 0 alone writes the training state (the latest epoch's only)
    assert [p.name for p in (tmp_path / "runs").glob("training_state_*.pt")] == ["training_state_checkpoint_epoch=2.pt"]


def _dx_file(path: Path, image: np.ndarray, spacing_mm: float | None, study_uid: str, view: str) -> Path:
    """A DX radiograph (uint16, MONOCHROME2, PixelSpacing; Implicit VR) of ``image`` in [0, 1], in study
    ``study_uid``."""
    return write_dx(path, np.round(image * 4095).astype("<u2"), bits_stored=12,
                    pixel_spacing=None if spacing_mm is None else [spacing_mm, spacing_mm], study_uid=study_uid,
                    transfer_syntax=ImplicitVRLittleEndian, PatientID="PHANTOM-7", PatientName="Phantom^Spine",
                    AccessionNumber="ACC123", StudyDate="20261201", StudyTime="101500", ViewPosition=view)


def test_inference_from_dicom_radiographs_writes_a_dicom_series_in_their_study(tmp_path, spine_phantom_root):
    import pydicom
    from pydicom.uid import generate_uid

    prepare_x2ct_dataset(spine_phantom_root, tmp_path / "x2ct", X2CTPreparation(size=SIZE))
    item = json.loads((tmp_path / "x2ct" / "datalist.json").read_text())["test"][0]
    case = read_x2ct_case(tmp_path / "x2ct" / item["h5"])
    spacing = float(np.linalg.norm(case.affine[:3, 0]))
    study = generate_uid()
    ap = _dx_file(tmp_path / "ap.dcm", case.ap, spacing, study, "AP")
    lateral = _dx_file(tmp_path / "lateral.dcm", case.lateral, spacing, study, "LL")
    bundle = REPO / "bundles" / "spine_x2ct_gan"
    _bundle("inference", ["inference.json"], bundle, "--input_ap", str(ap), "--input_lateral", str(lateral),
            "--output_format", "dicom", "--output_dir", str(tmp_path / "out"))
    slices = sorted((tmp_path / "out" / "ap_ct_dicom").glob("*.dcm"))
    assert len(slices) == SIZE
    datasets = [pydicom.dcmread(s) for s in slices]
    assert {ds.StudyInstanceUID for ds in datasets} == {study}
    assert {ds.PatientID for ds in datasets} == {"PHANTOM-7"} and {ds.AccessionNumber for ds in datasets} == {"ACC123"}
    series = {ds.SeriesInstanceUID for ds in datasets}
    assert len(series) == 1 and series.isdisjoint({pydicom.dcmread(ap).SeriesInstanceUID})
    assert len({ds.SOPInstanceUID for ds in datasets}) == SIZE
    assert datasets[0].SeriesDescription == "Spine X2CT-GAN synthetic CT (phantom-trained)"
    # the series is the NIfTI's volume (within the int16 rounding), on the same grid
    nifti, series_ct = read_ct(tmp_path / "out" / "ap_ct.nii.gz"), read_ct(tmp_path / "out" / "ap_ct_dicom")
    from monai.transforms import Orientation

    to_ras = Orientation(axcodes="RAS")
    a, b = to_ras(nifti[None]), to_ras(series_ct[None])
    np.testing.assert_allclose(a.affine.numpy(), b.affine.numpy(), atol=1e-3)
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1.0)


def test_a_film_without_spacing_gives_a_ct_when_the_spacing_is_given(tmp_path, spine_phantom_root):
    from pydicom.uid import generate_uid

    prepare_x2ct_dataset(spine_phantom_root, tmp_path / "x2ct", X2CTPreparation(size=SIZE))
    item = json.loads((tmp_path / "x2ct" / "datalist.json").read_text())["test"][0]
    case = read_x2ct_case(tmp_path / "x2ct" / item["h5"])
    study = generate_uid()
    ap = _dx_file(tmp_path / "ap.dcm", case.ap, None, study, "AP")
    lateral = _dx_file(tmp_path / "lateral.dcm", case.lateral, None, study, "LL")
    detector_spacing = 1.5 * float(np.linalg.norm(case.affine[:3, 0]))
    bundle = REPO / "bundles" / "spine_x2ct_gan"
    _bundle("inference", ["inference.json"], bundle, "--input_ap", str(ap), "--input_lateral", str(lateral),
            "--pixel_spacing", str(detector_spacing), "--output_dir", str(tmp_path / "out"))
    ct = read_ct(tmp_path / "out" / "ap_ct.nii.gz")
    np.testing.assert_allclose(ct.meta["spacing"], [detector_spacing / 1.5] * 3, rtol=1e-5)
