"""What a user asks for: a `GenerationRequest`, checked where it enters, before any model loads.

Every number is checked for its kind, finiteness and a sane range, so a NaN from a flag, a hand-edited
recipe or the panel never reaches a model or a recipe; each problem is one sentence naming the option.
"""

from __future__ import annotations

import math
import numbers
import os
import random
from dataclasses import dataclass, field

from daw_plugin.audio import Region
from models.errors import UserError

MAX_SECONDS = 300.0  # a typo guard: 5 minutes of audio is hours of CPU and minutes of GPU
MIN_SECONDS = 0.02  # one frame of a token model (50 Hz): anything shorter is no take at all
MAX_TAKES = 32
MAX_SEED = 2**63 - 1  # every take's seed must fit torch's 64-bit generator seed
MAX_CFG = 30.0  # typo guards: far past anything that still sounds like the prompt
MAX_STEPS = 1000
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.01, 10.0  # below: logits / temperature overflow; 0 itself is greedy
MIN_BPM, MAX_BPM = 20.0, 999.0  # the tempos DAWs accept
MAX_AT_SECONDS = 24 * 3600.0  # a day into a project
CONTEXT_SECONDS = 12.0  # a continuation without --start hears this much before its end: the most any built-in
# model listens to (MusicGen 12 s; AudioGen uses its last 8 s, AudioLDM 2 up to 10.24 s)

# The numbers a request holds, by the option that sets them; the whole ones must be integers.
NUMBERS = {"seconds": "--seconds", "takes": "--takes", "seed": "--seed", "cfg_coef": "--cfg", "top_k": "--top-k",
           "top_p": "--top-p", "temperature": "--temperature", "steps": "--steps", "source_bpm": "--bpm",
           "at_seconds": "--at", "bars": "--bars", "sample_rate": "--sample-rate", "tempo_bpm": "the target tempo",
           "beats_per_bar": "beats per bar", "threads": "--threads"}
WHOLE_NUMBERS = {"takes", "seed", "top_k", "steps", "bars", "sample_rate", "beats_per_bar", "threads"}
MAX_BARS = 512
SAMPLE_RATES = (1000, 384000)  # a typo guard: DAWs run up to 384 kHz, and a model may make audio far under 8 kHz



