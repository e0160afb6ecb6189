"""What a user asks for: a `GenerationRequest`, checked where it enters, before any model loads.

Every number is checked for its kind, finiteness and a sane range, so a NaN from a flag, a hand-edited
recipe or the panel never reaches a model or a recipe. Each problem is one sentence naming the field it concerns
(``{seconds}``), which each front end words with its own label (the CLI ``--seconds``), and all of a request's
problems are raised together, as one `InvalidRequest`.
"""

from __future__ import annotations

import math
import numbers
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from daw_plugin.audio import Clip, Region, audio_seconds
from daw_plugin.recipes import Recipe
from models.errors import InvalidRequest, Problem
from models.families import SETTINGS
from models.generator import Settings
from models.precision import PRECISIONS

MAX_SECONDS = 300.0  # a typo guard: 5 minutes of audio is hours of CPU and minutes of GPU
MIN_SECONDS = 0.02  # one frame of a token model (50 Hz): anything shorter is no take at all
MAX_TAKES = 32
MAX_SEED = 2**63 - 1  # every take's seed must fit torch's 64-bit generator seed
MAX_GUIDANCE = 30.0  # typo guards: far past anything that still sounds like the prompt
MAX_STEPS = 1000
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.01, 10.0  # below: logits / temperature overflow; 0 itself is greedy
MIN_BPM, MAX_BPM = 20.0, 999.0  # the tempos DAWs accept
MAX_AT_SECONDS = 24 * 3600.0  # a day into a project
CONTEXT_SECONDS = 12.0  # a continuation without --start hears this much before its end: the most any built-in
# model listens to (MusicGen 12 s; AudioGen uses its last 8 s, AudioLDM 2 up to 10.24 s)

# The numbers a request holds; the whole ones must be integers.
NUMBERS = ("seconds", "takes", "seed", "guidance", "top_k", "top_p", "temperature", "steps", "source_bpm",
           "at_seconds", "bars", "sample_rate", "tempo_bpm", "beats_per_bar", "threads", "keep_take")
WHOLE_NUMBERS = {"takes", "seed", "top_k", "steps", "bars", "sample_rate", "beats_per_bar", "threads", "keep_take"}
GIVEN_NUMBERS = {"takes", "seed", "beats_per_bar"}  # never None (a random seed is the default, not None)
MAX_BARS = 512
SAMPLE_RATES = (1000, 384000)  # a typo guard: DAWs run up to 384 kHz, and a model may make audio far under 8 kHz


