"""REAPER through python-reapy: its tracks, time selection and tempo, and takes placed as media items.

reapy drives a running REAPER from outside over its "distant API": a web-interface port REAPER opens
once ``reapy.configure_reaper()`` has been run and REAPER restarted. Every property read is a round
trip, so each public method holds REAPER for one short conversation (`_session`) and turns reapy's
connection failures into one `HostError` sentence. reapy is imported only when first used, because
importing it already tries to connect.

A take is placed the way ReaScripts place a file without touching the user's edit cursor or track
selection: a new item on the track, a take on the item, and the take's source created from the file
(``PCM_Source_CreateFromFile`` + ``SetMediaItemTake_Source``), all inside one undo block. REAPER
references the file where it lies, so the take must stay in the library.
"""

from __future__ import annotations

import contextlib
import importlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from daw_plugin.audio import Region
from daw_plugin.hosts.base import HostError, Placement, Selection, Track

NOT_INSTALLED = "python-reapy is not installed; pip install python-reapy, then try again."
NOT_REACHABLE = (
    "REAPER is not reachable through reapy; start REAPER and enable reapy's distant API "
    "(python -c 'import reapy; reapy.configure_reaper()', then restart REAPER) and try again."
)
_CAUSE_LIMIT = 160


class ReaperHost:
    """Takes land in the current REAPER project; ``reapy_module`` replaces ``import reapy`` (tests)."""

    name = "reaper"

    def __init__(self, reapy_module: Any = None):
        self._reapy = reapy_module

    def check(self) -> None:
        with self._session("connecting"):
            pass

    def tracks(self) -> list[Track]:
        with self._session("listing tracks") as (_, project):
            # Enumerate instead of asking each track its index: one round trip fewer per track.
            return [Track(track.name, index) for index, track in enumerate(project.tracks)]

    def selection(self) -> Selection | None:
        """The project's time selection, on the first selected track if any; REAPER's audio is not read."""
        with self._session("reading the time selection") as (_, project):
            time_selection = project.time_selection
            start, end = time_selection.start, time_selection.end
            if end <= start:  # REAPER reports "no time selection" as an empty range
                return None
            selected = project.selected_tracks
            track = _track(selected[0]) if selected else None
        return Selection(Region(start, end), track)

    def insert(self, audio: Path, track: str | None, at_seconds: float) -> Placement:
        # REAPER runs in its own folder, so it must be told where the file is, not where it is from here.
        audio = Path(audio).expanduser().resolve()
        if not audio.is_file():
            raise HostError(f"There is no audio file at {audio}; check the path.")
        if at_seconds < 0:
            raise HostError(f"Cannot insert at {at_seconds:g} s; choose a time at or after 0 s.")
        with self._session(f"inserting {audio.name}") as (reapy, project):
            existing = _find_track(project, track) if track is not None else None
            project.begin_undo_block()
            try:
                return _place(reapy, project, audio, existing, at_seconds, track or audio.stem)
            finally:
                # Closed even on failure, so whatever was placed undoes in one step.
                project.end_undo_block(f"Insert take {audio.name}")

    def tempo_bpm(self) -> float | None:
        with self._session("reading the tempo") as (_, project):
            return float(project.bpm)

    def sample_rate(self) -> int | None:
        """The project's own rate when it sets one; None when REAPER follows the audio device.

        reapy exposes no call for the device's rate, so None is the honest answer then.
        """
        with self._session("reading the sample rate") as (_, project):
            if not project.get_info_value("PROJECT_SRATE_USE"):
                return None
            return int(project.get_info_value("PROJECT_SRATE"))

    @contextlib.contextmanager
    def _session(self, doing: str) -> Iterator[tuple[Any, Any]]:
        """Yield ``(reapy, current project)`` with REAPER held; reapy's failures leave as one `HostError`."""
        reapy = self._module()
        errors = reapy.errors
        try:
            if not _reachable(reapy):
                raise HostError(NOT_REACHABLE)
            # Held, REAPER answers the whole conversation without running its UI loop between calls.
            with reapy.inside_reaper():
                yield reapy, reapy.Project()
        except (errors.DisabledDistAPIError, errors.DisconnectedClientError, ConnectionError) as error:
            raise HostError(
                f"REAPER stopped answering while {doing}; make sure REAPER is running with reapy's distant API "
                "enabled, then try again."
            ) from error
        except errors.InvalidObjectError as error:
            raise HostError(f"A track or item was deleted in REAPER while {doing}; try again.") from error
        except errors.DistError as error:
            raise HostError(
                f"REAPER reported an error while {doing} ({_remote_cause(error)}); check that the project is open "
                "and editable, then try again."
            ) from error

    def _module(self) -> Any:
        if self._reapy is None:
            self._reapy = _import_reapy()
        return self._reapy


def _import_reapy() -> ModuleType:
    try:
        with warnings.catch_warnings():
            # reapy warns at import when REAPER is not up; `_reachable` turns that into our own sentence.
            warnings.simplefilter("ignore")
            return importlib.import_module("reapy")
    except ImportError as error:
        raise HostError(NOT_INSTALLED) from error


def _reachable(reapy: Any) -> bool:
    if reapy.is_inside_reaper() or reapy.dist_api_is_enabled():
        return True
    # reapy connects once, at import; REAPER may have been started since, so ask again before giving up.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", reapy.errors.DisabledDistAPIWarning)
        reapy.reconnect()
    return reapy.dist_api_is_enabled()


def _place(reapy: Any, project: Any, audio: Path, existing: Any | None, at_seconds: float,
           new_name: str) -> Placement:
    """Create the source first: an unreadable file must fail before any track or item exists.

    Without an ``existing`` track the take goes on a new one named ``new_name``, at the end of the list.
    """
    api = reapy.reascript_api
    source_id = api.PCM_Source_CreateFromFile(str(audio))
    source = reapy.Source(source_id) if source_id else None
    seconds = source.length() if source is not None else 0.0
    if source is None or not seconds > 0:
        if source is not None:
            source.delete()
        raise HostError(f"REAPER could not read {audio.name} as audio; insert a WAV, FLAC, AIFF, OGG or MP3 file.")
    target = existing if existing is not None else project.add_track(index=project.n_tracks, name=new_name)
    item = target.add_item(start=at_seconds, length=seconds)
    take = item.add_take()
    api.SetMediaItemTake_Source(take.id, source.id)
    api.GetSetMediaItemTakeInfo_String(take.id, "P_NAME", audio.name, True)
    reapy.update_arrange()
    # Read back rather than echo: REAPER may snap or clamp, and the caller wants where it really is.
    start = item.position
    return Placement(_track(target), start, start + item.length)


def _find_track(project: Any, name: str) -> Any | None:
    """The track named ``name``; None when there is none, and the take then goes on a new one of that name."""
    return next((track for track in project.tracks if track.name == name), None)


def _track(track: Any) -> Track:
    return Track(track.name, track.index)


def _remote_cause(error: Exception) -> str:
    """The exception line of the traceback reapy's `DistError` carries, short enough for one sentence."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    cause = lines[-1] if lines else type(error).__name__
    return cause if len(cause) <= _CAUSE_LIMIT else cause[: _CAUSE_LIMIT - 3] + "..."
