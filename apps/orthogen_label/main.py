"""OrthoGen's MONAI Label app: a thin adapter that serves the repository's bundles as infer tasks.

Each bundle folder (app conf ``bundles``, default the repository's ``bundles/``) with configs/metadata.json
becomes one model, or one per shipped method / condition (declared in its metadata.json as ``orthogen_models``); each
model runs its bundle's own inference config (``lib.bundle_infer_task``). No model code lives here.
``/info`` lists the models that can run under ``models`` and those that cannot (no weights file, looked
up on each call) under ``unavailable_models`` with the reason. Request problems are answered as one line:
unknown model 404, unavailable model 503, bad request 400, a failure after the inputs were accepted 500.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from fastapi import HTTPException
from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.tasks.infer_v2 import InferTask

from lib.bundle_catalogue import discover_models
from lib.bundle_infer_task import BUNDLE_INPUTS, BundleInferTask, BundleRunError, ModelUnavailableError
from lib.datastore_inputs import bundle_inputs

from orthogen.errors import InputError

logger = logging.getLogger(__name__)

#: The repository's bundles, relative to this app folder (apps/orthogen_label -> bundles/).
DEFAULT_BUNDLES = Path(__file__).resolve().parents[2] / "bundles"


class OrthoGenLabelApp(MONAILabelApp):
    """MONAI Label app over the OrthoGen bundles (conf: ``bundles`` = folder of bundles)."""

    def __init__(self, app_dir: str, studies: str, conf: dict[str, str]):
        self.bundles_dir = Path(os.path.expanduser((conf or {}).get("bundles", "") or DEFAULT_BUNDLES)).resolve()
        self.models = {model.name: model for model in discover_models(self.bundles_dir)}
        super().__init__(app_dir=app_dir, studies=studies, conf=conf, name="OrthoGen",
                         description="Generative orthopaedic imaging: CT from AP + lateral radiographs, knee "
                                     "radiographs from segmentations (phantom-trained demonstration weights; "
                                     "not for clinical use)",
                         version="0.1.0")

    def init_infers(self) -> dict[str, InferTask]:
        return {name: BundleInferTask(model) for name, model in self.models.items()}

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
        try:
            inputs = bundle_inputs(task.model, request, datastore or self.datastore())
            # a generated CT or radiograph is not a label of the request's image: never saved as one
            return super().infer({**request, BUNDLE_INPUTS: inputs, "save_label": False}, datastore)
        except InputError as error:
            raise HTTPException(status_code=400, detail=str(error)) from None
        except ModelUnavailableError as error:
            raise HTTPException(status_code=503, detail=str(error)) from None
        except BundleRunError as error:
            logger.exception(str(error))
            raise HTTPException(status_code=500, detail=str(error)) from None
