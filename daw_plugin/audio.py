"""Audio values and file I/O: a `Clip` is float32 ``[channels, frames]`` plus its sample rate.

All reading, writing and resampling goes through pedalboard, so every format it decodes (WAV,
FLAC, AIFF, OGG, MP3) is accepted, and no torchaudio is needed.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pedalboard.io import AudioFile, StreamResampler

from daw_plugin.files import replace_file
from models.errors import UserError, brief

# Generated audio is not bounded to [-1, 1]: float WAV keeps every peak for finishing to handle;
# FLAC has no float samples, so 24-bit is the most it can hold.
BIT_DEPTHS = {"wav": 32, "flac": 24}


@dataclass(frozen=True)
class Region:
    """A time range on a clip or track, in seconds."""

    start_seconds: float
    end_seconds: float

    @property
    def duration_seconds(self) -> float:
        return self.end_seconds - self.start_seconds


@dataclass(frozen=True, eq=False)
class Clip:
    """Audio in memory: ``samples`` is float32 ``[channels, frames]``."""

    samples: np.ndarray
    sample_rate: int

    def __post_init__(self):
        if self.samples.ndim != 2:
            raise ValueError(f"Clip samples must be [channels, frames], got shape {self.samples.shape}")

    @property
    def channels(self) -> int:
        return self.samples.shape[0]

    @property
    def frames(self) -> int:
        return self.samples.shape[1]

    @property
    def duration_seconds(self) -> float:
        return self.frames / self.sample_rate

    def region(self, region: Region, field: str = "region") -> Clip:
        """The part of this clip inside ``region``; raises `UserError` if it lies outside.

        ``field``: the request's field the region came from, named in the error ("melody_region" for a melody's).
        """
        start, end = region.start_seconds, region.end_seconds
        # Half a sample of slack: an end typed as the clip's printed duration should still fit.
        slack = 0.5 / self.sample_rate
        if not (0 <= start < end <= self.duration_seconds + slack):
            raise UserError(
                f"The region {start:g}-{end:g} s is outside the clip (0-{self.duration_seconds:.3f} s); "
                "choose a start before the end, both inside the clip.", field=field,
            )
        first, last = round(start * self.sample_rate), min(round(end * self.sample_rate), self.frames)
        return Clip(self.samples[:, first:last], self.sample_rate)

    def conformed(self, sample_rate: int, channels: int) -> Clip:
        """This clip resampled and down- or up-mixed for a consumer (a model, a host)."""
        samples = self.samples
        if channels == 1 and self.channels > 1:
            samples = samples.mean(axis=0, keepdims=True)
        elif channels > 1 and self.channels == 1:
            samples = np.repeat(samples, channels, axis=0)
        elif channels != self.channels:
            raise ValueError(f"Cannot map {self.channels} channels to {channels}")
        return Clip(np.ascontiguousarray(samples, dtype=np.float32), self.sample_rate).resampled(sample_rate)

    def resampled(self, sample_rate: int) -> Clip:
        if sample_rate == self.sample_rate:
            return self
        resampler = StreamResampler(self.sample_rate, sample_rate, self.channels)
        out = np.concatenate([resampler.process(self.samples), resampler.process()], axis=1)
        # The resampler's latency can leave the total a sample off; the length must follow the rate.
        frames = round(self.frames * sample_rate / self.sample_rate)
        out = out[:, :frames] if out.shape[1] >= frames else np.pad(out, ((0, 0), (0, frames - out.shape[1])))
        return Clip(np.ascontiguousarray(out, dtype=np.float32), sample_rate)


def read_clip(path: str | os.PathLike) -> Clip:
    """Read any format pedalboard decodes; one clear `UserError` if the file is missing, unreadable or empty."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"There is no audio file at {path}; check the path.")
    try:
        with AudioFile(str(path)) as f:
            sample_rate = f.samplerate
            # MP3 frame counts are estimates, so read until the decoder runs dry.
            chunks = []
            while (chunk := f.read(int(sample_rate * 10))).shape[1]:
                chunks.append(chunk.astype(np.float32, copy=False))
    except Exception as error:  # pedalboard raises several types for undecodable data
        raise UserError(
            f"Could not read audio from {path} ({brief(error)}); use a WAV, FLAC, AIFF, OGG or MP3 file."
        ) from error
    samples = np.concatenate(chunks, axis=1) if chunks else np.zeros((1, 0), np.float32)
    if samples.shape[1] == 0:
        raise UserError(f"{path} holds no audio; choose a file with sound in it.")
    return Clip(samples, int(round(sample_rate)))


def audio_seconds(path: str | os.PathLike) -> float:
    """How long an audio file lasts, from its header (exact for WAV and FLAC); `UserError` when it cannot be read."""
    try:
        with AudioFile(str(path)) as f:
            return f.frames / f.samplerate
    except Exception as error:  # pedalboard raises several types for undecodable data
        raise UserError(f"Could not read audio from {path} ({brief(error)}); use a WAV, FLAC, AIFF, OGG or MP3 "
                        "file.") from error


def as_clip(audio: str | os.PathLike | Clip) -> Clip:
    """Audio given in memory as it is, or read from its file."""
    return audio if isinstance(audio, Clip) else read_clip(audio)


def write_clip(clip: Clip, path: str | os.PathLike) -> Path:
    """Write a WAV or FLAC file atomically: a temporary file in the same folder, then a rename.

    An existing file is replaced; callers that must never overwrite choose a fresh name first.
    """
    return replace_file(Path(path), lambda tmp: write_new_file(clip, tmp))


def write_new_file(clip: Clip, path: Path) -> Path:
    """Encode ``clip`` into ``path`` (format from its suffix) in place: for files nobody else sees yet.

    A full disk (or any failed write) is an `OSError`, as from any other file. The encoder writes
    through a Python file, not to the path: pedalboard's own file writer raises `RuntimeError` for a
    failed write, and a block that fails when the file is closed is lost without a word (a full disk
    left a 0-byte "take"), where Python's file raises ENOSPC on every write and on close.
    """
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in BIT_DEPTHS:
        raise UserError(f"Cannot write .{fmt} files; use .wav or .flac.")
    try:
        with open(path, "wb") as out, AudioFile(out, "w", clip.sample_rate, clip.channels, format=fmt,
                                                bit_depth=BIT_DEPTHS[fmt]) as f:
            f.write(clip.samples)
    except RuntimeError as error:  # should pedalboard still report a write failure its own way
        raise OSError(errno.EIO, f"Could not write the audio ({brief(error)})", str(path)) from error
    return path
