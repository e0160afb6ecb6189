"""A take's recipe: everything that made it, so `takes regenerate` can make it again.

`Recipe` is the typed value, and `Recipe.to_json` / `Recipe.from_json` its one mapping to and from the JSON
kept beside each take (``<id>/<id>.json``). `from_json` checks the shape (a hand edit, a NaN) and reads every
older recipe, giving a field an older version did not write its old meaning.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from daw_plugin import __version__
from daw_plugin.audio import Clip
from models.errors import UserError
from models.families import FAMILIES, SETTINGS

PARAMETERS = (*SETTINGS, "text_encoder")


def _recorded_by(family_name: str | None) -> tuple[str, ...]:
    """The parameters a family's recipes hold (`models.families`); a recipe without a family is older than
    AudioLDM 2 support, a token model's; an unknown family keeps them all."""
    known = FAMILIES.get(family_name or "musicgen")
    if known is None:
        return PARAMETERS
    return (*known.settings, "text_encoder") if known.text_encoder_option else known.settings


@dataclass(frozen=True)
class Parameters:
    """The values the model ran with, its defaults filled in: a recipe must not depend on tomorrow's defaults."""

    guidance: float | None = None  # classifier-free guidance (older recipes: "cfg_coef")
    top_k: int | None = None  # token models
    top_p: float | None = None
    temperature: float | None = None
    text_encoder: str | None = None
    steps: int | None = None  # AudioLDM 2
    negative_prompt: str | None = None
    # The names the JSON holds, null ones too: each family records the parameters it uses, and only those.
    recorded: tuple[str, ...] = ()

    def to_json(self) -> dict:
        """The recorded parameters, in their order, and any other that holds a value."""
        values = {name: getattr(self, name) for name in PARAMETERS}
        return {name: values[name] for name in self.recorded} | {
            name: value for name, value in values.items() if name not in self.recorded and value is not None}

    @classmethod
    def from_json(cls, data: dict, family: str | None) -> Parameters:
        # Older recipes name guidance "cfg_coef"; older AudioLDM 2 recipes also hold the token models'
        # sampling defaults, which it never used.
        names = ["guidance" if name == "cfg_coef" else name for name in data]
        names = [name for name in names if name in _recorded_by(family)]
        values = {name: data.get(name) for name in names if name != "guidance"}
        guidance = data["guidance"] if "guidance" in data else data.get("cfg_coef")
        return cls(guidance=guidance, **values, recorded=tuple(dict.fromkeys(names)))


@dataclass(frozen=True)
class Finishing:
    """What decided the finished audio besides the raw take: the preset, and the rate, channels and tempo it
    aimed at (the host's, when there was one), so regenerate needs no host."""

    preset: str  # a built-in preset's name, or a preset file's absolute path
    sample_rate: int | None = None
    channels: int | None = None
    tempo_bpm: float | None = None
    beats_per_bar: int = 4  # what older recipes, which do not say, were finished with
    source_bpm: float | None = None  # as declared with --bpm; an estimate is the report's "estimated_bpm"
    loop: bool | None = None  # the request's Loop over the preset's own (None, and in older recipes: the preset's)
    report: dict = field(default_factory=dict)  # what each stage did (`Finished.report`), for information

    def to_json(self) -> dict:
        return {"preset": self.preset, **self.report, "sample_rate": self.sample_rate,
                **_given(channels=self.channels), "tempo_bpm": self.tempo_bpm,
                "beats_per_bar": self.beats_per_bar, "source_bpm": self.source_bpm, **_given(loop=self.loop)}

    @classmethod
    def from_json(cls, data: dict) -> Finishing:
        return cls(preset=data["preset"], sample_rate=data.get("sample_rate"), channels=data.get("channels"),
                   tempo_bpm=data.get("tempo_bpm"), beats_per_bar=data.get("beats_per_bar", 4),
                   source_bpm=data.get("source_bpm"), loop=data.get("loop"), report=_report(data))


FINISHING_FIELDS = ("preset", "sample_rate", "channels", "tempo_bpm", "beats_per_bar", "source_bpm", "loop")


def _report(finishing: dict) -> dict:
    return {name: value for name, value in finishing.items() if name not in FINISHING_FIELDS}


@dataclass(frozen=True)
class Conditioning:
    """Audio a take was conditioned on: the original file (None: the audio was in memory; the take keeps a copy,
    named under the recipe's "audio") and the part of it used (a melody's None ends: all of it)."""

    clip: str | None
    start_seconds: float | None = None
    end_seconds: float | None = None

    @classmethod
    def from_json(cls, data: dict | None) -> Conditioning | None:
        return None if data is None else cls(data["clip"], data.get("start_seconds"), data.get("end_seconds"))


