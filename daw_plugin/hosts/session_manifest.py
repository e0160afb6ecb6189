"""A session's manifest, ``session.json``: the model, its parsing and validation, and writing it back.

The manifest is meant to be read and edited by hand: pretty-printed JSON whose keys keep the order
they were found in (unknown ones included) when we rewrite it. It is validated on every read, so a
typo is reported in one line naming the file, and every host call reads it afresh (a job's questions
share one read: `SessionHost.snapshot`), so hand edits apply at once. An example::

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

Numbers are bounded as well as typed: a hand-typed ``sample_rate: 1e9`` would make a render run for
ever and ``start_seconds: 1e7`` would ask for terabytes, so each is refused here, in one line.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TypeGuard

from daw_plugin.audio import Region
from daw_plugin.files import replace_file, write_new
from daw_plugin.hosts.base import HostError
from models.hand_edited import read_json_object

MANIFEST = "session.json"
AUDIO_FOLDER = "audio"
FORMAT_VERSION = 1
DEFAULT_TEMPO_BPM = 120.0
DEFAULT_SAMPLE_RATE = 48000
DEFAULT_TIME_SIGNATURE = (4, 4)
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8000, 384000  # telephone to the highest rate audio interfaces offer
MAX_TEMPO_BPM = 999.0
MAX_SECONDS = 4 * 3600.0  # longer than any album side; a mix this long at 48 kHz is already 2.8 GB in memory
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
    manifest = require_session(folder)
    return _parse(folder, manifest, _read_json(manifest))


def require_session(folder: Path) -> Path:
    """``folder``'s manifest, which must exist (its content is not read: `load_session` does that)."""
    manifest = folder / MANIFEST
    if not folder.is_dir():
        raise HostError(f"There is no session folder at {folder}; create one with `daw-plugin session new {folder}` "
                        "or check the path.")
    if not manifest.is_file():
        raise HostError(f"{folder} holds no {MANIFEST}, so it is not a session; choose the session's own folder, "
                        f"or make this one a session with `daw-plugin session new {folder}`.")
    return manifest


def unsaved_session(folder: Path, raw: dict) -> Session:
    """The `Session` a manifest not yet on disk describes (a session about to be created)."""
    return _parse(folder, folder / MANIFEST, raw)


def clip_path(folder: Path, file: str) -> Path:
    """Where a clip's ``file`` really is, links followed; `HostError` when that is outside the session folder.

    Checking the name alone is not enough: a link inside ``audio/`` may point anywhere, and an export
    would then pack that file into the .dawproject.
    """
    real = (folder / file).resolve()
    if not real.is_relative_to(folder.resolve()):
        raise HostError(f"{folder / MANIFEST}: {file} is a link to {real}, outside the session folder; copy the "
                        f"file into {folder / AUDIO_FOLDER} instead of linking to it.")
    return real


def check_tempo(value: object, where: str) -> float:
    """``value`` as a tempo in BPM, or `HostError` starting with ``where`` ("manifest.json has tempo_bpm")."""
    if not (is_number(value) and 0 < value <= MAX_TEMPO_BPM):
        raise HostError(f"{where} {value!r}, which must be a number above 0 and at most {MAX_TEMPO_BPM:g} BPM.")
    return float(value)


def check_sample_rate(value: object, where: str) -> int:
    """``value`` as a sample rate in Hz, or `HostError` starting with ``where``."""
    if not (is_number(value) and MIN_SAMPLE_RATE <= value <= MAX_SAMPLE_RATE and value == int(value)):
        raise HostError(f"{where} {value!r}, which must be a whole number of Hz from {MIN_SAMPLE_RATE} to "
                        f"{MAX_SAMPLE_RATE}, such as 48000.")
    return int(value)


# Writing: the whole manifest goes back, its keys in the order they were read, so hand edits survive.


def new_manifest(name: str, tempo_bpm: float, sample_rate: int, time_signature: tuple[int, int]) -> dict:
    """The raw manifest of an empty session, in the key order a hand editor will see."""
    return {"format_version": FORMAT_VERSION, "name": name, "tempo_bpm": tempo_bpm, "sample_rate": int(sample_rate),
            "time_signature": {"numerator": time_signature[0], "denominator": time_signature[1]}, "tracks": []}


def write_new_manifest(folder: Path, raw: dict) -> None:
    """Create ``session.json``; `FileExistsError` when the folder already holds one."""
    write_new(folder / MANIFEST, lambda tmp: _dump(raw, tmp))


