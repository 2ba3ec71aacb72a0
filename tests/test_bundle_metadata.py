"""Bundle metadata. Every bundle's: its version pins are the installed versions (and pyproject.toml's exact
pins), and it pins every package its code loads. spine_x2ct_gan's: valid against the local MONAI meta schema
(offline), in step with configs/inference.json, and the network's inputs/outputs match it."""
from __future__ import annotations

import copy
import importlib.metadata
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import jsonschema
import monai
import monai.apps.utils
import pytest
import torch
from monai.bundle import ConfigParser, verify_metadata, verify_net_in_out
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from package_imports import REPO, is_of_package, is_standard_library, package_modules, third_party_loaded_by

BUNDLES = sorted(folder for folder in (REPO / "bundles").iterdir()
                 if (folder / "configs" / "metadata.json").is_file())
BUNDLE = REPO / "bundles" / "spine_x2ct_gan"
META = BUNDLE / "configs" / "metadata.json"
INFERENCE = BUNDLE / "configs" / "inference.json"
SCHEMA = REPO / "schemas" / "monai_bundle_meta_schema.json"
REQUIRED = json.loads(SCHEMA.read_text())["required"]


@pytest.fixture(autouse=True)
def no_download(monkeypatch):
    """Any attempt of verify_metadata to download the schema fails the test."""

    def refuse(url, *args, **kwargs):
        raise AssertionError(f"tried to download {url}")

    monkeypatch.setattr(monai.apps.utils, "_download_with_progress", refuse)


def _metadata() -> dict:
    return json.loads(META.read_text())


def _verify(metadata: dict, tmp_path: Path) -> None:
    path = tmp_path / "metadata.json"
    path.write_text(json.dumps(metadata))
    verify_metadata(meta_file=str(path), filepath=str(SCHEMA), create_dir=False)


def test_local_schema_is_a_draft07_schema_with_the_model_zoo_required_fields():
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    assert REQUIRED == [
        "schema", "version", "monai_version", "pytorch_version", "numpy_version", "required_packages_version",
        "task", "description", "authors", "copyright", "network_data_format",
    ]


def test_bundle_metadata_verifies_offline_against_the_local_schema():
    verify_metadata(meta_file=str(META), filepath=str(SCHEMA), create_dir=False)


@pytest.mark.parametrize("field", REQUIRED)
def test_metadata_without_a_required_field_fails(field, tmp_path):
    metadata = _metadata()
    del metadata[field]
    with pytest.raises(jsonschema.ValidationError, match=f"'{field}' is a required property"):
        jsonschema.validate(metadata, json.loads(SCHEMA.read_text()))
    # MONAI refuses a metadata file without "schema" before validating (it needs the URL)
    message = "must provide the `schema` field" if field == "schema" else f"'{field}' is a required property"
    with pytest.raises(ValueError, match=message):
        _verify(metadata, tmp_path)


@pytest.mark.parametrize(
    "path, value",
    [
        (("network_data_format", "inputs", "image", "num_channels"), "2"),
        (("network_data_format", "outputs", "pred", "value_range"), [0, "1"]),
        (("references",), "one string instead of a list"),
        (("authors",), ["a list instead of a string"]),
    ],
)
def test_metadata_with_a_wrong_type_fails(path, value, tmp_path):
    metadata = _metadata()
    node = metadata
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ValueError, match="Failed validating"):
        _verify(metadata, tmp_path)


def test_tensor_description_without_dtype_fails(tmp_path):
    metadata = copy.deepcopy(_metadata())
    del metadata["network_data_format"]["outputs"]["pred"]["dtype"]
    with pytest.raises(ValueError, match="Failed validating"):
        _verify(metadata, tmp_path)


def pyproject_pins() -> dict[str, str]:
    """{canonical distribution name: version} of the project's exactly pinned (``==``) dependencies."""
    pins = {}
    for line in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]:
        requirement = Requirement(line)
        exact = [spec.version for spec in requirement.specifier if spec.operator == "=="]
        if exact:
            pins[canonicalize_name(requirement.name)] = exact[0]
    return pins


def metadata_pins(metadata: dict) -> dict[str, str]:
    """{canonical distribution name: version} of every version a bundle's metadata pins."""
    pins = {"monai": metadata["monai_version"], "torch": metadata["pytorch_version"],
            "numpy": metadata["numpy_version"]}
    for field in ("required_packages_version", "optional_packages_version"):
        pins.update({canonicalize_name(name): version for name, version in metadata.get(field, {}).items()})
    return pins


