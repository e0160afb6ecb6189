"""The embedded host: a session folder holding ``session.json`` and an ``audio/`` folder, no DAW needed.

`session_manifest` reads and writes the manifest; this module is the `Host` on top of it, and the
mixing that `render` and a selection's audio share.

Every change to ``session.json`` is a read-modify-write under the session's lock file
(``.session.json.lock``), so two processes inserting at once both land their clips: without it each
rewrote the manifest it had read, and the later one dropped the other's clip.

Reads are once per operation: each call reads the manifest afresh, once, except inside
`SessionHost.snapshot()`, where the questions of one job (check, tracks, sample rate, tempo) share one
read. Writers never use the snapshot: they re-read under the lock.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from daw_plugin.audio import Clip, Region, read_clip, write_new_file
from daw_plugin.files import numbered, os_reason, refuse_existing, replace_output, write_new, write_output
from daw_plugin.hosts.base import HostError, Placement, Selection, Track, as_host_error
from daw_plugin.hosts.session_manifest import (
    AUDIO_FOLDER,
    DEFAULT_SAMPLE_RATE,
    DEFAULT_TEMPO_BPM,
    DEFAULT_TIME_SIGNATURE,
    MANIFEST,
    MAX_SECONDS,
    Session,
    SessionClip,
    check_sample_rate,
    check_tempo,
    clip_path,
    is_number,
    load_session,
    new_manifest,
    require_session,
    unsaved_session,
    write_manifest,
    write_new_manifest,
)
from models.errors import notify
from models.file_lock import held

RENDER_FORMATS = (".wav", ".flac")
LOCK = ".session.json.lock"
LOCK_WAIT_SECONDS = 60.0  # a writer holds the lock for one copy and one manifest write: seconds at worst
RENDER_PEAK_DBFS = -1.0  # a mix that would clip is turned down to peak here


class SessionHost:
    """The `Host` for a session folder: a call reads the manifest once (a `snapshot` once in all); writes take turns.

    With ``create_missing`` (what ``--host session:DIR`` asks for), a folder that does not exist yet,
    or holds nothing but hidden files, acts as an empty session with the defaults (120 BPM, 48000 Hz,
    4/4) and is created on the first insert, so a run that fails before then leaves nothing behind.
    """

    name = "session"

    def __init__(self, folder: Path, create_missing: bool = False):
        self.folder = Path(folder)
        self.create_missing = create_missing
        self._snapshot: Session | None = None  # the manifest as read inside `snapshot()`
        self._snapshotting = False

    def __repr__(self) -> str:
        return f"SessionHost({str(self.folder)!r})"

    @classmethod
    def create(cls, folder: Path, tempo_bpm: float = DEFAULT_TEMPO_BPM, sample_rate: int = DEFAULT_SAMPLE_RATE,
               name: str | None = None, time_signature: tuple[int, int] = DEFAULT_TIME_SIGNATURE) -> SessionHost:
        """Start an empty session in ``folder`` (made if missing); an existing session is never replaced."""
        folder = Path(folder)
        tempo_bpm = check_tempo(tempo_bpm, "Cannot create a session: its tempo is")
        sample_rate = check_sample_rate(sample_rate, "Cannot create a session: its sample rate is")
        if not all(isinstance(p, int) and p > 0 for p in time_signature):
            raise HostError(f"Cannot create a session in {time_signature!r} time; choose one such as (4, 4).")
        raw = new_manifest(name or folder.resolve().name, tempo_bpm, sample_rate, time_signature)
        host = cls(folder)
        with host._writing("try again"):
            _write_new_session(folder, raw)
        return host

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Inside the block, the questions asked (check, tracks, tempo, sample rate, selection) share one read.

        The manifest is read on the first question and kept until the block ends, so a job's checks read it
        once and see one version of it. Writers (`insert`, `set_selection`) still read it afresh under the
        lock, so a clip another process inserted meanwhile is never lost, and they drop the snapshot they
        outdate. Outside the block every call reads afresh: a host held long (a panel) sees hand edits.
        """
        self._snapshotting = True
        try:
            yield
        finally:
            self._snapshot, self._snapshotting = None, False

    def check(self) -> None:
        """The manifest is valid (or a session may start here) and the folder takes writes: all before any model."""
        self._session()
        self._require_writable("try again")

    def tracks(self) -> list[Track]:
        return [Track(t.name, i) for i, t in enumerate(self._session().tracks)]

    def tempo_bpm(self) -> float | None:
        return self._session().tempo_bpm

    def sample_rate(self) -> int | None:
        return self._session().sample_rate

    def selection(self) -> Selection | None:
        """The manifest's selection; its audio is that track's clips mixed over the region (all tracks if none)."""
        session = self._session()
        if session.selection is None:
            return None
        track_name, region = session.selection.track, session.selection.region
        if track_name is None:
            return Selection(region, None, mixdown(session, _all_clips(session), region))
        track = session.track(track_name)
        return Selection(region, Track(track.name, session.tracks.index(track)), mixdown(session, track.clips, region))

    def set_selection(self, track: str | None, region: Region | None) -> None:
        """Select ``region`` on ``track`` (on the whole session when None); ``region=None`` clears it."""
        if region is not None:
            start, end = region.start_seconds, region.end_seconds
            if not (is_number(start) and is_number(end) and 0 <= start < end <= MAX_SECONDS):
                raise HostError(f"Cannot select {start!r}-{end!r} s; choose a start of 0 s or later and an end "
                                f"after it, at most {MAX_SECONDS:g} s.")
        retry = "select again"
        require_session(self.folder)  # a session to select in, before anything else is said
        self._require_writable(retry)
        with self._writing(retry):
            session = load_session(self.folder)  # read once, under the lock: another writer may have been first
            if region is None:
                session.raw.pop("selection", None)
            else:
                if track is not None:
                    session.track(track)
                session.raw["selection"] = {"track": track, "start_seconds": float(region.start_seconds),
                                            "end_seconds": float(region.end_seconds)}
            self._snapshot = None  # outdated, whether or not the write lands
            self._save(session.raw, retry)

    def insert(self, audio: Path, track: str | None, at_seconds: float) -> Placement:
        """Copy ``audio`` into ``audio/`` under a fresh name and place it on ``track``.

        ``track=None`` makes a new track named after the file; a name the session does not have yet
        makes a new track of that name.
        """
        # 1. Everything that can be refused is checked before anything is written.
        if not (is_number(at_seconds) and 0 <= at_seconds <= MAX_SECONDS):
            raise HostError(f"Cannot insert at {at_seconds!r} s; choose a time of 0 s or later, at most "
                            f"{MAX_SECONDS:g} s.")
        if track is not None and not (isinstance(track, str) and track.strip()):
            raise HostError(f"Cannot insert on a track named {track!r}; give the track a name, or none for a new one.")
        retry = "insert again; the take is still in the library"
        if not self._unstarted():
            require_session(self.folder)  # a session to insert into, before the lock file is made in its folder
        self._require_writable(retry)
        duration = read_audio(Path(audio)).duration_seconds
        with self._writing(retry):
            session = self._started()  # read once, under the lock: another process may have inserted meanwhile
            # 2. The audio goes in first, the manifest that points at it last: a failure leaves no dangling clip.
            file = self._copy_in(Path(audio), retry)
            names = [t["name"] for t in session.raw["tracks"]]
            if track is None:
                track = next(n for n in numbered(Path(audio).stem) if n not in names)
            if track not in names:
                session.raw["tracks"].append({"name": track, "clips": []})
            entry = next(t for t in session.raw["tracks"] if t["name"] == track)
            entry.setdefault("clips", []).append({"file": file, "start_seconds": float(at_seconds)})
            self._snapshot = None  # outdated, whether or not the write lands
            try:
                self._save(session.raw, retry)
            except BaseException:
                (self.folder / file).unlink(missing_ok=True)  # our own copy, useless without the manifest entry
                raise
        index = [t["name"] for t in session.raw["tracks"]].index(track)
        return Placement(Track(track, index), float(at_seconds), float(at_seconds) + duration)

    # -- the session on disk, or the one about to be created

    def _unstarted(self) -> bool:
        """Whether this is a session we may create: no folder yet, or one holding only hidden files."""
        if not self.create_missing:
            return False
        if not self.folder.exists():
            return True
        if not self.folder.is_dir() or (self.folder / MANIFEST).exists():
            return False
        shown = [p for p in self.folder.iterdir() if not p.name.startswith(".")]
        # An empty audio/ is what a creation cut short leaves: nothing of the user's.
        return all(p.name == AUDIO_FOLDER and p.is_dir() and not any(p.iterdir()) for p in shown)

    def _defaults(self) -> dict:
        return new_manifest(self.folder.resolve().name, DEFAULT_TEMPO_BPM, DEFAULT_SAMPLE_RATE,
                            DEFAULT_TIME_SIGNATURE)

    def _session(self) -> Session:
        """The session to answer a question from: the snapshot inside `snapshot()`, else a fresh read."""
        if self._snapshot is not None:
            return self._snapshot
        session = unsaved_session(self.folder, self._defaults()) if self._unstarted() else load_session(self.folder)
        if self._snapshotting:
            self._snapshot = session
        return session

    def _started(self) -> Session:
        """The session, created with the defaults first if it does not exist yet; call it holding the lock."""
        if self._unstarted():
            _write_new_session(self.folder, self._defaults())
            notify(f"Created a new session in {self.folder} at {DEFAULT_TEMPO_BPM:g} BPM, {DEFAULT_SAMPLE_RATE} Hz, "
                   f"4/4; edit its {MANIFEST} to change them, or start sessions with "
                   f"`daw-plugin session new DIR --bpm 96 --sample-rate 44100`.")
        return load_session(self.folder)

    def _require_writable(self, retry: str) -> None:
        if self._unstarted():
            parent = next(p for p in (self.folder, *self.folder.parents) if p.exists())
            if not (parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)):
                raise HostError(f"Cannot create a session in {self.folder}: {parent} is not a folder you can write "
                                "to; choose another place for the session.")
            return
        manifest, audio = self.folder / MANIFEST, self.folder / AUDIO_FOLDER
        # A manifest without write bits was locked on purpose; os.replace would slip past that, so honour it.
        locked = not manifest.stat().st_mode & 0o222
        writable = all(os.access(p, os.W_OK | os.X_OK) for p in (self.folder, audio) if p.exists())
        if locked or not writable:
            raise HostError(f"The session folder {self.folder} is read-only; make it (and its {MANIFEST}) "
                            f"writable, then {retry}.")

    def _writing(self, retry: str):
        """Hold the session's lock file, so writers of ``session.json`` take turns (the folder is made if missing)."""
        return held(self.folder / LOCK, timeout_s=LOCK_WAIT_SECONDS, guarding=self.folder / MANIFEST, then=retry,
                    error=HostError)

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


