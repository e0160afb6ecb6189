"""The engine: one inference thread, a FIFO queue of jobs, and the models it keeps warm between them.

    engine = Engine()
    job = engine.submit(Request("rain", model="musicgen-small", seconds=8))
    takes = job.result()

The CLI, the panel and a remote worker all drive it the same way: `Engine.submit` returns a `Job` at once;
its events (`daw_plugin.events`) arrive on the inference thread through `Job.subscribe`, or in order through
`Job.events` for a script; `Job.result` waits for the takes or raises the job's error. No Qt here, and torch
is imported only on the inference thread.
"""

from __future__ import annotations

import gc
import importlib
import itertools
import logging
import re
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from daw_plugin import events, jobs
from daw_plugin.events import Event
from models.errors import Cancelled, UserError, brief

if TYPE_CHECKING:
    from models.generator import Generator

OnEvent = Callable[[Event], None]
MAX_WARM = 2  # generators kept loaded at once, when memory allows more than one
MEMORY_MARGIN = 1.5  # a model needs about this many times its weight bytes to load and run


class Job:
    """One request on its way to takes. Made by `Engine.submit`; safe to use from any thread.

    A job keeps every event it sent, previews' audio included, so that a late subscriber and `events` see
    them all: drop the job once its takes are delivered (they are on disk) rather than keeping it.
    """

    def __init__(self, request, out: Path | str, number: int):
        self.request, self.out, self.number = request, Path(out), number
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._history: list[Event] = []
        self._subscribers: list[OnEvent] = []
        self._deliver = threading.RLock()  # one event at a time, in order, to every subscriber
        self._outcome: tuple[list | None, BaseException | None] | None = None
        self._ended = False  # the final event is sent: nothing comes after it

    def cancel(self) -> None:
        """Stop the job at its next stage (a queued job never starts); takes already saved are kept."""
        self._stop.set()
        engine = self._engine
        if engine is not None:
            engine._drop_queued(self)

    @property
    def cancel_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def done(self) -> bool:
        return self._outcome is not None

    def subscribe(self, callback: OnEvent) -> None:
        """Call ``callback(event)`` for every event: those already sent (at once, on this thread), then each new
        one on the inference thread (a job cancelled while queued sends its `Cancelled` on the cancelling thread).
        A callback must be quick and must not raise: it runs between the model's steps."""
        with self._deliver:
            for event in list(self._history):
                callback(event)
            self._subscribers.append(callback)

    def events(self, timeout: float | None = None) -> Iterator[Event]:
        """Every event of the job in order, from the first; ends after the final one (`events.FINAL`)."""
        seen = 0

        def more() -> bool:
            return len(self._history) > seen or self.done

        while True:
            with self._changed:
                if not self._changed.wait_for(more, timeout):
                    raise TimeoutError(f"job {self.number} sent no event in {timeout} s")
                new, finished = self._history[seen:], self.done
            seen += len(new)
            yield from new
            if finished and seen == len(self._history):
                return

    def result(self, timeout: float | None = None) -> list[jobs.Delivered]:
        """The delivered takes (the best first for models that rank them), or the job's error raised:
        `UserError` (what to fix), `Cancelled`, or a bug's own exception."""
        with self._changed:
            if not self._changed.wait_for(lambda: self.done, timeout):
                raise TimeoutError(f"job {self.number} did not end in {timeout} s")
        takes, error = self._outcome or (None, None)  # done: the outcome is set
        if error is not None:
            raise error
        return takes or []

    _engine: Engine | None = None

    def _emit(self, event: Event) -> None:
        with self._deliver:
            with self._changed:
                if self._ended:
                    return  # nothing after the final event
                self._ended = isinstance(event, events.FINAL)
                self._history.append(event)
                self._changed.notify_all()
            for callback in list(self._subscribers):
                try:
                    callback(event)
                except Exception:  # a front end's bug: told, but it must not end the job or the engine
                    logging.getLogger(__name__).exception("an event subscriber of job %d failed", self.number)

    def _end(self, takes: list | None, error: BaseException | None, final: Event) -> None:
        """Send the final event, then let `result` and `events` see the end."""
        self._emit(final)
        with self._changed:
            self._outcome = (takes, error)
            self._changed.notify_all()


@dataclass(frozen=True)
class DeviceUse:
    """Where the warm models run, as `Engine.device_use` reads it."""

    device: str  # "cpu", "mps", "cuda:0"
    models: int  # warm models (all on this device, the last loaded one's)
    used_bytes: int | None = None  # CUDA: the device's memory in use, by every process; None elsewhere
    total_bytes: int | None = None


@dataclass
class _Warm:
    key: tuple  # (model folder, device, text encoder, threads, precision)
    generator: Generator
    name: str


