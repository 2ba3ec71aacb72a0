"""The models the app serves, read from the bundle folders: one model per bundle, or one per model a
bundle declares in its metadata's ``orthogen_models`` (the knee radiograph bundle's Table I models).

Each model records its bundle's metadata (name, version, task, data formats), what kind of request it
takes, the config ids the app may override for it, and whether its weights file is there. Nothing here
builds a network: the weights path is the bundle's own ``ckpt_path`` expression, evaluated by MONAI's
``ConfigParser`` with the model's overrides.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monai.bundle import ConfigParser

from orthogen.errors import InputError

logger = logging.getLogger(__name__)

#: What a bundle's inference config reads, by the ids that name its command-line inputs.
XRAY_TO_CT = "xray_to_ct"  # input_ap + input_lateral -> a CT volume
SEGMENTATION_TO_RADIOGRAPH = "segmentation_to_radiograph"  # input_segmentation -> a radiograph
KIND_INPUT_IDS = {XRAY_TO_CT: ("input_ap", "input_lateral"), SEGMENTATION_TO_RADIOGRAPH: ("input_segmentation",)}

#: Request parameters a model of each kind may take, when its bundle's inference config has the id.
KIND_PARAMETERS = {XRAY_TO_CT: ("pixel_spacing", "slice_thickness", "seed", "steps"),
                   SEGMENTATION_TO_RADIOGRAPH: ("seed", "steps", "sampler")}


@dataclass(frozen=True)
class ModelVariant:
    """One model of a bundle that ships several: ``suffix`` of its name, the config ids it fixes, the
    request parameters it takes (None: all of its kind that the config has), and the bundle's config
    files merged after ``inference.json`` for it (e.g. ``preconditioned.json``)."""

    suffix: str
    overrides: dict[str, Any]
    parameters: tuple[str, ...] | None = None
    configs: tuple[str, ...] = ()


def model_variants(metadata: dict, metadata_path: Path) -> tuple[ModelVariant, ...]:
    """The models a bundle declares in its metadata's ``orthogen_models`` (suffix -> ``overrides``,
    optional ``parameters`` and optional ``configs``: file names in the bundle's ``configs/``), or its one
    default model when it declares none."""
    declared = metadata.get("orthogen_models")
    if declared is None:
        return (ModelVariant("", {}),)
    if not isinstance(declared, dict):
        raise InputError(f"expected orthogen_models as an object of models, got {type(declared).__name__}",
                         metadata_path)
    variants = []
    for suffix, spec in declared.items():
        if suffix.startswith("_"):
            continue  # "_doc"
        overrides = spec.get("overrides") if isinstance(spec, dict) else None
        parameters = spec.get("parameters") if isinstance(spec, dict) else None
        configs = spec.get("configs", []) if isinstance(spec, dict) else None
        if (not isinstance(overrides, dict) or not (parameters is None or isinstance(parameters, list))
                or not (isinstance(configs, list) and all(isinstance(c, str) for c in configs))):
            raise InputError(f"expected orthogen_models.{suffix} as {{\"overrides\": {{...}}, \"parameters\": [...], "
                             f"\"configs\": [file names]}}, got {spec!r}", metadata_path)
        for name in configs:
            if not (metadata_path.parent / name).is_file():
                raise InputError(f"orthogen_models.{suffix} names config {name!r}, which is not in "
                                 f"{metadata_path.parent}", metadata_path)
        variants.append(ModelVariant(suffix, overrides, None if parameters is None else tuple(parameters),
                                     tuple(configs)))
    return tuple(variants)


@dataclass(frozen=True)
class BundleModel:
    """One model of one bundle, as the app serves it.

    Attributes:
        name: the model's name in MONAI Label (``POST /infer/<name>``).
        bundle_dir: the bundle's folder (``configs/inference.json``, ``configs/metadata.json``).
        kind: ``XRAY_TO_CT`` or ``SEGMENTATION_TO_RADIOGRAPH``.
        overrides: config ids this model fixes (e.g. ``{"method": "unet", "condition": "contour"}``).
        parameters: request parameter -> its default in the bundle's inference config.
        metadata: the bundle's metadata.json.
        weights: the weights file the bundle's inference loads for this model (None: the bundle's configs
            could not be read).
        config_error: why the bundle's configs cannot be read (then the model never runs), else None.
        variant: the variant's name suffix ("" for a bundle's one model).
        configs: the bundle's config files merged after ``inference.json`` (and ``train.json``) for it.
    """

    name: str
    bundle_dir: Path
    kind: str
    overrides: dict[str, Any]
    parameters: dict[str, Any]
    metadata: dict[str, Any]
    weights: Path | None
    config_error: str | None = None
    variant: str = ""
    configs: tuple[str, ...] = ()

    @property
    def inference_configs(self) -> list[str]:
        """``inference.json``, then the model's own config files: what its inference reads, in order."""
        return inference_config_files(self.bundle_dir, self.configs)

    @property
    def metadata_file(self) -> Path:
        return self.bundle_dir / "configs" / "metadata.json"

    def finetuned_weights(self, finetuned_dir: Path) -> Path:
        """Where the app's train task keeps this model's fine-tuned weights (``<finetuned_dir>/<name>.pt``)."""
        return Path(finetuned_dir) / f"{self.name}.pt"

    def unavailable_reason(self) -> str | None:
        """Why the model cannot run now (unreadable configs, no weights file), None when it can. Looked up
        on every call (one stat): a bundle's weights may appear or go while the app runs."""
        if self.config_error is not None or self.weights is None:
            return self.config_error
        if self.weights.is_file():
            return None
        docs = self.bundle_dir / "docs" / "README.md"
        return f"{self.weights}: no such weights file; train the bundle first (see {docs})"

    def description(self) -> str:
        name, version = self.metadata.get("name", self.bundle_dir.name), self.metadata.get("version", "?")
        variant = f" [{self.variant}]" if self.variant else ""
        return f"{name}{variant} v{version}: {self.metadata.get('task', '')}"


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError("no such file; expected a MONAI bundle config", path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not JSON ({exc})", path) from None


def bundle_kind(config: dict, source: Path) -> str:
    """The kind of request a bundle's inference config (a dict of its ids) serves; InputError otherwise."""
    for kind, ids in KIND_INPUT_IDS.items():
        if all(i in config for i in ids):
            return kind
    expected = " or ".join("+".join(ids) for ids in KIND_INPUT_IDS.values())
    raise InputError(f"inference config has no {expected} ids; the app cannot serve it", source)


def inference_config_files(bundle_dir: Path, configs: tuple[str, ...] = ()) -> list[str]:
    """The bundle's ``configs/inference.json``, then ``configs`` (file names in the same folder), as paths."""
    return [str(bundle_dir / "configs" / name) for name in ("inference.json", *configs)]


def _weights_path(bundle_dir: Path, overrides: dict, configs: tuple[str, ...] = ()) -> Path:
    """The bundle's ``ckpt_path`` for these overrides and config files (its own expression, evaluated by
    ConfigParser)."""
    parser = ConfigParser()
    parser.read_config(inference_config_files(bundle_dir, configs))
    parser.read_meta(str(bundle_dir / "configs" / "metadata.json"))
    parser.update({"bundle_root": str(bundle_dir), **overrides})
    try:
        return Path(parser.get_parsed_content("ckpt_path"))
    except Exception as exc:  # the bundle's own expression failed: the model is listed, unavailable
        raise InputError(f"cannot evaluate ckpt_path with {overrides} ({type(exc).__name__}: {exc})",
                         bundle_dir / "configs" / "inference.json") from None


def bundle_models(bundle_dir: Path) -> list[BundleModel]:
    """The models of one bundle folder (see :func:`model_variants`)."""
    bundle_dir = Path(bundle_dir).resolve()
    metadata = _read_json(bundle_dir / "configs" / "metadata.json")
    config = _read_json(bundle_dir / "configs" / "inference.json")
    kind = bundle_kind(config, bundle_dir / "configs" / "inference.json")
    variants = model_variants(metadata, bundle_dir / "configs" / "metadata.json")
    models = []
    for variant in variants:
        offered = KIND_PARAMETERS[kind] if variant.parameters is None else variant.parameters
        parameters = {p: variant.overrides.get(p, config[p]) for p in offered if p in config}
        name = f"{bundle_dir.name}_{variant.suffix}" if variant.suffix else bundle_dir.name
        models.append(BundleModel(name=name, bundle_dir=bundle_dir, kind=kind, overrides=dict(variant.overrides),
                                  parameters=parameters, metadata=metadata,
                                  weights=_weights_path(bundle_dir, variant.overrides, variant.configs),
                                  variant=variant.suffix, configs=variant.configs))
    return models


def broken_bundle(bundle_dir: Path, error: InputError) -> BundleModel:
    """A bundle whose configs cannot be read, listed as one unavailable model named after its folder."""
    try:
        metadata = json.loads((bundle_dir / "configs" / "metadata.json").read_text())
    except (OSError, ValueError):
        metadata = {}
    return BundleModel(name=bundle_dir.name, bundle_dir=bundle_dir.resolve(), kind="", overrides={}, parameters={},
                       metadata=metadata if isinstance(metadata, dict) else {}, weights=None,
                       config_error=str(error))


def discover_models(bundles_dir: str | Path) -> list[BundleModel]:
    """Every model of every bundle under ``bundles_dir`` (each sub-folder with configs/metadata.json),
    in folder-name order; a bundle whose configs cannot be read is one unavailable model saying why.
    InputError when the folder does not exist or holds no bundle."""
    folder = Path(bundles_dir)
    if not folder.is_dir():
        raise InputError("no such folder; expected a folder of MONAI bundles (app conf 'bundles')", folder)
    bundles = sorted(p for p in folder.iterdir() if (p / "configs" / "metadata.json").is_file())
    if not bundles:
        raise InputError("no bundle here; expected sub-folders with configs/metadata.json", folder)
    models = []
    for bundle in bundles:
        try:
            models += bundle_models(bundle)
        except InputError as error:
            models.append(broken_bundle(bundle, error))
    for model in models:
        reason = model.unavailable_reason()
        if reason:
            logger.warning(f"model {model.name} unavailable: {reason}")
    return models