@dataclass(frozen=True)
class RawTake:
    """What the model made: the new audio only, before finishing."""

    sample_rate: int
    channels: int
    duration_seconds: float


@dataclass(frozen=True)
class Program:
    name: str
    version: str | None = None


@dataclass(frozen=True)
class Batch:
    """The takes generated together with this one: take ``index`` of ``takes`` from seeds ``first_seed`` on,
    so its own seed is ``first_seed + index``. Older recipes' takes were each made alone: a batch of one."""

    first_seed: int
    takes: int
    index: int


@dataclass(frozen=True)
class Recipe:
    """Everything that made a take, and what it is. Fields an older recipe lacks are None (shown: "older")."""

    prompt: str
    model: str  # an id, or a folder's absolute path
    seed: int  # this take's own
    seconds: float  # the finished take's length
    device: str
    audio_format: str
    parameters: Parameters
    finishing: Finishing
    batch: Batch
    requested_seconds: float | None  # what was asked (None: asked in bars)
    requested_bars: int | None = None
    kind: str | None = None  # "generate" or "continue" (older: None)
    family: str | None = None  # older: None, a token model
    take: int | None = None  # from 1, of ``of_takes``
    of_takes: int | None = None
    dtype: str | None = None
    precision: str | None = None  # the decoder's weights (models.precision); older: None, see `ran_in`
    sample_rate: int | None = None  # the finished take's
    channels: int | None = None
    duration_seconds: float | None = None
    raw_take: RawTake | None = None
    program: Program | None = None
    created: str | None = None
    clap_score: float | None = None  # AudioLDM 2's text-audio match
    source: Conditioning | None = None  # a continuation's region
    melody: Conditioning | None = None
    id: str | None = None  # set when the take is saved: its folder's name
    audio: dict | None = None  # set when the take is saved: its files by kind ("finished", "raw", "source"...)
    worker: str | None = None  # the GPU server that made the raw take (None: this machine)

    @property
    def ran_in(self) -> str:
        """The precision the take was made in: an older recipe's is what that version ran (float16 on CUDA)."""
        return self.precision or ("float16" if self.device == "cuda" else "float32")

    def to_json(self) -> dict:
        """The recipe as kept on disk; fields an older recipe lacked stay out, and its sections keep their order."""
        return {
            **_given(kind=self.kind), "prompt": self.prompt, "model": self.model, **_given(family=self.family),
            "seed": self.seed, **_given(take=self.take, of_takes=self.of_takes), "batch": asdict(self.batch),
            "seconds": self.seconds, "requested_seconds": self.requested_seconds,
            "requested_bars": self.requested_bars, "parameters": self.parameters.to_json(),
            "finishing": self.finishing.to_json(), "audio_format": self.audio_format, "device": self.device,
            **_given(dtype=self.dtype, precision=self.precision, sample_rate=self.sample_rate, channels=self.channels,
                     duration_seconds=self.duration_seconds, raw_take=self.raw_take and asdict(self.raw_take),
                     program=self.program and _given(**asdict(self.program)), created=self.created,
                     clap_score=self.clap_score, source=self.source and asdict(self.source),
                     melody=self.melody and asdict(self.melody), id=self.id,
                     audio=self.audio and dict(self.audio), worker=self.worker),
        }

    @classmethod
    def from_json(cls, data, where: str | Path | None = None) -> Recipe:
        """The recipe ``data`` (parsed JSON) holds; one `UserError` naming the field when it cannot be used.

        ``where``: the recipe's file, for the message.
        """
        if problem := recipe_problem(data):
            raise recipe_error(where, problem)
        family, raw, program, batch = data.get("family"), data.get("raw_take"), data.get("program"), data.get("batch")
        return cls(
            prompt=data["prompt"], model=data["model"], seed=data["seed"], seconds=data["seconds"],
            device=data["device"], audio_format=data["audio_format"],
            parameters=Parameters.from_json(data["parameters"], family),
            finishing=Finishing.from_json(data["finishing"]),
            batch=Batch(batch["first_seed"], batch["takes"], batch["index"]) if batch else Batch(data["seed"], 1, 0),
            # "seconds" is what was made, "requested_seconds" what was asked (older recipes hold only "seconds").
            requested_seconds=data["requested_seconds"] if "requested_seconds" in data else data["seconds"],
            requested_bars=data.get("requested_bars"), kind=data.get("kind"), family=family,
            take=data.get("take"), of_takes=data.get("of_takes"), dtype=data.get("dtype"),
            precision=data.get("precision"),
            sample_rate=data.get("sample_rate"), channels=data.get("channels"),
            duration_seconds=data.get("duration_seconds"),
            raw_take=raw and RawTake(raw["sample_rate"], raw["channels"], raw["duration_seconds"]),
            program=program and Program(program["name"], program.get("version")), created=data.get("created"),
            clap_score=data.get("clap_score"), source=Conditioning.from_json(data.get("source")),
            melody=Conditioning.from_json(data.get("melody")), id=data.get("id"),
            audio=dict(data["audio"]) if "audio" in data else None, worker=data.get("worker"),
        )


