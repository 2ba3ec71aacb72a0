"""The knee_xray2ct_diffusion bundle run by `python -m monai.bundle`: the 32^3 stage trains one iteration on a
tiny prepared phantom set (here an 8^3 base on 16^3 CTs, 32 x 32 views), inference and evaluation run on what
it wrote, the next stage trains from its weights; metadata, network I/O, and bad inputs giving one line (the
bad radiograph and slice-thickness inputs are rows of tests/test_bad_inputs.py)."""
from __future__ import annotations

import csv
import json
from functools import partial
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest
import torch

from orthogen.data.case_layout import write_case
from orthogen.data.knee_ct_prepare import KneeCTPreparation, prepare_knee_ct
from orthogen.phantoms import KneePhantom

from bundle_runs import run_bundle

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "knee_xray2ct_diffusion"
CONFIGS = BUNDLE / "configs"
CT, VIEWS = 16, 32  # prepared CT cube and radiograph sizes of the tests
SMALL = ["--image_size", str(VIEWS), "--resolutions", "[8]"]
TRAIN = ["--batch_size", "2", "--max_epochs", "1", "--train#trainer#epoch_length", "1"]
FAST = ["--steps", "2", "--metric_report#registration",
        "{'shrink_factors': [1], 'smoothing_sigmas': [0.0], 'iterations': 5}",
        "--fid_feature_weights", str(BUNDLE / "models" / "slice_features.pt")]  # the shipped FID network

_run = partial(run_bundle, CONFIGS, meta_and_logging=True)


def _ok(result) -> str:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result.stdout + result.stderr