class Engine:
    """One inference thread that runs submitted jobs one at a time, in order, and keeps models warm.

    A generator is reused by every job with the same resolved model folder, device, text encoder and threads.
    Loading another one keeps the ones already warm only when the device has room for the new model too: its
    weight bytes times MEMORY_MARGIN must fit in the device's free memory (CUDA: `torch.cuda.mem_get_info`;
    elsewhere the RAM psutil calls available), and at most MAX_WARM stay loaded; otherwise the warm ones are
    freed first. A CUDA out-of-memory error frees every warm generator and becomes one `UserError`.
    """

    def __init__(self, out: Path | str = "takes"):
        self.out = Path(out)
        self._lock = threading.Condition()
        self._queue: deque[Job] = deque()
        self._running: Job | None = None
        self._closing = False
        self._warm: list[_Warm] = []
        self._ahead: list[str] = []  # model families whose modules to import while no job is queued
        self._importing = False
        self._numbers = itertools.count(1)
        self.loads = 0  # generators loaded so far (a warm one reused is not a load)
        self._thread = threading.Thread(target=self._work, name="daw-plugin-inference", daemon=True)
        self._thread.start()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def submit(self, request, out: Path | str | None = None, on_event: OnEvent | None = None) -> Job:
        """Queue ``request`` (a `GenerationRequest`); its takes go to ``out`` (the engine's ``out`` by default).
        ``on_event`` is subscribed before the job is queued, so it sees every event."""
        job = Job(request, self.out if out is None else out, next(self._numbers))
        job._engine = self
        if on_event is not None:
            job.subscribe(on_event)
        with self._lock:
            if self._closing:
                raise RuntimeError("the engine is closed; make a new Engine")
            job._emit(events.Queued(len(self._queue) + (self._running is not None)))  # before any later event
            self._queue.append(job)
            self._lock.notify_all()
        return job

    def import_ahead(self, family: str | None) -> None:
        """Import what a model of ``family`` loads with (`models.<family>`: torch, then transformers' or diffusers'
        modules, some 4 s on a laptop core) on the inference thread while no job is queued, so that the first job
        after it starts that much sooner. A job submitted meanwhile waits only for the module being imported,
        which it would import itself. An unknown family (None: a model not yet known) is no work."""
        from models.families import FAMILIES

        if family in FAMILIES:
            with self._lock:
                self._ahead.append(family)
                self._lock.notify_all()

    @property
    def importing(self) -> bool:
        """Whether an import ahead is waiting or running."""
        with self._lock:
            return bool(self._ahead) or self._importing

    def unload(self) -> None:
        """Free every warm generator (and, on CUDA, the memory torch's allocator keeps). A job running now keeps
        its generator until it ends; the next job loads it again."""
        self._free()

    def device_use(self) -> DeviceUse | None:
        """The device the last loaded warm model runs on and, on CUDA, its memory in use; None with no model warm.
        Safe on any thread and never waits on a job (call it off a UI thread all the same: CUDA asks the driver)."""
        with self._lock:
            warm = list(self._warm)
        if not warm:
            return None
        device = warm[-1].generator.device
        if device.type != "cuda":
            return DeviceUse(device.type, len(warm))
        import torch  # already imported: a model is loaded on it

        index = device.index if device.index is not None else torch.cuda.current_device()
        free, total = torch.cuda.mem_get_info(index)
        return DeviceUse(f"cuda:{index}", len(warm), total - free, total)

    def close(self) -> None:
        """Cancel the queued jobs and the running one, wait for the thread to end (not for an import ahead), and
        free the models."""
        with self._lock:
            self._closing = True
            queued, running, importing = list(self._queue), self._running, self._importing
            self._queue.clear()  # taken here, under the lock: the inference thread can start none of them
            self._lock.notify_all()
        for job in queued:
            job._stop.set()
            job._end(None, Cancelled(), events.Cancelled())
        if running is not None:
            running.cancel()
        if self._thread is not threading.current_thread() and not importing:
            self._thread.join()  # an import ahead is not waited for: nothing to free, and it ends on its own

    # --- the inference thread ------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._queue or self._closing or self._ahead)
                if not self._queue:
                    if self._closing:
                        break
                    family = self._ahead[-1]  # the newest choice first; each family once
                    self._ahead = [other for other in self._ahead if other != family]
                    job, self._importing = None, True
                else:
                    job = self._running = self._queue.popleft()
                    waiting = list(self._queue)
            if job is None:
                _import_family(family)
                with self._lock:
                    self._importing = False
                continue
            for position, later in enumerate(waiting):  # each waiting job moved up one place
                later._emit(events.Queued(position + 1))
            try:
                self._run(job)
            finally:
                with self._lock:
                    self._running = None
        self._free()

    def _run(self, job: Job) -> None:
        try:
            if job.cancel_requested:
                raise Cancelled()
            takes = jobs.run(job.request, job.out, should_stop=job._stop.is_set, on_event=job._emit,
                             loader=lambda model, request: self._generator(model, request, job._emit))
        except Cancelled as error:
            job._end(None, _without_frames(error), events.Cancelled())
        except BaseException as error:  # noqa: BLE001  (a bug ends its job, never the engine)
            if _is_out_of_memory(error):
                error = self._out_of_memory(job, error)
            if isinstance(error, UserError):
                _without_frames(error)
            job._end(None, error, _failed(error))
        else:
            job._end(takes, None, events.Finished(tuple(take.path for take in takes)))

    def _generator(self, model, request, emit: OnEvent):
        """The warm generator for this model, device, text encoder and threads, loaded when there is none."""
        with self._lock:
            first = not self._warm  # a load for certain: said before importing torch, the first of its seconds
        if first:
            emit(events.Loading(request.model))
        from models import registry
        from models.device import resolve_device, use_threads

        device = resolve_device(request.device)
        key = (str(Path(model.folder).resolve()), str(device), request.text_encoder, request.threads,
               request.precision)
        with self._lock:  # `unload` may change the list from another thread; a load itself runs unlocked
            warm = next((w for w in self._warm if w.key == key), None)
        if warm is not None:
            if warm.generator.threads is not None:  # another model may have set torch's threads since
                use_threads(warm.generator.threads)
            return warm.generator
        if not self._room_for(registry.weight_bytes(model.folder), device):
            self._free()
        if not first:
            emit(events.Loading(request.model))
        generator = registry.load_generator(model, request.device, request.text_encoder, request.threads,
                                            precision=request.precision)
        self.loads += 1
        with self._lock:
            self._warm.append(_Warm(key, generator, request.model))
        return generator

    def _room_for(self, weight_bytes: int, device) -> bool:
        """Whether a model of ``weight_bytes`` can load beside the warm ones (see the class docstring)."""
        with self._lock:
            warm = len(self._warm)
        if not warm:
            return True
        if warm >= MAX_WARM:
            return False
        return _free_bytes(device) > weight_bytes * MEMORY_MARGIN

    def _free(self) -> None:
        with self._lock:
            freed, self._warm = self._warm, []
        gpus = {w.generator.device.type for w in freed if getattr(w.generator, "device", None) is not None} - {"cpu"}
        freed.clear()
        gc.collect()
        if gpus:
            from models.device import empty_cache

            for device_type in gpus:
                empty_cache(device_type)

    def _out_of_memory(self, job: Job, error: BaseException) -> UserError:
        """Free every warm generator and the allocator's cache; the message names the model and what to try."""
        needed = re.search(r"Tried to allocate ([\d.]+ [KMGT]iB)", str(error))
        error.__traceback__ = None  # its frames hold the tensors that filled the memory
        self._free()
        request = job.request
        message = UserError(
            f"The GPU ran out of memory running {request.model}"
            f"{f' (it needed {needed.group(1)} more)' if needed else ''}; try fewer takes, fewer seconds, a smaller "
            "model, or --device cpu.")
        message.field = "device"
        message.__cause__ = error
        return message

    def _drop_queued(self, job: Job) -> None:
        """A job cancelled before it started ends now, not when the one running ends."""
        with self._lock:
            try:
                self._queue.remove(job)
            except ValueError:
                return  # running or done: it sees its cancel at the next stage
        job._end(None, Cancelled(), events.Cancelled())


