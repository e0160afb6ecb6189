"""Read an Audacity 3.x ``.aup3`` project: its selection, rate, tempo, tracks and their audio.

Audacity 3.2 has no scripting query for the time selection or the project rate, but it writes both
into every project it saves. An ``.aup3`` is SQLite: the ``project`` table holds the document as
Audacity's "binary XML" (a name dictionary plus a stream of typed fields, see Audacity's
``ProjectSerializer.cpp``), and ``sampleblocks`` holds the audio, one row per block.

Only copies are read (``SaveCopy``): Audacity keeps the open project locked.
"""

from __future__ import annotations

import sqlite3
import struct
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import numpy as np

# ProjectSerializer's field types, in its enum's order.
(CHAR_SIZE, START_TAG, END_TAG, STRING, INT, BOOL, LONG, LONG_LONG, SIZE_T, FLOAT, DOUBLE, DATA, RAW, PUSH, POP,
 NAME) = range(16)  # fmt: skip
_NUMBERS = {INT: "<i", LONG: "<i", LONG_LONG: "<q", SIZE_T: "<I", FLOAT: "<f", DOUBLE: "<d"}
_ENCODINGS = {1: "utf-8", 2: "utf-16-le", 4: "utf-32-le"}  # wxChar is 4 bytes on Linux and macOS, 2 on Windows
# Audacity's sampleFormat values and how to scale each to float.
_SAMPLE_FORMATS = {0x00020001: (np.int16, 1 / 32768), 0x00040001: (np.int32, 1 / 8388608), 0x0004000F: (np.float32, 1)}
TRACK_TAGS = {"wavetrack": "wave", "labeltrack": "label", "notetrack": "note", "timetrack": "time"}


@dataclass
class Element:
    tag: str
    attrs: dict = field(default_factory=dict)
    children: list[Element] = field(default_factory=list)


@dataclass(frozen=True)
class AudioClip:
    offset_seconds: float  # where sample 0 of the clip's sequence sits on the timeline
    trim_left_seconds: float
    trim_right_seconds: float
    frames: int
    blocks: tuple[tuple[int, int], ...]  # (first frame, block id); a negative id is that many frames of silence


@dataclass(frozen=True)
class ProjectTrack:
    name: str
    index: int  # as Audacity numbers tracks in scripting: a stereo pair is one track
    kind: str  # "wave", "label", "note", "time"
    selected: bool
    sample_rate: int | None = None
    channels: tuple[tuple[AudioClip, ...], ...] = ()  # per channel, its clips


@dataclass(frozen=True)
class ProjectInfo:
    selection_start_seconds: float
    selection_end_seconds: float
    sample_rate: int | None
    tempo_bpm: float | None  # Audacity writes a tempo from 3.3 on; 3.2 has none
    tracks: tuple[ProjectTrack, ...]


class ProjectCopy:
    """An ``.aup3`` opened read-only: ``info`` is parsed on open, `audio` reads samples on demand."""

    def __init__(self, path: Path):
        self._db = sqlite3.connect(f"file:{quote(str(Path(path).resolve()))}?mode=ro", uri=True)
        try:
            row = self._db.execute("SELECT dict, doc FROM project ORDER BY id LIMIT 1").fetchone()
            if row is None:
                raise ValueError(f"{path} holds no project document")
            self.info = project_info(parse_document(row[0], row[1]))
        except BaseException:
            self._db.close()
            raise

    def __enter__(self) -> ProjectCopy:
        return self

    def __exit__(self, *exc) -> None:
        self._db.close()

    def audio(self, track: ProjectTrack, start_seconds: float, end_seconds: float) -> np.ndarray:
        """float32 ``[channels, frames]`` of what ``track`` plays between the two times, at its own rate.

        Gaps between clips are silence. Track gain, pan and clip envelopes are not applied: a
        continuation wants the recorded audio, not the mix.
        """
        rate = track.sample_rate or 44100
        frames = max(0, round((end_seconds - start_seconds) * rate))
        out = np.zeros((len(track.channels), frames), np.float32)
        for channel, clips in enumerate(track.channels):
            for clip in clips:
                self._place(out[channel], clip, rate, start_seconds)
        return out

    def _place(self, out: np.ndarray, clip: AudioClip, rate: int, start_seconds: float) -> None:
        # Frame k of the clip's sequence plays at offset + k / rate; out[j] is at start + j / rate.
        shift = round((start_seconds - clip.offset_seconds) * rate)
        first = max(round(clip.trim_left_seconds * rate), shift)
        last = min(clip.frames - round(clip.trim_right_seconds * rate), shift + len(out))
        ends = [start for start, _ in clip.blocks[1:]] + [clip.frames]
        for (block_start, block_id), block_end in zip(clip.blocks, ends, strict=True):
            lo, hi = max(first, block_start), min(last, block_end)
            if lo < hi:  # only blocks that overlap are read from the database
                samples = self._block(block_id)
                out[lo - shift : hi - shift] = samples[lo - block_start : hi - block_start]

    def _block(self, block_id: int) -> np.ndarray:
        if block_id < 0:  # Audacity stores runs of silence as a block id of minus their length
            return np.zeros(-block_id, np.float32)
        query = "SELECT sampleformat, samples FROM sampleblocks WHERE blockid = ?"
        row = self._db.execute(query, (block_id,)).fetchone()
        if row is None:
            raise ValueError(f"sample block {block_id} is missing")
        dtype, scale = _SAMPLE_FORMATS[row[0]]
        return np.frombuffer(row[1], dtype).astype(np.float32) * np.float32(scale)


