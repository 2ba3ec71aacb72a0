"""A MONAI Label train task that fine-tunes one bundle model on the datastore's labelled images, with the
bundle's own training config.

A training case is a datastore image with a ``final`` label, e.g. one a user corrected and saved by
``PUT /datastore/label``:

- segmentation -> radiograph: a radiograph labelled with its segmentation; the pairs are the bundle's
  ``train#datalist`` (image = the segmentation, label = the radiograph);
- X-ray -> CT: an AP radiograph labelled with the patient's CT (NIfTI / NRRD). These bundles train on
  DRRs rendered from CTs, so the CTs go through the data preparation that the bundle's metadata declares
  (``orthogen_preparation``: the function and settings of its shipped weights' training set, all cases
  in the training split) and the bundle trains on the result (``dataset_dir``). The study's own
  radiographs only pair the CT with the study; a bundle that declares no preparation has no train task.

A labelled image is a case of a model when its label has the model's dimensions (a 2D segmentation, a 3D
CT; a label whose header cannot be read is left to the training to judge). ``POST /train/<model>`` is refused
before a task is queued when the datastore holds no case of the model (``lib.train_requests``, with
:func:`missing_training_cases`); otherwise it runs this task in MONAI Label's train subprocess (its log lines are
``GET /train/``'s progress): the bundle's ``configs/train.json`` (+ ``train_<method>.json``) is built
in-process by ``ConfigParser`` with those cases, the model's current weights (the last fine-tuned ones, else
the bundle's shipped ones) as ``init_from``, no validation (the bundle's own validates on its prepared split,
which is not shipped), and the new weights written in a temporary folder beside the
target, renamed to ``<finetuned_dir>/<model>.pt`` only when training finished. The next ``/infer`` of the
model uses them (:meth:`BundleModel.finetuned_weights`); the bundle's shipped weights are never touched.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from pydoc import locate
from typing import Any

from monai.bundle import ConfigParser
from monai.utils import set_determinism
from monailabel.datastore.dicom import DICOMWebDatastore
from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.train import TrainTask

from lib.bundle_catalogue import SEGMENTATION_TO_RADIOGRAPH, XRAY_TO_CT, BundleModel
from lib.bundle_infer_task import BundleRunError, checked_device
from lib.dicomweb_datastore import OrthoGenDICOMwebDatastore

from orthogen.errors import InputError

logger = logging.getLogger(__name__)

#: The request's training settings and their defaults (a short fine-tune on CPU).
TRAIN_DEFAULTS = {"max_epochs": 5, "learning_rate": 1e-4, "batch_size": 4, "seed": 0, "device": "cpu"}


def can_train(model: BundleModel) -> bool:
    """Whether the app can fine-tune ``model`` from datastore cases (see the module docstring)."""
    if model.config_error is not None:
        return False
    return model.kind == SEGMENTATION_TO_RADIOGRAPH or isinstance(model.metadata.get("orthogen_preparation"), dict)


def label_dimensions(path: str | Path) -> int | None:
    """The number of axes longer than one pixel of the image file ``path`` (2: a picture, 3: a volume), read
    from its header only; None when SimpleITK cannot read the header."""
    import SimpleITK as sitk  # here: only the train checks need it

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return None
    return sum(size > 1 for size in reader.GetSize())


def _case_words(model: BundleModel) -> tuple[int, str]:
    """The label dimensions of ``model``'s training case, and the case in words."""
    if model.kind == SEGMENTATION_TO_RADIOGRAPH:
        return 2, "a radiograph with its segmentation (a 2D image) as its 'final' label"
    return 3, "an AP radiograph with the patient's CT (a 3D volume: NIfTI / NRRD) as its 'final' label"


def training_pairs(model: BundleModel, pairs: list[dict]) -> list[dict]:
    """The datastore's image / label pairs (``datastore.datalist()``) that are cases of ``model``: those whose
    label has its dimensions, or a header that cannot be read."""
    dimensions, _ = _case_words(model)
    return [pair for pair in pairs if label_dimensions(pair["label"]) in (dimensions, None)]


