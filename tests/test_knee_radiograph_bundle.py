"""The knee_radiograph_diffusion bundle run by `python -m monai.bundle`: each method trains (one epoch on a
tiny phantom set) and the default inference config samples from what it wrote; metadata and network I/O."""
import json
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from orthogen.data.case_layout import write_case
from orthogen.data.knee_radiograph_prepare import KneeRadiographPreparation, prepare_knee_radiographs
from orthogen.phantoms import KneePhantom

from bundle_runs import bundle_log

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "knee_radiograph_diffusion"
CONFIGS = BUNDLE / "configs"
SIZE = 32  # small images for the tests; the default network is the 64x64 one
SMALL = ["--image_size", str(SIZE), "--batch_size", "4", "--max_epochs", "1", "--validation_steps", "2"]
TRAINING = {"ctm": "train_ctm.json", "csm": "train_csm.json", "unet": "train_unet.json"}


_bundle = partial(bundle_log, CONFIGS)  # _bundle(run_id, config_files, bundle_root, *overrides) -> log


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A bundle root with a prepared phantom dataset: 5 knees, 6 views each at 32x32."""
    root = tmp_path_factory.mktemp("knee_bundle")
    for seed in range(5):
        p = KneePhantom.from_seed(seed).render(shape=(32, 32, 32), spacing=(4.0, 4.0, 4.0))
        write_case(p.volume_hu, p.labels, p.affine, root / "phantoms", f"knee_{seed:04d}")
    prepare_knee_radiographs(root / "phantoms", root / "data" / "knee_radiographs",
                             KneeRadiographPreparation(size=SIZE, views=6))
    return root


@pytest.fixture(scope="module")
def trained(root):
    """Each method trained for one epoch on the contour+bone condition."""
    logs = {method: _bundle("training", ["train.json", config], root, *SMALL, "--method", method)
            for method, config in TRAINING.items()}
    return root, logs


def test_each_method_trains_and_writes_its_ema_weights(trained):
    root, logs = trained
    for weights_file in ("model.pt", "csm.pt", "unet_contour_bone.pt"):  # model.pt: the CTM contour+bone
        weights = torch.load(root / "models" / weights_file, weights_only=True)
        assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
    for log in logs.values():
        assert "Epoch[1] Complete" in log and "saved the EMA weights" in log
    assert list((root / "runs" / "ctm_contour_bone").glob("training_state_checkpoint_epoch=1.pt"))


def test_each_epoch_scores_the_ema_on_validation_images_and_keeps_the_best(trained):
    """Validation after every epoch: PSNR and MAE of the EMA network's radiographs (the stochastic Heun
    sampler; 2 levels here, 10 by default) on the validation split; the best EMA by PSNR is kept beside the
    last one."""
    import re

    root, logs = trained
    for method, name, weights_file in (("ctm", "ctm_contour_bone", "model.pt"), ("csm", "csm", "csm.pt"),
                                       ("unet", "unet_contour_bone", "unet_contour_bone.pt")):
        psnr = re.search(r"Key metric: val_psnr best value: ([-\d.]+) at epoch: 1", logs[method])
        assert psnr and 0.0 < float(psnr.group(1)) < 60.0, logs[method][-2000:]
        assert re.search(r"val_mae: 0\.\d+", logs[method])
        best = torch.load(root / "runs" / name / "best_validation_psnr.pt", weights_only=True)
        last = torch.load(root / "models" / weights_file, weights_only=True)
        assert set(best) == set(last) and all(torch.equal(best[k], last[k]) for k in last)  # one epoch: the same EMA


@pytest.mark.parametrize("method, sampler", [("ctm", "pc"), ("csm", "ode"), ("unet", "pc")])
def test_default_inference_loads_the_trained_weights_and_writes_a_radiograph_per_test_image(trained, method, sampler):
    root, _ = trained
    out = root / f"eval_{method}"
    _bundle("inference", ["inference.json"], root, "--image_size", str(SIZE), "--method", method,
            "--sampler", sampler, "--steps", "2", "--output_dir", str(out))
    test_items = json.loads((root / "data" / "knee_radiographs" / "datalist.json").read_text())["test"]
    written = sorted(out.glob("*_radiograph.png"))
    assert len(written) == len(test_items)
    with Image.open(written[0]) as picture:
        assert picture.size == (SIZE, SIZE)


def test_the_preconditioned_override_trains_its_own_weights_and_samples_from_them(root, tmp_path):
    """configs/preconditioned.json (Karras et al.'s preconditioning, beyond the seed) switches training and
    inference together: the EMA goes to models/ctm_<condition>_preconditioned.pt, which inference loads
    into the same preconditioned network; the seed-network weights are not touched."""
    log = _bundle("training", ["train.json", "train_ctm.json", "preconditioned.json"], root, *SMALL,
                  "--validation_interval", "0", "--output_dir", str(tmp_path / "runs"))
    assert "Epoch[1] Complete" in log
    weights = torch.load(root / "models" / "ctm_contour_bone_preconditioned.pt", weights_only=True)
    assert any(key.startswith("backbone.") for key in weights)
    out = tmp_path / "eval"
    _bundle("inference", ["inference.json", "preconditioned.json"], root, "--image_size", str(SIZE),
            "--sampler", "ode", "--steps", "2", "--output_dir", str(out))
    test_items = json.loads((root / "data" / "knee_radiographs" / "datalist.json").read_text())["test"]
    assert len(list(out.glob("*_radiograph.png"))) == len(test_items)


def test_a_user_segmentation_gives_k_samples_a_std_map_and_a_dicom_with_spacing(trained, tmp_path):
    import pydicom

    root, _ = trained
    segmentation = np.zeros((SIZE, SIZE), np.uint8)
    segmentation[4:28, 8:24] = 128
    segmentation[10:22, 12:20] = 255
    Image.fromarray(segmentation).save(tmp_path / "knee_seg.png")
    out = tmp_path / "out"
    _bundle("inference", ["inference.json"], root, "--image_size", str(SIZE), "--input_segmentation",
            str(tmp_path / "knee_seg.png"), "--samples", "2", "--sampler", "ode", "--steps", "2",
            "--output_format", "dicom", "--output_dir", str(out))
    names = sorted(p.name for p in out.iterdir())
    assert "knee_seg_radiograph.png" in names and "knee_seg_std.png" in names
    dicom = pydicom.dcmread(out / "knee_seg_radiograph.dcm")
    assert (dicom.Rows, dicom.Columns) == (SIZE, SIZE)
    assert "synthetic" in dicom.SeriesDescription


def test_evaluation_writes_the_metric_table_row(trained):
    root, _ = trained
    log = _bundle("evaluating", ["inference.json", "evaluate.json"], root, "--image_size", str(SIZE),
                  "--method", "unet")
    rows = (root / "eval" / "radiograph_metrics_unet_contour_bone.csv").read_text().splitlines()
    n_test = len(json.loads((root / "data" / "knee_radiographs" / "datalist.json").read_text())["test"])
    assert len(rows) == 1 + n_test + 2 and "phantom" in rows[1]
    assert "MAE" in log and "PSNR" in log
    _bundle("evaluating", ["inference.json", "evaluate.json"], root, "--image_size", str(SIZE), "--method", "ctm",
            "--sampler", "ode", "--steps", "2", "--test_images", "2")
    rows = (root / "eval" / "radiograph_metrics_ctm_contour_bone.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 + 2 and "CTM, ODE sampler, 3 NFE per sample" in rows[1]
    table = (root / "eval" / "table_one_phantom.csv").read_text().splitlines()
    assert [line.split(",")[1:3] for line in table[1:]] == [["unet", "contour_bone"], ["ctm", "contour_bone"]]


def test_metadata_and_the_default_network_match():
    from monai.bundle import ConfigParser, verify_metadata, verify_net_in_out

    schema = REPO / "schemas" / "monai_bundle_meta_schema.json"
    verify_metadata(meta_file=str(CONFIGS / "metadata.json"), filepath=str(schema))
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "inference.json"))
    parser.read_meta(str(CONFIGS / "metadata.json"))
    network = parser.get_parsed_content("network_def")
    verify_net_in_out(net_id="network_def", meta_file=str(CONFIGS / "metadata.json"),
                      config_file=str(CONFIGS / "inference.json"), n=1, any=8, extra_forward_args={"sigma": 1.0},
                      device="cpu")
    assert sum(p.numel() for p in network.parameters() if p.requires_grad) == 2_478_017  # CTM, 64x64


def test_training_resumes_from_its_training_state(trained, tmp_path):
    root, _ = trained
    state = root / "runs" / "ctm_contour_bone" / "training_state_checkpoint_epoch=1.pt"
    log = _bundle("training", ["train.json", "train_ctm.json"], root, *SMALL,
                  "--resume_from", str(state), "--output_dir", str(tmp_path / "runs"))
    assert f"Restored all variables from {state}" in log and "Epoch[1] Complete" in log


def test_the_default_inference_command_runs_with_the_shipped_ctm_weights(tmp_path):
    segmentation = np.zeros((64, 64), np.uint8)
    segmentation[8:56, 16:48] = 128
    segmentation[20:44, 24:40] = 255
    Image.fromarray(segmentation).save(tmp_path / "seg.png")
    _bundle("inference", ["inference.json"], BUNDLE, "--input_segmentation", str(tmp_path / "seg.png"),
            "--sampler", "stochastic_heun", "--churn", "5.0", "--steps", "3", "--output_dir", str(tmp_path / "out"))
    with Image.open(tmp_path / "out" / "seg_radiograph.png") as picture:
        generated = np.asarray(picture, dtype=np.float64) / 65535.0
    assert generated.shape == (64, 64) and np.isfinite(generated).all()


@pytest.mark.parametrize("method, condition", [("ctm", "contour_bone"), ("ctm", "contour"), ("unet", "contour_bone"),
                                               ("unet", "contour"), ("csm", "contour_bone")])
def test_each_shipped_model_fits_the_default_network_of_its_method(method, condition):
    """The five phantom-trained models of Table I load into the network inference.json builds for them; the
    default one (CTM, contour+bone) is models/model.pt, the file model-zoo's verify_bundle requires."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "inference.json"))
    parser.update({"bundle_root": str(BUNDLE), "method": method, "condition": condition,
                   "device": "$torch.device('cpu')"})
    loader = parser.get_parsed_content("checkpoint_loader")  # reads and checks the weights: InputError otherwise
    name = "csm" if method == "csm" else f"{method}_{condition}"
    assert Path(loader.load_path) == BUNDLE / "models" / ("model.pt" if name == "ctm_contour_bone" else f"{name}.pt")


@pytest.mark.parametrize("condition", ["contour_bone", "contour"])
def test_the_shipped_preconditioned_ctm_draws_unseen_knees_from_their_segmentation_at_high_noise(condition, tmp_path):
    """Why the preconditioned CTMs ship (0.5.0; configs/preconditioned.json): at sigma 20, where the noisy
    image says next to nothing, their one-step denoiser D = clip(x + sigma^2 score, 0, 1) still draws the
    radiograph from the segmentation: near the truth with the image's own segmentation, far from it with
    another view's. The seed's network (models/ctm_<condition>.pt) had lost its condition there (docs/README.md:
    13.0 against 11.9 dB on phantom validation images). Data: 2 phantom knees outside the training seeds, 4 views each."""
    from monai.bundle import ConfigParser

    from orthogen.data.knee_radiograph_prepare import render_case
    from orthogen.metrics.radiograph import radiograph_metrics

    prep = KneeRadiographPreparation(size=64, views=4)
    items = []
    for seed in (500, 501):
        p = KneePhantom.from_seed(seed).render(shape=(80, 80, 80), spacing=(2.0, 2.0, 2.0))
        case = write_case(p.volume_hu, p.labels, p.affine, tmp_path / "phantoms", f"knee_{seed:04d}")
        items += render_case(case.image, tmp_path / "data", prep)
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / "inference.json"), str(CONFIGS / "preconditioned.json")])
    parser.update({"bundle_root": str(BUNDLE), "condition": condition, "device": "$torch.device('cpu')"})
    network = parser.get_parsed_content("network")
    parser.get_parsed_content("checkpoint_loader")(None)  # reads and checks models/ctm_<condition>_preconditioned.pt
    network.eval()
    preprocessing = parser.get_parsed_content("preprocessing")
    loaded = [preprocessing({"image": str(tmp_path / "data" / i[condition]),
                             "label": str(tmp_path / "data" / i["image"])}) for i in items]
    segmentation = torch.stack([item["image"].as_tensor() for item in loaded])
    truth = torch.stack([item["label"].as_tensor() for item in loaded])
    sigma = torch.full((len(items),), 20.0)
    x = truth + 20.0 * torch.randn(truth.shape, generator=torch.Generator().manual_seed(0))

    def psnr(condition_images):
        with torch.no_grad():
            denoised = (x + 400.0 * network(torch.cat([x, condition_images], dim=1), sigma)).clamp(0, 1)
        return float(np.mean([radiograph_metrics(denoised[i], truth[i])["PSNR"] for i in range(len(items))]))

    own, other = psnr(segmentation), psnr(segmentation.roll(len(items) // 2, dims=0))
    assert own > 27.0 and own - other > 6.0, (own, other)