def parse_document(dictionary: bytes, document: bytes) -> Element:
    """The ``<project>`` element of a binary-XML document and its name dictionary."""
    names: dict[int, str] = {}
    char_size = [4]
    root = Element("#document")
    stack = [root]
    saved_names: list[dict[int, str]] = []
    for blob in (dictionary, document):
        for kind, name_id, value in _fields(blob, char_size):
            if kind == NAME:
                names[name_id] = value
            elif kind == PUSH:  # a pasted-in subtree brings its own dictionary
                saved_names.append(names.copy())
            elif kind == POP:
                names = saved_names.pop()
            elif kind == START_TAG:
                element = Element(names[name_id])
                stack[-1].children.append(element)
                stack.append(element)
            elif kind == END_TAG:
                stack.pop()
            elif name_id is not None:
                stack[-1].attrs[names[name_id]] = value
    projects = [child for child in root.children if child.tag == "project"]
    if not projects:
        raise ValueError("the document has no <project> element")
    return projects[0]


def _fields(blob: bytes, char_size: list[int]):
    """Yield (field type, name id or None, value) for each field of one binary-XML buffer."""
    pos = 0

    def take(fmt: str):
        nonlocal pos
        values = struct.unpack_from(fmt, blob, pos)
        pos += struct.calcsize(fmt)
        return values[0]

    def text(length: int) -> str:
        nonlocal pos
        raw, pos = blob[pos : pos + length], pos + length
        return raw.decode(_ENCODINGS[char_size[0]], "replace")

    while pos < len(blob):
        kind = blob[pos]
        pos += 1
        if kind == CHAR_SIZE:
            char_size[0] = take("<B")
        elif kind == NAME:
            name_id = take("<H")
            yield kind, name_id, text(take("<H"))
        elif kind in (START_TAG, END_TAG):
            yield kind, take("<H"), None
        elif kind == STRING:
            name_id = take("<H")
            yield kind, name_id, text(take("<i"))
        elif kind == BOOL:
            yield kind, take("<H"), bool(take("<B"))
        elif kind in _NUMBERS:
            name_id = take("<H")
            value = take(_NUMBERS[kind])
            if kind in (FLOAT, DOUBLE):
                take("<i")  # how many digits Audacity would print: not needed to read the number
            yield kind, name_id, value
        elif kind in (DATA, RAW):
            yield kind, None, text(take("<i"))
        elif kind in (PUSH, POP):
            yield kind, None, None
        else:
            raise ValueError(f"unknown binary-XML field type {kind} at byte {pos - 1}")


def project_info(project: Element) -> ProjectInfo:
    attrs = project.attrs
    rate = attrs.get("rate")
    tempo = attrs.get("time_signature_tempo")
    return ProjectInfo(
        selection_start_seconds=float(attrs.get("sel0", 0.0)),
        selection_end_seconds=float(attrs.get("sel1", 0.0)),
        sample_rate=round(float(rate)) if rate else None,
        tempo_bpm=float(tempo) if tempo else None,
        tracks=tuple(_tracks(project)),
    )


def _tracks(project: Element):
    elements = [child for child in project.children if child.tag in TRACK_TAGS]
    index, position = 0, 0
    while position < len(elements):
        element = elements[position]
        group = [element]
        # Audacity 3.2 saves each channel of a stereo track as its own <wavetrack>; a non-zero
        # "linked" on the first marks the next one as its partner.
        if element.tag == "wavetrack" and element.attrs.get("linked") and position + 1 < len(elements):
            group.append(elements[position + 1])
        yield _track(group, index)
        index, position = index + 1, position + len(group)


def _track(group: list[Element], index: int) -> ProjectTrack:
    first = group[0]
    kind = TRACK_TAGS[first.tag]
    rate = first.attrs.get("rate")
    return ProjectTrack(
        name=str(first.attrs.get("name", "")),
        index=index,
        kind=kind,
        selected=bool(first.attrs.get("isSelected", False)),
        sample_rate=round(float(rate)) if rate else None,
        channels=tuple(tuple(_clips(element)) for element in group) if kind == "wave" else (),
    )


def _clips(wavetrack: Element):
    for clip in wavetrack.children:
        if clip.tag != "waveclip":
            continue
        sequence = next((child for child in clip.children if child.tag == "sequence"), None)
        if sequence is None:
            continue
        blocks = tuple(
            (int(block.attrs["start"]), int(block.attrs["blockid"]))
            for block in sequence.children
            if block.tag == "waveblock"
        )
        yield AudioClip(
            offset_seconds=float(clip.attrs.get("offset", 0.0)),
            trim_left_seconds=float(clip.attrs.get("trimLeft", 0.0)),
            trim_right_seconds=float(clip.attrs.get("trimRight", 0.0)),
            frames=int(sequence.attrs.get("numsamples", 0)),
            blocks=blocks,
        )
