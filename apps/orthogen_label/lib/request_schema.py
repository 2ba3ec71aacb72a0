"""The request each kind of model takes and the file it returns: described for ``/info``, and checked per
request (parameter types and ranges) before anything heavy runs.

A request's parameters arrive merged into the request dict (MONAI Label puts the ``params`` form field's
JSON at the top level). ``None`` means "the bundle's default". Every problem is one ``InputError``
naming the field, what was expected and what came.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from lib.bundle_catalogue import KIND_PARAMETERS, SEGMENTATION_TO_RADIOGRAPH, XRAY_TO_CT, BundleModel

from orthogen.diffusion.segmentation_guided_inferer import SAMPLERS
from orthogen.errors import InputError

#: The file each kind's bundle writes into its output folder (one per request), as a glob pattern.
OUTPUT_PATTERNS = {XRAY_TO_CT: "*_ct.nii.gz", SEGMENTATION_TO_RADIOGRAPH: "*_radiograph.png"}
#: The DICOM files it writes with ``output_format: dicom`` (a CT series; one Secondary Capture radiograph).
DICOM_OUTPUT_PATTERNS = {XRAY_TO_CT: "*_ct_dicom/*.dcm", SEGMENTATION_TO_RADIOGRAPH: "*_radiograph.dcm"}

#: The datastore label tag that holds a radiograph's segmentation unless the request names another.
DEFAULT_LABEL_TAG = "final"

PARAMETER_HELP = {
    "lateral": "datastore id of the lateral radiograph (the request's image is the AP one); required",
    "pixel_spacing": "mm per pixel at the detector (as ImagerPixelSpacing) of both views: one number or "
                     "[row, col]; needed for PNG/JPEG/NPY radiographs, overrides a DICOM file's own",
    "slice_thickness": "mm > 0: the CT slice thickness the model is conditioned on; required for radiograph files",
    "seed": "whole number >= 0: the sampler's seed (the same seed gives the same result on one device)",
    "steps": "whole number >= 1: sampler network calls (null: the bundle's default)",
    "sampler": "'pc' (predictor-corrector, the paper's), 'ode' (Heun probability-flow, ~10x fewer calls) or "
               "'stochastic_heun' (Heun steps with noise churn, as few calls)",
    "label_tag": f"which of the image's datastore labels is the segmentation (default {DEFAULT_LABEL_TAG!r})",
}


def _number(value: Any, field: str) -> float:
    """``value`` as a float: a JSON number or a string holding one (form clients send strings)."""
    if isinstance(value, bool):
        raise InputError(f"expected a number, got {value!r}", field)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"expected a number, got {value!r}", field) from None
    if not math.isfinite(number):
        raise InputError(f"expected a finite number, got {value!r}", field)
    return number


def positive_number(value: Any, field: str) -> float:
    number = _number(value, field)
    if number <= 0:
        raise InputError(f"expected a number > 0, got {value!r}", field)
    return number


def pixel_spacing(value: Any, field: str) -> float | list[float]:
    """One positive number, or [row, col] of them (mm)."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise InputError(f"expected one number or [row, col], got {value!r}", field)
        return [positive_number(v, field) for v in value]
    return positive_number(value, field)


def whole_number(minimum: int) -> Callable[[Any, str], int]:
    def check(value: Any, field: str) -> int:
        number = _number(value, field)
        if not number.is_integer() or number < minimum:
            raise InputError(f"expected a whole number >= {minimum}, got {value!r}", field)
        return int(number)
    return check


def choice(*options: str) -> Callable[[Any, str], str]:
    def check(value: Any, field: str) -> str:
        if value not in options:
            raise InputError(f"expected one of {', '.join(options)}, got {value!r}", field)
        return value
    return check


#: Request parameter -> its check; each parameter overrides the bundle config id of the same name.
PARAMETER_CHECKS: dict[str, Callable[[Any, str], Any]] = {
    "pixel_spacing": pixel_spacing,
    "slice_thickness": positive_number,
    "seed": whole_number(0),
    "steps": whole_number(1),
    "sampler": choice(*SAMPLERS),
}
ALL_PARAMETERS = sorted({p for params in KIND_PARAMETERS.values() for p in params})


