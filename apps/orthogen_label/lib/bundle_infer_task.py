"""A MONAI Label infer task (type OTHERS) that runs one bundle model's own ``configs/inference.json``.

The run is built in-process with MONAI's ``ConfigParser`` from the bundle's inference config and metadata,
with the request's input files, parameters, device and a fresh output folder as overrides: exactly what
``python -m monai.bundle run inference --input_ap ... --pixel_spacing ...`` runs, without a new Python
process per request (importing torch, MONAI and orthogen takes ~10 s on a loaded 2-core CPU; the spine
model's whole run in the server, network built, weights loaded, CT and montage written, took 4.7 s). What a
subprocess would add, isolation of crashes and of memory, matters less here: the bundles' failures are
Python exceptions (caught below and answered as one line) and each request's network is freed when its
run ends.

Order of work: weights present -> parameters checked -> the bundle's own input check (its ``datalist``,
which runs its input loader on the files: unreadable, wrong size, no spacing, implausible spacing) -> only
then the network is built, loaded and run. Problems before the network are ``InputError`` (the app answers
HTTP 400), a missing weights file ``ModelUnavailableError`` (503), a failure after it ``BundleRunError`` (500).
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import nibabel as nib
from monai.bundle import ConfigParser
from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType
from monailabel.utils.others.generic import name_to_device
from PIL import Image

from lib.bundle_catalogue import XRAY_TO_CT, BundleModel
from lib.request_schema import DICOM_OUTPUT_PATTERNS, OUTPUT_PATTERNS, checked_parameters, describe_inputs, describe_outputs

from orthogen.errors import InputError, OrthoGenError, first_orthogen_error

logger = logging.getLogger(__name__)

#: The request key under which the app passes the input files it found in the datastore (config overrides).
BUNDLE_INPUTS = "bundle_inputs"
#: The request key by which the app asks for the result as DICOM too (a DICOMweb datastore stores it).
DICOM_OUTPUT = "dicom_output"
#: The result key listing the DICOM files written (kept in a temporary folder that the app removes).
DICOM_FILES = "dicom_files"


class ModelUnavailableError(OrthoGenError):
    """The model cannot run: its weights file is not there."""


class BundleRunError(OrthoGenError):
    """The bundle failed after its inputs were accepted (building, loading or running the network, writing)."""


def output_summary(path: Path) -> dict[str, Any]:
    """File name, shape and (for NIfTI) voxel spacing in mm of a result file, read from its header."""
    if path.name.endswith((".nii", ".nii.gz")):
        header = nib.load(str(path)).header
        return {"file": path.name, "shape": [int(v) for v in header.get_data_shape()],
                "spacing_mm": [float(v) for v in header.get_zooms()]}
    with Image.open(path) as picture:
        return {"file": path.name, "shape": [picture.height, picture.width]}


def checked_device(device: Any) -> str:
    """MONAI Label's device name (``cuda`` falls back to ``cpu`` without a GPU) as a torch device string."""
    name = str(name_to_device(device))
    if not re.fullmatch(r"cpu|cuda(:\d+)?", name):
        raise InputError(f"expected cpu, cuda or cuda:N, got {device!r}", "device")
    return name