@dataclass(frozen=True)
class GenerationRequest:
    """Everything that decides a take. Invalid values raise `UserError` on construction."""

    prompt: str
    model: str
    seconds: float | None  # None when the length is given in ``bars``
    takes: int = 1
    seed: int = field(default_factory=lambda: random.randrange(2**31))
    cfg_coef: float | None = None  # classifier-free guidance; None takes the model's own default
    top_k: int | None = None  # token models: sampling (None: the model's own default, 250, 0.0 and 1.0)
    top_p: float | None = None
    temperature: float | None = None
    device: str = "auto"
    text_encoder: str | None = None
    steps: int | None = None  # diffusion models: denoising steps (None: the model's fast default)
    negative_prompt: str | None = None  # diffusion models: what to steer away from
    melody: str | None = None  # melody models: a clip whose chroma the take follows
    melody_region: Region | None = None  # the part of that clip to follow (default: all of it)
    clip: str | None = None  # continuation: the clip and the region of it to continue
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
    threads: int | None = None  # CPU threads for the model; None: chosen by size and free cores (models.device)

    def __post_init__(self):
        if not isinstance(self.prompt, str):
            raise UserError(f"The prompt must be text, not {self.prompt!r}.")
        object.__setattr__(self, "prompt", self.prompt.strip())
        object.__setattr__(self, "negative_prompt", (self.negative_prompt or "").strip() or None)
        for problem in self._problems():
            raise UserError(problem)

    def _problems(self):
        """Every value is checked where it enters, before any model loads. The first problem is raised."""
        yield from _number_problems(self)
        for what, text in (("The prompt", self.prompt), ("--negative-prompt", self.negative_prompt),
                           ("--track", self.track)):
            if text is not None and not _is_utf8(text):
                yield f"{what} holds bytes that are not UTF-8 text; set the terminal or script to UTF-8 and retype it."
        if not self.prompt and self.clip is None:
            yield "The prompt is empty; describe the sound, or continue a region of a clip."
        if self.region is not None and self.clip is None:
            yield "A region (--start and --end) is a part of a clip; give the clip to continue."
        if self.seconds is not None and not MIN_SECONDS <= self.seconds <= MAX_SECONDS:
            yield (f"--seconds must be from {MIN_SECONDS:g} (one frame of a token model) to {MAX_SECONDS:g}, "
                   f"not {self.seconds:g}.")
        if not 1 <= self.takes <= MAX_TAKES:
            yield f"--takes must be between 1 and {MAX_TAKES}, not {self.takes}."
        if not 0 <= self.seed <= MAX_SEED - (self.takes - 1):
            yield (f"--seed must be from 0 to {MAX_SEED - (self.takes - 1)} (each take's seed must fit in 64 bits), "
                   f"not {self.seed}.")
        if self.cfg_coef is not None and not 0 <= self.cfg_coef <= MAX_CFG:
            yield f"--cfg must be from 0 to {MAX_CFG:g} (1 turns guidance off), not {self.cfg_coef:g}."
        if self.top_k is not None and self.top_k < 0:
            yield f"--top-k must be 0 (off) or more, not {self.top_k}."
        if self.top_p is not None and not 0 <= self.top_p <= 1:
            yield f"--top-p must be between 0 (off) and 1, not {self.top_p:g}."
        if self.temperature is not None and not (self.temperature == 0
                                                 or MIN_TEMPERATURE <= self.temperature <= MAX_TEMPERATURE):
            yield (f"--temperature must be 0 (greedy) or from {MIN_TEMPERATURE:g} to {MAX_TEMPERATURE:g}, "
                   f"not {self.temperature:g}.")
        if self.steps is not None and not 1 <= self.steps <= MAX_STEPS:
            yield f"--steps must be 1 or more, up to {MAX_STEPS}, not {self.steps}."
        if self.melody_region is not None and self.melody is None:
            yield "--start and --end choose the part of a --melody clip to follow; add --melody CLIP."
        for region in (self.region, self.melody_region):
            if region is None:
                continue
            ends = (region.start_seconds, region.end_seconds)
            if not all(_is_real(value) and math.isfinite(value) for value in ends):
                yield f"--start and --end must be numbers of seconds, not {ends[0]!r} and {ends[1]!r}."
            elif not 0 <= region.start_seconds < region.end_seconds:
                yield (f"The region {region.start_seconds:g}-{region.end_seconds:g} s is empty or "
                       "negative; give a start before the end.")
        if self.audio_format not in ("wav", "flac"):
            yield f"Takes can be written as wav or flac, not {self.audio_format!r}."
        if self.track is not None and self.takes > 1:
            yield "--track puts one take on a track; with --takes above 1 each take gets a new track, so drop --track."
        if (self.track is not None or self.at_seconds is not None) and self.host is None:
            yield "--track and --at place takes in a host; add --host session:DIR, audacity or reaper."
        if self.at_seconds is not None and not 0 <= self.at_seconds <= MAX_AT_SECONDS:
            yield f"--at must be from 0 to {MAX_AT_SECONDS:g} seconds (a day), not {self.at_seconds:g}."
        if self.source_bpm is not None and not MIN_BPM <= self.source_bpm <= MAX_BPM:
            yield f"--bpm must be from {MIN_BPM:g} to {MAX_BPM:g}, not {self.source_bpm:g}."
        if self.threads is not None and not 1 <= self.threads <= (os.cpu_count() or 1):
            yield f"--threads must be between 1 and this machine's {os.cpu_count() or 1} cores, not {self.threads}."
        yield from self._finishing_problems()

    def _finishing_problems(self):
        """The length in bars, and the rate and tempo finishing aims at."""
        if (self.seconds is None) == (self.bars is None):
            yield "Give the length as --seconds or as --bars, one of the two."
        if self.bars is not None and (type(self.bars) is not int or not 1 <= self.bars <= MAX_BARS):
            yield f"--bars must be a whole number from 1 to {MAX_BARS}, not {self.bars!r}."
        if self.bars is not None and self.host is None and self.tempo_bpm is None and self.source_bpm is None:
            yield "--bars needs a tempo to count bars in: add --bpm, or a --host whose project has a tempo."
        low, high = SAMPLE_RATES
        if self.sample_rate is not None and (type(self.sample_rate) is not int or not low <= self.sample_rate <= high):
            yield f"--sample-rate must be a whole number of Hz from {low} to {high}, not {self.sample_rate!r}."
        if self.tempo_bpm is not None and not (math.isfinite(self.tempo_bpm) and 0 < self.tempo_bpm <= 1000):
            yield f"The target tempo must be above 0 and at most 1000 BPM, not {self.tempo_bpm!r}."
        if type(self.beats_per_bar) is not int or not 1 <= self.beats_per_bar <= 64:
            yield f"A bar must have from 1 to 64 beats, not {self.beats_per_bar!r}."

    @classmethod
    def from_recipe(cls, recipe: dict, **changes) -> GenerationRequest:
        """The request that made a take, to make it again: same seed, same audio on the same device."""
        parameters, finishing, source = recipe["parameters"], recipe["finishing"], recipe.get("source")
        # Only what the family uses: older AudioLDM 2 recipes also hold the token models' sampling defaults.
        token = recipe.get("family") != "audioldm2"
        sampling = {name: parameters.get(name) if token else None for name in ("top_k", "top_p", "temperature")}
        # "seconds" is what was made, "requested_seconds" what was asked (older recipes hold only "seconds").
        seconds = recipe["requested_seconds"] if "requested_seconds" in recipe else recipe["seconds"]
        fields = dict(
            prompt=recipe["prompt"], model=recipe["model"], seconds=seconds, seed=recipe["seed"],
            cfg_coef=parameters["cfg_coef"], **sampling, text_encoder=parameters.get("text_encoder"),
            steps=parameters.get("steps"), negative_prompt=parameters.get("negative_prompt"),
            preset=finishing["preset"], source_bpm=finishing.get("source_bpm"), device=recipe["device"],
            audio_format=recipe["audio_format"],
            bars=recipe.get("requested_bars"), sample_rate=finishing.get("sample_rate"),
            tempo_bpm=finishing.get("tempo_bpm"), beats_per_bar=finishing.get("beats_per_bar", 4),
        )
        if source is not None:
            fields.update(clip=source["clip"], region=Region(source["start_seconds"], source["end_seconds"]))
        if melody := recipe.get("melody"):
            part = melody.get("start_seconds") is not None
            fields.update(melody=melody["clip"],
                          melody_region=Region(melody["start_seconds"], melody["end_seconds"]) if part else None)
        return cls(**{**fields, **changes})

    @property
    def is_continuation(self) -> bool:
        return self.clip is not None

    def take_seed(self, index: int) -> int:
        """Each take has its own seed, so any one of them can be regenerated alone."""
        return self.seed + index


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _number_problems(request: GenerationRequest):
    """Numbers of the wrong kind, NaN or infinite (from a flag, a hand-edited recipe or the panel)."""
    for name, flag in NUMBERS.items():
        value = getattr(request, name)
        whole = name in WHOLE_NUMBERS
        if value is None:
            continue
        if not _is_real(value) or (whole and not isinstance(value, numbers.Integral)):
            yield f"{flag} must be a {'whole ' if whole else ''}number, not {value!r}."
        elif not math.isfinite(value):
            yield f"{flag} must be a finite number, not {value}."


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