def _given(**fields) -> dict:
    """The fields that hold a value: what an older recipe lacked stays out of its JSON."""
    return {name: value for name, value in fields.items() if value is not None}


# Making a recipe: from the request, the model and the finished take.

def take_recipe(request, index: int, seed: int, raw: Clip, generator, finished, target, settings,
                score: float | None) -> Recipe:
    """``raw`` is the model's new audio, ``finished`` the `daw_plugin.finishing.Finished` take, ``target`` the
    `Target` it was finished for and ``settings`` the `models.generator.Settings` it was made with. The top-level
    length, rate and channels are the finished take's (what lands on a track); what was asked and what the model
    made are kept apart."""
    clip = finished.clip
    return Recipe(
        kind="continue" if request.is_continuation else "generate",
        prompt=request.prompt,
        model=_absolute_if_path(request.model),
        family=generator.family,
        seed=seed,
        take=index + 1,
        of_takes=request.takes,
        batch=Batch(request.seed, request.takes, index),
        seconds=clip.duration_seconds,
        requested_seconds=request.seconds,
        requested_bars=request.bars,
        parameters=Parameters.from_json(_parameters(request, settings, generator.family), generator.family),
        finishing=_finishing(request, finished, target),
        audio_format=request.audio_format,
        device=generator.device.type,
        dtype=str(generator.dtype).removeprefix("torch."),
        precision=generator.precision,
        sample_rate=clip.sample_rate,
        channels=clip.channels,
        duration_seconds=clip.duration_seconds,
        raw_take=RawTake(raw.sample_rate, raw.channels, raw.duration_seconds),
        program=Program("daw-plugin", __version__),
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        clap_score=score,
        # The original file, for information (None: the audio was in memory); the take keeps a copy.
        source=Conditioning(_file(request.clip), **asdict(request.region)) if request.is_continuation else None,
        melody=None if request.melody is None else Conditioning(
            _file(request.melody), **(asdict(request.melody_region) if request.melody_region else {})),
        worker=getattr(request, "worker", None),
    )


def _parameters(request, settings, family_name: str) -> dict:
    """The settings the model ran with, its defaults filled in (a recipe must not depend on tomorrow's
    defaults): only those its family takes (`models.families`)."""
    text_encoder = request.text_encoder and _absolute_if_path(request.text_encoder)
    values = {**{name: getattr(settings, name) for name in SETTINGS}, "text_encoder": text_encoder}
    return {name: values[name] for name in _recorded_by(family_name)}


def _finishing(request, finished, target) -> Finishing:
    return Finishing(preset=_preset_reference(request.preset), sample_rate=target.sample_rate,
                     channels=finished.clip.channels, tempo_bpm=target.bpm, beats_per_bar=target.beats_per_bar,
                     source_bpm=request.source_bpm, loop=request.loop, report=_report(finished.report))


def _absolute_if_path(name: str) -> str:
    """Model ids stay as they are; folders are recorded absolute, so a recipe works from anywhere."""
    path = Path(name).expanduser()
    return str(path.resolve()) if path.exists() else name


def _file(audio) -> str | None:
    """An audio file's absolute path; None for audio given in memory (a `Clip`)."""
    return None if isinstance(audio, Clip) else str(Path(audio).resolve())


def _preset_reference(name: str) -> str:
    """A built-in preset by name; a preset file by its absolute path, so regenerate finds it from anywhere."""
    from daw_plugin.presets import PRESETS

    return name if name in PRESETS else _absolute_if_path(name)


# Checking a recipe: a hand edit, or a file some other version wrote.

