"""OrthoGen's MONAI Label app: a thin adapter that serves the repository's bundles as infer tasks.

App conf: ``bundles`` (a folder of bundles, default the repository's), ``orthogen_zoo`` (a model zoo folder
or URL: its bundles are fetched, sha256-checked, into ``bundles``, default <app>/zoo_bundles, and served),
``finetuned_dir`` (the train tasks' weights, default <app>/model), ``max_upload_mb`` (default 512).

Each bundle folder (app conf ``bundles``, default the repository's ``bundles/``) with configs/metadata.json
becomes one model, or one per shipped method / condition (declared in its metadata.json as ``orthogen_models``); each
model runs its bundle's own inference config (``lib.bundle_infer_task``). No model code lives here.
``/info`` lists the models that can run under ``models`` and those that cannot (no weights file, looked
up on each call) under ``unavailable_models`` with the reason. Request problems are answered as one line:
unknown model 404, unavailable model 503, bad request 400, a failure after the inputs were accepted 500,
the DICOMweb server refusing the generated series 502.

With ``--studies http://.../dicom-web`` the datastore is ``lib.dicomweb_datastore``: images are series
(SeriesInstanceUIDs), an X-ray -> CT request's two views must be of one study, and the generated CT series
(or radiograph) is stored by STOW-RS into that study; the result's params name it under ``stored_series``.
"""
from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from pathlib import Path

from fastapi import HTTPException
from monailabel.config import settings
from monailabel.datastore.dicom import DICOMwebClientX
from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.infer_v2 import InferTask
from monailabel.interfaces.tasks.train import TrainTask

from lib.bundle_catalogue import discover_models
from lib.bundle_infer_task import (BUNDLE_INPUTS, DICOM_FILES, DICOM_OUTPUT, BundleInferTask, BundleRunError,
                                   ModelUnavailableError)
from lib.bundle_train_task import BundleTrainTask, can_train
from lib.datastore_inputs import bundle_inputs, input_study, is_uploaded_file
from lib.dicomweb_datastore import OrthoGenDICOMwebDatastore, StoreError
from lib.generation_jobs import install_job_routes
from lib.generated_series import relabel, request_key, series_description, series_uid
from lib.ohif_files import install_ohif_route
from lib.train_requests import checked_train_request, install_train_routes
from lib.request_schema import checked_parameters

from orthogen import progress
from orthogen.errors import InputError
from orthogen.model_zoo import fetch_bundle, read_model_info

logger = logging.getLogger(__name__)

#: The repository's bundles, relative to this app folder (apps/orthogen_label -> bundles/).
DEFAULT_BUNDLES = Path(__file__).resolve().parents[2] / "bundles"
#: The largest file an /infer request may upload (app conf ``max_upload_mb``): a 4k x 4k 16-bit radiograph
#: is 32 MB, a 512^3 int16 CT 256 MB.
DEFAULT_MAX_UPLOAD_MB = 512.0
#: The request fields that name input series (their UIDs are part of a generated series' key).
INPUT_SERIES_FIELDS = ("image", "lateral", "label", "label_tag")


def input_series(request: dict) -> dict[str, str]:
    """The request's fields that name its inputs (:data:`INPUT_SERIES_FIELDS`), those it gives."""
    return {key: request[key] for key in INPUT_SERIES_FIELDS if request.get(key)}


def bundles_from_zoo(zoo: str, bundles_dir: str | Path) -> Path:
    """Fetch the newest version of every bundle of a model zoo (a folder or URL holding model_info.json,
    written by scripts/export_zoo.py) into ``bundles_dir``, each checked against its sha256
    (:func:`orthogen.model_zoo.fetch_bundle`); a bundle already there at that version is kept."""
    index = read_model_info(zoo)
    names = sorted({key.rpartition("_v")[0] for key in index})
    folder = Path(os.path.expanduser(str(bundles_dir))).resolve()
    for name in names:
        logger.info(f"bundle {name} from the zoo {zoo}: {fetch_bundle(name, zoo, folder)}")
    return folder


