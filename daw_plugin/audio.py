"""Audio values and file I/O: a `Clip` is float32 ``[channels, frames]`` plus its sample rate.

All reading, writing and resampling goes through pedalboard, so every format it decodes (WAV,
FLAC, AIFF, OGG, MP3) is accepted, and no torchaudio is needed.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
from pedalboard.io import AudioFile

from daw_plugin.files import replace_file
from models.clip import Clip, Region  # noqa: F401  (the core's names for them)
from models.errors import UserError, brief

# Generated audio is not bounded to [-1, 1]: float WAV keeps every peak for finishing to handle;
# FLAC has no float samples, so 24-bit is the most it can hold.
BIT_DEPTHS = {"wav": 32, "flac": 24}


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
