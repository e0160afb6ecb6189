"""The client side: a job whose request names a ``worker`` gets its raw takes from that GPU server.

`load_remote` stands where `daw_plugin.jobs.load` would load a model: it asks the worker what it serves and returns
a `RemoteGenerator`, whose ``generate`` posts the job and turns the streamed events back into the engine's own
(steps, previews) and the raw takes. The rest of the job (finishing, the takes library, the DAW) runs here, on the
same engine thread as a local job, so the panel and the CLI see the same events and cancel it the same way.
Standard library only (``http.client``): the client needs no server extra.
"""

from __future__ import annotations

import http.client
import json
import queue
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass, fields
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from daw_plugin import events
from daw_plugin.remote.protocol import RawJob, RawTake, parse_line
from daw_plugin.remote.token_file import TOKEN_VARIABLE, env_token, stored_token
from models.errors import Cancelled, InvalidRequest, UserError
from models.families import family
from models.formats import Format
from models.generator import MODEL_DEFAULTS, Settings

CONNECT_SECONDS = 10.0
ANSWER_SECONDS = 30.0
POLL_SECONDS = 0.1  # how often a job waiting for the worker's next line looks at its cancel flag


class Worker:
    """A worker's URL and token, and its two kinds of call: a JSON answer, or a job's stream of lines."""

    def __init__(self, url: str, token: str | None = None):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UserError(f"--worker must be a URL such as http://gpu-box:8765, not {url!r}.", field="worker")
        self.url, self.parts = url.rstrip("/"), parts
        # $DAW_PLUGIN_TOKEN, else the token the panel stored (shared with the CLI)
        self.token = token if token is not None else env_token() or stored_token()

    def get(self, path: str) -> Any:
        connection = self._connect()
        assert connection.sock is not None
        connection.sock.settimeout(ANSWER_SECONDS)  # /health and /models answer at once: a silent server is gone
        try:
            connection.request("GET", path, headers=self._headers())
            response = connection.getresponse()
            return self._answer(response, response.read())
        except OSError as error:
            raise self._gone(error, mid_job=False) from error
        finally:
            connection.close()

    def stream(self, path: str, body: bytes, should_stop) -> Any:
        """The job's lines as they come; `Cancelled` (the connection closed, so the worker stops the job) once
        ``should_stop`` says so."""
        connection = self._connect()
        try:
            connection.request("POST", path, body=body, headers={**self._headers(), "Content-Type": "application/json"})
            response = connection.getresponse()
            if response.status != 200:
                self._answer(response, response.read())
            lines: queue.Queue[bytes | BaseException | None] = queue.Queue()
            threading.Thread(target=_read_lines, args=(response, lines), daemon=True,
                             name="daw-plugin-worker-stream").start()
            while True:
                if should_stop():  # checked before every line too: a busy stream never waits
                    raise Cancelled()
                try:
                    line = lines.get(timeout=POLL_SECONDS)
                except queue.Empty:
                    continue
                if isinstance(line, BaseException):
                    raise self._gone(line, mid_job=True) from line
                if line is None:
                    raise self._gone(None, mid_job=True)
                yield line
        except OSError as error:
            raise self._gone(error, mid_job=False) from error
        finally:
            _hang_up(connection)

    def _connect(self) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self.parts.scheme == "https" else http.client.HTTPConnection
        connection = kind(self.parts.hostname or "", self.parts.port, timeout=CONNECT_SECONDS)
        try:
            connection.connect()
        except OSError as error:
            raise self._gone(error, mid_job=False) from error
        assert connection.sock is not None
        connection.sock.settimeout(None)  # a job may wait its turn in Ray's queue for minutes
        return connection

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def _answer(self, response, body: bytes) -> Any:
        if response.status == 200:
            return json.loads(body)
        try:
            message = json.loads(body)["error"]
        except (ValueError, KeyError, TypeError):
            message = f"The worker at {self.url} answered {response.status} {response.reason}; check the URL."
        if response.status == 401:
            message = (f"The worker at {self.url} refused the token; set {TOKEN_VARIABLE} (or the panel's Worker "
                       "token) to the server's token.")
        raise UserError(message, field="worker")

    def _gone(self, error: BaseException | None, mid_job: bool) -> UserError:
        reason = f" ({error.strerror or error})" if isinstance(error, OSError) else ""
        if mid_job:
            return UserError(f"The worker at {self.url} stopped answering mid-job{reason}; no take of it was kept, "
                             "so run it again (or generate on this computer).", field="worker")
        return UserError(f"Cannot reach the worker at {self.url}{reason}; check the URL and that `daw-plugin serve` "
                         "runs there.", field="worker")


def _read_lines(response, lines: queue.Queue) -> None:
    try:
        while line := response.readline():
            lines.put(line)
        lines.put(None)  # the end: after a final event, or the server gone
    except BaseException as error:  # noqa: BLE001  (handed to the job's thread, which says it in one sentence)
        lines.put(error)


