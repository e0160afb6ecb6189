"""What every host adapter offers: tracks, the current selection, insert, tempo and sample rate.

A host is wherever takes land: our own session folder, a running Audacity, REAPER. Adapters raise
`HostError` (a `UserError`) for anything the user can fix, such as the host not running, a track
that does not exist or a read-only project, so the CLI and the panel report it in one line while
the take stays safe in the library.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from daw_plugin.audio import Clip, Region
from models.errors import UserError


class HostError(UserError):
    """The host cannot do what was asked; ``str(error)`` is one sentence naming the fix."""


@contextmanager
def as_host_error() -> Iterator[None]:
    """Raise the `UserError` of a shared helper (reading audio, writing files) as the `HostError` hosts promise."""
    try:
        yield
    except HostError:
        raise
    except UserError as error:
        raise HostError(str(error)) from error


@dataclass(frozen=True)
class Track:
    name: str
    index: int  # position in the host's track list, from 0
    kind: str = "audio"  # what the host calls other tracks ("label", "note"): a take cannot land there


@dataclass(frozen=True)
class Selection:
    """What the user selected: a time range, on a track when the host knows which, and its audio."""

    region: Region
    track: Track | None = None
    audio: Clip | None = None  # the selected audio (mixed to what the host gives), when readable


@dataclass(frozen=True)
class Placement:
    """Where an inserted take landed."""

    track: Track
    start_seconds: float
    end_seconds: float


@runtime_checkable
class Host(Protocol):
    name: str  # "session", "audacity", "reaper"

    def check(self) -> None:
        """Return if the host is reachable; raise `HostError` saying why not and what to do."""

    def tracks(self) -> list[Track]: ...

    def selection(self) -> Selection | None:
        """The current selection, or None when nothing is selected."""

    def insert(self, audio: Path, track: str | None, at_seconds: float) -> Placement:
        """Place the audio file on ``track`` at ``at_seconds``; the file itself is only read, never moved.

        ``track=None`` makes a new track named after the file, and a name the host does not have yet a
        new track of that name. A track that cannot hold audio (an Audacity label track) raises `HostError`.
        """

    def tempo_bpm(self) -> float | None:
        """The project tempo, when the host knows it."""

    def sample_rate(self) -> int | None:
        """The project sample rate, when the host knows it."""


def one_read(host: Host | None) -> AbstractContextManager:
    """A block in which ``host`` answers from one read of its project, where it can (`SessionHost.snapshot`).

    An optional method, not part of `Host`: a host without it answers each question live, as before.
    """
    snapshot = getattr(host, "snapshot", None)
    return snapshot() if snapshot is not None else nullcontext()
