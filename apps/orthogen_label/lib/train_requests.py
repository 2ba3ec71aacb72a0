"""Fine-tuning requests as the app takes them: one chosen model per request, checked before a task is queued.

MONAI Label 0.8.5's ``POST /train/`` (OHIF's "Update Model") queues one train task per trainer, each of which
starts a subprocess and may fail there seconds later (e.g. with no labelled image), while OHIF says STARTED;
``POST /train/<model>`` queues the task before anything about the model or the datastore is checked; and
``GET /train/?check_if_running=true`` answers 404 when nothing runs. The routes here are put in front of MONAI
Label's (:func:`install_train_routes`, when the server starts the app), with the same roles when MONAI Label's
authentication is on:

- ``POST /train/<model>`` and ``POST /train/`` with ``{"model": "<name>", ...}`` in the body: the model must be
  one trainable model (400 naming the field ``model`` and the trainable models when the request names none or
  several, 404 for a name that is not one of them), and the datastore must hold a training case of that model
  (409 saying what is missing); only then is MONAI Label's one task queued (429 while another runs).
- ``GET /train/?check_if_running=true``: the running task (200), or 204 (no content) when none runs: OHIF reads
  "not running" from anything but a 200 whose status is RUNNING, and MONAILabelClient from anything but 200.
  Without ``check_if_running`` MONAI Label's answer as it is (the last task, 404 when there never was one).

Every refusal is one line in ``detail``.
"""
from __future__ import annotations

from typing import Any, Optional

from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import Response
from fastapi.routing import APIRoute
from monailabel.config import settings
from monailabel.endpoints import train as monailabel_train
from monailabel.endpoints.user.auth import RBAC, User
from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.utils.app import app_instance
from monailabel.utils.async_tasks.utils import processes

from lib.bundle_train_task import BundleTrainTask, missing_training_cases

__all__ = ["checked_train_request", "install_train_routes"]


def _trainable(trainers: dict[str, Any]) -> str:
    return ", ".join(sorted(trainers)) or "none (no bundle of this app can be fine-tuned)"


def checked_train_request(trainers: dict[str, BundleTrainTask], datastore: Datastore, model: str | None,
                          params: dict | None) -> tuple[str, dict]:
    """The model a train request fine-tunes and its settings (``params`` without ``model``).

    ``model`` is the one in the path (``POST /train/<model>``), None for ``POST /train/``, where the body's
    ``model`` names it. Raises HTTPException (one-line detail): 400 no model, several, or path and body
    disagreeing; 404 not a trainable model; 409 no training case of the model in ``datastore``.
    """
    params = dict(params or {})
    named = params.pop("model", None)
    expected = f"expected one model to fine-tune: POST /train/<model> with one of {_trainable(trainers)}"
    if model and named not in (None, model):
        raise HTTPException(status_code=400, detail=f"model: the path names {model!r}, the body {named!r}; {expected}")
    name = model or named
    if isinstance(name, (list, tuple)) and len(name) == 1:
        name = name[0]
    if isinstance(name, (list, tuple)):
        raise HTTPException(status_code=400, detail=f"model: {len(name)} models named ({', '.join(map(str, name))}); "
                                                    f"{expected}")
    if not name:
        raise HTTPException(status_code=400, detail=f"model: missing; {expected}")
    task = trainers.get(name) if isinstance(name, str) else None
    if task is None:
        raise HTTPException(status_code=404, detail=f"model {name!r}: no such trainable model; expected one of "
                                                    f"{_trainable(trainers)}")
    missing = missing_training_cases(task.model, datastore)
    if missing:
        raise HTTPException(status_code=409, detail=missing)
    return name, params


def train_status(all: bool = False, check_if_running: bool = False,
                 user: User = Depends(RBAC(settings.MONAI_LABEL_AUTH_ROLE_USER))):
    """GET /train/: as MONAI Label's, but 204 instead of 404 when ``check_if_running`` and none runs."""
    if check_if_running and not processes("train"):
        return Response(status_code=204)
    return monailabel_train.status(all, check_if_running)


def train_chosen_model(params: Optional[dict] = None, run_sync: Optional[bool] = False,
                       user: User = Depends(RBAC(settings.MONAI_LABEL_AUTH_ROLE_ADMIN))):
    """POST /train/: the model named by the body's ``model`` (MONAI Label's would queue every trainer)."""
    instance = app_instance()
    name, params = instance.checked_train_request(None, params)
    return monailabel_train.run_model(name, params, run_sync, enqueue=False)


def train_model(model: str, params: Optional[dict] = None, run_sync: Optional[bool] = False,
                enqueue: Optional[bool] = False, user: User = Depends(RBAC(settings.MONAI_LABEL_AUTH_ROLE_ADMIN))):
    """POST /train/<model>: checked, then MONAI Label's."""
    instance = app_instance()
    name, params = instance.checked_train_request(model, params)
    return monailabel_train.run_model(name, params, run_sync, enqueue)


ROUTES = (("/train/", train_status, "GET"), ("/train/", train_chosen_model, "POST"),
          ("/train/{model}", train_model, "POST"))


def install_train_routes(server: FastAPI, prefix: str = "") -> None:
    """Put this module's /train routes first in ``server``'s routes (once), ahead of MONAI Label's."""
    ours = {endpoint for _, endpoint, _ in ROUTES}
    if any(isinstance(route, APIRoute) and route.endpoint in ours for route in server.router.routes):
        return
    for path, endpoint, method in reversed(ROUTES):
        server.router.routes.insert(0, APIRoute(prefix + path, endpoint, methods=[method], tags=["Train"]))