def _write_new_session(folder: Path, raw: dict) -> None:
    """``audio/`` and a new ``session.json`` (hold the session's lock); never replaces a manifest."""
    try:
        (folder / AUDIO_FOLDER).mkdir(parents=True, exist_ok=True)
        write_new_manifest(folder, raw)
    except FileExistsError as error:
        raise HostError(f"{folder} already holds a session; open it with session:{folder} "
                        "instead of creating it again.") from error
    except OSError as error:
        raise HostError(f"Cannot create a session in {folder} ({os_reason(error)}); "
                        "choose a folder you can write to.") from error


def render(folder: Path, out: Path, force: bool = False) -> Path:
    """Mix the session down to one WAV or FLAC at its sample rate, in stereo.

    A mix that would clip (a sample peak above 0 dBFS) is turned down to peak at -1 dBFS, and a notice
    says by how much; anything quieter is written as it sums. An existing ``out`` is kept unless
    ``force``, and then replaced atomically: readers see the old file or the new one.
    """
    session = load_session(Path(folder))
    out = Path(out)
    if out.suffix.lower() not in RENDER_FORMATS:
        raise HostError(f"Cannot render to {out.name}; choose a name ending in .wav or .flac.")
    clips = _all_clips(session)
    if not clips:
        raise HostError(f"The session in {folder} has no clips yet; insert a take before rendering.")
    with as_host_error():
        if not force:
            refuse_existing(out)
        mix, gain_db = with_headroom(mixdown(session, clips))
        written = (replace_output if force else write_output)(out, lambda tmp: write_new_file(mix, tmp))
    if gain_db < 0:
        notify(f"The mix peaked at {RENDER_PEAK_DBFS - gain_db:+.1f} dBFS, so {written} was turned down "
               f"{-gain_db:.1f} dB to peak at {RENDER_PEAK_DBFS:g} dBFS; lower the loudest clips to render it as "
               "it sums.")
    return written