@dataclass(frozen=True)
class GenerationRequest:
    """Everything that decides a take. Invalid values raise `InvalidRequest` (a `UserError`) on construction."""

    prompt: str
    model: str
    seconds: float | None  # None when the length is given in ``bars``
    takes: int = 1
    seed: int = field(default_factory=lambda: random.randrange(2**31))
    guidance: float | None = None  # classifier-free guidance; None takes the model's own default
    top_k: int | None = None  # token models: sampling (None: the model's own default, 250, 0.0 and 1.0)
    top_p: float | None = None
    temperature: float | None = None
    device: str = "auto"
    text_encoder: str | None = None
    steps: int | None = None  # diffusion models: denoising steps (None: the model's fast default)
    negative_prompt: str | None = None  # diffusion models: what to steer away from
    # Audio is a file (a path) or in memory (a `Clip`, from a host's selection or a drop); a take keeps a copy.
    melody: str | os.PathLike | Clip | None = None  # melody models: a clip whose chroma the take follows
    melody_region: Region | None = None  # the part of that clip to follow (default: all of it)
    clip: str | os.PathLike | Clip | None = None  # continuation: the clip and the region of it to continue
    region: Region | None = None  # None: the clip's end (`run` makes it the last CONTEXT_SECONDS of the clip)
    audio_format: str = "wav"
    preset: str = "foley"  # finishing: raw, foley, music-stem or a user preset
    source_bpm: float | None = None  # the take's tempo for tempo fit, when known (else estimated)
    host: str | None = None  # where takes land: session:DIR, audacity, reaper
    track: str | None = None  # a track of the host; None makes a new one per take
    at_seconds: float | None = None  # where on the track; a continuation defaults to its region end
    # What finishing aims at; None takes the host's. A recipe keeps them, so a take regenerates without its host.
    bars: int | None = None  # the length in whole bars at the target tempo, instead of seconds
    sample_rate: int | None = None  # the finished take's rate (else the host's, else the model's)
    tempo_bpm: float | None = None  # the tempo of bars and tempo fit (else the host's, else --bpm)
    beats_per_bar: int = 4
    loop: bool | None = None  # a seamless loop of whole bars at the tempo (None: as the preset says)
    threads: int | None = None  # CPU threads for the model; None: chosen by size and free cores (models.device)
    precision: str | None = None  # token models' decoder weights (models.precision); None: the fastest that passed
    clip_name: str | None = None  # what take names call the continued audio (default: its file's name)
    # Regenerating: the batch of ``takes`` is made again (a take depends on its batch) and only this one is kept.
    keep_take: int | None = None
    # With a host: put each take on a track. False: finish for the host (its rate and tempo), insert later.
    insert: bool = True
    worker: str | None = None  # a GPU server's URL that makes the raw takes (`daw_plugin.remote`); None: here

    def __post_init__(self):
        if not isinstance(self.prompt, str):
            raise InvalidRequest([Problem("prompt", "{prompt} must be text, not {value!r}.", value=self.prompt)])
        object.__setattr__(self, "prompt", self.prompt.strip())
        object.__setattr__(self, "negative_prompt", (self.negative_prompt or "").strip() or None)
        for name in ("clip", "melody"):  # its own read-only copy: a caller reusing its buffer cannot change a job
            if isinstance(audio := getattr(self, name), Clip) and audio.samples.ndim == 2:
                object.__setattr__(self, name, _frozen(audio))
        if problems := list(self._problems()):
            raise InvalidRequest(problems)

    def _problems(self):
        """Every value is checked where it enters, before any model loads; all the problems are reported together.

        Each `Problem` names the field it concerns as ``{field}``, so each front end words it with its own label.
        """
        numbers = list(_number_problems(self))
        yield from numbers
        wrong = {problem.field for problem in numbers}  # numbers of the wrong kind are not compared below
        for name in ("prompt", "negative_prompt", "track"):
            text = getattr(self, name)
            if text is not None and not _is_utf8(text):
                yield Problem(name, "{field} holds bytes that are not UTF-8 text; set the terminal or script to UTF-8 "
                                    "and retype it.")
        if not self.prompt and self.clip is None:
            yield Problem("prompt", "{prompt} is empty; describe the sound, or continue a region of a clip.")
        if self.region is not None and self.clip is None:
            yield Problem("region", "A region ({region}) is a part of a clip; give the clip to continue.")
        yield from _range_problems(self, wrong)
        if self.melody_region is not None and self.melody is None:
            yield Problem("melody_region", "{melody_region} choose the part of a {melody} clip to follow; "
                                           "add {melody} CLIP.")
        for name in ("region", "melody_region"):
            yield from _region_problems(name, getattr(self, name))
        for name in ("clip", "melody"):
            yield from _audio_problems(name, getattr(self, name))
        if self.precision not in (None, "auto", *PRECISIONS):
            yield Problem("precision", "{precision} must be auto, {choices}, not {value!r}.",
                          choices=", ".join(PRECISIONS), value=self.precision)
        if self.audio_format not in ("wav", "flac"):
            yield Problem("audio_format", "{audio_format} must be wav or flac, not {value!r}.", value=self.audio_format)
        if self.loop is not None and type(self.loop) is not bool:
            yield Problem("loop", "{loop} must be true or false, not {value!r}.", value=self.loop)
        if type(self.insert) is not bool:
            yield Problem("insert", "{insert} must be true or false, not {value!r}.", value=self.insert)
        if self.track is not None and "takes" not in wrong and self.takes > 1 and self.keep_take is None \
                and self.insert is True:
            yield Problem("track", "{track} puts one take on a track; with {takes} above 1 each take gets a new "
                                   "track, so drop {track}.")
        if (self.track is not None or self.at_seconds is not None) and self.host is None:
            yield Problem("track" if self.track is not None else "at_seconds",
                          "{track} and {at_seconds} place takes in a host; add {host} session:DIR, audacity or "
                          "reaper.")
        yield from self._finishing_problems(wrong)

    def _finishing_problems(self, wrong: set[str]):
        """The length in bars, and the rate and tempo finishing aims at."""
        if (self.seconds is None) == (self.bars is None):
            yield Problem("seconds", "Give the length as {seconds} or as {bars}, one of the two.")
        if self.bars is not None and "bars" not in wrong and (type(self.bars) is not int
                                                              or not 1 <= self.bars <= MAX_BARS):
            yield Problem("bars", "{bars} must be a whole number from 1 to {high}, not {value!r}.",
                          high=MAX_BARS, value=self.bars)
        if self.bars is not None and self.host is None and self.tempo_bpm is None and self.source_bpm is None:
            yield Problem("bars", "{bars} needs a tempo to count bars in: add {source_bpm}, or a {host} whose "
                                  "project has a tempo.")
        if self.loop is True and self.clip is None and self.host is None and self.tempo_bpm is None \
                and self.source_bpm is None:  # (a continuation keeps its region's timing: no bars, no loop)
            yield Problem("loop", "{loop} cuts whole bars at a tempo, and there is none; give {tempo_bpm}, or a "
                                  "{host} whose project has a tempo.")
        low, high = SAMPLE_RATES
        if self.sample_rate is not None and "sample_rate" not in wrong and (
                type(self.sample_rate) is not int or not low <= self.sample_rate <= high):
            yield Problem("sample_rate", "{sample_rate} must be a whole number of Hz from {low} to {high}, "
                                         "not {value!r}.", low=low, high=high, value=self.sample_rate)
        if self.tempo_bpm is not None and "tempo_bpm" not in wrong and not 0 < self.tempo_bpm <= 1000:
            yield Problem("tempo_bpm", "{tempo_bpm} must be above 0 and at most 1000 BPM, not {value!r}.",
                          value=self.tempo_bpm)
        if "beats_per_bar" not in wrong and (type(self.beats_per_bar) is not int
                                             or not 1 <= self.beats_per_bar <= 64):
            yield Problem("beats_per_bar", "{beats_per_bar} must be from 1 to 64, not {value!r}.",
                          value=self.beats_per_bar)

    @classmethod
    def from_recipe(cls, recipe: Recipe | dict, take_folder: Path | None = None, **changes) -> GenerationRequest:
        """The request that made a take, to make it again: same seed, same audio on the same device.

        ``recipe``: a `Recipe`, or its JSON (read through `Recipe.from_json`, which gives older recipes' fields
        their old meaning). With ``take_folder`` (the take's own folder) the conditioning audio comes from the
        take's copy of it when there is one, so the take regenerates after the original file is gone (or was
        only in memory).
        """
        if not isinstance(recipe, Recipe):
            recipe = Recipe.from_json(recipe)
        parameters, finishing, source, melody = recipe.parameters, recipe.finishing, recipe.source, recipe.melody
        fields: dict[str, Any] = dict(
            # The take's batch is made again and only the take kept: a take depends on the batch it was made in.
            prompt=recipe.prompt, model=recipe.model, seconds=recipe.requested_seconds, seed=recipe.batch.first_seed,
            takes=recipe.batch.takes, keep_take=recipe.batch.index,
            guidance=parameters.guidance, top_k=parameters.top_k, top_p=parameters.top_p,
            temperature=parameters.temperature, text_encoder=parameters.text_encoder, steps=parameters.steps,
            negative_prompt=parameters.negative_prompt, preset=finishing.preset, source_bpm=finishing.source_bpm,
            device=recipe.device, precision=recipe.ran_in, audio_format=recipe.audio_format,
            bars=recipe.requested_bars,
            sample_rate=finishing.sample_rate, tempo_bpm=finishing.tempo_bpm, beats_per_bar=finishing.beats_per_bar,
            loop=finishing.loop, worker=recipe.worker,  # made on a GPU server: made again there, the same audio
        )
        copies = _copies(recipe, take_folder)
        if source is not None:
            fields.update(clip=source.clip, region=_region(source), clip_name=source.clip and Path(source.clip).stem)
            if "source" in copies:  # the copy holds just the region continued
                fields.update(clip=str(copies["source"]), region=Region(0.0, audio_seconds(copies["source"])))
        if melody is not None:
            fields.update(melody=melody.clip, melody_region=_region(melody))  # None: all of the melody
            if "melody" in copies:  # the copy holds just the part followed
                fields.update(melody=str(copies["melody"]), melody_region=None)
        return cls(**{**fields, **changes})

    @property
    def settings(self) -> Settings:
        """What the model is asked to generate with, as every family names it (None: the model's default)."""
        return Settings(**{field: getattr(self, field) for field in SETTINGS})

    @property
    def is_continuation(self) -> bool:
        return self.clip is not None

    def take_seed(self, index: int) -> int:
        """Each take has its own seed, so any one of them can be regenerated alone."""
        return self.seed + index


