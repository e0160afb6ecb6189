"""The embedded host: a session folder holding ``session.json`` and an ``audio/`` folder, no DAW needed.

The manifest is meant to be read and edited by hand: pretty-printed JSON whose keys keep the order
they were found in (unknown ones included) when we rewrite it. It is validated on every read, so a
typo is reported in one line naming the file, and every method reads it afresh, so hand edits apply
at once. An example::

    {
      "format_version": 1,
      "name": "night-rain",
      "tempo_bpm": 120,
      "sample_rate": 48000,
      "time_signature": {"numerator": 4, "denominator": 4},
      "tracks": [
        {"name": "rain", "clips": [{"file": "audio/rain.wav", "start_seconds": 1.5}]}
      ],
      "selection": {"track": "rain", "start_seconds": 1.5, "end_seconds": 3.0}
    }

A clip may also carry ``offset_seconds`` (where in the file it starts playing) and
``duration_seconds`` (how much of the file it plays; the rest of the file when absent).
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path, PurePosixPath

import numpy as np

from daw_plugin.audio import Clip, Region, new_temp_file, read_clip, write_new_file
from daw_plugin.hosts.base import HostError, Placement, Selection, Track
from models.errors import UserError

MANIFEST = "session.json"
AUDIO_FOLDER = "audio"
FORMAT_VERSION = 1
RENDER_FORMATS = (".wav", ".flac")
_HAND_FIX = "fix it in a text editor or restore the file from a backup"


@dataclass(frozen=True)
class SessionClip:
    file: str  # relative to the session folder, with forward slashes: "audio/rain.wav"
    start_seconds: float
    offset_seconds: float = 0.0
    duration_seconds: float | None = None  # None: to the end of the file


@dataclass(frozen=True)
class SessionTrack:
    name: str
    clips: tuple[SessionClip, ...]


@dataclass(frozen=True)
class SessionSelection:
    track: str | None
    region: Region


@dataclass(frozen=True)
class Session:
    """A validated manifest; ``raw`` is the JSON as read, kept to rewrite it with unknown keys intact."""

    folder: Path
    name: str
    tempo_bpm: float
    sample_rate: int
    time_signature: tuple[int, int]  # (numerator, denominator)
    tracks: tuple[SessionTrack, ...]
    selection: SessionSelection | None
    raw: dict = field(repr=False, compare=False)

    def track(self, name: str) -> SessionTrack:
        for track in self.tracks:
            if track.name == name:
                return track
        names = ", ".join(repr(t.name) for t in self.tracks) or "none yet"
        raise HostError(f"The session has no track named {name!r} (its tracks: {names}); choose one of those "
                        "or leave the track out to insert on a new one.")


def load_session(folder: Path) -> Session:
    """Read and validate ``folder/session.json``; one `HostError` naming the file and the problem."""
    manifest = folder / MANIFEST
    if not folder.is_dir():
        raise HostError(f"There is no session folder at {folder}; create a session there first or check the path.")
    if not manifest.is_file():
        raise HostError(f"{folder} holds no {MANIFEST}, so it is not a session; create a session there first "
                        "or choose the session's own folder.")
    return _parse(folder, manifest, _read_json(manifest))


class SessionHost:
    """The `Host` for a session folder: every call reads the manifest afresh; writes are atomic."""

    name = "session"

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def __repr__(self) -> str:
        return f"SessionHost({str(self.folder)!r})"

    @classmethod
    def create(cls, folder: Path, tempo_bpm: float = 120, sample_rate: int = 48000, name: str | None = None,
               time_signature: tuple[int, int] = (4, 4)) -> SessionHost:
        """Start an empty session in ``folder`` (made if missing); an existing session is never replaced."""
        folder = Path(folder)
        if not (_is_number(tempo_bpm) and tempo_bpm > 0):
            raise HostError(f"Cannot create a session at {tempo_bpm!r} BPM; choose a tempo above 0.")
        if not (_is_number(sample_rate) and sample_rate > 0 and sample_rate == int(sample_rate)):
            raise HostError(f"Cannot create a session at {sample_rate!r} Hz; choose a sample rate such as 48000.")
        if not all(isinstance(p, int) and p > 0 for p in time_signature):
            raise HostError(f"Cannot create a session in {time_signature!r} time; choose one such as (4, 4).")
        raw = {"format_version": FORMAT_VERSION, "name": name or folder.resolve().name, "tempo_bpm": tempo_bpm,
               "sample_rate": int(sample_rate),
               "time_signature": {"numerator": time_signature[0], "denominator": time_signature[1]}, "tracks": []}
        manifest = folder / MANIFEST
        try:
            (folder / AUDIO_FOLDER).mkdir(parents=True, exist_ok=True)
            write_new(manifest, lambda tmp: _dump(raw, tmp))
        except FileExistsError as error:
            raise HostError(f"{folder} already holds a session; open it with session:{folder} "
                            "instead of creating it again.") from error
        except OSError as error:
            raise HostError(f"Cannot create a session in {folder} ({os_reason(error)}); "
                            "choose a folder you can write to.") from error
        return cls(folder)

    def check(self) -> None:
        load_session(self.folder)

    def tracks(self) -> list[Track]:
        return [Track(t.name, i) for i, t in enumerate(load_session(self.folder).tracks)]

    def tempo_bpm(self) -> float | None:
        return load_session(self.folder).tempo_bpm

    def sample_rate(self) -> int | None:
        return load_session(self.folder).sample_rate

    def selection(self) -> Selection | None:
        """The manifest's selection; its audio is that track's clips mixed over the region (all tracks if none)."""
        session = load_session(self.folder)
        if session.selection is None:
            return None
        track_name, region = session.selection.track, session.selection.region
        if track_name is None:
            return Selection(region, None, mixdown(session, _all_clips(session), region))
        track = session.track(track_name)
        return Selection(region, Track(track.name, session.tracks.index(track)), mixdown(session, track.clips, region))

    def set_selection(self, track: str | None, region: Region | None) -> None:
        """Select ``region`` on ``track`` (on the whole session when None); ``region=None`` clears it."""
        session = load_session(self.folder)
        if region is None:
            session.raw.pop("selection", None)
        else:
            if track is not None:
                session.track(track)
            start, end = region.start_seconds, region.end_seconds
            if not (_is_number(start) and _is_number(end) and 0 <= start < end):
                raise HostError(f"Cannot select {start!r}-{end!r} s; choose a start of 0 s or later and an end "
                                "after it.")
            session.raw["selection"] = {"track": track, "start_seconds": float(start), "end_seconds": float(end)}
        self._require_writable("select again")
        self._save(session.raw, "select again")

    def insert(self, audio: Path, track: str | None, at_seconds: float) -> Placement:
        """Copy ``audio`` into ``audio/`` under a fresh name and place it on ``track`` (a new one when None)."""
        # 1. Everything that can be refused is checked before anything is written.
        session = load_session(self.folder)
        if not (_is_number(at_seconds) and at_seconds >= 0):
            raise HostError(f"Cannot insert at {at_seconds!r} s; choose a time of 0 s or later.")
        if track is not None:
            session.track(track)
        retry = "insert again; the take is still in the library"
        self._require_writable(retry)
        duration = read_audio(Path(audio)).duration_seconds
        # 2. The audio goes in first, the manifest that points at it last: a failure leaves no dangling clip.
        file = self._copy_in(Path(audio), retry)
        if track is None:
            taken = {t.name for t in session.tracks}
            track = next(n for n in _numbered(Path(audio).stem) if n not in taken)
            session.raw["tracks"].append({"name": track, "clips": []})
        entry = next(t for t in session.raw["tracks"] if t["name"] == track)
        entry.setdefault("clips", []).append({"file": file, "start_seconds": float(at_seconds)})
        try:
            self._save(session.raw, retry)
        except BaseException:
            (self.folder / file).unlink(missing_ok=True)  # our own copy, useless without the manifest entry
            raise
        index = [t["name"] for t in session.raw["tracks"]].index(track)
        return Placement(Track(track, index), float(at_seconds), float(at_seconds) + duration)

    def _require_writable(self, retry: str) -> None:
        manifest, audio = self.folder / MANIFEST, self.folder / AUDIO_FOLDER
        # A manifest without write bits was locked on purpose; os.replace would slip past that, so honour it.
        locked = not manifest.stat().st_mode & 0o222
        writable = all(os.access(p, os.W_OK | os.X_OK) for p in (self.folder, audio) if p.exists())
        if locked or not writable:
            raise HostError(f"The session folder {self.folder} is read-only; make it (and its {MANIFEST}) "
                            f"writable, then {retry}.")

    def _copy_in(self, audio: Path, retry: str) -> str:
        folder = self.folder / AUDIO_FOLDER
        try:
            folder.mkdir(exist_ok=True)
            tmp = new_temp_file(folder, ".insert-", audio.suffix)
            try:
                shutil.copyfile(audio, tmp)
                name = next(n for n in _numbered(audio.stem, audio.suffix) if _link_new(tmp, folder / n))
                return f"{AUDIO_FOLDER}/{name}"
            finally:
                tmp.unlink(missing_ok=True)
        except OSError as error:
            raise HostError(f"Cannot copy {audio.name} into {folder} ({os_reason(error)}); free some space or "
                            f"make the folder writable, then {retry}.") from error

    def _save(self, raw: dict, retry: str) -> None:
        try:
            write_manifest(self.folder, raw)
        except OSError as error:
            raise HostError(f"Cannot rewrite {self.folder / MANIFEST} ({os_reason(error)}); free some space or make "
                            f"the folder writable, then {retry}.") from error


def render(folder: Path, out: Path) -> Path:
    """Mix the session down to one WAV or FLAC at its sample rate, in stereo; never replaces an existing ``out``."""
    session = load_session(Path(folder))
    out = Path(out)
    if out.suffix.lower() not in RENDER_FORMATS:
        raise HostError(f"Cannot render to {out.name}; choose a name ending in .wav or .flac.")
    clips = _all_clips(session)
    if not clips:
        raise HostError(f"The session in {folder} has no clips yet; insert a take before rendering.")
    refuse_existing(out)
    mix = mixdown(session, clips)
    return write_output(out, lambda tmp: write_new_file(mix, tmp))


def mixdown(session: Session, clips: Iterable[SessionClip], region: Region | None = None) -> Clip:
    """``clips`` summed at the session's rate in stereo over ``region`` (from 0 to the last clip's end when None)."""
    rate = session.sample_rate
    placed = _placed(session.folder, clips, rate)
    first = round(region.start_seconds * rate) if region else 0
    last = round(region.end_seconds * rate) if region else max((at + s.shape[1] for at, s in placed), default=0)
    out = np.zeros((2, max(last - first, 0)), np.float32)
    for at, samples in placed:
        lo, hi = max(first, at), min(last, at + samples.shape[1])
        if hi > lo:
            out[:, lo - first : hi - first] += samples[:, lo - at : hi - at]
    return Clip(out, rate)


def _placed(folder: Path, clips: Iterable[SessionClip], rate: int) -> list[tuple[int, np.ndarray]]:
    """(first frame on the timeline, the played samples) per clip, conformed to ``rate`` and stereo."""
    decoded: dict[str, np.ndarray] = {}  # a take placed many times is decoded once
    placed = []
    for clip in clips:
        if clip.file not in decoded:
            decoded[clip.file] = _stereo(read_audio(folder / clip.file), rate).samples
        samples = decoded[clip.file]
        first = round(clip.offset_seconds * rate)
        last = samples.shape[1] if clip.duration_seconds is None else first + round(clip.duration_seconds * rate)
        placed.append((round(clip.start_seconds * rate), samples[:, first:last]))
    return placed


def _stereo(clip: Clip, rate: int) -> Clip:
    if clip.channels > 2:  # surround files: fold to mono first, as Clip.conformed maps only 1 <-> N channels
        clip = clip.conformed(clip.sample_rate, 1)
    return clip.conformed(rate, 2)


def read_audio(path: Path) -> Clip:
    """`read_clip`, its one-line error raised as the `HostError` that hosts promise."""
    try:
        return read_clip(path)
    except UserError as error:
        raise HostError(str(error)) from error


def _all_clips(session: Session) -> list[SessionClip]:
    return [clip for track in session.tracks for clip in track.clips]


def _numbered(stem: str, suffix: str = "") -> Iterator[str]:
    """The names tried, in order, until one is free: "rain.wav", "rain-2.wav", "rain-3.wav", ..."""
    return (f"{stem}{suffix}" if n == 1 else f"{stem}-{n}{suffix}" for n in count(1))


# Files: every write goes to a temporary file in the same folder first, then is renamed or linked into place.


def write_manifest(folder: Path, raw: dict) -> None:
    """Replace ``session.json`` atomically, keeping the permissions the user gave it."""
    manifest = folder / MANIFEST
    tmp = new_temp_file(folder, ".session.", ".json")
    try:
        _dump(raw, tmp)
        if manifest.exists():
            shutil.copymode(manifest, tmp)
        os.replace(tmp, manifest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_new(out: Path, write: Callable[[Path], object]) -> Path:
    """Create ``out`` atomically through ``write(temp)``; `FileExistsError` instead of replacing a file."""
    tmp = new_temp_file(out.parent, f".{out.stem}.", out.suffix)
    try:
        write(tmp)
        if not _link_new(tmp, out):
            raise FileExistsError(errno.EEXIST, "File exists", str(out))
    finally:
        tmp.unlink(missing_ok=True)
    return out


def refuse_existing(out: Path) -> None:
    """Fail early, before any work, when ``out`` is taken; `write_output` checks again when it lands."""
    if os.path.lexists(out):
        raise HostError(f"{out} already exists; choose another name or move the old file away.")


def write_output(out: Path, write: Callable[[Path], object]) -> Path:
    """`write_new` for a file the user named: every failure is one `HostError`, and ``out`` is never replaced."""
    try:
        return write_new(out, write)
    except FileExistsError as error:
        raise HostError(f"{out} already exists; choose another name or move the old file away.") from error
    except OSError as error:
        raise HostError(f"Cannot write {out} ({os_reason(error)}); choose a folder that exists and is "
                        "writable.") from error


def _link_new(tmp: Path, out: Path) -> bool:
    """Give ``tmp``'s content the name ``out`` unless that name is taken (then False, ``out`` untouched)."""
    try:
        os.link(tmp, out)  # fails instead of replacing, with no gap between the check and the write
        return True
    except FileExistsError:
        return False
    except OSError:
        # No hard links here (FAT, some network shares): check, then rename; a tiny race we accept there.
        if os.path.lexists(out):
            return False
        os.replace(tmp, out)
        return True


