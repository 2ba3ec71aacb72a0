"""The MONAI Label app apps/orthogen_label, in-process (fastapi TestClient on monailabel.app.app), on a
local-folder datastore of phantom inputs made with orthogen: a vertebra's AP + lateral DRRs (the X2CT data
preparation) and a knee's AP DRR with its contour+bone segmentation as the image's label."""
import json
import shutil
import sys
from io import BytesIO
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from bundle_runs import bundle_log
from label_app_studies import SPINE_SIZE, write_label_app_studies

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "apps" / "orthogen_label"
BUNDLES = REPO / "bundles"
SPINE = BUNDLES / "spine_x2ct_gan"
KNEE_UNET = "knee_radiograph_diffusion_unet_contour_bone"
RADIOGRAPH_MODELS = {f"knee_radiograph_diffusion_{v}" for v in
                     ("ctm_contour_bone", "ctm_contour", "unet_contour_bone", "unet_contour", "csm",
                      "ctm_contour_bone_preconditioned", "ctm_contour_preconditioned")}


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    """The datastore folder (tests/label_app_studies.py) and the spine views' detector pixel spacing in mm."""
    root = tmp_path_factory.mktemp("studies")
    return root, write_label_app_studies(tmp_path_factory.mktemp("label_app_inputs"), root)


def _client(monkeypatch, studies: Path, conf: dict):
    """A TestClient of monailabel's server on this app, ``studies`` and ``conf`` (its lifespan starts the app)."""
    from fastapi.testclient import TestClient
    from monailabel.config import settings

    import monailabel.app

    for key, value in {"MONAI_LABEL_APP_DIR": str(APP), "MONAI_LABEL_STUDIES": str(studies),
                       "MONAI_LABEL_APP_CONF": conf, "MONAI_LABEL_SESSIONS": False}.items():
        monkeypatch.setattr(settings, key, value)
    return TestClient(monailabel.app.app)


@pytest.fixture(scope="module")
def client(studies):
    with pytest.MonkeyPatch.context() as monkeypatch, _client(monkeypatch, studies[0], {}) as client:
        yield client


def _infer(client, model: str, image: str, files=None, **params):
    return client.post(f"/infer/{model}", params={"image": image}, data={"params": json.dumps(params)}, files=files)


def _parts(response) -> tuple[dict, bytes]:
    """(params JSON, file bytes) of an infer response (multipart: params + image)."""
    from requests_toolbelt.multipart.decoder import MultipartDecoder

    assert response.status_code == 200, response.text
    parts = {}
    for part in MultipartDecoder(response.content, response.headers["content-type"]).parts:
        disposition = part.headers[b"Content-Disposition"].decode()
        parts["params" if 'name="params"' in disposition else "image"] = part.content
    return json.loads(parts["params"]), parts["image"]


def test_info_lists_every_bundle_with_its_inputs_and_outputs(client):
    info = client.get("/info/").json()
    models, unavailable = info["models"], info["unavailable_models"]
    listed = set(models) | set(unavailable)
    assert listed == {"spine_x2ct_gan", "knee_xray2ct_diffusion"} | RADIOGRAPH_MODELS
    assert set(models).isdisjoint(unavailable)
    for name, model in {**models, **unavailable}.items():
        assert model["type"] == "others" and model["inputs"]["image"]["required"] is True, name
        assert model["outputs"]["file"]["format"] and model["bundle"]["version"], name
        assert model["available"] == (name in models) == Path(model["bundle"]["weights_file"]).is_file(), name
    spine = models["spine_x2ct_gan"]
    assert spine["dimension"] == 3 and spine["inputs"]["lateral"]["required"] is True
    assert set(spine["config"]) == {"lateral", "pixel_spacing"}  # no sampler: a GAN
    assert spine["outputs"]["file"]["spatial_shape"] == [SPINE_SIZE] * 3 and spine["outputs"]["file"]["units"] == "HU"
    knee_ct = {**models, **unavailable}["knee_xray2ct_diffusion"]
    assert set(knee_ct["config"]) == {"lateral", "pixel_spacing", "slice_thickness", "seed", "steps"}
    assert knee_ct["config"]["steps"] == 50 and knee_ct["config"]["seed"] == 0  # the bundle's defaults
    unet = models[KNEE_UNET]
    assert unet["dimension"] == 2 and unet["bundle"]["method"] == {"method": "unet", "condition": "contour_bone"}
    assert unet["config"] == {} and "label" in unet["inputs"]  # one forward pass: no sampler parameters
    assert set(models["knee_radiograph_diffusion_ctm_contour_bone"]["config"]) == {"seed", "steps", "sampler"}
    assert "torchvision" not in sys.modules  # it fails to import beside the CPU torch (shared/STACK.md)