def _region(part) -> Region | None:
    """A recipe's `Conditioning` part as a `Region`; None where it has no ends (a whole melody)."""
    if part.start_seconds is None or part.end_seconds is None:
        return None
    return Region(part.start_seconds, part.end_seconds)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _number_problems(request: GenerationRequest):
    """Numbers of the wrong kind, NaN or infinite (from a flag, a hand-edited recipe or the panel)."""
    for name in NUMBERS:
        value = getattr(request, name)
        whole = name in WHOLE_NUMBERS
        if value is None and name not in GIVEN_NUMBERS:
            continue
        if not _is_real(value) or (whole and not isinstance(value, numbers.Integral)):
            yield Problem(name, "{field} must be a " + "whole " * whole + "number, not {value!r}.", value=value)
        elif not math.isfinite(value):
            yield Problem(name, "{field} must be a finite number, not {value}.", value=value)


def _range_problems(request: GenerationRequest, wrong: set[str]):
    """Each number given inside its range; ``wrong``: the fields whose numbers were refused already."""
    def given(*names):
        return all(getattr(request, name) is not None and name not in wrong for name in names)

    r: Any = request  # every field read below is checked by given() first: a number, not None
    if given("seconds") and not MIN_SECONDS <= r.seconds <= MAX_SECONDS:
        yield Problem("seconds", "{seconds} must be from {low:g} (one frame of a token model) to {high:g}, "
                                 "not {value:g}.", low=MIN_SECONDS, high=MAX_SECONDS, value=r.seconds)
    if given("takes") and not 1 <= r.takes <= MAX_TAKES:
        yield Problem("takes", "{takes} must be between 1 and {high}, not {value}.", high=MAX_TAKES, value=r.takes)
    if given("keep_take", "takes") and not 0 <= r.keep_take < r.takes:
        yield Problem("keep_take", "{keep_take} must count a take of the batch, from 0 to {high}, not {value}.",
                      high=r.takes - 1, value=r.keep_take)
    if given("seed", "takes") and not 0 <= r.seed <= MAX_SEED - (r.takes - 1):
        yield Problem("seed", "{seed} must be from 0 to {high} (each take's seed must fit in 64 bits), not {value}.",
                      high=MAX_SEED - (r.takes - 1), value=r.seed)
    if given("guidance") and not 0 <= r.guidance <= MAX_GUIDANCE:
        yield Problem("guidance", "{guidance} must be from 0 to {high:g} (1 turns guidance off), not {value:g}.",
                      high=MAX_GUIDANCE, value=r.guidance)
    if given("top_k") and r.top_k < 0:
        yield Problem("top_k", "{top_k} must be 0 (off) or more, not {value}.", value=r.top_k)
    if given("top_p") and not 0 <= r.top_p <= 1:
        yield Problem("top_p", "{top_p} must be between 0 (off) and 1, not {value:g}.", value=r.top_p)
    if given("temperature") and not (r.temperature == 0 or MIN_TEMPERATURE <= r.temperature <= MAX_TEMPERATURE):
        yield Problem("temperature", "{temperature} must be 0 (greedy) or from {low:g} to {high:g}, not {value:g}.",
                      low=MIN_TEMPERATURE, high=MAX_TEMPERATURE, value=r.temperature)
    if given("steps") and not 1 <= r.steps <= MAX_STEPS:
        yield Problem("steps", "{steps} must be 1 or more, up to {high}, not {value}.", high=MAX_STEPS, value=r.steps)
    if given("at_seconds") and not 0 <= r.at_seconds <= MAX_AT_SECONDS:
        yield Problem("at_seconds", "{at_seconds} must be from 0 to {high:g} seconds (a day), not {value:g}.",
                      high=MAX_AT_SECONDS, value=r.at_seconds)
    if given("source_bpm") and not MIN_BPM <= r.source_bpm <= MAX_BPM:
        yield Problem("source_bpm", "{source_bpm} must be from {low:g} to {high:g}, not {value:g}.",
                      low=MIN_BPM, high=MAX_BPM, value=r.source_bpm)
    cores = os.cpu_count() or 1
    if given("threads") and not 1 <= r.threads <= cores:
        yield Problem("threads", "{threads} must be between 1 and this machine's {cores} cores, not {value}.",
                      cores=cores, value=r.threads)


