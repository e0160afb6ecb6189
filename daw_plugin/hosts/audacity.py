"""Audacity as a host, driven through its mod-script-pipe module (Audacity 3.2 and later).

Tracks and clips come from ``GetInfo``. Audacity 3.2 has no query for the time selection or the
project rate, so `selection`, `sample_rate` and `tempo_bpm` read them from a scratch ``SaveCopy``
of the project (see `audacity_project`), which leaves the user's project, undo history and
selection untouched; the price is a copy of the project's audio (about 0.1 s for a small project,
0.6 s for ten minutes of stereo), deleted at once.

Scripting commands answer OK even when they did nothing (``Track=99``), so `insert` checks every
placement with ``GetInfo: Type=Clips``. Some commands open a modal dialog and never answer: an
import of a missing or undecodable file, a save over an existing file, ``Exit`` with unsaved
changes. Those are checked here first, and every read has a timeout.

mod-script-pipe serves one conversation at a time and its replies carry no id: one process at a
time should drive Audacity (a host object is safe to share between threads).
"""

from __future__ import annotations

import json
import math
import shutil
import sqlite3
import struct
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pedalboard.io import AudioFile

from daw_plugin.audio import Clip, Region
from daw_plugin.hosts.audacity_pipe import PipeGone, PipeTimeout, Reply, ScriptPipe
from daw_plugin.hosts.audacity_project import ProjectCopy, ProjectInfo
from daw_plugin.hosts.base import HostError, Placement, Selection, Track
from models.errors import brief

NOT_RUNNING = (
    "Audacity is not running with mod-script-pipe enabled; start it (see packaging/audacity/start-headless.sh) "
    "or enable mod-script-pipe under Edit > Preferences > Modules and restart Audacity."
)
PRINTED_PRECISION = 5e-6  # GetInfo prints times with 6 significant digits: a relative error up to this


