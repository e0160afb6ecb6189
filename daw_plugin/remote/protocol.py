"""The worker's wire format: a job is one JSON body in, NDJSON events out.

Audio travels as raw float32 (little-endian, base64) both ways: a take made on the worker must equal, bit for bit,
the one the same request makes locally, and the conditioning audio must reach the model exactly as a local job
hands it over (FLAC would round float audio to 24 bits). One codec, no audio library on the ingress; base64 costs a
third more bytes than the samples, small beside the seconds a take takes.

    POST /jobs   {"model", "text", "seconds", "seeds", "settings", "preroll_seconds", "prompt"?, "melody"?}
    -> lines:    {"type": "queued" (while every replica is busy) | "started" (the replica that took the job) | "step" |
                  "preview" (with "audio") | "raw_take" | "finished" | "failed" | "cancelled", ...}
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from daw_plugin import events
from models.clip import Clip
from models.errors import Problem, UserError
from models.generator import Settings

MEDIA_TYPE = "application/x-ndjson"


def audio_json(samples: np.ndarray, sample_rate: int) -> dict:
    """float32 ``[channels, frames]`` as JSON: its shape, rate and little-endian bytes in base64."""
    samples = np.ascontiguousarray(samples, dtype="<f4")
    return {"sample_rate": int(sample_rate), "channels": int(samples.shape[0]), "frames": int(samples.shape[1]),
            "float32": base64.b64encode(samples.tobytes()).decode("ascii")}


def audio_from_json(data: dict) -> tuple[np.ndarray, int]:
    """(samples, sample_rate) back from `audio_json`; a `ValueError` when the shape and the bytes disagree."""
    raw = base64.b64decode(data["float32"], validate=True)
    channels, frames, rate = int(data["channels"]), int(data["frames"]), int(data["sample_rate"])
    if channels < 1 or frames < 0 or rate < 1 or len(raw) != channels * frames * 4:
        raise ValueError(f"audio of {channels} channels x {frames} frames at {rate} Hz does not match its bytes")
    return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(channels, frames), rate


@dataclass(frozen=True)
class RawJob:
    """What a worker needs to make a batch of raw takes: `Generator.generate`'s arguments, nothing of finishing."""

    model: str  # as the server's --models names it
    text: str | None
    seconds: float  # the raw take's new audio (a preroll comes on top)
    seeds: tuple[int, ...]
    settings: Settings = Settings()
    preroll_seconds: float = 0.0
    prompt: Clip | None = None  # the audio a continuation continues
    melody: Clip | None = None
    precision: str | None = None  # as the request asks (None: the server's own choice)

    def to_json(self) -> dict:
        return {"model": self.model, "text": self.text, "seconds": self.seconds, "seeds": list(self.seeds),
                "settings": asdict(self.settings), "preroll_seconds": self.preroll_seconds,
                "precision": self.precision,
                **{name: audio_json(clip.samples, clip.sample_rate) for name, clip in
                   (("prompt", self.prompt), ("melody", self.melody)) if clip is not None}}

    @classmethod
    def from_json(cls, data) -> RawJob:
        """The job a body holds; one `UserError` sentence (the server's 422) when it is not one."""
        try:
            settings = Settings(**data.get("settings") or {})
            clips = {name: Clip(*audio_from_json(data[name])) for name in ("prompt", "melody") if data.get(name)}
            job = cls(model=str(data["model"]), text=data.get("text"), seconds=float(data["seconds"]),
                      seeds=tuple(int(seed) for seed in data["seeds"]), settings=settings,
                      preroll_seconds=float(data.get("preroll_seconds") or 0.0), precision=data.get("precision"),
                      **clips)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise UserError(f"The job is not one this worker reads ({type(error).__name__}: {error}); use a "
                            "daw-plugin client of the same version.") from error
        if not (math.isfinite(job.seconds) and job.seconds > 0 and job.seeds and math.isfinite(job.preroll_seconds)):
            raise UserError("The job asks for no audio (seconds must be above 0, with at least one seed); check the "
                            "request.")
        return job


@dataclass(frozen=True)
class RawTake(events.Event):
    """A take as the model made it (a continuation's preroll included): the last thing a worker sends per take."""

    take: int
    audio: np.ndarray = field(repr=False)  # float32 [channels, n]
    sample_rate: int
    score: float | None = None  # its text-audio match (AudioLDM 2's CLAP), scored where the model is
    type = "raw_take"

    def to_json(self) -> dict:
        return {"type": self.type, "take": self.take, "audio": audio_json(self.audio, self.sample_rate),
                "score": self.score}


def event_line(event: events.Event) -> bytes:
    """One NDJSON line; a preview carries its audio (`Preview.to_json` leaves it out)."""
    data = event.to_json()
    if isinstance(event, events.Preview):
        data["audio"] = audio_json(event.audio, event.sample_rate)
    return json.dumps(data).encode() + b"\n"


@dataclass(frozen=True)
class Started(events.Event):
    """The replica that took the job: its Serve id and process, the first line a replica sends."""

    replica: str
    pid: int
    type = "started"


_PLAIN = {kind.type: kind for kind in (events.Queued, events.Loading, events.Step, events.Cancelled, Started)}


def parse_line(line: bytes | str) -> events.Event:
    """The event one NDJSON line holds: the engine's own classes, or `RawTake` and `Finished` (with no paths)."""
    data = json.loads(line)
    kind = data.pop("type")
    if kind == "preview":
        audio, rate = audio_from_json(data["audio"])
        return events.Preview(int(data["take"]), audio, rate, int(data["offset_frames"]))
    if kind == RawTake.type:
        audio, rate = audio_from_json(data["audio"])
        score = data.get("score")
        return RawTake(int(data["take"]), audio, rate, None if score is None else float(score))
    if kind == "finished":
        return events.Finished(())
    if kind == "failed":  # each problem rebuilt, so the CLI and the panel word and mark a remote refusal as a local one
        problems = tuple(Problem.from_json(problem) for problem in data.get("problems") or ())
        return events.Failed(str(data["message"]), data.get("field"), problems)
    if kind not in _PLAIN:
        raise ValueError(f"unknown event type {kind!r}")
    return _PLAIN[kind](**{name: value for name, value in data.items() if name in _field_names(_PLAIN[kind])})


def _field_names(kind) -> set[str]:
    from dataclasses import fields

    return {f.name for f in fields(kind)}