class OrthoGenLabelApp(MONAILabelApp):
    """MONAI Label app over the OrthoGen bundles (conf: ``bundles`` = folder of bundles)."""

    def __init__(self, app_dir: str, studies: str, conf: dict[str, str]):
        conf = conf or {}
        if conf.get("orthogen_zoo"):
            self.bundles_dir = bundles_from_zoo(conf["orthogen_zoo"], conf.get("bundles") or Path(app_dir) / "zoo_bundles")
        else:
            self.bundles_dir = Path(os.path.expanduser(conf.get("bundles", "") or DEFAULT_BUNDLES)).resolve()
        self.models = {model.name: model for model in discover_models(self.bundles_dir)}
        # the train tasks' weights (conf finetuned_dir, default <app>/model as in MONAI Label's sample apps)
        self.finetuned_dir = Path(os.path.expanduser(conf.get("finetuned_dir", "") or Path(app_dir) / "model"))
        self.max_upload_bytes = int(float(conf.get("max_upload_mb", DEFAULT_MAX_UPLOAD_MB)) * 2**20)
        super().__init__(app_dir=app_dir, studies=studies, conf=conf, name="OrthoGen",
                         description="Generative orthopaedic imaging: CT from AP + lateral radiographs, knee "
                                     "radiographs from segmentations (phantom-trained demonstration weights; "
                                     "not for clinical use)",
                         version="0.1.0")
        if "monailabel.app" in sys.modules:  # the server (not a script using the app class): /ohif/, jobs
            server = sys.modules["monailabel.app"].app
            install_ohif_route(server, settings.MONAI_LABEL_API_STR)
            install_job_routes(server, settings.MONAI_LABEL_API_STR)
            install_train_routes(server, settings.MONAI_LABEL_API_STR)  # one checked model per /train request

    def init_remote_datastore(self) -> Datastore:
        """The DICOMweb server of ``--studies`` as an OrthoGenDICOMwebDatastore (series kept as DICOM).

        Unlike MONAI Label's own, nothing is downloaded at start-up: dcmqi's itkimage2segimage (for saving
        a label as DICOM SEG) comes from the ``dcmqi`` wheel in the environment."""
        logger.info(f"DICOMweb datastore: {self.studies}")
        if not shutil.which("itkimage2segimage"):
            logger.warning("itkimage2segimage is not on PATH (pip install dcmqi): labels cannot be saved as DICOM "
                           "SEG to the DICOMweb server")
        client = DICOMwebClientX(url=self.studies, qido_url_prefix=settings.MONAI_LABEL_QIDO_PREFIX,
                                 wado_url_prefix=settings.MONAI_LABEL_WADO_PREFIX,
                                 stow_url_prefix=settings.MONAI_LABEL_STOW_PREFIX)
        client.set_http_retry_params(retry=False)  # its default retries every error for ~30 s
        cache = (settings.MONAI_LABEL_DICOMWEB_CACHE_PATH or "").strip() or None
        return OrthoGenDICOMwebDatastore(client, cache_path=cache)

    def init_infers(self) -> dict[str, InferTask]:
        return {name: BundleInferTask(model, self.finetuned_dir) for name, model in self.models.items()}

    def init_trainers(self) -> dict[str, TrainTask]:
        """A fine-tuning task per model that can learn from datastore cases (``lib.bundle_train_task``)."""
        return {name: BundleTrainTask(model, self.finetuned_dir) for name, model in self.models.items()
                if can_train(model)}

    def checked_train_request(self, model: str | None, params: dict | None) -> tuple[str, dict]:
        """The one trainable model a /train request names and its settings, refused (HTTPException, one line)
        before any task is queued when it names none, several or an unknown one, or when the datastore holds
        no training case of it (``lib.train_requests``)."""
        return checked_train_request(self._trainers, self.datastore(), model, params)

    def info(self):
        meta = super().info()
        meta["bundles"] = str(self.bundles_dir)
        meta["unavailable_models"] = {name: task.info() for name, task in self._infers.items() if not task.is_valid()}
        return meta

    def infer(self, request, datastore=None):
        """Check the model and find the request's images in the datastore, then run the task; each problem
        becomes one HTTP error line."""
        name = request.get("model")
        task = self._infers.get(name)
        if task is None:
            raise HTTPException(status_code=404, detail=f"model {name!r}: no such model; expected one of "
                                                        f"{', '.join(sorted(self._infers))}")
        reason = task.model.unavailable_reason()
        if reason:
            raise HTTPException(status_code=503, detail=f"model {name} is unavailable: {reason}")
        self._check_upload_sizes(request)
        datastore = datastore or self.datastore()
        dicomweb = isinstance(datastore, OrthoGenDICOMwebDatastore)
        try:
            progress.stage("reading the inputs")
            study = input_study(task.model, request, datastore) if dicomweb else None
            if dicomweb:  # an earlier answer to the same request: one QIDO-RS lookup, before any input is fetched
                uid = series_uid(self._request_key(task, request))
                earlier = datastore.find_series(uid)
                if earlier is not None:
                    logger.info(f"model {name}: the same request made series {uid} before; returning it")
                    return {"label": None, "params": {"model": name, "stored_series": {
                        "StudyInstanceUID": earlier.study_instance_uid, "SeriesInstanceUID": uid,
                        "Modality": earlier.modality, "SeriesDescription": earlier.description,
                        "instances": earlier.instances, "reused": True}}}
            inputs = bundle_inputs(task.model, request, datastore)
            start = time.monotonic()
            # a generated CT or radiograph is not a label of the request's image: never saved as one
            result = super().infer({**request, BUNDLE_INPUTS: inputs, "save_label": False, DICOM_OUTPUT: dicomweb},
                                   datastore)
            if dicomweb:
                params = result["params"]
                params["seconds"] = round(time.monotonic() - start, 1)
                description = series_description(name, task.model.bundle_dir.name, params["parameters"],
                                                 params["weights"])
                provenance = {key: params.get(key) for key in ("model", "bundle", "version", "weights", "method",
                                                                "parameters", "seconds")}
                provenance["inputs"] = input_series(request)
                progress.stage("storing the series in the study")
                params["stored_series"] = self._store(datastore, params.pop(DICOM_FILES), study,
                                                      lambda datasets: relabel(datasets, uid, description, provenance))
                params["stored_series"]["reused"] = False
            return result
        except StoreError as error:
            raise HTTPException(status_code=502, detail=str(error)) from None
        except InputError as error:
            raise HTTPException(status_code=400, detail=self._named_uploads(str(error), request)) from None
        except ModelUnavailableError as error:
            raise HTTPException(status_code=503, detail=str(error)) from None
        except BundleRunError as error:
            logger.exception(str(error))
            raise HTTPException(status_code=500, detail=str(error)) from None

    @staticmethod
    def _named_uploads(detail: str, request: dict) -> str:
        """``detail`` with MONAI Label's temporary path of an uploaded file replaced by the form field it came
        in (the client never saw that path)."""
        for field, form in (("image", "file"), ("label", "label")):
            value = request.get(field)
            if isinstance(value, str) and is_uploaded_file(value):
                detail = detail.replace(value, f"the uploaded {form} ({field})")
        return detail

    def _check_upload_sizes(self, request: dict) -> None:
        """HTTP 413 naming the field when an uploaded file is larger than ``max_upload_mb``."""
        for field in ("image", "label"):
            value = request.get(field)
            if isinstance(value, str) and is_uploaded_file(value) and os.path.getsize(value) > self.max_upload_bytes:
                raise HTTPException(status_code=413, detail=f"{field}: the uploaded file has "
                                                            f"{os.path.getsize(value) / 2**20:.1f} MB; expected at most "
                                                            f"{self.max_upload_bytes / 2**20:g} MB (app conf max_upload_mb)")

    @staticmethod
    def _request_key(task: BundleInferTask, request: dict) -> str:
        """What determines the series a request generates (``lib.generated_series``): model, weights, input
        series, and the parameters with the bundle's defaults filled in."""
        parameters = {**task.model.parameters, **checked_parameters(task.model, request)}
        return request_key(task.model.name, task.weights()[0], input_series(request), parameters)

    @staticmethod
    def _store(datastore: OrthoGenDICOMwebDatastore, files: list[str], study: str, relabel=None) -> dict:
        """STOW-RS the generated DICOM files into ``study`` (``relabel``: see ``store_series``); their
        temporary folder is removed either way."""
        try:
            stored = datastore.store_series([Path(file) for file in files], study, relabel)
        finally:
            shutil.rmtree(Path(files[0]).parent, ignore_errors=True)
        logger.info(f"stored series {stored['SeriesInstanceUID']} ({stored['instances']} instances) in study {study}")
        return stored
