"""``daw-plugin serve``: the worker as a Ray Serve application (``pip install 'daw-plugin[server]'``).

An HTTP ingress (FastAPI) checks every request (the bearer token, then the limits) before any work and streams
the job's events as NDJSON; behind it a `Replica` per GPU (one CPU replica without GPUs) keeps its models warm
and runs one job at a time (``max_ongoing_requests=1``). The ingress holds the jobs no replica is free for, in
order, and tells each its place (`Queued`). A client that closes the stream cancels the job: Serve cancels the
handle call, and the replica stops its model at the next step. A replica that dies mid-job costs its client one
`Failed` sentence; Ray starts another in its place.

No ``from __future__ import annotations`` here: FastAPI reads the handlers' annotations (``Request``) at runtime.
"""

import asyncio
import contextvars
import hmac
import json
import os
import threading
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from ray import serve
from ray.exceptions import RayActorError

from daw_plugin import events
from daw_plugin.remote.protocol import MEDIA_TYPE, RawJob, Started, event_line, parse_line
from daw_plugin.remote.worker import Models, ThinSteps
from models.errors import UserError

APP_NAME = "daw-plugin"
app = FastAPI(title="daw-plugin worker", docs_url=None, redoc_url=None, openapi_url=None)


# The helpers come before the deployments: Serve serializes the classes as they are decorated.
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


