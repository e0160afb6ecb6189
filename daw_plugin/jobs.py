"""One generation job: a validated request in, takes on disk out.

The same function serves the CLI now and the panel's inference thread later: progress and
cancel are callbacks, errors a user can cause are `UserError`, and a cancelled job writes nothing.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from daw_plugin.audio import Clip, Region, read_clip
from daw_plugin.finishing import Target, finish, load_chain
from daw_plugin.hosts import Host, HostError, Placement, open_host
from daw_plugin.model_options import check_model_options, model_options
from daw_plugin.presets import load_preset
from daw_plugin.recipes import take_recipe
from daw_plugin.takes import save_take, slug
from models.errors import UserError

MAX_SECONDS = 300.0  # a typo guard: 5 minutes of audio is hours of CPU and minutes of GPU
MAX_TAKES = 32

# (take index from 0, steps done, steps in the take)
OnProgress = Callable[[int, int, int], None]


@dataclass(frozen=True)
class GenerationRequest:
    """Everything that decides a take. Invalid values raise `UserError` on construction."""

    prompt: str
    model: str
    seconds: float
    takes: int = 1
    seed: int = field(default_factory=lambda: random.randrange(2**31))
    cfg_coef: float | None = None  # classifier-free guidance; None takes the model's own default
    top_k: int = 250
    top_p: float = 0.0
    temperature: float = 1.0
    device: str = "auto"
    text_encoder: str | None = None
    steps: int | None = None  # diffusion models: denoising steps (None: the model's fast default)
    negative_prompt: str | None = None  # diffusion models: what to steer away from
    melody: str | None = None  # melody models: a clip whose chroma the take follows
    melody_region: Region | None = None  # the part of that clip to follow (default: all of it)
    clip: str | None = None  # continuation: the clip and the region of it to continue
    region: Region | None = None
    audio_format: str = "wav"
    preset: str = "foley"  # finishing: raw, foley, music-stem or a user preset
    source_bpm: float | None = None  # the take's tempo for tempo fit, when known (else estimated)
    host: str | None = None  # where takes land: session:DIR, audacity, reaper
    track: str | None = None  # a track of the host; None makes a new one per take
    at_seconds: float | None = None  # where on the track; a continuation defaults to its region end
    threads: int | None = None  # CPU threads for the model; None: chosen by size and free cores (models.device)

    def __post_init__(self):
        object.__setattr__(self, "prompt", self.prompt.strip())
        object.__setattr__(self, "negative_prompt", (self.negative_prompt or "").strip() or None)
        for problem in self._problems():
            raise UserError(problem)

    def _problems(self):
        if not self.prompt and self.clip is None:
            yield "The prompt is empty; describe the sound, or continue a region of a clip."
        if (self.clip is None) != (self.region is None):
            yield "A continuation needs both a clip and a region (--start and --end)."
        if not 0 < self.seconds <= MAX_SECONDS:
            yield f"--seconds must be more than 0 and at most {MAX_SECONDS:g}, not {self.seconds:g}."
        if not 1 <= self.takes <= MAX_TAKES:
            yield f"--takes must be between 1 and {MAX_TAKES}, not {self.takes}."
        if self.seed < 0:
            yield f"--seed must be 0 or more, not {self.seed}."
        if self.cfg_coef is not None and self.cfg_coef < 0:
            yield f"--cfg must be 0 or more (1 turns guidance off), not {self.cfg_coef:g}."
        if self.top_k < 0:
            yield f"--top-k must be 0 (off) or more, not {self.top_k}."
        if not 0 <= self.top_p <= 1:
            yield f"--top-p must be between 0 (off) and 1, not {self.top_p:g}."
        if self.temperature < 0:
            yield f"--temperature must be 0 (greedy) or more, not {self.temperature:g}."
        if self.steps is not None and self.steps <= 0:
            yield f"--steps must be 1 or more, not {self.steps}."
        if self.melody_region is not None and self.melody is None:
            yield "--start and --end choose the part of a --melody clip to follow; add --melody CLIP."
        for region in (self.region, self.melody_region):
            if region is not None and not 0 <= region.start_seconds < region.end_seconds:
                yield (f"The region {region.start_seconds:g}-{region.end_seconds:g} s is empty or "
                       "negative; give a start before the end.")
        if self.audio_format not in ("wav", "flac"):
            yield f"Takes can be written as wav or flac, not {self.audio_format!r}."
        if self.track is not None and self.takes > 1:
            yield "--track puts one take on a track; with --takes above 1 each take gets a new track, so drop --track."
        if (self.track is not None or self.at_seconds is not None) and self.host is None:
            yield "--track and --at place takes in a host; add --host session:DIR, audacity or reaper."
        if self.at_seconds is not None and self.at_seconds < 0:
            yield f"--at must be 0 or more seconds, not {self.at_seconds:g}."
        if self.source_bpm is not None and self.source_bpm <= 0:
            yield f"--bpm must be above 0, not {self.source_bpm:g}."
        if self.threads is not None and not 1 <= self.threads <= (os.cpu_count() or 1):
            yield f"--threads must be between 1 and this machine's {os.cpu_count() or 1} cores, not {self.threads}."

    @classmethod
    def from_recipe(cls, recipe: dict, **changes) -> GenerationRequest:
        """The request that made a take, to make it again: same seed, same audio on the same device."""
        parameters, finishing, source = recipe["parameters"], recipe["finishing"], recipe.get("source")
        fields = dict(
            prompt=recipe["prompt"], model=recipe["model"], seconds=recipe["seconds"], seed=recipe["seed"],
            cfg_coef=parameters["cfg_coef"], top_k=parameters["top_k"], top_p=parameters["top_p"],
            temperature=parameters["temperature"], text_encoder=parameters["text_encoder"],
            steps=parameters.get("steps"), negative_prompt=parameters.get("negative_prompt"),
            preset=finishing["preset"], source_bpm=finishing.get("source_bpm"), device=recipe["device"],
            audio_format=recipe["audio_format"],
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


@dataclass(frozen=True)
class Delivered:
    path: Path  # the finished take in the library
    placement: Placement | None  # where it landed in the host, if one was asked for
    score: float | None = None  # how well it matches the prompt, for models that can tell (CLAP)


def run(request: GenerationRequest, out: Path, on_progress: OnProgress | None = None,
        should_stop: Callable[[], bool] | None = None) -> list[Delivered]:
    """Generate, finish, keep and (with a host) insert ``request.takes`` takes.

    Everything that can be checked is checked before the model loads: the audio, the preset, the host,
    and the options against the model's configs.
    A cancel raises `Cancelled` between steps and leaves only the takes already finished. A host that
    fails at insert time raises `HostError` naming where the take is kept.
    """
    source = read_clip(request.clip).region(request.region) if request.is_continuation else None
    melody = _read_melody(request)
    preset = load_preset(request.preset)
    plugins = load_chain(preset)  # a VST3 that will not load must fail before a generation is spent
    host = open_host(request.host) if request.host else None
    if host is not None:
        host.check()
        names = [track.name for track in host.tracks()]
        if request.track is not None and request.track not in names:
            raise HostError(f"There is no track {request.track!r} in {request.host}; use one of "
                            f"{', '.join(map(repr, names)) or 'none yet'}, or leave out --track for a new one.")
    from models.damage import check_take
    from models.registry import load_generator, resolve

    model = resolve(request.model)  # may download; the model's own checks come before its weights load
    check_model_options(request, model.format)
    generator = load_generator(model, request.device, request.text_encoder, request.threads)
    # Only what finishing uses is asked for: each question can cost Audacity a copy of the whole project.
    target = Target(sample_rate=(host and host.sample_rate()) or generator.sample_rate,
                    bpm=host.tempo_bpm() if host and preset.tempo_fit else None)
    prompt_audio = None if source is None else source.conformed(generator.sample_rate, generator.channels).samples
    overlap = preset.seam_crossfade_ms / 1000 if source is not None else 0.0
    options = model_options(request, generator, melody)
    delivered = []
    for index in range(request.takes):
        seed = request.take_seed(index)
        raw = Clip(generator.generate(
            request.prompt, request.seconds, audio_prompt=prompt_audio, preroll_seconds=overlap, seed=seed,
            should_stop=should_stop, **options,
            on_step=None if on_progress is None else (lambda done, total, i=index: on_progress(i, done, total)),
        ), generator.sample_rate)
        check_take(raw.samples, model.folder)  # NaN or silence: damaged weights, never a take
        finished = finish(raw, preset, target, source_bpm=request.source_bpm, reference=source,
                          overlap_seconds=overlap, plugins=plugins)
        overlap_frames = round(overlap * raw.sample_rate)
        raw = Clip(raw.samples[:, overlap_frames:], raw.sample_rate)  # the raw take is the new audio only
        scored = request.prompt and hasattr(generator, "score")  # no prompt, nothing to rank against
        score = generator.score(request.prompt, raw.samples) if scored else None
        recipe = take_recipe(request, index, seed, raw, generator, finished.report, options, score)
        audio = {"finished": finished.clip, "raw": raw}
        path = save_take(out, audio, recipe, _stem(request, seed), request.audio_format)
        delivered.append(Delivered(path, host and _insert(host, request, path, overlap), score))
    # Models with a text-audio score (AudioLDM 2's CLAP) rank their takes: the best comes first.
    return sorted(delivered, key=lambda take: -take.score) if score is not None else delivered


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