def checked_parameters(model: BundleModel, request: dict) -> dict[str, Any]:
    """The config overrides of the request's parameters for ``model``: only those given (not None),
    each checked. A parameter that another kind of model takes but this one does not is refused, naming
    the parameters this model takes."""
    overrides = {}
    for name in ALL_PARAMETERS:
        value = request.get(name)
        if value is None:
            continue
        if name not in model.parameters:
            takes = ", ".join(model.parameters) or "none"
            raise InputError(f"model {model.name} takes no {name!r} parameter (its parameters: {takes})", name)
        overrides[name] = PARAMETER_CHECKS[name](value, name)
    if model.kind != XRAY_TO_CT and request.get("lateral") is not None:
        raise InputError(f"model {model.name} takes one image and its segmentation, not a lateral view", "lateral")
    return overrides


def _shape(model: BundleModel, section: str) -> list | None:
    tensors = model.metadata.get("network_data_format", {}).get(section, {})
    key = "pred" if section == "outputs" else "image"
    return tensors.get(key, {}).get("spatial_shape") if isinstance(tensors.get(key), dict) else None


def _optional(model: BundleModel) -> dict[str, dict]:
    return {name: {"in": "params", "required": False, "default": default, "description": PARAMETER_HELP[name]}
            for name, default in model.parameters.items()}


def describe_inputs(model: BundleModel) -> dict[str, dict]:
    """What a request to ``model`` gives: the request's image, the params, and for the radiograph model
    the segmentation, with the bundle's own wording of values and sizes."""
    meta = model.metadata
    if model.kind == XRAY_TO_CT:
        size = _shape(model, "inputs")
        return {
            "image": {"in": "image", "required": True,
                      "description": "datastore id of the AP radiograph (DICOM CR/DX, PNG, JPEG or NPY; bone "
                                     f"bright); resized to the network's {size} input"},
            "lateral": {"in": "params", "required": True, "description": PARAMETER_HELP["lateral"]},
            **_optional(model),
        }
    if model.kind == SEGMENTATION_TO_RADIOGRAPH:
        condition = model.overrides.get("condition", "")
        return {
            "image": {"in": "image", "required": True,
                      "description": "datastore id of the radiograph whose label is the segmentation"},
            "label": {"in": f"the image's datastore label (params label_tag, default {DEFAULT_LABEL_TAG!r}) "
                            "or an uploaded label file", "required": True,
                      "description": f"the segmentation ({condition.replace('_', '+') or 'any'} condition; PNG, "
                                     f"NIfTI, NPY or DICOM, {_shape(model, 'inputs')} pixels, or a DICOM SEG "
                                     "of a radiograph with segments 'contour' and 'bone', any size, resampled): "
                                     f"{meta.get('image_classes', '')}"},
            "label_tag": {"in": "params", "required": False, "default": DEFAULT_LABEL_TAG,
                          "description": PARAMETER_HELP["label_tag"]},
            **_optional(model),
        }
    return {}


def describe_outputs(model: BundleModel) -> dict[str, dict]:
    """What ``POST /infer/<model>`` returns: the file and the JSON params."""
    meta = model.metadata
    params = {"description": "JSON: model, bundle, version, weights, the inputs and parameters used, and "
                             "the output's shape (and spacing)"}
    if model.kind == XRAY_TO_CT:
        return {"file": {"format": "NIfTI (.nii.gz)", "modality": "CT", "units": "HU",
                         "spatial_shape": _shape(model, "outputs"),
                         "description": "the generated CT in HU with the view-aligned affine (axcodes IAL: "
                                        "superior->inferior, posterior->anterior, right->left); the network "
                                        f"predicts {meta.get('pred_classes', '')}"},
                "params": params}
    if model.kind == SEGMENTATION_TO_RADIOGRAPH:
        return {"file": {"format": "PNG, 16-bit grayscale", "modality": "radiograph (synthetic)",
                         "spatial_shape": _shape(model, "outputs"),
                         "description": "the generated radiograph, [0, 1] scaled to 0-65535, bone bright "
                                        "(the mean of the samples)"},
                "params": params}
    return {}