def write_manifest(folder: Path, raw: dict) -> None:
    """Replace ``session.json`` atomically, keeping the permissions the user gave it."""
    replace_file(folder / MANIFEST, lambda tmp: _dump(raw, tmp), keep_mode=True)


def _dump(raw: dict, path: Path) -> None:
    path.write_text(json.dumps(raw, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


# Reading: the manifest is checked field by field so the one-line error can say exactly what to fix.


def _read_json(manifest: Path) -> dict:
    return read_json_object(manifest, _HAND_FIX, error=HostError)[0]


def _parse(folder: Path, manifest: Path, raw: dict) -> Session:
    version = _require(raw, "format_version", manifest)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise HostError(f"{manifest} has format_version {version!r}, which must be {FORMAT_VERSION}; {_HAND_FIX}.")
    if version > FORMAT_VERSION:
        raise HostError(f"{manifest} was written by a newer daw-plugin (session format {version}); "
                        "update daw-plugin to open it.")
    tempo = _hand_fixed(check_tempo, _require(raw, "tempo_bpm", manifest), f"{manifest} has tempo_bpm")
    rate = _hand_fixed(check_sample_rate, _require(raw, "sample_rate", manifest), f"{manifest} has sample_rate")
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
    return Session(folder, name, tempo, rate, _time_signature(raw, manifest), parsed, selection, raw)


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
    if not clip_path(folder, file).is_file():
        raise HostError(f"{manifest}: {where} points to {file}, which does not exist; restore the file or remove "
                        "the clip from the manifest.")
    start = _seconds(_require(raw, "start_seconds", manifest, where), f"{where} start_seconds", manifest)
    offset = _seconds(raw.get("offset_seconds", 0.0), f"{where} offset_seconds", manifest)
    duration = raw.get("duration_seconds")
    if duration is not None:
        duration = float(_seconds(duration, f"{where} duration_seconds", manifest, open_minimum=True))
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
    start = _seconds(_require(raw, "start_seconds", manifest, "selection"), "selection start_seconds", manifest)
    end = _seconds(_require(raw, "end_seconds", manifest, "selection"), "selection end_seconds", manifest)
    if end <= start:
        raise HostError(f"{manifest} selects {start:g}-{end:g} s, which ends before it starts; "
                        "make end_seconds larger than start_seconds.")
    return SessionSelection(track, Region(float(start), float(end)))


def _time_signature(raw: dict, manifest: Path) -> tuple[int, int]:
    value = raw.get("time_signature", {"numerator": 4, "denominator": 4})
    numerator, denominator = (value.get("numerator"), value.get("denominator")) if isinstance(value, dict) \
        else (None, None)
    if not (_positive_int(numerator) and _positive_int(denominator)):
        raise HostError(f"{manifest} has time_signature {value!r}, which must look like "
                        f"{{\"numerator\": 4, \"denominator\": 4}}; {_HAND_FIX}.")
    return numerator, denominator


def _positive_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _require(raw: dict, key: str, manifest: Path, where: str | None = None) -> object:
    if key not in raw:
        place = f"{manifest}: {where}" if where else str(manifest)
        raise HostError(f"{place} is missing \"{key}\"; add it in a text editor or restore the file from a backup.")
    return raw[key]


def is_number(value: object) -> TypeGuard[int | float]:
    """JSON numbers only: bools are ints to Python, and NaN or infinity are no time or tempo."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _seconds(value: object, name: str, manifest: Path, open_minimum: bool = False) -> float:
    """A time on the timeline or in a file: from 0 (or above it) up to `MAX_SECONDS`."""
    if not is_number(value):
        raise HostError(f"{manifest} has {name} {value!r}, which must be a number; {_HAND_FIX}.")
    if value < 0 or (open_minimum and value == 0) or value > MAX_SECONDS:
        bound = "above 0" if open_minimum else "at least 0"
        raise HostError(f"{manifest} has {name} {value!r}, which must be {bound} and at most {MAX_SECONDS:g} s "
                        f"({MAX_SECONDS / 3600:g} hours); {_HAND_FIX}.")
    return value


def _hand_fixed(check, value: object, where: str):
    """Run a shared range check, its sentence extended with how to fix a manifest."""
    try:
        return check(value, where)
    except HostError as error:
        raise HostError(f"{str(error).removesuffix('.')}; {_HAND_FIX}.") from None
