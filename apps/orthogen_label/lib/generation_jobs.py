"""Generation as a job the viewer polls: ``POST /orthogen/jobs`` answers at once with a job id, ``GET
/orthogen/jobs/<id>`` says its state, stage and step until the stored series (or one error line) is there.

A request for a CT takes minutes on a CPU, longer than a browser should hold a request open, and the
viewer must show how far it is. One worker thread runs the jobs one after another, in the order they came
(two samplers at once on two cores would each run at half speed); each job runs the app's own ``infer``
(the same checks, the same answer as ``POST /infer``) while :mod:`orthogen.progress` reports its stages and
sampler steps into the job. The job's error is the line ``POST /infer`` would have answered, with its HTTP
status. The last :data:`KEPT_JOBS` jobs are kept in memory (a restart forgets them; the series stay in the
study).
"""
from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any

from fastapi import Body, Depends, FastAPI, HTTPException
from fastapi.routing import APIRoute
from monailabel.config import settings
from monailabel.endpoints.user.auth import RBAC
from monailabel.interfaces.utils.app import app_instance

from orthogen import progress

logger = logging.getLogger(__name__)

ROUTE = "/orthogen/jobs"
KEPT_JOBS = 200


@dataclass
class GenerationJob:
    """One request to a model: state ``queued`` -> ``running`` -> ``done`` | ``failed``; while running, the
    stage in words and, in a stage with steps, ``step`` of ``steps``; when done the stored series
    (``result``: the infer answer's params), when failed ``error`` (one line) and ``status`` (HTTP)."""

    id: str
    model: str
    image: str
    params: dict[str, Any]
    state: str = "queued"
    stage: str = "waiting for the jobs before it"
    step: int = 0
    steps: int = 0
    submitted: float = field(default_factory=time.time)
    seconds: float = 0.0
    result: dict[str, Any] | None = None
    error: str | None = None
    status: int | None = None

    def report(self, stage: str, step: int, steps: int) -> None:
        self.stage, self.step, self.steps = stage, step, steps

    def as_json(self) -> dict[str, Any]:
        answer = asdict(self)
        if self.state == "running":
            answer["seconds"] = round(time.time() - self.submitted, 1)
        return answer


class GenerationJobs:
    """The job queue and its one worker thread."""

    def __init__(self):
        self._jobs: OrderedDict[str, GenerationJob] = OrderedDict()
        self._queue: queue.Queue[GenerationJob] = queue.Queue()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None

    def submit(self, model: str, image: str, params: dict[str, Any]) -> GenerationJob:
        with self._lock:
            job = GenerationJob(id=f"{next(self._ids)}-{int(time.time() * 1000)}", model=model, image=image,
                                params=params)
            self._jobs[job.id] = job
            while len(self._jobs) > KEPT_JOBS:
                self._jobs.popitem(last=False)
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="orthogen-generation-jobs", daemon=True)
                self._worker.start()
        self._queue.put(job)
        return job

    def get(self, job_id: str) -> GenerationJob | None:
        return self._jobs.get(job_id)

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            self._run(job)

    @staticmethod
    def _run(job: GenerationJob) -> None:
        job.state, job.stage = "running", "starting"
        start = time.time()
        try:
            with progress.listening(job.report):
                answer = app_instance().infer({**job.params, "model": job.model, "image": job.image})
            job.result = answer.get("params", {})
            job.state, job.stage, job.status = "done", "done", 200
        except HTTPException as error:
            job.state, job.error, job.status = "failed", str(error.detail), error.status_code
        except Exception as error:  # anything the app did not turn into an HTTP answer: one line, logged whole
            logger.exception(f"job {job.id} ({job.model})")
            job.state, job.error, job.status = "failed", f"{type(error).__name__}: {error}", 500
        finally:
            job.seconds = round(time.time() - start, 1)
        logger.info(f"job {job.id} ({job.model}): {job.state} in {job.seconds} s{': ' + job.error if job.error else ''}")


JOBS = GenerationJobs()


async def submit_job(request: dict = Body(...)) -> dict:
    """``{"model": name, "image": series UID, "params": {...}}`` -> the new job (HTTP 202)."""
    model, image, params = request.get("model"), request.get("image"), request.get("params", {})
    if not isinstance(model, str) or not model:
        raise HTTPException(status_code=400, detail=f"model: expected the name of a model of /info/, got {model!r}")
    if not isinstance(image, str) or not image:
        raise HTTPException(status_code=400, detail=f"image: expected the SeriesInstanceUID of the input, got {image!r}")
    if not isinstance(params, dict):
        raise HTTPException(status_code=400, detail=f"params: expected an object, got {type(params).__name__}")
    if model not in app_instance().models:
        raise HTTPException(status_code=404, detail=f"model {model!r}: no such model; expected one of "
                                                    f"{', '.join(sorted(app_instance().models))}")
    return JOBS.submit(model, image, params).as_json()


async def get_job(job_id: str) -> dict:
    job = JOBS.get(job_id)
    if job is None:
        raise HTTPException(status_code=404, detail=f"job {job_id!r}: no such job (the server keeps the last "
                                                    f"{KEPT_JOBS} jobs since it started)")
    return job.as_json()


def install_job_routes(server: FastAPI, prefix: str = "") -> None:
    """Add ``POST /orthogen/jobs`` (202) and ``GET /orthogen/jobs/{job_id}`` to ``server`` (once), for the
    users ``POST /infer`` admits (MONAI Label's RBAC when its authentication is on)."""
    users = [Depends(RBAC(settings.MONAI_LABEL_AUTH_ROLE_USER))]
    if any(isinstance(route, APIRoute) and route.endpoint is submit_job for route in server.router.routes):
        return
    server.router.routes.insert(0, APIRoute(prefix + ROUTE, submit_job, methods=["POST"], status_code=202,
                                            include_in_schema=True, tags=["OrthoGen"], dependencies=users))
    server.router.routes.insert(0, APIRoute(prefix + ROUTE + "/{job_id}", get_job, methods=["GET"],
                                            include_in_schema=True, tags=["OrthoGen"], dependencies=users))