class AudacityHost:
    """A running Audacity, reached through ``<pipe_dir>/audacity_script_pipe.{to,from}.<uid>``.

    ``timeout_s`` bounds each ordinary command; ``slow_timeout_s`` bounds those whose time grows
    with the audio (import, paste, saving a copy).
    """

    name = "audacity"

    def __init__(self, pipe_dir: str | Path = "/tmp", timeout_s: float = 10.0, slow_timeout_s: float = 120.0):
        self.pipe_dir = Path(pipe_dir)
        self.timeout_s = timeout_s
        self.slow_timeout_s = slow_timeout_s
        self._pipe = ScriptPipe(self.pipe_dir, timeout_s)

    def check(self) -> None:
        with self._answering():
            self._run("Message: Text=daw-plugin")

    def tracks(self) -> list[Track]:
        with self._answering():
            return [_track(info, index) for index, info in enumerate(self._track_infos())]

    def selection(self) -> Selection | None:
        """The time selection and the first selected audio track, with that track's audio in the range.

        The audio is the track's own samples at its own rate (no gain, pan or envelope), silence
        between clips. None when no time range is selected.
        """
        with self._answering(), self._project() as project:
            info = project.info
            start, end = info.selection_start_seconds, info.selection_end_seconds
            if end <= start:
                return None
            chosen = next((t for t in info.tracks if t.selected and t.kind == "wave"), None)
            if chosen is None:
                return Selection(Region(start, end))
            audio = Clip(project.audio(chosen, start, end), chosen.sample_rate) if chosen.sample_rate else None
            return Selection(Region(start, end), Track(chosen.name, chosen.index), audio)

    def tempo_bpm(self) -> float | None:
        """The project tempo; Audacity 3.2 keeps none, so None there (3.3 and later save one)."""
        return self._project_info().tempo_bpm

    def sample_rate(self) -> int | None:
        return self._project_info().sample_rate

    def save_copy(self, path: str | Path) -> Path:
        """Save a copy of the open project as ``path`` (``.aup3``), leaving the open project as it is."""
        path = Path(path).expanduser().resolve()
        if path.suffix.lower() != ".aup3":
            raise HostError(f"Audacity saves projects as .aup3, not {path.name}; name the copy {path.stem}.aup3.")
        if path.exists():  # Audacity would open an error dialog and stop answering
            raise HostError(f"{path} already exists; choose a new name for the copy.")
        if not path.parent.is_dir():
            raise HostError(f"The folder {path.parent} does not exist; create it or save the copy elsewhere.")
        with self._answering():
            self._run(f"SaveCopy: Filename={_quoted(path)}", self.slow_timeout_s)
        if not path.is_file():
            raise HostError(f"Audacity did not write {path}; check that the folder is writable.")
        return path

    def insert(self, audio: Path, track: str | None, at_seconds: float) -> Placement:
        """Import ``audio`` and place it at ``at_seconds`` on ``track``.

        ``track=None`` makes a new track named after the file; a name the project does not have yet
        makes a new track of that name.

        Onto an existing track the take is pasted into ``[at, at + length]``, so nothing later on the
        track moves; this goes through Audacity's clipboard, and a stereo take is mixed to mono for a
        mono track. That range must be empty: a paste would replace the user's audio there, and
        scripted edits leave no undo step in Audacity 3.2. The placed take is left selected.
        """
        audio = Path(audio).expanduser().resolve()
        _quoted(audio)  # refuse an unsendable name or path before anything is sent
        if track is not None:
            _quoted_text(track)
        duration_s, rate, _ = _audio_shape(audio)
        if not (math.isfinite(at_seconds) and at_seconds >= 0):
            raise HostError(f"Cannot insert at {at_seconds} s; choose a time of 0 s or later.")
        with self._answering():
            before = self._track_infos()
        target = _find_track(before, track) if track is not None else None
        if target is not None:
            with self._answering():
                self._refuse_overlap(target, at_seconds, at_seconds + duration_s)
        with self._answering(inserting=audio):
            placed = self._import_and_place(audio, duration_s, target, at_seconds, before)
            if track is not None and target is None:
                placed = self._rename(placed, track)
            self._verify(placed, at_seconds, duration_s, rate)
            self._run(f"Select: Start={_s(at_seconds)} End={_s(at_seconds + duration_s)} "
                      f"Track={placed.index} TrackCount=1 Mode=Set")
        return Placement(placed, at_seconds, at_seconds + duration_s)

    def close(self) -> None:
        self._pipe.close()

    # -- steps of insert

    def _import_and_place(
        self, audio: Path, duration_s: float, target: Track | None, at: float, before: list[dict]
    ) -> Track:
        count = len(before)
        self._run(f"Import2: Filename={_quoted(audio)}", self.slow_timeout_s)
        after = self._track_infos()
        if len(after) != count + 1:
            raise HostError(f"Audacity did not import {audio} as one new track; check that it opens in Audacity.")
        if target is None:
            if at > 0:  # Import2 always puts the clip at 0 s
                self._run(f"SelectTracks: Track={count} TrackCount=1 Mode=Set")
                self._run(f"SetClip: At={_s(duration_s / 2)} Start={_s(at)}")
            return Track(str(after[count].get("name", "")), count)
        temporary = str(after[count].get("name", ""))
        mix_down = after[count].get("channels", 1) > before[target.index].get("channels", 1)
        try:
            self._paste(count, duration_s, target, at, mix_down)
        except HostError:  # Audacity refused a step: take the imported track away again, then report
            self._remove_track(count, temporary)
            raise
        self._remove_track(count, temporary)
        return target

    def _paste(self, source: int, duration_s: float, target: Track, at: float, mix_down: bool) -> None:
        self._run(f"Select: Start=0 End={_s(duration_s)} Track={source} TrackCount=1 Mode=Set")
        if mix_down:  # Audacity refuses to paste two channels into one; it does spread one over two
            self._run("StereoToMono:", self.slow_timeout_s)
        self._run("Copy:")
        self._run(f"Select: Start={_s(at)} End={_s(at + duration_s)} Track={target.index} TrackCount=1 Mode=Set")
        self._run("Paste:", self.slow_timeout_s)

    def _refuse_overlap(self, target: Track, start: float, end: float) -> None:
        for clip in self._json("GetInfo: Type=Clips Format=JSON"):
            if clip.get("track") == target.index and clip.get("start", 0) < end and clip.get("end", 0) > start:
                raise HostError(
                    f"Track {target.name!r} already has audio between {start:g} and {end:g} s, which a paste "
                    "would replace; choose a free time with --at, or leave out --track for a new track."
                )

    def _rename(self, placed: Track, name: str) -> Track:
        """Give the new track the name asked for (Import2 names it after the file), and read the name back."""
        self._run(f"SetTrackStatus: Track={placed.index} Name={_quoted_text(name)}")
        infos = self._track_infos()
        if placed.index >= len(infos) or infos[placed.index].get("name") != name:
            raise HostError(f"Audacity did not name the new track {name!r}; rename track {placed.index + 1} in "
                            "Audacity, or try again.")
        return Track(name, placed.index)

    def _remove_track(self, index: int, expected: str) -> None:
        infos = self._track_infos()
        if index < len(infos) and infos[index].get("name") == expected:  # never remove a track of the user's
            self._run(f"SelectTracks: Track={index} TrackCount=1 Mode=Set")
            self._run("RemoveTracks:")

    def _verify(self, placed: Track, at: float, duration_s: float, rate: int) -> None:
        clips = [c for c in self._json("GetInfo: Type=Clips Format=JSON") if c.get("track") == placed.index]
        if not _covers(clips, at, at + duration_s, rate):
            raise HostError(
                f"Audacity did not place the take on track {placed.name!r} at {at:g} s; "
                "check that the track is not locked or hidden and try again."
            )

    # -- talking to Audacity

    def _project_info(self) -> ProjectInfo:
        with self._answering(), self._project() as project:
            return project.info

    @contextmanager
    def _project(self) -> Iterator[ProjectCopy]:
        """A scratch copy of the open project, opened read-only and deleted afterwards."""
        folder = Path(tempfile.mkdtemp(prefix="daw-plugin-audacity-"))
        try:
            path = folder / "snapshot.aup3"
            self._run(f"SaveCopy: Filename={_quoted(path)}", self.slow_timeout_s)
            try:
                copy = ProjectCopy(path)
            except (sqlite3.Error, OSError, ValueError, KeyError, struct.error) as error:
                raise HostError(
                    f"Could not read Audacity's project copy ({brief(error)}); use Audacity 3.2 or later."
                ) from None
            with copy:
                yield copy
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _track_infos(self) -> list[dict]:
        return self._json("GetInfo: Type=Tracks Format=JSON")

    def _json(self, command: str) -> list[dict]:
        body = self._run(command).body
        try:
            value = json.loads(body)
        except ValueError as error:
            raise HostError(f"Audacity's answer to {command.split(':')[0]} was not JSON ({brief(error)}); "
                            "use Audacity 3.2 or later.") from None
        return value if isinstance(value, list) else []

    def _run(self, command: str, timeout_s: float | None = None) -> Reply:
        reply = self._pipe.command(command, timeout_s or self.timeout_s)
        if not reply.ok:
            verb = command.split(":")[0]
            detail = brief(reply.body) if reply.body.strip() else reply.status
            raise HostError(f"Audacity could not run {verb} ({detail}); check the Audacity window and try again.")
        return reply

    @contextmanager
    def _answering(self, inserting: Path | None = None) -> Iterator[None]:
        """Turn pipe failures into one-line `HostError`s; while inserting, say where the take still is."""
        try:
            yield
        except PipeGone:
            if inserting is not None:
                raise HostError(f"Audacity stopped answering while inserting (it closed the pipe); "
                                f"the take is still in the library at {inserting}.") from None
            raise HostError(NOT_RUNNING) from None
        except PipeTimeout as error:
            if inserting is not None:
                raise HostError(f"Audacity stopped answering while inserting (no reply within {error.seconds:g} s); "
                                f"the take is still in the library at {inserting}.") from None
            raise HostError(f"Audacity did not answer within {error.seconds:g} s; "
                            "close any dialog open in Audacity and try again.") from None


