"""What a generated series is called and which one a request gives: asking again for the same thing returns
the series already stored instead of a look-alike.

A request's key is the model, its weights file (path, size and modification time: fine-tuned weights make
a new key), the input series and every parameter it runs with (the bundle's defaults filled in). The stored
series' SeriesInstanceUID is derived from that key (:func:`pydicom.uid.generate_uid` with the key as its
entropy), so the app finds an earlier result with one QIDO-RS lookup, across restarts, without an index of
its own; a new seed or step count is a new key, hence a new series. Its SeriesDescription says
"Synthetic", model, seed, steps, time and weights in at most 64 characters (the LO limit); ImageComments
hold the whole provenance (JSON).
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

#: SeriesDescription is a DICOM LO: at most 64 characters.
DESCRIPTION_LENGTH = 64


def request_key(model: str, weights: Path, inputs: dict[str, str], parameters: dict[str, Any]) -> str:
    """sha256 (hex) of what determines a generated series: model, weights file, input series, parameters."""
    stat = weights.stat()
    payload = {"model": model, "weights": [str(weights.resolve()), stat.st_size, stat.st_mtime_ns],
               "inputs": dict(sorted(inputs.items())), "parameters": dict(sorted(parameters.items()))}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def series_uid(key: str) -> str:
    """The SeriesInstanceUID of the series a request key generates (the same key, the same UID)."""
    return generate_uid(entropy_srcs=["orthogen generated series", key])


def short_model_name(model: str, bundle_folder: str) -> str:
    """The model's name without its bundle's where a bundle serves several (``ctm_contour_bone``), else
    without ``_diffusion`` (``knee_xray2ct``): the full name is in the ImageComments."""
    if model.startswith(f"{bundle_folder}_"):
        return model[len(bundle_folder) + 1:]
    return model.replace("_diffusion", "")


def series_description(model: str, bundle_folder: str, parameters: dict[str, Any], weights_label: str | None,
                       when: time.struct_time | None = None) -> str:
    """E.g. ``Synthetic knee_xray2ct s3 50 steps 01:42 phantom-trained`` (<= 64 characters): synthetic,
    the model, seed and steps (where the model takes them), local time of generation, and the weights'
    label where it fits."""
    when = when or time.localtime()
    parts = ["Synthetic", short_model_name(model, bundle_folder)]
    if parameters.get("seed") is not None:
        parts.append(f"s{parameters['seed']}")
    if parameters.get("steps") is not None:
        parts.append(f"{parameters['steps']} steps")
    parts.append(time.strftime("%H:%M", when))
    text = " ".join(parts)
    label = (weights_label or "").split(" ")[0]  # "phantom-trained" / "fine-tuned"
    if label and len(text) + 1 + len(label) <= DESCRIPTION_LENGTH:
        text = f"{text} {label}"
    return text[:DESCRIPTION_LENGTH]


def relabel(datasets: list[Dataset], uid: str, description: str, provenance: dict[str, Any]) -> None:
    """Give the generated instances their series UID, SeriesDescription and the provenance (JSON) as
    ImageComments, in place."""
    comments = json.dumps(provenance, sort_keys=True, default=str)
    for dataset in datasets:
        dataset.SeriesInstanceUID = uid
        dataset.SeriesDescription = description
        dataset.ImageComments = comments