def with_headroom(mix: Clip) -> tuple[Clip, float]:
    """``mix`` and 0 dB when its peak fits below full scale; else turned down to peak at `RENDER_PEAK_DBFS`.

    One gain for the whole mix, not a limiter: the balance and the dynamics the user set stay as they are.
    """
    peak = float(np.max(np.abs(mix.samples), initial=0.0))
    if peak <= 1.0:
        return mix, 0.0
    gain_db = RENDER_PEAK_DBFS - 20 * math.log10(peak)
    return Clip(mix.samples * np.float32(10 ** (gain_db / 20)), mix.sample_rate), gain_db


def mixdown(session: Session, clips: Iterable[SessionClip], region: Region | None = None) -> Clip:
    """``clips`` summed at the session's rate in stereo over ``region`` (from 0 to the last clip's end when None)."""
    rate = session.sample_rate
    placed = _placed(session.folder, clips, rate)
    first = round(region.start_seconds * rate) if region else 0
    last = round(region.end_seconds * rate) if region else max((at + s.shape[1] for at, s in placed), default=0)
    try:
        out = np.zeros((2, max(last - first, 0)), np.float32)
    except MemoryError:
        raise HostError(f"The mix of {session.folder} is {(last - first) / rate:g} s long, too long to hold in "
                        "memory here; move its latest clips earlier or use a machine with more memory.") from None
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
            decoded[clip.file] = _stereo(read_audio(clip_path(folder, clip.file)), rate).samples
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
