"""What a job tells whoever watches it: the CLI's progress bar, the panel, a remote client.

Every event is a frozen dataclass with ``to_json()``: a dict with a ``"type"`` key that `json.dumps` takes.
A job's events end with exactly one of `Finished` (after a `TakeDone` for every take), `Failed` or
`Cancelled`. `Preview.to_json` leaves the audio out (a remote client that wants it asks for the take);
it gives the preview's place instead: ``offset_frames`` and ``frames`` at ``sample_rate``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from models.errors import InvalidRequest, Problem


@dataclass(frozen=True)
class Event:
    type = "event"

    def to_json(self) -> dict:
        return {"type": self.type} | {f.name: _plain(getattr(self, f.name)) for f in fields(self)}


def _plain(value):
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, Problem):
        return value.to_json()
    return value


@dataclass(frozen=True)
class Queued(Event):
    position: int  # jobs ahead of this one (0: it runs next)
    type = "queued"


@dataclass(frozen=True)
class Downloading(Event):
    done_bytes: int
    total_bytes: int | None  # None while the hub has not said yet
    type = "downloading"


@dataclass(frozen=True)
class Loading(Event):
    model: str  # as the request names it
    type = "loading"


@dataclass(frozen=True)
class Step(Event):
    takes: int  # how many takes these steps make: a request's takes are generated together, as one batch
    done: int
    total: int
    seconds_left: float | None  # for the batch, from the pace so far; None before the first step
    type = "step"


@dataclass(frozen=True)
class Preview(Event):
    take: int
    audio: np.ndarray = field(repr=False)  # float32 [channels, n]: the take's new samples, in order
    sample_rate: int
    offset_frames: int  # where ``audio`` starts in the take
    type = "preview"

    def to_json(self) -> dict:
        return {"type": self.type, "take": self.take, "sample_rate": self.sample_rate,
                "offset_frames": self.offset_frames, "channels": int(self.audio.shape[0]),
                "frames": int(self.audio.shape[1])}


@dataclass(frozen=True)
class TakeDone(Event):
    take: int
    path: Path  # the finished audio in the takes library
    recipe: dict = field(repr=False)  # as kept on disk: `Recipe.to_json()` (`Recipe.from_json` reads it back)
    score: float | None = None  # CLAP text-audio match, for models that can tell
    type = "take_done"


@dataclass(frozen=True)
class Inserted(Event):
    take: int
    host: str
    track: str
    start_seconds: float
    end_seconds: float
    type = "inserted"


@dataclass(frozen=True)
class Finished(Event):
    paths: tuple[Path, ...]  # every take, the best first for models that rank them
    type = "finished"


@dataclass(frozen=True)
class Failed(Event):
    message: str  # one sentence naming the problem and the fix
    field: str | None = None  # the request field it concerns, when one does
    # A refused request's problems (`InvalidRequest.problems`), for a front end to mark each field they name and
    # word them with its own labels (`worded`); empty for any other error. JSON: each `Problem.to_json`.
    problems: tuple[Problem, ...] = ()
    type = "failed"

    def worded(self, labels: Mapping[str, str] | None = None) -> str:
        """The message with each field named by a front end's label (the panel's; the CLI's flags)."""
        return InvalidRequest(self.problems).worded(labels) if self.problems else self.message


@dataclass(frozen=True)
class Cancelled(Event):
    type = "cancelled"


FINAL = (Finished, Failed, Cancelled)