def _no_case(model: BundleModel, labelled: int) -> str:
    _, case = _case_words(model)
    found = f"none of its {labelled} labelled images is one" if labelled else "no labelled image"
    return f"no training case of {model.name} ({found}); expected {case}, saved by PUT /datastore/label"


#: The Modality of a labelled series that makes it a training case of each kind of model.
TRAINING_MODALITIES = {XRAY_TO_CT: ("CT",), SEGMENTATION_TO_RADIOGRAPH: ("CR", "DX", "RF", "XA", "OT")}


def _series_modality(datastore: DICOMWebDatastore, series_uid: str) -> str:
    """The series' Modality by QIDO-RS ('' when the server does not have it)."""
    info = datastore.find_series(series_uid) if isinstance(datastore, OrthoGenDICOMwebDatastore) else None
    return info.modality if info is not None else ""


def missing_training_cases(model: BundleModel, datastore: Datastore) -> str | None:
    """Why ``datastore`` holds no training case of ``model`` (one line, naming the datastore), None when it
    holds one. On DICOMweb a labelled series counts when its Modality fits the model (a CT for an X-ray -> CT
    model, a radiograph for a segmentation -> radiograph one): its label is a DICOM SEG and the Modality comes
    from QIDO-RS, so nothing is downloaded."""
    if isinstance(datastore, DICOMWebDatastore):
        images = datastore.get_labeled_images()
        fitting = sum(1 for uid in images if _series_modality(datastore, uid) in TRAINING_MODALITIES[model.kind])
        labelled = len(images)
    else:
        pairs = datastore.datalist()
        labelled, fitting = len(pairs), len(training_pairs(model, pairs))
    return None if fitting else f"datastore: {_no_case(model, labelled)}"


def training_data(model: BundleModel, datastore: Datastore, work: Path) -> tuple[dict[str, Any], int]:
    """The config overrides that make the datastore's cases of ``model`` (:func:`training_pairs`) its training
    set, and their number; X-ray -> CT cases are prepared into ``work``. InputError when there is none."""
    labelled = datastore.datalist()
    pairs = training_pairs(model, labelled)
    if not pairs:
        raise InputError(_no_case(model, len(labelled)), "datastore")
    if model.kind == SEGMENTATION_TO_RADIOGRAPH:
        return {"train#datalist": [{"image": pair["label"], "label": pair["image"]} for pair in pairs]}, len(pairs)
    preparation = model.metadata["orthogen_preparation"]
    cts = work / "cts"
    cts.mkdir()
    for pair in pairs:
        (cts / Path(pair["label"]).name).symlink_to(pair["label"])
    parser = ConfigParser({"settings": {**preparation["settings"], "split": [1.0, 0.0, 0.0]}})
    prepare = locate(preparation["function"])
    if not callable(prepare):
        raise InputError(f"orthogen_preparation.function {preparation['function']!r} is not importable",
                         model.metadata_file)
    prepare(cts, work / "data", parser.get_parsed_content("settings"))
    return {"dataset_dir": str(work / "data")}, len(pairs)