def _import_family(family: str) -> None:
    """Import ``models.<family>``; a failure is left to the job that loads such a model, which says it in its
    own words."""
    try:
        importlib.import_module(f"models.{family}")
    except Exception:  # noqa: BLE001  (a missing extra, a broken install: the job reports it)
        logging.getLogger(__name__).debug("importing models.%s ahead failed", family, exc_info=True)


def _failed(error: BaseException) -> events.Failed:
    if isinstance(error, UserError):
        return events.Failed(str(error), getattr(error, "field", None), getattr(error, "problems", ()))
    return events.Failed(f"{type(error).__name__}: {brief(error)}")  # a bug: its own exception is re-raised


def _without_frames(error: BaseException) -> BaseException:
    """The error without its tracebacks (its own and its causes'): their frames would keep the job's generator
    and tensors alive for as long as the `Job` is kept. A bug keeps its traceback, for --traceback."""
    seen: BaseException | None = error
    chain: set[int] = set()
    while seen is not None and id(seen) not in chain:
        chain.add(id(seen))
        seen.__traceback__ = None
        seen = seen.__cause__ or seen.__context__
    return error


def _is_out_of_memory(error: BaseException) -> bool:
    if "torch" not in sys.modules:  # never imported here only to ask: without torch, no GPU ran out
        return False
    from models.device import out_of_memory

    return out_of_memory(error)


def _free_bytes(device) -> int:
    if device.type == "cuda":
        import torch

        return torch.cuda.mem_get_info(device)[0]
    import psutil

    return psutil.virtual_memory().available