def _hang_up(connection: http.client.HTTPConnection) -> None:
    """Close now, even while the reading thread waits on the socket: the worker sees its client gone."""
    if connection.sock is not None:
        try:
            connection.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    connection.close()


@dataclass
class _Device:
    type: str  # what a recipe records of a torch.device


class RemoteGenerator:
    """`models.generator.Generator` as a worker serves it: what it is from ``GET /models``, takes from ``/jobs``."""

    def __init__(self, worker: Worker, served: dict, precision: str | None = None, on_event=None):
        self.worker, self.model = worker, served["name"]
        self.on_event = on_event or _ignore  # the job's own events (`Queued`) go straight to the engine's emit
        self.family, self.name = served["family"], f"{served['name']} on {worker.url}"
        self.sample_rate, self.channels = int(served["sample_rate"]), int(served["channels"])
        self.supports_preview, self.threads = bool(served["supports_preview"]), None  # threads are the server's
        self.device, self.dtype, self.precision = _Device(served["device"]), served["dtype"], served["precision"]
        self.defaults = Settings(**served["defaults"])
        self.asked_precision = precision
        self._takes: dict[int, np.ndarray] = {}  # the last job's raw takes and their scores, for `score`
        self._scores: dict[int, float | None] = {}

    def settings(self, given: Settings) -> Settings:
        """As the model itself fills them in: given or its default for what its family takes, None for the rest."""
        takes = family(self.family).settings
        return Settings(**{f.name: (getattr(given, f.name) if getattr(given, f.name) is not None
                                    else getattr(self.defaults, f.name)) if f.name in takes else None
                           for f in fields(Settings)})

    def generate(self, text: str | None, seconds: float, *, seeds: Sequence[int], settings: Settings = MODEL_DEFAULTS,
                 prompt=None, melody=None, preroll_seconds: float = 0.0, on_step=None, should_stop=None,
                 on_preview=None) -> list[np.ndarray]:
        job = RawJob(self.model, text, seconds, tuple(seeds), settings, preroll_seconds, prompt, melody,
                     self.asked_precision)
        takes: dict[int, np.ndarray] = {}
        self._takes, self._scores = takes, {}
        for line in self.worker.stream("/jobs", json.dumps(job.to_json()).encode(), should_stop or _never):
            event = parse_line(line)
            if isinstance(event, events.Queued):  # its place among the jobs waiting for the worker's replicas
                self.on_event(event)
            elif isinstance(event, events.Step) and on_step is not None:
                on_step(event.done, event.total)
            elif isinstance(event, events.Preview) and on_preview is not None:
                on_preview(event.take, event.audio)
            elif isinstance(event, RawTake):
                takes[event.take] = event.audio
                self._scores[event.take] = event.score
            elif isinstance(event, events.Failed):  # a refusal's problems, so the panel marks each field
                raise InvalidRequest(event.problems) if event.problems else UserError(event.message, event.field)
            elif isinstance(event, events.Cancelled):
                raise UserError(f"The worker at {self.worker.url} cancelled the job (it is shutting down); run it "
                                "again.", field="worker")
            elif isinstance(event, events.Finished):
                if sorted(takes) != list(range(len(seeds))):
                    raise UserError(f"The worker at {self.worker.url} sent {len(takes)} of {len(seeds)} takes; run "
                                    "it again.", field="worker")
                return [takes[index] for index in range(len(seeds))]
        raise AssertionError("unreachable: the stream ends in a final event or raises")


    def score(self, text: str, audio: np.ndarray) -> float | None:
        """The worker's score of the take whose new audio ``audio`` is (None: the model gives none), so a remote
        AudioLDM 2's takes are ranked as local ones are; `jobs.make_takes` asks with the take's tail."""
        for index, take in self._takes.items():
            if take.shape[1] >= audio.shape[1] and np.array_equal(take[:, take.shape[1] - audio.shape[1]:], audio):
                return self._scores.get(index)
        return None


def _never() -> bool:
    return False


def _ignore(event) -> None:
    pass


def load_remote(request, emit=None) -> tuple[Any, RemoteGenerator]:
    """(a stand-in for the resolved model, a `RemoteGenerator`) for a request with a ``worker``; the options are
    checked against the served model's configs here, before anything is sent. ``emit`` gets the worker's `Queued`."""
    from daw_plugin.model_options import check_model_options

    worker = Worker(request.worker)
    served = {entry["name"]: entry for entry in worker.get("/models")["models"]}
    if request.model not in served:
        raise UserError(f"The worker at {worker.url} serves {', '.join(served) or 'no model'}, not {request.model}; "
                        "choose one of those with --model.", field="model")
    entry = served[request.model]
    check_model_options(request, Format(**entry["format"]))
    generator = RemoteGenerator(worker, entry, request.precision, emit)
    return SimpleNamespace(name=request.model, folder=worker.url), generator