class BundleInferTask(InferTask):
    """Runs ``model`` (one bundle, with its method / condition overrides) on one request."""

    def __init__(self, model: BundleModel, finetuned_dir: Path | None = None):
        config = {"lateral": ""} if model.kind == XRAY_TO_CT else {}
        super().__init__(type=InferType.OTHERS, labels=None, dimension=3 if model.kind == XRAY_TO_CT else 2,
                         description=model.description(), config={**config, **model.parameters})
        self.model = model
        self.finetuned_dir = finetuned_dir

    def weights(self) -> tuple[Path | None, str | None]:
        """The weights a request runs with and their label: the app's fine-tuned ones when its train task
        wrote them, else the bundle's own (``orthogen_weights`` of its metadata, e.g. "phantom-trained")."""
        shipped = self.model.metadata.get("orthogen_weights")
        if self.finetuned_dir is not None:
            finetuned = self.model.finetuned_weights(self.finetuned_dir)
            if finetuned.is_file():
                return finetuned, f"fine-tuned by the app's train task from the bundle's {shipped} weights"
        return self.model.weights, shipped

    def info(self) -> dict[str, Any]:
        meta = self.model.metadata
        return {
            **super().info(),
            "orthogen_kind": self.model.kind,  # what the OHIF OrthoGen mode offers it for
            "available": self.is_valid(),
            "unavailable_reason": self.model.unavailable_reason(),
            "bundle": {"folder": self.model.bundle_dir.name, "name": meta.get("name"), "version": meta.get("version"),
                       "task": meta.get("task"), "method": self.model.overrides,
                       "weights": meta.get("orthogen_weights"),
                       "weights_file": None if self.model.weights is None else str(self.model.weights),
                       "intended_use": meta.get("intended_use"),
                       "network_data_format": meta.get("network_data_format")},
            "inputs": describe_inputs(self.model),
            "outputs": describe_outputs(self.model),
        }

    def is_valid(self) -> bool:
        return self.model.unavailable_reason() is None

    def __call__(self, request: dict) -> tuple[str, dict]:
        model = self.model
        reason = model.unavailable_reason()
        if reason:
            raise ModelUnavailableError(f"model {model.name} is unavailable: {reason}")
        parameters = checked_parameters(model, request)
        inputs = request.get(BUNDLE_INPUTS)
        if not inputs:
            raise InputError(f"no input files found for model {model.name}; expected the app to resolve the "
                             "request's images", BUNDLE_INPUTS)
        weights, weights_label = self.weights()
        overrides = {**model.overrides, **inputs, **parameters, "bundle_root": str(model.bundle_dir),
                     "ckpt_path": str(weights)}
        if request.get(DICOM_OUTPUT):
            overrides["output_format"] = "dicom"
        if request.get("device"):
            overrides["device"] = f"$torch.device({checked_device(request['device'])!r})"
        run_dir = Path(tempfile.mkdtemp(prefix=f"orthogen_label_{model.name}_"))
        try:
            start = time.monotonic()
            written = self._run(overrides | {"output_dir": str(run_dir)}, run_dir)
            dicom_files = self._keep_dicom(run_dir) if request.get(DICOM_OUTPUT) else None
            result = self._keep(written)
            logger.info(f"model {model.name}: {result.name} in {time.monotonic() - start:.1f} s")
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
        used = {**model.parameters, **parameters}
        extra = {} if dicom_files is None else {DICOM_FILES: [str(path) for path in dicom_files]}
        return str(result), extra | {
            "model": model.name, "bundle": model.metadata.get("name"), "bundle_folder": model.bundle_dir.name,
            "version": model.metadata.get("version"), "weights": weights_label,
            "weights_file": str(weights), "method": model.overrides, "parameters": used,
            "inputs": {key: str(value) for key, value in inputs.items()},
            "output": output_summary(result),
        }

    def _run(self, overrides: dict[str, Any], run_dir: Path) -> Path:
        """Check the inputs with the bundle's own datalist and inferer, then run its evaluator; the file
        it wrote."""
        parser = ConfigParser()
        parser.read_config(self.model.inference_configs)
        parser.read_meta(str(self.model.metadata_file))
        parser.update(overrides)
        try:  # the bundle's input loader on the files, and its inferer's argument checks: no network yet
            for door in ("datalist", "inferer"):
                parser.get_parsed_content(door)
        except Exception as exc:
            error = first_orthogen_error(exc)
            if isinstance(error, InputError):
                raise error from None
            raise BundleRunError(f"model {self.model.name}: the bundle could not check its inputs "
                                 f"({type(exc).__name__}: {error or exc})") from exc
        try:
            parser.get_parsed_content("evaluator").run()
        except Exception as exc:
            error = first_orthogen_error(exc) or exc
            raise BundleRunError(f"model {self.model.name}: inference failed ({error})") from exc
        written = sorted(run_dir.glob(OUTPUT_PATTERNS[self.model.kind]))
        if len(written) != 1:
            raise BundleRunError(f"model {self.model.name}: expected one {OUTPUT_PATTERNS[self.model.kind]} "
                                 f"written, found {[p.name for p in written]}")
        return written[0]

    def _keep_dicom(self, run_dir: Path) -> list[Path]:
        """Move the DICOM files the bundle wrote (a CT series, or one radiograph) into a new temporary
        folder; the app stores them and removes it."""
        written = sorted(run_dir.glob(DICOM_OUTPUT_PATTERNS[self.model.kind]))
        if not written:
            raise BundleRunError(f"model {self.model.name}: expected DICOM output "
                                 f"{DICOM_OUTPUT_PATTERNS[self.model.kind]}, found none")
        kept = Path(tempfile.mkdtemp(prefix=f"orthogen_label_{self.model.name}_dicom_"))
        moved = []
        for path in written:
            moved.append(kept / path.name)
            shutil.move(str(path), moved[-1])
        return moved

    @staticmethod
    def _keep(written: Path) -> Path:
        """Move the result out of the run folder into its own temporary file, which MONAI Label deletes once
        it has sent it."""
        suffix = ".nii.gz" if written.name.endswith(".nii.gz") else written.suffix
        handle, name = tempfile.mkstemp(prefix=written.name[: -len(suffix)] + "_", suffix=suffix)
        os.close(handle)
        shutil.move(str(written), name)
        return Path(name)
