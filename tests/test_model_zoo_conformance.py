"""Model-zoo conformance: every bundle, as our zoo ships it, passes Project-MONAI/model-zoo's own bundle check.

Model-zoo's CI runs ``ci/verify_bundle.py`` on each bundle; its ``min`` mode is vendored, pinned, in
``tests/third_party/model_zoo_ci`` (commit and changes named there) and checks, in this order:

1. the directory: ``configs/metadata.json`` and ``LICENSE`` are there ("necessary"), so are
   ``models/model.pt`` and ``configs/inference.{json,yaml,yml}`` ("preferred", but only two model-zoo
   bundles are exempt), after downloading the files a bundle lists in ``large_files.{json,yaml,yml}``
   (ours list none: their weights are in git);
2. version and changelog: the metadata has both, its ``version`` is a key of its ``changelog``, and the
   zoo's index of released versions, ``model_info.json`` beside the bundles, has no ``<name>_v<version>``;
3. the metadata against its schema: ``monai.bundle.verify_metadata`` with the schema already in
   ``eval/schema.json`` (model-zoo's ``ci/prepare_schema.py`` downloads it there first; here it is the
   offline copy ``schemas/monai_bundle_meta_schema.json`` of the schema the bundles name).

Each bundle is checked as its zoo zip holds it: its git-tracked files (``orthogen.model_zoo.shipped_files``),
copied into a scratch ``models/`` folder. Our index there is empty: OrthoGen publishes no released zoo
whose versions a bundle could collide with; a test shows the check refuses a listed version. Nothing is
downloaded: MONAI's downloader is replaced by one that fails the test.

Beyond verify_bundle: the default inference loads ``models/model.pt`` (so the file model-zoo wants is
the model a user gets), and every entry of a ``*_data_format`` is a tensor description with the fields
the schema's ``tensor`` requires (MONAI's bundle specification: format specifiers "must be a dictionary
containing at least these keys"), which the schema alone does not demand: its ``argument`` also admits a
bare string or number.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import jsonschema
import monai.apps.utils
import pytest
from monai.bundle import ConfigParser

from orthogen.model_zoo import shipped_files
from third_party.model_zoo_ci.verify_bundle import verify

REPO = Path(__file__).resolve().parents[1]
BUNDLES = sorted(folder for folder in (REPO / "bundles").iterdir() if (folder / "configs" / "metadata.json").is_file())
SCHEMA = REPO / "schemas" / "monai_bundle_meta_schema.json"
DATA_FORMAT_SECTIONS = ("inputs", "outputs", "post_processed_outputs")


@pytest.fixture(autouse=True)
def no_download(monkeypatch):
    """Any download (the schema, a large file) fails the test; verify() prepends to sys.path: restored."""

    def refuse(url, *args, **kwargs):
        raise AssertionError(f"tried to download {url}")

    monkeypatch.setattr(monai.apps.utils, "_download_with_progress", refuse)
    monkeypatch.setattr(sys, "path", list(sys.path))


def _zoo_copy(bundle: Path, models_path: Path) -> Path:
    """The bundle's shipped files copied to ``models_path/<name>/``, its schema prepared in eval/schema.json
    as model-zoo's CI prepares it, and ``models_path/model_info.json`` (an empty index) unless there."""
    copy = models_path / bundle.name
    for relative in shipped_files(bundle):
        (copy / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(bundle / relative, copy / relative)
    (copy / "eval").mkdir()
    shutil.copyfile(SCHEMA, copy / "eval" / "schema.json")
    index = models_path / "model_info.json"
    if not index.exists():
        index.write_text("{}")
    return copy


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> Path:
    """A model-zoo style ``models/`` folder holding every bundle as shipped."""
    models_path = tmp_path_factory.mktemp("zoo") / "models"
    for bundle in BUNDLES:
        _zoo_copy(bundle, models_path)
    return models_path


def _metadata(copy: Path) -> dict:
    return json.loads((copy / "configs" / "metadata.json").read_text())


def _write_metadata(copy: Path, metadata: dict) -> None:
    (copy / "configs" / "metadata.json").write_text(json.dumps(metadata, indent=4))


def tensor_description_errors(metadata: dict) -> list[str]:
    """``<format>.<section>.<name>: <problem>`` for each entry of the metadata's ``*_data_format`` sections
    that is not a tensor description valid against the local schema's ``tensor`` definition."""
    tensor = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())["definitions"]["tensor"])
    errors = []
    for key in sorted(k for k in metadata if k.endswith("_data_format")):
        for section in DATA_FORMAT_SECTIONS:
            for name, entry in metadata[key].get(section, {}).items():
                problem = jsonschema.exceptions.best_match(tensor.iter_errors(entry))
                if problem is not None:
                    errors.append(f"{key}.{section}.{name}: {problem.message}")
    return errors