def test_spine_ct_from_ap_and_lateral_is_what_the_bundle_writes_when_run_directly(client, studies, tmp_path):
    root, spacing = studies
    result, payload = _parts(_infer(client, "spine_x2ct_gan", "spine_ap", lateral="spine_lateral",
                                    pixel_spacing=spacing, device="cpu"))
    (tmp_path / "app_ct.nii.gz").write_bytes(payload)
    served = nib.load(tmp_path / "app_ct.nii.gz")
    bundle_log(SPINE / "configs", "inference", ["inference.json"], SPINE, "--input_ap", str(root / "spine_ap.png"),
               "--input_lateral", str(root / "spine_lateral.png"), "--pixel_spacing", str(spacing),
               "--output_dir", str(tmp_path / "direct"))
    direct = nib.load(tmp_path / "direct" / "spine_ap_ct.nii.gz")
    assert served.shape == direct.shape == (SPINE_SIZE,) * 3
    np.testing.assert_allclose(served.affine, direct.affine, atol=1e-5)
    np.testing.assert_allclose(served.get_fdata(), direct.get_fdata(), atol=0.5)  # HU; same weights, same input
    assert np.ptp(served.get_fdata()) > 500  # a CT with bone and air, not a constant volume
    np.testing.assert_allclose(result["output"]["spacing_mm"], [spacing / 1.5] * 3, rtol=1e-5)
    assert result["output"]["shape"] == [SPINE_SIZE] * 3 and result["weights"] == "phantom-trained"
    assert result["inputs"]["input_lateral"] == str(root / "spine_lateral.png")


def test_knee_radiograph_from_the_images_segmentation_label(client, studies):
    root, _ = studies
    result, payload = _parts(_infer(client, KNEE_UNET, "knee_ap"))
    with Image.open(BytesIO(payload)) as picture:
        generated = np.asarray(picture, dtype=np.float64) / 65535.0
    with Image.open(root / "knee_ap.png") as picture:
        drr = np.asarray(picture, dtype=np.float64) / 65535.0
    assert generated.shape == drr.shape == (64, 64) and result["output"]["shape"] == [64, 64]
    assert result["inputs"]["input_segmentation"] == str(root / "labels" / "final" / "knee_ap.png")
    mae = float(np.abs(generated - drr).mean())
    # the U-Net's phantom test MAE is 0.014 (bundle docs); the mean training radiograph's 0.05
    assert mae < 0.04, mae
    # the same segmentation uploaded as the label of another image gives the same radiograph
    with open(root / "labels" / "final" / "knee_ap.png", "rb") as upload:
        again, payload = _parts(_infer(client, KNEE_UNET, "spine_ap", files={"label": ("seg.png", upload)}))
    with Image.open(BytesIO(payload)) as picture:
        np.testing.assert_array_equal(np.asarray(picture, dtype=np.float64) / 65535.0, generated)
    assert again["inputs"]["input_segmentation"] != result["inputs"]["input_segmentation"]


def test_the_ctm_takes_sampler_steps_and_seed(client):
    def sample(seed: int) -> np.ndarray:
        result, payload = _parts(_infer(client, "knee_radiograph_diffusion_ctm_contour_bone", "knee_ap",
                                        sampler="ode", steps=2, seed=seed))
        assert result["parameters"] == {"sampler": "ode", "steps": 2, "seed": seed}
        with Image.open(BytesIO(payload)) as picture:
            return np.asarray(picture, dtype=np.float64)

    first, again, other = sample(1), sample(1), sample(2)
    np.testing.assert_array_equal(first, again)  # seeded
    assert np.abs(first - other).mean() > 1.0  # another seed, another sample (16-bit grey levels)


def test_the_preconditioned_ctm_runs_its_bundle_config_with_the_ode_sampler_by_default(client, studies):
    """A model that declares its own config files (orthogen_models configs: preconditioned.json) loads its
    own weights into its own network; its default sampler is the deterministic ODE (99 evaluations)."""
    root, _ = studies
    model = "knee_radiograph_diffusion_ctm_contour_bone_preconditioned"
    info = client.get("/info/").json()["models"][model]
    assert info["config"] == {"sampler": "ode", "steps": None, "seed": 0}
    assert info["bundle"]["weights_file"].endswith("models/ctm_contour_bone_preconditioned.pt")
    result, payload = _parts(_infer(client, model, "knee_ap"))
    assert result["parameters"]["sampler"] == "ode" and result["weights_file"] == info["bundle"]["weights_file"]
    with Image.open(BytesIO(payload)) as picture:
        generated = np.asarray(picture, dtype=np.float64) / 65535.0
    with Image.open(root / "knee_ap.png") as picture:
        drr = np.asarray(picture, dtype=np.float64) / 65535.0
    mae = float(np.abs(generated - drr).mean())
    # its ODE's phantom test MAE is 0.014 (bundle docs); the mean training radiograph's 0.05
    assert mae < 0.04, mae