class _Waiting:
    """The jobs the ingress holds, in order, until a replica is free: a job runs once fewer than ``slots`` (the
    replicas) run, so each waiting client is told its place, and Ray's own queue stays empty."""

    def __init__(self, slots: int):
        self.slots = slots
        self.line: list[object] = []  # waiting, first come first
        self.running: set[object] = set()
        self.changed = asyncio.Event()  # set (and replaced) at every change; made on the replica's loop at first use

    def join(self) -> object:
        ticket = object()
        self.line.append(ticket)
        return ticket

    def turn(self, ticket) -> int:
        """0 once the job may run (it then holds a slot until `leave`), else the jobs that must end before it."""
        if ticket in self.running:
            return 0
        ahead = self.line.index(ticket)
        if ahead or len(self.running) >= self.slots:
            return ahead + 1
        self.line.pop(0)
        self.running.add(ticket)
        self._tell()
        return 0

    def leave(self, ticket) -> None:
        """The job ended, failed or was dropped by its client, waiting or running: the next one moves up."""
        if ticket in self.running:
            self.running.discard(ticket)
        elif ticket in self.line:
            self.line.remove(ticket)
        self._tell()

    def _tell(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


COUNTS = ("jobs", "finished", "cancelled", "failed")
LOST = "The GPU server lost this job (the process running it stopped); no take of it was kept, so run it again."
TRIES = 3  # a job sent to a replica that died before taking it goes to another (Ray replaces the dead one)


@serve.deployment(max_ongoing_requests=1)
class Replica:
    """One engine on one GPU (or the CPU): the models warm, one job at a time. It tells the ingress its process and
    job counts (at start and around every job), so ``/stats`` lists every replica without waiting on a busy one."""

    async def __init__(self, names: list[str]):  # type: ignore[misc]  # Ray actors may construct asynchronously
        self.models = Models(names)
        self.started = Started(serve.get_replica_context().replica_id.unique_id, os.getpid())
        self.ingress = serve.get_deployment_handle("Ingress", APP_NAME)
        self.endings: set[asyncio.Task] = set()  # held here: asyncio keeps only weak references to its tasks
        await self.ingress.served.remote(self.models.describe())
        await self._report(busy=False)

    async def _report(self, busy: bool) -> None:
        counts = dict(self.models.counts)
        if busy:  # the job about to start is counted now, before any of its lines reaches the client
            counts["jobs"] += 1
        await self.ingress.report.remote({"replica": self.started.replica, "pid": self.started.pid, "busy": busy,
                                          "lost": False, **counts})

    async def _ended(self, thread: threading.Thread) -> None:
        if thread.ident is not None:  # started
            await asyncio.to_thread(thread.join)  # one job at a time: the next waits for this one
        await self._report(busy=False)

    async def run(self, body: dict):
        """The job's events as NDJSON lines, after a `Started` line naming this replica; cancelled (the client
        gone) stops the model at its next step."""
        job = RawJob.from_json(body)  # checked by the ingress already
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        stop = threading.Event()
        # Steps thinned on the model's thread (the last always sent): every line costs CPU in four processes
        def put(event: events.Event) -> None:  # from the model's thread to this stream's loop
            loop.call_soon_threadsafe(queue.put_nowait, event)

        emit = ThinSteps(put)
        thread = threading.Thread(target=self.models.run, name="daw-plugin-job", daemon=True,
                                  args=(job, emit, stop.is_set))
        try:
            await self._report(busy=True)
            thread.start()
            yield event_line(self.started)
            while True:
                event = await queue.get()
                yield event_line(event)
                if isinstance(event, events.FINAL):
                    return
        finally:
            stop.set()  # the stream was closed early: the model stops at its next step
            # The counts are told even when this stream was cancelled (the client read its last line and hung up).
            # In a context of its own: made in this request's, its report to the ingress is a child request that
            # Serve cancels with this one, and the replica stayed "busy" for good. Held until it ends: asyncio
            # keeps only weak references to tasks.
            ending = asyncio.get_running_loop().create_task(self._ended(thread), context=contextvars.Context())
            self.endings.add(ending)
            ending.add_done_callback(self.endings.discard)
            await asyncio.shield(ending)


@serve.deployment(max_ongoing_requests=64, ray_actor_options={"num_cpus": 0})
@serve.ingress(app)
class Ingress:
    def __init__(self, replica, token: str, limits: dict, replicas: int):
        self.replica, self.token, self.limits = replica, token, limits
        self.described: list[dict] | None = None
        self.waiting = _Waiting(replicas)
        self.replicas: dict[str, dict] = {}  # replica id -> its last report (pid, busy, lost, counts)

    def _refused(self, request: Request) -> JSONResponse | None:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            return _error(401, "The worker needs its token; set DAW_PLUGIN_TOKEN to the server's token.")
        return None

    async def report(self, entry: dict) -> None:
        """A replica's state, told by the replica itself (not over HTTP)."""
        self.replicas[entry["replica"]] = entry

    async def served(self, described: list[dict]) -> None:
        """What the replicas serve (the same on each), told by each as it starts: ``/models`` never waits on a job."""
        self.described = described

    @app.get("/health")
    async def health(self, request: Request):
        """Ok once a replica has its models loaded (the ingress answers before that, while Serve still deploys)."""
        return self._refused(request) or self._loading() or {"status": "ok", "limits": self.limits}

    def _loading(self) -> JSONResponse | None:
        if self.described is None:
            return _error(503, "The worker is still loading its models; try again in a minute.")
        return None

    @app.get("/models")
    async def models(self, request: Request):
        return self._refused(request) or self._loading() or {"models": self.described}

    @app.get("/stats")
    async def stats(self, request: Request):
        """The job counts (jobs, finished, cancelled, failed) of every replica together, each replica's (its pid,
        whether busy or lost) and the jobs waiting for one: for tests and a status line; never waits on a job."""
        if refused := self._refused(request):
            return refused
        entries = list(self.replicas.values())
        return {**{name: sum(entry[name] for entry in entries) for name in COUNTS}, "replicas": entries,
                "waiting": len(self.waiting.line)}

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
        return StreamingResponse(self._queued_then_run(json.loads(body)), media_type=MEDIA_TYPE)

    async def _queued_then_run(self, body: dict):
        """`Queued` lines while every replica is busy (each time the place changes), then the replica's lines."""
        ticket = self.waiting.join()
        try:
            told = 0
            while True:
                changed = self.waiting.changed  # taken before the check, so a change while we send is not missed
                if not (position := self.waiting.turn(ticket)):
                    break
                if position != told:
                    told = position
                    yield event_line(events.Queued(position))
                await changed.wait()
            async for line in self._run(body):
                yield line
        finally:
            self.waiting.leave(ticket)

    async def _run(self, body: dict):
        """The replica's lines; one `Failed` sentence (nothing half-made) when its process dies mid-job."""
        for _ in range(TRIES):
            started: str | None = None  # the replica's id, from its first line
            try:
                async for line in self.replica.options(stream=True).run.remote(body):
                    if started is None:
                        started = getattr(parse_line(line), "replica", "")
                    yield line
                return
            except RayActorError:
                if started is not None:  # it died making the job: the client is told, the job is not run again
                    self._lost(started)
                    yield event_line(events.Failed(LOST, "worker"))
                    return
        yield event_line(events.Failed(LOST, "worker"))

    def _lost(self, replica: str) -> None:
        entry = self.replicas.get(replica)
        if entry is not None and entry["busy"]:  # its job ends as failed; Ray starts a replica in its place
            self.replicas[replica] = {**entry, "busy": False, "lost": True, "failed": entry["failed"] + 1}


def application(names: list[str], token: str, limits: dict, replicas: int, resources: dict[str, float]):
    """The bound app: ``replicas`` replicas, each holding ``resources`` (e.g. one GPU, or a share of the CPUs)."""
    # serve.deployment makes the classes Deployments (.options, .bind), which mypy cannot see.
    replica: Any = Replica
    ingress: Any = Ingress
    bound = replica.options(num_replicas=replicas, ray_actor_options=resources).bind(names)
    return ingress.bind(bound, token, limits, replicas)