@pytest.mark.parametrize("bundle", BUNDLES, ids=[b.name for b in BUNDLES])
def test_each_bundle_as_shipped_passes_model_zoos_verify_bundle_in_min_mode(bundle, zoo, capsys):
    copy = zoo / bundle.name
    assert not list(copy.glob("large_files.*"))  # so verify_bundle has nothing to download
    verify(bundle.name, str(zoo), mode="min")
    assert capsys.readouterr().out.splitlines() == [
        f"start verifying {bundle.name}:", "directory is verified correctly.",
        "version and changelog are verified correctly.", "metadata format is verified correctly."]


@pytest.mark.parametrize("bundle, removed, message", [
    ("knee_radiograph_diffusion", "models/model.pt", "necessary file models/model.pt is not existing."),
    ("knee_xray2ct_diffusion", "models/model.pt", "necessary file models/model.pt is not existing."),
    ("spine_x2ct_gan", "models/model.pt", "necessary file models/model.pt is not existing."),
    ("spine_x2ct_gan", "LICENSE", "necessary file LICENSE is not existing."),
    ("spine_x2ct_gan", "configs/metadata.json", "necessary file configs/metadata.json is not existing."),
    ("spine_x2ct_gan", "configs/inference.json", "inference config file is not existing."),
])
def test_verify_bundle_refuses_a_bundle_without_a_file_it_requires(bundle, removed, message, tmp_path):
    copy = _zoo_copy(REPO / "bundles" / bundle, tmp_path / "models")
    (copy / removed).unlink()
    with pytest.raises(ValueError, match=f"^{message}$"):
        verify(bundle, str(tmp_path / "models"), mode="min")


def test_verify_bundle_refuses_a_released_version_and_a_version_missing_from_the_changelog(tmp_path):
    name = "spine_x2ct_gan"
    copy = _zoo_copy(REPO / "bundles" / name, tmp_path / "models")
    version = _metadata(copy)["version"]
    index = tmp_path / "models" / "model_info.json"
    index.write_text(json.dumps({f"{name}_v{version}": {"checksum": "0" * 64, "source": f"{name}_v{version}.zip"}}))
    with pytest.raises(ValueError, match=f"version number: {version} is already used"):
        verify(name, str(tmp_path / "models"), mode="min")
    index.write_text("{}")
    metadata = _metadata(copy)
    metadata["version"] = "99.0.0"
    _write_metadata(copy, metadata)
    with pytest.raises(ValueError, match="version number: 99.0.0 is missing in 'changelog'"):
        verify(name, str(tmp_path / "models"), mode="min")


def test_verify_bundle_refuses_metadata_the_schema_refuses(tmp_path):
    name = "knee_xray2ct_diffusion"
    copy = _zoo_copy(REPO / "bundles" / name, tmp_path / "models")
    metadata = _metadata(copy)
    metadata["network_data_format"]["inputs"]["timesteps"]["num_channels"] = "1"
    _write_metadata(copy, metadata)
    with pytest.raises(ValueError, match="Failed validating"):
        verify(name, str(tmp_path / "models"), mode="min")


def test_the_bundles_name_the_schema_that_the_offline_copy_reproduces():
    described = json.loads(SCHEMA.read_text())["description"]
    for bundle in BUNDLES:
        url = json.loads((bundle / "configs" / "metadata.json").read_text())["schema"]
        assert url in described, bundle.name


@pytest.mark.parametrize("bundle", BUNDLES, ids=[b.name for b in BUNDLES])
def test_the_default_inference_loads_models_model_pt(bundle):
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    parser.read_meta(str(bundle / "configs" / "metadata.json"))
    parser.update({"bundle_root": str(bundle)})
    assert Path(parser.get_parsed_content("ckpt_path")) == bundle / "models" / "model.pt"


@pytest.mark.parametrize("bundle", BUNDLES, ids=[b.name for b in BUNDLES])
def test_every_data_format_entry_is_a_tensor_description(bundle):
    assert tensor_description_errors(json.loads((bundle / "configs" / "metadata.json").read_text())) == []


def test_a_bare_string_data_format_entry_is_refused():
    metadata = json.loads((REPO / "bundles" / "knee_xray2ct_diffusion" / "configs" / "metadata.json").read_text())
    metadata["network_data_format"]["inputs"]["timesteps"] = "float32 (B,): diffusion time, 0 to 1000"
    del metadata["inference_data_format"]["inputs"]["slice_thickness"]["dtype"]
    assert tensor_description_errors(metadata) == [
        "inference_data_format.inputs.slice_thickness: 'dtype' is a required property",
        "network_data_format.inputs.timesteps: 'float32 (B,): diffusion time, 0 to 1000' is not of type 'object'",
    ]
