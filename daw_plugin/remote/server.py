"""``daw-plugin serve``: the worker as a Ray Serve application (``pip install 'daw-plugin[server]'``).

An HTTP ingress (FastAPI) checks every request (the bearer token, then the limits) before any work and streams
the job's events as NDJSON; behind it a `Replica` per GPU (one CPU replica without GPUs) keeps its models warm
and runs one job at a time (``max_ongoing_requests=1``), the others waiting in Ray's queue. A client that closes
the stream cancels the job: Serve cancels the handle call, and the replica stops its model at the next step.

No ``from __future__ import annotations`` here: FastAPI reads the handlers' annotations (``Request``) at runtime.
"""

import asyncio
import hmac
import json
import threading
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from ray import serve

from daw_plugin import events
from daw_plugin.remote.protocol import MEDIA_TYPE, RawJob, event_line
from daw_plugin.remote.worker import Models
from models.errors import UserError

APP_NAME = "daw-plugin"
app = FastAPI(title="daw-plugin worker", docs_url=None, redoc_url=None, openapi_url=None)


# The helpers come before the deployments: Serve serializes the classes as they are decorated.
async def _lines(stream):
    async for line in stream:
        yield line


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None once it is over ``limit`` bytes (read no further)."""
    if int(request.headers.get("content-length") or 0) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def _check_limits(job: RawJob, limits: dict) -> None:
    if len(job.seeds) > limits["max_takes"]:
        raise UserError(f"This worker makes at most {limits['max_takes']} takes a job, not {len(job.seeds)}; ask "
                        "for fewer takes.")
    if job.seconds + job.preroll_seconds > limits["max_seconds"]:
        raise UserError(f"This worker makes at most {limits['max_seconds']:g} s a take, not "
                        f"{job.seconds + job.preroll_seconds:g}; ask for fewer seconds.")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


@serve.deployment(max_ongoing_requests=1)
class Replica:
    """One engine on one GPU (or the CPU): the models warm, one job at a time."""

    def __init__(self, names: list[str]):
        self.models = Models(names)

    def describe(self) -> list[dict]:
        return self.models.describe()

    def stats(self) -> dict:
        return dict(self.models.counts)

    async def run(self, body: dict):
        """The job's events as NDJSON lines; cancelled (the client gone) stops the model at its next step."""
        job = RawJob.from_json(body)  # checked by the ingress already
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        stop = threading.Event()
        thread = threading.Thread(target=self.models.run, name="daw-plugin-job", daemon=True,
                                  args=(job, lambda event: loop.call_soon_threadsafe(queue.put_nowait, event),
                                        stop.is_set))
        thread.start()
        try:
            while True:
                event = await queue.get()
                yield event_line(event)
                if isinstance(event, events.FINAL):
                    return
        finally:
            stop.set()  # the stream was closed early: the model stops at its next step
            await asyncio.shield(asyncio.to_thread(thread.join))  # one job at a time: the next waits for this one


@serve.deployment(max_ongoing_requests=64, ray_actor_options={"num_cpus": 0})
@serve.ingress(app)
class Ingress:
    def __init__(self, replica, token: str, limits: dict):
        self.replica, self.token, self.limits = replica, token, limits
        self.described: list[dict] | None = None

    def _refused(self, request: Request) -> JSONResponse | None:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            return _error(401, "The worker needs its token; set DAW_PLUGIN_TOKEN to the server's token.")
        return None

    @app.get("/health")
    async def health(self, request: Request):
        return self._refused(request) or {"status": "ok", "limits": self.limits}

    @app.get("/models")
    async def models(self, request: Request):
        if refused := self._refused(request):
            return refused
        if self.described is None:  # the same on every replica: asked once
            self.described = await self.replica.describe.remote()
        return {"models": self.described}

    @app.get("/stats")
    async def stats(self, request: Request):
        """One replica's job counts (jobs, finished, cancelled, failed), for tests and a status line."""
        return self._refused(request) or await self.replica.stats.remote()

    @app.post("/jobs")
    async def jobs(self, request: Request):
        if refused := self._refused(request):
            return refused
        body = await _read_body(request, self.limits["max_body_bytes"])
        if body is None:
            return _error(413, f"The job is larger than this worker's {self.limits['max_body_bytes']} bytes; send "
                               "a shorter clip to continue, or raise the server's --max-body-mb.")
        try:
            job = RawJob.from_json(json.loads(body))
            _check_limits(job, self.limits)
        except ValueError:
            return _error(422, "The job is not JSON; use a daw-plugin client of the same version.")
        except UserError as error:
            return _error(422, str(error))
        stream = self.replica.options(stream=True).run.remote(json.loads(body))
        return StreamingResponse(_lines(stream), media_type=MEDIA_TYPE)


def application(names: list[str], token: str, limits: dict, replicas: int, gpus: bool):
    """The bound app: ``replicas`` replicas, each on one GPU when ``gpus``."""
    # serve.deployment makes the classes Deployments (.options, .bind), which mypy cannot see.
    replica: Any = Replica
    ingress: Any = Ingress
    bound = replica.options(num_replicas=replicas,
                            ray_actor_options={"num_gpus": 1} if gpus else {"num_cpus": 1}).bind(names)
    return ingress.bind(bound, token, limits)