def _region_problems(name: str, region: Region | None):
    """A region's ends: numbers of seconds, the start before the end (the clip's length is checked on reading)."""
    if region is None:
        return
    start, end = region.start_seconds, region.end_seconds
    if not all(_is_real(value) and math.isfinite(value) for value in (start, end)):
        yield Problem(name, "{field} must be numbers of seconds, not {start!r} and {end!r}.", start=start, end=end)
    elif not 0 <= start < end:
        yield Problem(name, "The region {start:g}-{end:g} s is empty or negative; give a start before the end.",
                      start=start, end=end)


def _audio_problems(name: str, audio):
    """A clip or melody is a path or a `Clip` with sound in it: the model must not hear NaN or nothing."""
    if audio is None or isinstance(audio, str | os.PathLike):
        return
    if not isinstance(audio, Clip):
        yield Problem(name, "{field} must be an audio file's path or a Clip, not a {value}.",
                      value=type(audio).__name__)
    elif audio.frames == 0 or not (isinstance(audio.sample_rate, int) and audio.sample_rate > 0):
        yield Problem(name, "The audio given as {field} holds no audio; choose a region with sound in it.")
    elif not np.isfinite(audio.samples).all():
        yield Problem(name, "The audio given as {field} holds NaN or infinite samples; give it finite audio.")


def _frozen(clip: Clip) -> Clip:
    samples = np.array(clip.samples, dtype=np.float32)
    samples.setflags(write=False)
    return Clip(samples, clip.sample_rate)


def _copies(recipe: Recipe, take_folder: Path | None) -> dict[str, Path]:
    """The take's copies of its conditioning audio ("source", "melody") that are there, by kind."""
    if take_folder is None or (names := recipe.audio) is None:
        return {}
    found = {kind: take_folder / names[kind] for kind in ("source", "melody") if kind in names}
    return {kind: path for kind, path in found.items() if path.name == names[kind] and path.is_file()}


def _is_utf8(text: str) -> bool:
    """False for text Python decoded from invalid UTF-8 (command-line bytes arrive as lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def context_region(end_seconds: float) -> Region:
    """What a continuation from ``end_seconds`` listens to when no start is given: up to CONTEXT_SECONDS."""
    return Region(max(0.0, end_seconds - CONTEXT_SECONDS), end_seconds)
