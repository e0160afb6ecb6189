"""One generation job: a validated request in, takes on disk out.

The same function serves the CLI now and the panel's inference thread later: progress and
cancel are callbacks, errors a user can cause are `UserError`, and a cancelled job writes nothing.
"""

from __future__ import annotations

import errno
import math
import numbers
import os
import random
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from daw_plugin.audio import Clip, Region, read_clip
from daw_plugin.files import os_reason
from daw_plugin.finishing import Target, finish, load_chain, raw_seconds
from daw_plugin.hosts import Host, HostError, Placement, open_host
from daw_plugin.model_options import check_model_options, model_options
from daw_plugin.presets import load_preset
from daw_plugin.recipes import take_recipe
from daw_plugin.takes import save_take, slug
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

# (take index from 0, steps done, steps in the take)
OnProgress = Callable[[int, int, int], None]


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


@dataclass(frozen=True)
class Delivered:
    path: Path  # the finished take in the library
    placement: Placement | None  # where it landed in the host, if one was asked for
    score: float | None = None  # how well it matches the prompt, for models that can tell (CLAP)
    seed: int | None = None  # the take's own seed


def run(request: GenerationRequest, out: Path, on_progress: OnProgress | None = None,
        should_stop: Callable[[], bool] | None = None) -> list[Delivered]:
    """Generate, finish, keep and (with a host) insert ``request.takes`` takes.

    Everything that can be checked is checked before the model loads: the audio, the preset, the host,
    and the options against the model's configs.
    A cancel raises `Cancelled` between steps and leaves only the takes already finished. A host that
    fails at insert time raises `HostError` naming where the take is kept.
    """
    clip = read_clip(request.clip) if request.is_continuation else None
    if clip is not None and request.region is None:  # continue from the clip's end
        request = replace(request, region=context_region(clip.duration_seconds))
    source = clip.region(request.region) if clip is not None else None
    melody = _read_melody(request)
    _check_library(out)
    preset = load_preset(request.preset)
    if request.source_bpm is not None and not preset.tempo_fit and request.bars is None:
        raise UserError(f"--bpm is the take's tempo for tempo fit and --bars, and the preset {preset.name!r} does "
                        "no tempo fit; use --preset music-stem (or a preset with tempo_fit), add --bars, or leave "
                        "out --bpm.")
    plugins = load_chain(preset)  # a VST3 that will not load must fail before a generation is spent
    host = open_host(request.host, create_session=True) if request.host else None  # a new session: on insert
    if host is not None:
        host.check()  # reachable and writable, before the model loads
        if request.track is not None:  # a track not there yet is made on insert; one that holds no audio is refused
            found = next((track for track in host.tracks() if track.name == request.track), None)
            if found is not None and found.kind != "audio":
                raise HostError(f"Track {request.track!r} in {request.host} is a {found.kind} track, which cannot "
                                "hold a take; choose an audio track, or a new name for a new track.")
    target, seconds, make_seconds = _aim(request, preset, host)
    from models.damage import check_take
    from models.registry import load_generator, resolve

    model = resolve(request.model)  # may download; the model's own checks come before its weights load
    check_model_options(request, model.format)
    generator = load_generator(model, request.device, request.text_encoder, request.threads)
    target = replace(target, sample_rate=target.sample_rate or generator.sample_rate)
    prompt_audio = None if source is None else source.conformed(generator.sample_rate, generator.channels).samples
    overlap = preset.seam_crossfade_ms / 1000 if source is not None else 0.0
    options = model_options(request, generator, melody)
    delivered = []
    for index in range(request.takes):
        seed = request.take_seed(index)
        raw = Clip(generator.generate(
            request.prompt, make_seconds, audio_prompt=prompt_audio, preroll_seconds=overlap, seed=seed,
            should_stop=should_stop, **options,
            on_step=None if on_progress is None else (lambda done, total, i=index: on_progress(i, done, total)),
        ), generator.sample_rate)
        check_take(raw.samples, model.folder)  # NaN or silence: damaged weights, never a take
        finished = finish(raw, preset, target, seconds=seconds, source_bpm=request.source_bpm, reference=source,
                          overlap_seconds=overlap, plugins=plugins)
        overlap_frames = round(overlap * raw.sample_rate)
        raw = Clip(raw.samples[:, overlap_frames:], raw.sample_rate)  # the raw take is the new audio only
        scored = request.prompt and hasattr(generator, "score")  # no prompt, nothing to rank against
        score = generator.score(request.prompt, raw.samples) if scored else None
        recipe = take_recipe(request, index, seed, raw, generator, finished, target, options, score)
        audio = {"finished": finished.clip, "raw": raw}
        path = save_take(out, audio, recipe, _stem(request, seed), request.audio_format)
        delivered.append(Delivered(path, host and _insert(host, request, path, overlap), score, seed))
    # Models with a text-audio score (AudioLDM 2's CLAP) rank their takes: the best comes first.
    return sorted(delivered, key=lambda take: -take.score) if score is not None else delivered