def _whole_number(value: Any, field: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InputError(f"expected a whole number >= {low}, got {value!r}", field)
    try:
        number = int(str(value))
    except ValueError:
        raise InputError(f"expected a whole number >= {low}, got {value!r}", field) from None
    if number < low:
        raise InputError(f"expected a whole number >= {low}, got {value!r}", field)
    return number


def checked_settings(request: dict) -> dict[str, Any]:
    """max_epochs, learning_rate, batch_size, seed, device of the request (defaults TRAIN_DEFAULTS)."""
    merged = {key: request.get(key, default) for key, default in TRAIN_DEFAULTS.items()}
    try:
        rate = float(merged["learning_rate"])
    except (TypeError, ValueError):
        raise InputError(f"expected a number > 0, got {merged['learning_rate']!r}", "learning_rate") from None
    if not 0 < rate < 1:
        raise InputError(f"expected a number in (0, 1), got {merged['learning_rate']!r}", "learning_rate")
    return {"max_epochs": _whole_number(merged["max_epochs"], "max_epochs", 1), "learning_rate": rate,
            "batch_size": _whole_number(merged["batch_size"], "batch_size", 1),
            "seed": _whole_number(merged["seed"], "seed", 0), "device": checked_device(merged["device"])}


class BundleTrainTask(TrainTask):
    """Fine-tunes ``model`` (one that :func:`can_train`) into ``finetuned_dir``."""

    def __init__(self, model: BundleModel, finetuned_dir: Path):
        labels = "segmentations" if model.kind == SEGMENTATION_TO_RADIOGRAPH else "CTs"
        super().__init__(f"fine-tune {model.name} on the datastore's images and their {labels}")
        self.model, self.finetuned_dir = model, Path(finetuned_dir)

    def config(self) -> dict[str, Any]:
        return dict(TRAIN_DEFAULTS)

    def stats(self) -> dict[str, Any]:
        weights = self.model.finetuned_weights(self.finetuned_dir)
        return {"finetuned_weights": str(weights) if weights.is_file() else None}

    def train_configs(self) -> list[str]:
        configs = self.model.bundle_dir / "configs"
        method = self.model.overrides.get("method")
        extra = configs / f"train_{method}.json"
        return ([str(configs / "train.json")] + ([str(extra)] if method and extra.is_file() else [])
                + [str(configs / name) for name in self.model.configs])

    def __call__(self, request: dict, datastore: Datastore) -> dict[str, Any]:
        model = self.model
        settings = checked_settings(request)
        target = model.finetuned_weights(self.finetuned_dir)
        start = target if target.is_file() else model.weights
        if start is None or not start.is_file():
            raise InputError(f"no weights to fine-tune from ({start}); train the bundle first", "model")
        self.finetuned_dir.mkdir(parents=True, exist_ok=True)  # the run folder beside the target: one rename
        run_dir = Path(tempfile.mkdtemp(prefix=f".train_{model.name}_", dir=self.finetuned_dir))
        began = time.monotonic()
        try:
            data, cases = training_data(model, datastore, run_dir)
            parser = ConfigParser()
            parser.read_config(self.train_configs())
            parser.read_meta(str(model.metadata_file))
            parser.update({**model.overrides, "bundle_root": str(model.bundle_dir), **data, "init_from": str(start),
                           "ckpt_path": str(run_dir / "model.pt"), "output_dir": str(run_dir),
                           "max_epochs": settings["max_epochs"], "learning_rate": settings["learning_rate"],
                           "batch_size": min(settings["batch_size"], cases), "seed": settings["seed"],
                           "device": f"$torch.device({settings['device']!r})"})
            if "validation_handlers" in parser:  # no validation on the bundle's own prepared split (not shipped)
                parser["validation_handlers"] = []
            set_determinism(seed=settings["seed"])
            trainer = parser.get_parsed_content("train#trainer")
            trainer.run()
            written = run_dir / "model.pt"
            if not written.is_file():
                raise BundleRunError(f"model {model.name}: training wrote no weights")
            os.replace(written, target)
        finally:
            set_determinism(seed=None)
            shutil.rmtree(run_dir, ignore_errors=True)
        loss = trainer.state.output
        loss = float(loss["loss"] if isinstance(loss, dict) else loss[0]["loss"]) if loss else None
        logger.info(f"fine-tuned {model.name} from {start} on {cases} cases: {settings['max_epochs']} epochs, "
                    f"{trainer.state.iteration} iterations in {time.monotonic() - began:.1f} s; weights {target}")
        return {"model": model.name, "cases": cases, "epochs": settings["max_epochs"],
                "iterations": trainer.state.iteration, "last_loss": loss, "started_from": str(start),
                "weights": str(target), "seconds": round(time.monotonic() - began, 1)}
