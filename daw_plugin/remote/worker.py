"""What one replica of the worker does, apart from Ray: keep its models warm and make raw takes, one job at a time.

`daw_plugin.remote.server` wraps it in a Ray Serve deployment; nothing here imports Ray, so it runs (and is
tested) without it. A replica never finishes, saves or inserts: the client does, on the musician's machine.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict
from typing import Any

from daw_plugin import events, jobs
from daw_plugin.remote.protocol import RawJob, RawTake
from models.errors import Cancelled, UserError, brief
from models.generator import Settings

STEP_SECONDS = 0.05  # the least time between two Step lines a replica streams (20 a second is smooth progress)


class Models:
    """The generators a replica serves, loaded once at start (the replica's warm engine)."""

    def __init__(self, names: list[str], device: str = "auto", threads: int | None = None):
        from models import registry

        self.loaded: dict[str, tuple[Any, Any]] = {}  # name -> (resolved model, generator)
        for name in names:
            model = registry.resolve(name)
            self.loaded[name] = (model, registry.load_generator(model, device, None, threads))
        self.counts = {"jobs": 0, "finished": 0, "cancelled": 0, "failed": 0}
        self._lock = threading.Lock()

    def describe(self) -> list[dict]:
        """What a client needs to know of each model before a job: its format (the option checks), its output
        and where it runs (the recipe), and its defaults (the settings a take is made with)."""
        return [{"name": name, "format": asdict(model.format), "family": generator.family,
                 "sample_rate": generator.sample_rate, "channels": generator.channels,
                 "supports_preview": generator.supports_preview, "device": generator.device.type,
                 "dtype": str(generator.dtype).removeprefix("torch."), "precision": generator.precision,
                 "threads": generator.threads, "defaults": asdict(generator.settings(Settings()))}
                for name, (model, generator) in self.loaded.items()]

    def run(self, job: RawJob, emit: jobs.OnEvent, should_stop) -> None:
        """Make the job's raw takes, sending Step and Preview events and a `RawTake` per take, then exactly one
        final event (`Finished` with no paths, `Failed` or `Cancelled`). Never raises."""
        with self._lock:
            self.counts["jobs"] += 1
        try:
            self._make(job, emit, should_stop)
        except Cancelled:
            self._count("cancelled")
            emit(events.Cancelled())
        except UserError as error:
            self._count("failed")
            emit(events.Failed(str(error), getattr(error, "field", None), getattr(error, "problems", ())))
        except Exception as error:  # noqa: BLE001  (a bug ends its job, never the replica)
            self._count("failed")
            emit(events.Failed(f"The worker failed: {type(error).__name__}: {brief(error)}"))
        else:
            self._count("finished")
            emit(events.Finished(()))

    def _make(self, job: RawJob, emit: jobs.OnEvent, should_stop) -> None:
        from models.device import use_threads

        if job.model not in self.loaded:
            raise UserError(f"This worker serves {', '.join(self.loaded)}, not {job.model}; choose one of them.",
                            field="model")
        model, generator = self.loaded[job.model]
        if job.precision not in (None, "auto", generator.precision):
            raise UserError(f"This worker runs {job.model} in {generator.precision}, not {job.precision}; leave out "
                            "--precision.", field="precision")
        if generator.threads is not None:  # another model may have set torch's threads since
            use_threads(generator.threads)
        takes = generator.generate(
            job.text, job.seconds, seeds=list(job.seeds), settings=job.settings, prompt=job.prompt,
            melody=job.melody, preroll_seconds=job.preroll_seconds, should_stop=should_stop,
            on_step=jobs._steps(emit, len(job.seeds)), on_preview=jobs._previews(emit, generator.sample_rate))
        score = getattr(generator, "score", None)  # as `jobs.make_takes` scores a local take: its new audio only
        start = round(job.preroll_seconds * generator.sample_rate)
        for index, samples in enumerate(takes):
            emit(RawTake(index, samples, generator.sample_rate,
                         score(job.text, samples[:, start:]) if score and job.text else None))

    def _count(self, outcome: str) -> None:
        with self._lock:
            self.counts[outcome] += 1


class ThinSteps:
    """``emit`` with at most one `Step` per ``every`` seconds, for the stream: each line costs some 3 ms of CPU
    between the replica, the ingress, Serve's proxy and the client (docs/PERFORMANCE.md), more than a step of a
    small model. The first Step goes at once (a client may cancel on it), and the last the model made always goes,
    before the takes: one with ``done == total`` at once, else any held back before the next event that is neither
    a Step nor a Preview, so the panel's and the CLI's progress always ends where the model's did. Previews and
    every other event pass as they come, in order."""

    def __init__(self, emit: jobs.OnEvent, every: float = STEP_SECONDS, clock=time.monotonic):
        self.emit, self.every, self.clock = emit, every, clock
        self.sent: float | None = None  # when the last Step went
        self.held: events.Step | None = None  # the newest Step not sent yet

    def __call__(self, event: events.Event) -> None:
        if isinstance(event, events.Step):
            now = self.clock()
            if self.sent is None or now - self.sent >= self.every or event.done >= event.total:
                self.sent, self.held = now, None
                self.emit(event)
            else:
                self.held = event
            return
        if self.held is not None and not isinstance(event, events.Preview):
            self.emit(self.held)
            self.held = None
        self.emit(event)