def _dump(raw: dict, path: Path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(raw, indent=2, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())  # the rename must never publish a file whose bytes are still in flight


def os_reason(error: OSError) -> str:
    """The short reason an OS call failed ("Permission denied"), to sit inside a one-line error."""
    return error.strerror or type(error).__name__


# Reading: the manifest is checked field by field so the one-line error can say exactly what to fix.


def _read_json(manifest: Path) -> dict:
    try:
        text = manifest.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise HostError(f"{manifest} is not UTF-8 text; {_HAND_FIX}.") from error
    except OSError as error:
        raise HostError(f"Cannot read {manifest} ({os_reason(error)}); make it readable and try again.") from error
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise HostError(f"{manifest} is not valid JSON ({error.msg} at line {error.lineno}, column "
                        f"{error.colno}); {_HAND_FIX}.") from error
    if not isinstance(raw, dict):
        raise HostError(f"{manifest} holds a JSON {type(raw).__name__}, not an object; {_HAND_FIX}.")
    return raw


def _parse(folder: Path, manifest: Path, raw: dict) -> Session:
    version = _require(raw, "format_version", manifest)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise HostError(f"{manifest} has format_version {version!r}, which must be {FORMAT_VERSION}; {_HAND_FIX}.")
    if version > FORMAT_VERSION:
        raise HostError(f"{manifest} was written by a newer daw-plugin (session format {version}); "
                        "update daw-plugin to open it.")
    tempo = _number(_require(raw, "tempo_bpm", manifest), "tempo_bpm", manifest, minimum=0, open_minimum=True)
    rate = _number(_require(raw, "sample_rate", manifest), "sample_rate", manifest, minimum=0, open_minimum=True)
    if rate != int(rate):
        raise HostError(f"{manifest} has sample_rate {rate!r}, which must be a whole number of Hz; {_HAND_FIX}.")
    name = raw.get("name", folder.name)
    if not isinstance(name, str):
        raise HostError(f"{manifest} has name {name!r}, which must be text; {_HAND_FIX}.")
    tracks = _require(raw, "tracks", manifest)
    if not isinstance(tracks, list):
        raise HostError(f"{manifest} has \"tracks\" that is not a list; {_HAND_FIX}.")
    parsed = tuple(_parse_track(t, i, folder, manifest) for i, t in enumerate(tracks, 1))
    names = [t.name for t in parsed]
    if duplicate := next((n for n in names if names.count(n) > 1), None):
        raise HostError(f"{manifest} has two tracks named {duplicate!r}; rename one in a text editor.")
    selection = _parse_selection(raw.get("selection"), manifest, set(names))
    return Session(folder, name, float(tempo), int(rate), _time_signature(raw, manifest), parsed, selection, raw)


def _parse_track(raw: object, index: int, folder: Path, manifest: Path) -> SessionTrack:
    where = f"track {index}"
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]:
        raise HostError(f"{manifest}: {where} needs a non-empty \"name\"; {_HAND_FIX}.")
    where = f"track {index} ({raw['name']!r})"
    clips = raw.get("clips", [])
    if not isinstance(clips, list):
        raise HostError(f"{manifest}: {where} has \"clips\" that is not a list; {_HAND_FIX}.")
    return SessionTrack(raw["name"], tuple(_parse_clip(c, f"{where} clip {n}", folder, manifest)
                                           for n, c in enumerate(clips, 1)))