def test_an_unknown_model_is_404_naming_it(client):
    response = _infer(client, "spine_x3ct", "spine_ap", lateral="spine_lateral")
    assert response.status_code == 404
    assert "'spine_x3ct'" in response.json()["detail"] and "spine_x2ct_gan" in response.json()["detail"]


@pytest.mark.parametrize("image, params, field, words", [
    ("spine_ap", {"pixel_spacing": 1.0}, "lateral", "missing"),
    ("spine_ap", {"lateral": "spine_side"}, "lateral", "'spine_side'"),
    ("spine_ap", {"lateral": "spine_ap", "pixel_spacing": 1.0}, "lateral", "same image"),
    ("spine_ap", {"lateral": "spine_lateral", "pixel_spacing": -2}, "pixel_spacing", "> 0"),
    ("spine_ap", {"lateral": "spine_lateral", "steps": 5}, "steps", "takes no"),
    ("spine_ap", {"lateral": "spine_lateral", "pixel_spacing": 1.0, "device": "tpu"}, "device", "'tpu'"),
    ("broken", {"lateral": "spine_lateral", "pixel_spacing": 1.0}, "broken.png", ""),
])
def test_a_bad_x2ct_request_is_400_naming_the_field(client, image, params, field, words):
    response = _infer(client, "spine_x2ct_gan", image, **params)
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert field in detail and words in detail and "\n" not in detail


def test_a_bad_radiograph_request_is_400_naming_the_field(client):
    response = _infer(client, "knee_radiograph_diffusion_ctm_contour_bone", "knee_ap", sampler="euler")
    assert response.status_code == 400 and response.json()["detail"].startswith("sampler: ")
    response = _infer(client, KNEE_UNET, "spine_ap")  # an image without a label
    assert response.status_code == 400 and "'spine_ap' has no label with tag 'final'" in response.json()["detail"]


def test_bundles_without_weights_or_readable_configs_are_listed_unavailable_with_the_reason(tmp_path, monkeypatch):
    shutil.copytree(SPINE / "configs", tmp_path / "bundles" / "spine_x2ct_gan" / "configs")
    broken = tmp_path / "bundles" / "half_written" / "configs"
    broken.mkdir(parents=True)
    shutil.copy(SPINE / "configs" / "metadata.json", broken)
    (broken / "inference.json").write_text("{")
    with _client(monkeypatch, tmp_path / "studies", {"bundles": str(tmp_path / "bundles")}) as client:
        info = client.get("/info/").json()
        assert info["models"] == {} and set(info["unavailable_models"]) == {"spine_x2ct_gan", "half_written"}
        assert info["unavailable_models"]["half_written"]["unavailable_reason"].startswith(
            f"{broken / 'inference.json'}: not JSON")
        reason = info["unavailable_models"]["spine_x2ct_gan"]["unavailable_reason"]
        weights = tmp_path / "bundles" / "spine_x2ct_gan" / "models" / "model.pt"
        assert reason.startswith(f"{weights}: no such weights file")
        response = _infer(client, "spine_x2ct_gan", "any", lateral="other")
        assert response.status_code == 503 and reason in response.json()["detail"]
        weights.parent.mkdir()
        shutil.copy(SPINE / "models" / "model.pt", weights)  # weights written while the app runs
        info = client.get("/info/").json()
        assert set(info["models"]) == {"spine_x2ct_gan"} and set(info["unavailable_models"]) == {"half_written"}


def test_a_model_naming_a_config_its_bundle_lacks_makes_the_bundle_unavailable_saying_which(tmp_path, monkeypatch):
    configs = tmp_path / "bundles" / "knee_radiograph_diffusion" / "configs"
    shutil.copytree(BUNDLES / "knee_radiograph_diffusion" / "configs", configs)
    metadata = json.loads((configs / "metadata.json").read_text())
    metadata["orthogen_models"]["ctm_contour_bone_preconditioned"]["configs"] = ["preconditionned.json"]
    (configs / "metadata.json").write_text(json.dumps(metadata))
    with _client(monkeypatch, tmp_path / "studies", {"bundles": str(tmp_path / "bundles")}) as client:
        info = client.get("/info/").json()
    assert info["models"] == {} and set(info["unavailable_models"]) == {"knee_radiograph_diffusion"}
    reason = info["unavailable_models"]["knee_radiograph_diffusion"]["unavailable_reason"]
    assert reason.startswith(f"{configs / 'metadata.json'}: ") and "'preconditionned.json'" in reason