def _audio_shape(path: Path) -> tuple[float, int, int]:
    """(seconds, sample rate, channels) of an audio file, checked before Audacity sees it.

    Import2 of a missing or undecodable file opens a modal dialog that never answers, and a file
    with more than two channels becomes several tracks.
    """
    if not path.is_file():
        raise HostError(f"There is no audio file at {path}; check the path.")
    try:
        with AudioFile(str(path)) as f:
            frames, rate, channels = f.frames, int(round(f.samplerate)), f.num_channels
    except Exception as error:  # pedalboard raises several types for undecodable data
        detail = brief(error)
        raise HostError(f"Could not read audio from {path} ({detail}); insert a WAV, FLAC or AIFF file.") from None
    if channels > 2:
        raise HostError(f"{path} has {channels} channels; mix it down to mono or stereo before inserting it.")
    if frames == 0:
        raise HostError(f"{path} holds no audio; insert a file with sound in it.")
    return frames / rate, rate, channels


def _track(info: dict, index: int) -> Track:
    kind = info.get("kind", "wave")
    return Track(str(info.get("name", "")), index, "audio" if kind == "wave" else str(kind))


def _find_track(infos: list[dict], name: str) -> Track | None:
    """The audio track named ``name``; None when there is none (the take then goes on a new one of that name)."""
    for index, info in enumerate(infos):
        if info.get("name") == name:
            track = _track(info, index)
            if track.kind != "audio":
                raise HostError(f"Track {name!r} is a {track.kind} track, which cannot hold a take; choose an audio "
                                "track, or a new name for a new track.")
            return track
    return None


def _covers(clips: list[dict], start: float, end: float, rate: int) -> bool:
    """Whether the clips, together, cover ``[start, end]`` to within a sample and GetInfo's rounding."""
    def slack(t: float) -> float:
        return 1 / rate + abs(t) * PRINTED_PRECISION

    reached = start
    for clip in sorted(clips, key=lambda c: float(c.get("start", 0))):
        clip_start, clip_end = float(clip.get("start", 0)), float(clip.get("end", 0))
        if clip_start > reached + slack(reached):
            break
        reached = max(reached, clip_end)
    return reached >= end - slack(end)


def _s(seconds: float) -> str:
    return f"{seconds:.9f}"  # fixed point: enough for a sample at 192 kHz, and no exponent for Audacity's parser


def _quoted_text(text: str) -> str:
    if any(c in text for c in '"\n\r'):
        raise HostError(f"Audacity cannot be sent a name with a double quote or a line break ({text!r}); choose "
                        "another.")
    return f'"{text}"'


def _quoted(path: Path) -> str:
    if any(c in str(path) for c in '"\n\r'):
        raise HostError(f"Audacity cannot be sent a path with a double quote or a line break ({path!r}); rename it.")
    return f'"{path}"'