def _parse_clip(raw: object, where: str, folder: Path, manifest: Path) -> SessionClip:
    if not isinstance(raw, dict):
        raise HostError(f"{manifest}: {where} is not an object; {_HAND_FIX}.")
    file = raw.get("file")
    if not isinstance(file, str) or not file:
        raise HostError(f"{manifest}: {where} needs a \"file\" such as \"audio/take.wav\"; {_HAND_FIX}.")
    path = PurePosixPath(file)
    if path.is_absolute() or ".." in path.parts or "\\" in file or ":" in path.parts[0]:
        raise HostError(f"{manifest}: {where} points to {file}, outside the session folder; copy the file into "
                        f"{folder / AUDIO_FOLDER} and name it as \"{AUDIO_FOLDER}/<name>\".")
    if not (folder / path).is_file():
        raise HostError(f"{manifest}: {where} points to {file}, which does not exist; restore the file or remove "
                        "the clip from the manifest.")
    start = _number(_require(raw, "start_seconds", manifest, where), f"{where} start_seconds", manifest, minimum=0)
    offset = _number(raw.get("offset_seconds", 0.0), f"{where} offset_seconds", manifest, minimum=0)
    duration = raw.get("duration_seconds")
    if duration is not None:
        duration = float(_number(duration, f"{where} duration_seconds", manifest, minimum=0, open_minimum=True))
    return SessionClip(path.as_posix(), float(start), float(offset), duration)