# The fields a recipe is checked for: (where, what it must hold, whether it must be there).
# A field under an optional object ("source.clip") is checked when that object is there.
RECIPE_FIELDS = (
    ("prompt", "text", True), ("model", "text", True), ("seconds", "a number", True), ("seed", "an integer", True),
    ("device", "text", True), ("audio_format", "text", True), ("created", "text", False),
    ("kind", "text", False), ("family", "text", False), ("take", "an integer", False),
    ("of_takes", "an integer", False), ("dtype", "text", False), ("precision", "text", False),
    ("sample_rate", "an integer", False),
    ("channels", "an integer", False), ("duration_seconds", "a number", False),
    ("parameters", "an object", True), ("parameters.guidance", "a number or null", False),
    ("parameters.cfg_coef", "a number or null", False),  # older recipes name guidance so
    ("requested_seconds", "a number or null", False), ("requested_bars", "an integer or null", False),
    # Each family records only the parameters it uses: token models sample, AudioLDM 2 denoises.
    ("parameters.top_k", "an integer", False), ("parameters.top_p", "a number", False),
    ("parameters.temperature", "a number", False), ("parameters.text_encoder", "text or null", False),
    ("parameters.steps", "an integer or null", False), ("parameters.negative_prompt", "text or null", False),
    ("finishing", "an object", True), ("finishing.preset", "text", True),
    ("finishing.source_bpm", "a number or null", False), ("finishing.sample_rate", "an integer or null", False),
    ("finishing.tempo_bpm", "a number or null", False), ("finishing.beats_per_bar", "an integer", False),
    ("finishing.channels", "an integer", False), ("finishing.loop", "true or false or null", False),
    ("source", "an object or null", False), ("source.clip", "text or null", True),
    ("source.start_seconds", "a number", True), ("source.end_seconds", "a number", True),
    ("melody", "an object or null", False), ("melody.clip", "text or null", True),
    ("melody.start_seconds", "a number or null", False), ("melody.end_seconds", "a number or null", False),
    ("raw_take", "an object", False), ("raw_take.sample_rate", "an integer", True),
    ("raw_take.channels", "an integer", True), ("raw_take.duration_seconds", "a number", True),
    ("program", "an object", False), ("program.name", "text", True), ("program.version", "text", False),
    ("batch", "an object", False), ("batch.first_seed", "an integer", True), ("batch.takes", "an integer", True),
    ("batch.index", "an integer", True),
    ("clap_score", "a number", False), ("id", "text", False), ("audio", "an object", False),
)
_KINDS = {
    "text": lambda v: isinstance(v, str),
    "an integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "a number": lambda v: isinstance(v, int) and not isinstance(v, bool) or isinstance(v, float) and math.isfinite(v),
    "an object": lambda v: isinstance(v, dict),
    "null": lambda v: v is None,
    "true": lambda v: v is True,
    "false": lambda v: v is False,
}


def recipe_problem(recipe) -> str | None:
    """What is wrong with a recipe's shape, as a phrase ("has no 'seed'"), or None when it can be used."""
    if not isinstance(recipe, dict):
        return "is not a JSON object"
    for where, kinds, required in RECIPE_FIELDS:
        *parents, key = where.split(".")
        holder: Any = recipe  # a dict, until a parent is something else
        for parent in parents:
            holder = holder.get(parent)
            if not isinstance(holder, dict):
                break
        if not isinstance(holder, dict):
            continue  # under an optional object that is not there
        if key not in holder:
            if required:
                return f"has no {where!r}"
        elif not any(_KINDS[kind](holder[key]) for kind in kinds.split(" or ")):
            return f"has {where!r} = {_shown(holder[key])}, which should be {kinds}"
    if found := non_finite(recipe):  # Python's json reads NaN and Infinity; strict parsers do not
        return f"has {found[0]!r} = {_shown(found[1])}, which should be a finite number"
    for kind, name in (recipe.get("audio") or {}).items():
        if not isinstance(name, str):
            return f"has 'audio.{kind}' = {_shown(name)}, which should be text"
    batch = recipe.get("batch")
    if batch and not (0 <= batch["index"] < batch["takes"] and batch["first_seed"] + batch["index"] == recipe["seed"]):
        return (f"has 'batch' = {_shown(batch)}, which should hold this take: an index from 0 below takes, "
                f"and first_seed + index = its seed ({recipe['seed']})")
    return None


def recipe_error(where: str | Path | None, problem: str) -> UserError:
    """One sentence naming the recipe file (when known) and ``problem``, a phrase from `recipe_problem`."""
    named = "" if where is None else " " + printable(str(where))
    return UserError(f"The recipe{named} {problem}; correct it by hand, or move that take's folder away.")


def non_finite(value, where: str = "") -> tuple[str, float] | None:
    """Where in ``value`` (a recipe) the first NaN or infinity sits, and that value: ("parameters.guidance", nan)."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (where, value)
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list | tuple) else ()
    for key, item in items:
        if found := non_finite(item, f"{where}.{key}" if where else str(key)):
            return found
    return None


def printable(text: str) -> str:
    """``text`` safe in one field of one line on a terminal: backslashes and whatever is not printable
    (escape sequences, newlines, tabs, bidi overrides) are written as Python escapes ("\\x1b", "\\n")."""
    return "".join(c if c.isprintable() and c != "\\" else c.encode("unicode_escape").decode("ascii") for c in text)


def _shown(value) -> str:
    """A value for a one-line message: JSON, control characters escaped, cut short."""
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."
