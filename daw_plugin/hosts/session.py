"""The embedded host: a session folder holding ``session.json`` and an ``audio/`` folder, no DAW needed.

`session_manifest` reads and writes the manifest; this module is the `Host` on top of it, and the
mixing that `render` and a selection's audio share.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from daw_plugin.audio import Clip, Region, read_clip, write_new_file
from daw_plugin.files import numbered, os_reason, refuse_existing, write_new, write_output
from daw_plugin.hosts.base import HostError, Placement, Selection, Track, as_host_error
from daw_plugin.hosts.session_manifest import (
    AUDIO_FOLDER,
    MANIFEST,
    Session,
    SessionClip,
    is_number,
    load_session,
    new_manifest,
    write_manifest,
    write_new_manifest,
)

RENDER_FORMATS = (".wav", ".flac")


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
        if not (is_number(tempo_bpm) and tempo_bpm > 0):
            raise HostError(f"Cannot create a session at {tempo_bpm!r} BPM; choose a tempo above 0.")
        if not (is_number(sample_rate) and sample_rate > 0 and sample_rate == int(sample_rate)):
            raise HostError(f"Cannot create a session at {sample_rate!r} Hz; choose a sample rate such as 48000.")
        if not all(isinstance(p, int) and p > 0 for p in time_signature):
            raise HostError(f"Cannot create a session in {time_signature!r} time; choose one such as (4, 4).")
        raw = new_manifest(name or folder.resolve().name, tempo_bpm, sample_rate, time_signature)
        try:
            (folder / AUDIO_FOLDER).mkdir(parents=True, exist_ok=True)
            write_new_manifest(folder, raw)
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
            if not (is_number(start) and is_number(end) and 0 <= start < end):
                raise HostError(f"Cannot select {start!r}-{end!r} s; choose a start of 0 s or later and an end "
                                "after it.")
            session.raw["selection"] = {"track": track, "start_seconds": float(start), "end_seconds": float(end)}
        self._require_writable("select again")
        self._save(session.raw, "select again")

    def insert(self, audio: Path, track: str | None, at_seconds: float) -> Placement:
        """Copy ``audio`` into ``audio/`` under a fresh name and place it on ``track`` (a new one when None)."""
        # 1. Everything that can be refused is checked before anything is written.
        session = load_session(self.folder)
        if not (is_number(at_seconds) and at_seconds >= 0):
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
            track = next(n for n in numbered(Path(audio).stem) if n not in taken)
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
            copy = write_new(folder / audio.name, lambda tmp: shutil.copyfile(audio, tmp), numbered_if_taken=True)
            return f"{AUDIO_FOLDER}/{copy.name}"
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
    with as_host_error():
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
    with as_host_error():
        return read_clip(path)


def _all_clips(session: Session) -> list[SessionClip]:
    return [clip for track in session.tracks for clip in track.clips]