def distributions_loaded_by(bundle: Path) -> set[str]:
    """Canonical names of the distributions that loading a bundle's code imports: the orthogen modules its
    configs name (``_target_``s, ``$`` expressions) with every module they import when loaded, and the
    other modules its configs import or target (``$import x``, ``ignite.handlers.ProgressBar``)."""
    modules = package_modules()
    orthogen_names, third_party = set(), set()
    for config in (bundle / "configs").glob("*.json"):
        text = config.read_text()
        for dotted in re.findall(r"\borthogen(?:\.\w+)*", text):
            parts = dotted.split(".")
            orthogen_names.add(next(".".join(parts[:i]) for i in range(len(parts), 0, -1)
                                    if ".".join(parts[:i]) in modules))
        targets = re.findall(r'"_target_": "(\w+(?:\.\w+)+)"', text) + re.findall(r"\$import (\w+)", text)
        third_party |= {name.split(".")[0] for name in targets
                        if not is_of_package(name) and not is_standard_library(name)}
    tops = third_party | third_party_loaded_by(orthogen_names)
    distributions = importlib.metadata.packages_distributions()
    return {canonicalize_name(dist) for top in tops for dist in distributions.get(top, [top])}


@pytest.mark.parametrize("bundle", BUNDLES, ids=[b.name for b in BUNDLES])
def test_metadata_versions_are_the_installed_and_pinned_ones(bundle):
    pins = metadata_pins(json.loads((bundle / "configs" / "metadata.json").read_text()))
    installed = {name: Version(importlib.metadata.version(name)).public for name in pins}  # 2.13.0+cpu -> 2.13.0
    assert pins == installed
    exact = pyproject_pins()
    both = pins.keys() & exact.keys()
    assert {name: pins[name] for name in both} == {name: exact[name] for name in both}


@pytest.mark.parametrize("bundle", BUNDLES, ids=[b.name for b in BUNDLES])
def test_metadata_pins_every_package_the_bundles_code_loads(bundle):
    pinned = set(metadata_pins(json.loads((bundle / "configs" / "metadata.json").read_text())))
    missing = distributions_loaded_by(bundle) - pinned
    assert not missing, f"{bundle.name}/configs/metadata.json pins no version of {sorted(missing)}"


def test_network_data_format_matches_the_inference_network():
    parser = ConfigParser()
    parser.read_config(str(INFERENCE))
    size = parser.get_parsed_content("network_def#in_size")
    io = _metadata()["network_data_format"]
    image, pred = io["inputs"]["image"], io["outputs"]["pred"]
    assert (image["num_channels"], image["spatial_shape"], image["value_range"]) == (2, [size, size], [0, 1])
    assert image["channel_def"] == {"0": "AP radiograph", "1": "lateral radiograph"}
    assert (pred["num_channels"], pred["spatial_shape"], pred["value_range"]) == (1, [size, size, size], [0, 1])


def test_verify_net_in_out_passes_and_output_has_the_declared_shape():
    verify_net_in_out(
        net_id="network_def", meta_file=str(META), config_file=str(INFERENCE), n=1, any=1, device="cpu"
    )
    parser = ConfigParser()
    parser.read_config(str(INFERENCE))
    network = parser.get_parsed_content("network_def").eval()
    pred = _metadata()["network_data_format"]["outputs"]["pred"]
    with torch.no_grad():
        output = network(torch.rand(1, 2, *_metadata()["network_data_format"]["inputs"]["image"]["spatial_shape"]))
    assert tuple(output.shape) == (1, pred["num_channels"], *pred["spatial_shape"])
    assert output.dtype == torch.float32
    assert float(output.min()) >= 0.0  # ReLU head: the CT scale is [0, +inf), trained on [0, 1]


def test_bundle_license_is_the_repository_license():
    assert (BUNDLE / "LICENSE").read_bytes() == (REPO / "LICENSE").read_bytes()


def test_logging_conf_configures_a_stdout_logger():
    code = (
        "import logging, logging.config, sys; logging.config.fileConfig(sys.argv[1]); "
        "logging.getLogger('bundle').info('hello'); logging.getLogger('bundle').debug('hidden')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(BUNDLE / "configs" / "logging.conf")],
        capture_output=True, text=True, check=True, timeout=60,
    )
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].endswith(" - bundle - INFO - hello")