def _check_library(out: Path) -> None:
    """The takes library must be a folder we can write in (or can make) before a generation is spent on it."""
    folder = out
    while not os.path.lexists(folder) and folder != folder.parent:  # not made yet: where it would be made
        folder = folder.parent
    try:
        if not folder.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "Not a directory")
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise UserError(f"Cannot write takes to {out} ({os_reason(error)}); choose another --out folder.") from error


def _aim(request: GenerationRequest, preset, host: Host | None) -> tuple[Target, float, float]:
    """What finishing aims at, settled before the model loads: the target (its rate 0 when the model's
    will do), the length asked (seconds, or bars at the tempo) and how long the model's take must be.

    A request's own rate or tempo (--sample-rate, or a recipe's) must agree with the host's: a take
    at another rate than its project's would be resampled or play at the wrong speed there.
    """
    needs_tempo = preset.tempo_fit or request.bars is not None
    # Only what finishing uses is asked for: each question can cost Audacity a copy of the whole project.
    rate = _agreed(request.sample_rate, host and host.sample_rate(), "--sample-rate {} Hz", "{} Hz", request.host)
    tempo = _agreed(request.tempo_bpm, host.tempo_bpm() if host and needs_tempo else None,
                    "the tempo {:g} BPM", "{:g} BPM", request.host)
    if tempo is None and needs_tempo:  # no host tempo: bars count at the take's own, and nothing is stretched
        tempo = request.source_bpm
    if tempo is not None and not (math.isfinite(tempo) and tempo > 0):
        raise UserError(f"The host's tempo is {tempo:g} BPM; set a tempo above 0 in the project.")
    if request.bars is not None and tempo is None:
        raise UserError(f"--bars needs a tempo to count bars in and {request.host} has none; add --bpm.")
    target = Target(rate or 0, tempo, request.beats_per_bar)
    seconds = request.seconds if request.bars is None else request.bars * target.bar_seconds
    if seconds > MAX_SECONDS:
        raise UserError(f"{request.bars} bars at {tempo:g} BPM last {seconds:g} s, more than {MAX_SECONDS:g} s; "
                        "ask for fewer bars.")
    make_seconds = raw_seconds(seconds, preset, target, request.source_bpm, request.is_continuation)
    if make_seconds > 2 * MAX_SECONDS:  # a --bpm far from the host's: the stretch would need that much audio
        raise UserError(f"Fitting a take at {request.source_bpm:g} BPM to {tempo:g} BPM needs {make_seconds:.0f} s "
                        "of audio; check --bpm, or ask for fewer seconds.")
    return target, seconds, make_seconds


def _agreed(asked, hosts, asked_text: str, host_text: str, host_name: str | None):
    """The request's value or the host's; both, only when they are the same."""
    if asked is not None and hosts is not None and asked != hosts:
        raise UserError(f"{asked_text.format(asked)} differs from {host_name}'s {host_text.format(hosts)}; "
                        "takes for a host are finished at its settings, so leave it out.")
    return asked if asked is not None else hosts


def _read_melody(request: GenerationRequest) -> Clip | None:
    if request.melody is None:
        return None
    clip = read_clip(request.melody)
    return clip.region(request.melody_region) if request.melody_region else clip


def _insert(host: Host, request: GenerationRequest, path: Path, overlap: float) -> Placement:
    at = request.at_seconds
    if at is None:  # a continuation lands where its region ends, less the cross-faded seam
        at = max(request.region.end_seconds - overlap, 0.0) if request.is_continuation else 0.0
    try:
        return host.insert(path, request.track, at)
    except HostError as error:
        raise HostError(f"{error} The take is kept at {path}.") from error


def _stem(request: GenerationRequest, seed: int) -> str:
    if request.is_continuation:
        return f"{slug(Path(request.clip).stem)}-continued-seed{seed}"
    return f"{slug(request.prompt)}-seed{seed}"