def _parse_selection(raw: object, manifest: Path, track_names: set[str]) -> SessionSelection | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise HostError(f"{manifest} has a \"selection\" that is not an object; {_HAND_FIX}.")
    track = raw.get("track")
    if track is not None and track not in track_names:
        raise HostError(f"{manifest} selects track {track!r}, which the session does not have; "
                        "name an existing track or remove the selection.")
    start = _number(_require(raw, "start_seconds", manifest, "selection"), "selection start_seconds", manifest,
                    minimum=0)
    end = _number(_require(raw, "end_seconds", manifest, "selection"), "selection end_seconds", manifest, minimum=0)
    if end <= start:
        raise HostError(f"{manifest} selects {start:g}-{end:g} s, which ends before it starts; "
                        "make end_seconds larger than start_seconds.")
    return SessionSelection(track, Region(float(start), float(end)))


def _time_signature(raw: dict, manifest: Path) -> tuple[int, int]:
    value = raw.get("time_signature", {"numerator": 4, "denominator": 4})
    parts = (value.get("numerator"), value.get("denominator")) if isinstance(value, dict) else (None, None)
    if not all(isinstance(p, int) and not isinstance(p, bool) and p > 0 for p in parts):
        raise HostError(f"{manifest} has time_signature {value!r}, which must look like "
                        f"{{\"numerator\": 4, \"denominator\": 4}}; {_HAND_FIX}.")
    return parts[0], parts[1]


def _require(raw: dict, key: str, manifest: Path, where: str | None = None) -> object:
    if key not in raw:
        place = f"{manifest}: {where}" if where else str(manifest)
        raise HostError(f"{place} is missing \"{key}\"; add it in a text editor or restore the file from a backup.")
    return raw[key]


def _is_number(value: object) -> bool:
    """JSON numbers only: bools are ints to Python, and NaN or infinity are no time or tempo."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _number(value: object, name: str, manifest: Path, minimum: float, open_minimum: bool = False) -> float:
    if not _is_number(value):
        raise HostError(f"{manifest} has {name} {value!r}, which must be a number; {_HAND_FIX}.")
    if value < minimum or (open_minimum and value == minimum):
        bound = "above" if open_minimum else "at least"
        raise HostError(f"{manifest} has {name} {value!r}, which must be {bound} {minimum:g}; {_HAND_FIX}.")
    return value