def _one_line_error(result, fragment: str) -> str:
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and fragment in last, last
    return last


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A bundle root with 4 phantom knees prepared at 16^3 with 32 x 32 DRRs (split 2:1:1)."""
    root = tmp_path_factory.mktemp("knee_xray2ct")
    for seed in range(4):
        p = KneePhantom.from_seed(seed).render(shape=(32, 32, 32), spacing=(4.0, 4.0, 4.0))
        write_case(p.volume_hu, p.labels, p.affine, root / "phantoms", f"knee_{seed:04d}")
    prepare_knee_ct(root / "phantoms", root / "data" / "knee_ct", KneeCTPreparation(size=CT, drr_size=VIEWS,
                                                                                     split=(2, 1, 1)))
    return root


@pytest.fixture(scope="module")
def trained(root):
    """The base stage (8^3 here) trained for one iteration: models/model.pt and its log."""
    log = _ok(_run("training", ["train.json"], root, *SMALL, *TRAIN))
    return root, log


@pytest.fixture(scope="module")
def radiographs(tmp_path_factory):
    """A DICOM DX AP + lateral pair of one study (48 x 48, PixelSpacing 2 mm)."""
    from pydicom.uid import ImplicitVRLittleEndian, generate_uid

    from dicom_builders import write_dx

    folder = tmp_path_factory.mktemp("radiographs")
    disk = np.zeros((48, 48))
    disk[np.hypot(*np.mgrid[-24:24, -24:24]) < 18] = 3000.0
    study = generate_uid()
    for name in ("ap", "lateral"):
        write_dx(folder / f"{name}.dcm", disk.astype("<u2"), bits_stored=12, pixel_spacing=(2.0, 2.0),
                 study_uid=study, transfer_syntax=ImplicitVRLittleEndian, PatientID="P")
    return folder, study


def test_the_base_stage_trains_and_writes_its_ema_weights(trained):
    root, log = trained
    assert "Epoch[1] Complete" in log and "saved the EMA weights" in log
    weights = torch.load(root / "models" / "model.pt", weights_only=True)
    assert any(k.startswith("encoder.") for k in weights) and any(k.startswith("denoiser.core.") for k in weights)
    assert not any(k.startswith("denoiser.outer_levels.") for k in weights)
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
    assert list((root / "runs" / "stage_8").glob("training_state_checkpoint_epoch=1.pt"))


def test_inference_writes_a_ct_per_test_case_on_the_case_field_of_view(trained):
    root, _ = trained
    out = root / "eval_test"
    _ok(_run("inference", ["inference.json"], root, *SMALL, "--steps", "2", "--output_dir", str(out)))
    test_cases = json.loads((root / "data" / "knee_ct" / "datalist.json").read_text())["test"]
    written = sorted(out.glob("*_ct.nii.gz"))
    assert [p.name for p in written] == sorted(f"{c['h5'].removesuffix('.h5')}_ct.nii.gz" for c in test_cases)
    image = nib.load(written[0])
    assert image.shape == (8, 8, 8)
    with h5py.File(root / "data" / "knee_ct" / test_cases[0]["h5"]) as f:
        case_affine = np.asarray(f.attrs["affine"])
    assert np.allclose(np.linalg.norm(image.affine[:3, :3], axis=0), 2 * np.linalg.norm(case_affine[:3, :3], axis=0))
    volume = np.asarray(image.dataobj)
    assert np.isfinite(volume).all() and -1024 - 1e-3 <= volume.min() and volume.max() <= 1476 + 1e-3


def test_the_same_seed_gives_the_same_ct_and_dicom_radiographs_give_a_dicom_series_in_their_study(trained,
                                                                                                    radiographs):
    import pydicom

    root, _ = trained
    folder, study = radiographs
    outs = [root / f"eval_dicom_{i}" for i in range(2)]
    for out in outs:
        _ok(_run("inference", ["inference.json"], root, *SMALL, "--steps", "2", "--input_ap", str(folder / "ap.dcm"),
                 "--input_lateral", str(folder / "lateral.dcm"), "--slice_thickness", "2.0",
                 "--output_format", "dicom", "--output_dir", str(out)))
    first, second = (np.asarray(nib.load(out / "ap_ct.nii.gz").dataobj) for out in outs)
    assert first.shape == (8, 8, 8) and np.array_equal(first, second)
    slices = sorted((outs[0] / "ap_ct_dicom").glob("*.dcm"))
    assert len(slices) == 8
    header = pydicom.dcmread(slices[0], stop_before_pixels=True)
    assert header.StudyInstanceUID == study and header.Modality == "CT"
    assert "synthetic" in header.SeriesDescription and "phantom-trained" in header.SeriesDescription


def test_evaluation_writes_the_metric_table_beside_the_mean_volume_baseline(trained):
    root, _ = trained
    log = _ok(_run("evaluating", ["inference.json", "evaluate.json"], root, *SMALL, *FAST))
    rows = list(csv.DictReader((root / "eval" / "knee_ct_metrics.csv").open()))
    n_test = len(json.loads((root / "data" / "knee_ct" / "datalist.json").read_text())["test"])
    assert len(rows) == 2 * n_test + 2
    assert {r["method"] for r in rows} == {"nested diffusion", "mean training volume"}
    assert all(r["data"] == "phantom" for r in rows)
    means = {r["method"]: r for r in rows if r["case"] == "MEAN"}
    for key in ("bone_dice", "bone_assd_mm", "PSNR_3D", "SSIM", "reprojection_psnr_mean"):
        assert key in rows[0], key
        assert np.isfinite(float(means["mean training volume"][key])), key
        # a one-iteration model may draw no bone: its ASSD is then undefined (inf / nan), still a number
        model = float(means["nested diffusion"][key])
        assert np.isfinite(model) or (key == "bone_assd_mm" and float(means["nested diffusion"]["bone_dice"]) == 0), key
    assert "knee CT metric table" in log and "bone_dice" in log and "mean training volume" in log
    fid = {r["method"]: r for r in csv.DictReader((root / "eval" / "knee_ct_metrics_fid.csv").open())}
    assert set(fid) == {"nested diffusion", "mean training volume"}
    for row in fid.values():
        assert row["data"] == "phantom" and row["feature_network"] == "SliceFeatureNet[slice_features.pt]"
        per_plane = [float(row[f"FID_{p}"]) for p in ("axial", "coronal", "sagittal")]
        assert all(v >= 0 for v in per_plane) and float(row["FID_overall"]) == pytest.approx(np.mean(per_plane))
    assert "slice FID, nested diffusion vs the real CTs" in log and "FID [SliceFeatureNet[slice_features.pt]]" in log


def test_evaluation_on_the_validation_split_says_so_and_skips_the_fid_when_asked(trained):
    root, _ = trained
    out = root / "eval_validation"
    log = _ok(_run("evaluating", ["inference.json", "evaluate.json"], root, *SMALL, *FAST, "--split", "validation",
                   "--slice_fid", "False", "--output_dir", str(out)))
    n_validation = len(json.loads((root / "data" / "knee_ct" / "datalist.json").read_text())["validation"])
    assert f"knee CT metric table, {n_validation} phantom validation cases (mean)" in log
    rows = list(csv.DictReader((out / "knee_ct_metrics.csv").open()))
    assert len(rows) == 2 * n_validation + 2 and {r["split"] for r in rows} == {"validation"}
    assert "slice FID" not in log and not (out / "knee_ct_metrics_fid.csv").exists()


def test_the_next_stage_starts_from_the_previous_stages_weights(trained):
    root, _ = trained
    log = _ok(_run("training", ["train.json", "train_64.json"], root, "--image_size", str(VIEWS),
                   "--resolutions", "[8,16]", *TRAIN))
    assert f"loaded the inner stage from {root / 'models' / 'model.pt'}" in log
    assert "new tensors of the added outer level" in log
    inner = torch.load(root / "models" / "model.pt", weights_only=True)
    outer = torch.load(root / "models" / "model_16.pt", weights_only=True)
    assert set(inner) < set(outer) and all(k.startswith("denoiser.outer_levels.0.") for k in set(outer) - set(inner))


def test_inner_stage_loading_keeps_the_inner_outputs_and_names_a_wrong_file():
    from orthogen.errors import InputError
    from orthogen.networks import biplanar_ct_diffusion

    torch.manual_seed(0)
    small, large = biplanar_ct_diffusion("phantom_cpu", (8,)), biplanar_ct_diffusion("phantom_cpu", (8, 16))
    new = large.load_inner_stage(small.state_dict())
    assert new and all(k.startswith("denoiser.outer_levels.0.") for k in new)
    x = [torch.randn(1, 1, 8, 8, 8), torch.randn(1, 1, 16, 16, 16)]
    args = (torch.tensor([300.0]), torch.rand(1, 2, 32, 32), 1.0, 2.0)
    with torch.no_grad():
        assert torch.equal(small(x[:1], *args)[0], large(x, *args)[0])
    with pytest.raises(InputError, match="encoder"):
        large.load_inner_stage({k: v for k, v in small.state_dict().items() if not k.startswith("encoder.stem")})


def test_inference_without_its_weights_file_stops_with_one_line(radiographs, tmp_path):
    folder, _ = radiographs
    out, missing = tmp_path / "out", tmp_path / "models" / "model.pt"
    result = _run("inference", ["inference.json"], BUNDLE, "--input_ap", str(folder / "ap.dcm"),
                  "--input_lateral", str(folder / "lateral.dcm"), "--slice_thickness", "1.0",
                  "--output_dir", str(out), "--ckpt_path", str(missing))
    last = _one_line_error(result, "no such weights file; train the bundle first")
    assert str(missing) in last
    assert not out.exists()


def test_the_shipped_phantom_trained_weights_fit_the_default_network_and_the_default_inference_runs(radiographs,
                                                                                                   tmp_path):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(CONFIGS / "inference.json")
    parser.read_meta(CONFIGS / "metadata.json")
    assert parser["_meta_"]["orthogen_weights"] == "phantom-trained"
    network = parser.get_parsed_content("network_def", instantiate=True)
    weights = torch.load(BUNDLE / "models" / "model.pt", weights_only=True)
    assert network.load_state_dict(weights) is not None  # strict: every key and shape fits
    folder, study = radiographs
    out = tmp_path / "out"
    _ok(_run("inference", ["inference.json"], BUNDLE, "--input_ap", str(folder / "ap.dcm"), "--input_lateral",
             str(folder / "lateral.dcm"), "--slice_thickness", "1.0", "--output_dir", str(out), "--steps", "4"))
    ct = nib.load(next(out.glob("*_ct.nii.gz")))
    assert ct.shape == (32, 32, 32) and np.isfinite(ct.get_fdata()).all()


@pytest.mark.parametrize("value", [0, -0.2, float("nan")])
def test_zero_negative_or_nan_spacing_and_thickness_are_refused_when_the_loaders_are_built(value):
    from orthogen.data.biplanar_conditioning import BiplanarConditioningd
    from orthogen.data.biplanar_input import LoadBiplanarInputd
    from orthogen.errors import InputError

    with pytest.raises(InputError, match="pixel_spacing: expected positive pixel spacings in mm"):
        LoadBiplanarInputd(size=VIEWS, pixel_spacing_mm=value)
    with pytest.raises(InputError, match="slice_thickness: expected a number of mm above 0"):
        BiplanarConditioningd(slice_thickness_mm=value)


def test_evaluating_a_case_file_without_ct_stops_with_one_line(trained, tmp_path):
    root, _ = trained
    case = next((root / "data" / "knee_ct").glob("*.h5"))
    ctless = tmp_path / "no_ct.h5"
    ctless.write_bytes(case.read_bytes())
    with h5py.File(ctless, "a") as f:
        del f["ct"]
    out = tmp_path / "out"
    result = _run("evaluating", ["inference.json", "evaluate.json"], root, *SMALL, *FAST, "--input_h5", str(ctless),
                  "--output_dir", str(out))
    last = _one_line_error(result, "no_ct.h5")
    assert "ct" in last.lower()
    assert not out.exists()


def test_metadata_verifies_and_the_default_network_has_the_declared_inputs_and_outputs():
    from monai.bundle import ConfigParser, verify_metadata, verify_net_in_out

    schema = REPO / "schemas" / "monai_bundle_meta_schema.json"
    meta = CONFIGS / "metadata.json"
    verify_metadata(meta_file=str(meta), filepath=str(schema))
    metadata = json.loads(meta.read_text())
    assert metadata["orthogen_weights"] == "phantom-trained" and metadata["eval_metrics"]["data"].startswith("phantom")
    io = metadata["network_data_format"]
    views = io["inputs"]["views"]
    extra = {"timesteps": torch.tensor([500.0]), "views": torch.rand(1, 2, *views["spatial_shape"]),
             "pixel_spacing": 1.0, "slice_thickness": 1.0}
    verify_net_in_out(net_id="network_def", meta_file=str(meta), config_file=str(CONFIGS / "inference.json"),
                      n=1, any=1, extra_forward_args=extra, device="cpu")
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "inference.json"))
    network = parser.get_parsed_content("network_def").eval()
    size = parser.get_parsed_content("resolutions")[-1]
    assert io["inputs"]["image"]["spatial_shape"] == [size] * 3 == io["outputs"]["pred"]["spatial_shape"]
    assert views["spatial_shape"] == [parser.get_parsed_content("image_size")] * 2 and views["num_channels"] == 2
    with torch.no_grad():
        output = network(torch.randn(1, 1, size, size, size), **extra)
    assert tuple(output.shape) == (1, 1, size, size, size) and output.dtype == torch.float32
    assert sum(p.numel() for p in network.parameters()) == 3_352_961  # encoder 111,456 + denoiser 3,241,505 (views)


def test_bundle_license_is_the_repository_license():
    assert (BUNDLE / "LICENSE").read_bytes() == (REPO / "LICENSE").read_bytes()


@pytest.mark.parametrize("stage, default, paper", [(None, 4, 224), ("train_64.json", 2, 80), ("train_128.json", 1, 16)])
def test_each_stage_trains_with_its_batch_size_and_starts_from_the_previous_stages_weights(stage, default, paper):
    from monai.bundle import ConfigParser

    def stage_weights(prefix: str, resolutions: list[int]) -> str:
        """models/<prefix>.pt for the base stage alone (32^3; models/model.pt is model-zoo's default weights
        file), models/<prefix>_<r>.pt for a later stage ending at r."""
        return f"/b/models/{prefix}.pt" if len(resolutions) == 1 else f"/b/models/{prefix}_{resolutions[-1]}.pt"

    for preset, batch, prefix in (([], default, "model"), (["paper_scale.json"], paper, "model_paper_scale")):
        parser = ConfigParser()
        parser.read_config([str(CONFIGS / name) for name in ("train.json", *([stage] if stage else []), *preset)])
        parser.update({"bundle_root": "/b"})
        resolutions = parser.get_parsed_content("resolutions")
        assert parser.get_parsed_content("batch_size") == batch
        assert parser.get_parsed_content("ckpt_path") == stage_weights(prefix, resolutions)
        expected = stage_weights(prefix, resolutions[:-1]) if stage else ""
        assert parser.get_parsed_content("init_from") == expected


@pytest.mark.slow  # torchrun start-up; the spine bundle's torchrun test stays in the default run
def test_multi_process_training_runs_one_iteration_under_torchrun(trained, tmp_path):
    import os
    import subprocess
    import sys

    root, _ = trained
    files = "[" + ",".join(f"'{CONFIGS / f}'" for f in ("train.json", "multi_gpu_train.json")) + "]"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1", "-m",
               "monai.bundle", "run", "training", "--config_file", files, "--meta_file", str(CONFIGS / "metadata.json"),
               "--bundle_root", str(root), "--ckpt_path", str(tmp_path / "model_8.pt"),
               "--output_dir", str(tmp_path / "runs"), *SMALL, *TRAIN]
    result = subprocess.run(command, capture_output=True, text=True, cwd=root, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-4000:]
    assert (tmp_path / "model_8.pt").is_file()


@pytest.fixture(scope="module")
def super_resolution_trained(trained):
    """train_sr.json one iteration on the 16^3 cases (8^3 training patches): models/model_sr.pt and its log."""
    root, _ = trained
    log = _ok(_run("training", ["train_sr.json"], root, "--dataset_dir", str(root / "data" / "knee_ct"),
                   "--image_size", str(VIEWS), "--sr_training_patch", "8", *TRAIN))
    return root, log


def test_the_super_resolution_stage_trains_on_pairs_from_the_prepared_cubes(super_resolution_trained):
    root, log = super_resolution_trained
    assert "Epoch[1] Complete" in log and "saved the EMA weights" in log
    weights = torch.load(root / "models" / "model_sr.pt", weights_only=True)
    assert weights["unet.conv_in.conv.weight"].shape[1] == 5  # noisy residual + upsampled patch + 3 coordinates
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())


def test_inference_past_the_cascade_writes_a_4x_ct_its_dicom_series_std_map_and_bone_mesh(super_resolution_trained,
                                                                                          radiographs):
    import pydicom
    import trimesh

    root, _ = super_resolution_trained
    folder, study = radiographs
    out = root / "eval_sr"
    log = _ok(_run("inference", ["inference.json"], root, *SMALL, "--steps", "2", "--input_ap",
                   str(folder / "ap.dcm"), "--input_lateral", str(folder / "lateral.dcm"), "--slice_thickness", "2.0",
                   "--resolution", "32", "--samples", "2", "--sr_patch_size", "16", "--sr_steps", "2",
                   "--bone_mesh_hu", "-500", "--output_format", "dicom", "--output_dir", str(out)))
    ct, std = nib.load(out / "ap_ct.nii.gz"), nib.load(out / "ap_ct_std.nii.gz")
    assert ct.shape == std.shape == (32, 32, 32) and np.allclose(ct.affine, std.affine)
    cascade_out = root / "eval_sr_cascade_only"
    _ok(_run("inference", ["inference.json"], root, *SMALL, "--steps", "2", "--input_ap", str(folder / "ap.dcm"),
             "--input_lateral", str(folder / "lateral.dcm"), "--slice_thickness", "2.0", "--output_dir", str(cascade_out)))
    cascade = nib.load(cascade_out / "ap_ct.nii.gz")
    assert cascade.shape == (8, 8, 8)  # the same field of view on a 4x finer grid: same box, a quarter of the voxel
    assert np.allclose(ct.affine[:3, :3], cascade.affine[:3, :3] / 4)
    centre = nib.affines.apply_affine
    assert np.allclose(centre(ct.affine, [15.5] * 3), centre(cascade.affine, [3.5] * 3), atol=1e-4)
    spread = np.asarray(std.dataobj)
    assert spread.min() >= 0 and spread.mean() > 1.0  # HU: two seeds differ
    assert len(sorted((out / "ap_ct_dicom").glob("*.dcm"))) == 32
    header = pydicom.dcmread(next((out / "ap_ct_dicom").glob("*.dcm")), stop_before_pixels=True)
    assert header.StudyInstanceUID == study
    mesh = trimesh.load(out / "ap_bone.stl")
    corners = nib.affines.apply_affine(ct.affine, np.array(np.meshgrid([0, 31], [0, 31], [0, 31])).reshape(3, -1).T)
    assert mesh.is_watertight and mesh.volume > 0
    voxel = float(np.linalg.norm(ct.affine[:3, :3], axis=0).max())  # a surface closed by the pad: <= 1 voxel out
    assert np.all(mesh.bounds[0] >= corners.min(0) - voxel) and np.all(mesh.bounds[1] <= corners.max(0) + voxel)
    assert "bone mesh at -500 HU" in log


def test_an_output_resolution_the_cascade_cannot_reach_stops_with_one_line(trained, radiographs, tmp_path):
    root, _ = trained
    folder, _ = radiographs
    out = tmp_path / "out"
    _one_line_error(_run("inference", ["inference.json"], root, *SMALL, "--input_ap", str(folder / "ap.dcm"),
                         "--input_lateral", str(folder / "lateral.dcm"), "--slice_thickness", "2.0",
                         "--resolution", "64", "--output_dir", str(out)),
                    "resolution: expected one of 8, 32, 128, 512 (the 8^3 cascade times 4^k), got 64")
    assert not out.exists()


@pytest.mark.slow  # about half an hour on 2 CPU cores: two 512^3 super-resolution passes per sample
def test_the_shipped_models_generate_a_512_ct_with_dicom_series_std_map_and_meshes_from_two_radiographs(tmp_path):
    import trimesh

    phantom = KneePhantom.from_seed(399).render(shape=(96, 96, 96), spacing=(1.6, 1.6, 1.6))
    write_case(phantom.volume_hu, phantom.labels, phantom.affine, tmp_path / "phantom", "knee_0399")
    prepare_knee_ct(tmp_path / "phantom", tmp_path / "data", KneeCTPreparation(size=64, drr_size=128, split=(1, 0, 0)))
    out = tmp_path / "out"
    item = json.loads((tmp_path / "data" / "datalist.json").read_text())["training"][0]
    _ok(_run("inference", ["inference.json"], BUNDLE, "--input_h5", str(tmp_path / "data" / item["h5"]),
             "--resolution", "512", "--samples", "2", "--sr_steps", "1", "--sr_patch_size", "128",
             "--output_format", "dicom", "--output_dir", str(out)))
    stem = item["h5"].removesuffix(".h5")
    ct, std = nib.load(out / f"{stem}_ct.nii.gz"), nib.load(out / f"{stem}_ct_std.nii.gz")
    assert ct.shape == std.shape == (512, 512, 512)
    assert float(np.asarray(std.dataobj).mean()) > 0.0
    assert len(list((out / f"{stem}_ct_dicom").glob("*.dcm"))) == 512
    mesh = trimesh.load(out / f"{stem}_bone.stl")
    assert mesh.is_watertight and mesh.volume > 0
