"""One generation job: a validated request in, takes on disk out.

`run` is what the engine's inference thread runs for each job (`daw_plugin.engine`), in stages it can
cancel between: prepare, load, and per take generate, finish, save, insert. Progress and cancel are
callbacks, errors a user can cause are `UserError`, and a cancelled job writes no partial take.
"""

from __future__ import annotations

import errno
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from daw_plugin import events
from daw_plugin.audio import Clip, as_clip
from daw_plugin.files import os_reason
from daw_plugin.finishing import Target, finish, load_chain, raw_seconds, with_loop
from daw_plugin.hosts import Host, HostError, Placement, one_read, open_host
from daw_plugin.model_options import check_model_options
from daw_plugin.presets import Preset, load_preset
from daw_plugin.recipes import take_recipe
from daw_plugin.request import MAX_SECONDS, GenerationRequest, context_region
from daw_plugin.takes import save_take, slug
from models.errors import Cancelled, UserError, naming
from models.generator import Generator, Settings

if TYPE_CHECKING:
    from pedalboard import Pedalboard

OnEvent = Callable[[events.Event], None]
Loader = Callable[..., object]  # (resolved model, request) -> a loaded generator


@dataclass(frozen=True)
class Delivered:
    path: Path  # the finished take in the library
    placement: Placement | None  # where it landed in the host, if one was asked for
    score: float | None = None  # how well it matches the prompt, for models that can tell (CLAP)
    seed: int | None = None  # the take's own seed


def run(request: GenerationRequest, out: Path, should_stop: Callable[[], bool] | None = None,
        on_event: OnEvent | None = None, loader: Loader | None = None) -> list[Delivered]:
    """Generate, finish, keep and (with a host) insert ``request.takes`` takes.

    Everything that can be checked is checked before the model loads: the audio, the preset, the host,
    and the options against the model's configs. The takes are generated as one batch, then finished, saved
    and inserted one by one.
    A cancel raises `Cancelled` at the next stage (download, load, each generation step, finishing, the rename
    that saves a take) and leaves only the takes already saved; a saved take is then inserted, so an insert
    is either done or not started. A host that fails at insert time raises `HostError` naming where the take is
    kept. ``on_event`` gets `daw_plugin.events` as they happen; ``loader`` (the engine's warm cache) turns the
    resolved model into a generator.
    """
    stop = _Stop(should_stop)
    job = prepare(request, out)
    try:
        return _takes(job, out, stop, on_event or _ignore, loader)
    finally:
        close = getattr(job.host, "close", None)
        if close is not None:  # Audacity's script pipe, say: not left open in a warm engine
            close()


def _takes(job: Prepared, out: Path, stop: _Stop, emit: OnEvent, loader: Loader | None) -> list[Delivered]:
    request = job.request
    stop.check()
    model, generator = load(job.request, emit, stop, loader)
    job = replace(job, target=replace(job.target, sample_rate=job.target.sample_rate or generator.sample_rate))
    settings = generator.settings(request.settings)  # the model's defaults filled in: what the recipe records
    delivered = []
    for index, (raw, new, score) in enumerate(make_takes(job, model, generator, settings, emit, stop)):
        if request.keep_take is not None and index != request.keep_take:
            continue  # regenerating one take of a batch: the others were made only to make it again
        stop.check()
        finished = finish(raw, job.preset, job.target, seconds=job.seconds, source_bpm=request.source_bpm,
                          reference=job.source, overlap_seconds=job.overlap, plugins=job.plugins)
        recipe = take_recipe(request, index, request.take_seed(index), new, generator, finished, job.target,
                             settings, score)
        stop.check()
        audio = {"finished": finished.clip, "raw": new, **_conditioning(job)}  # the raw take: new audio only
        path = save_take(out, audio, recipe, _stem(request, recipe.seed), request.audio_format,
                         should_stop=stop.asked)
        emit(events.TakeDone(index, path, recipe.to_json(), score))
        placement = None
        if job.host is not None and request.insert:  # the last act: not cancelled
            placement = _insert(job.host, job.request, path, job.overlap)
            emit(events.Inserted(index, str(request.host), placement.track.name, placement.start_seconds,
                                 placement.end_seconds))
        delivered.append(Delivered(path, placement, score, recipe.seed))
    # Models with a text-audio score (AudioLDM 2's CLAP) rank their takes: the best comes first.
    ranked = all(take.score is not None for take in delivered)
    return sorted(delivered, key=lambda take: -(take.score or 0.0)) if ranked else delivered


@dataclass(frozen=True)
class Prepared:
    """A request with everything read and checked that can be before the model loads."""

    request: GenerationRequest  # its region filled in for a continuation from the clip's end
    source: Clip | None  # the region a continuation continues
    melody: Clip | None
    preset: Preset
    plugins: Pedalboard | None  # the preset's plugin chain, loaded
    host: Host | None
    target: Target  # its sample rate 0 until the model's is known
    seconds: float  # the length asked
    make_seconds: float  # how long the model's take must be
    overlap: float  # seconds of cross-faded seam before a continuation


def prepare(request: GenerationRequest, out: Path) -> Prepared:
    """Read the audio, the preset and its plugins, and check the library and the host: no model involved."""
    clip = as_clip(request.clip) if request.clip is not None else None
    source = None
    if clip is not None:
        region = request.region or context_region(clip.duration_seconds)  # none given: from the clip's end
        request = replace(request, region=region)
        source = clip.region(region)
    melody = _read_melody(request)
    _check_library(out)
    preset = with_loop(load_preset(request.preset), request.loop)
    if request.source_bpm is not None and not preset.tempo_fit and request.bars is None:
        raise UserError(f"--bpm is the take's tempo for tempo fit and --bars, and the preset {preset.name!r} does "
                        "no tempo fit; use --preset music-stem (or a preset with tempo_fit), add --bars, or leave "
                        "out --bpm.")
    if request.source_bpm is not None and request.is_continuation and request.bars is None:
        raise UserError("--bpm is the take's tempo for tempo fit, and a continuation keeps the timing of the region "
                        "it continues; leave out --bpm (or count --bars with it).")
    plugins = load_chain(preset)  # a VST3 that will not load must fail before a generation is spent
    host = open_host(request.host, create_session=True) if request.host else None  # a new session: on insert
    with one_read(host):  # the host's answers from one read of its project (a session's manifest read once)
        if host is not None:
            host.check()  # reachable and writable, before the model loads
            if request.track is not None:  # a track not there yet is made on insert; one holding no audio is refused
                found = next((track for track in host.tracks() if track.name == request.track), None)
                if found is not None and found.kind != "audio":
                    raise HostError(f"Track {request.track!r} in {request.host} is a {found.kind} track, which "
                                    "cannot hold a take; choose an audio track, or a new name for a new track.",
                                    field="track")
        target, seconds, make_seconds = _aim(request, preset, host)
    if not target.sample_rate and source is not None:  # no host, no --sample-rate: a continuation joins its clip
        target = replace(target, sample_rate=source.sample_rate)
    overlap = preset.seam_crossfade_ms / 1000 if source is not None else 0.0
    return Prepared(request, source, melody, preset, plugins, host, target, seconds, make_seconds, overlap)


def load(request: GenerationRequest, emit: OnEvent, stop: _Stop, loader: Loader | None = None):
    """Resolve the model (downloading it, with `Downloading` events), check the options, load: (model, generator).

    A cancel is seen while downloading and before and after loading.
    """
    from models import registry

    if request.worker is not None:  # a GPU server makes the raw takes; finishing, saving, inserting stay here
        from daw_plugin.remote.client import load_remote

        return load_remote(request, emit)
    with naming("model"):  # not found, unknown, will not load: the model picker's field
        model = registry.resolve(request.model, _download_watcher(emit, stop))
    check_model_options(request, model.format)  # the model's own checks come before its weights load
    stop.check()
    with naming("model"):  # the device, precision or threads keep their own field
        if loader is not None:
            generator = loader(model, request)
        else:
            emit(events.Loading(request.model))
            generator = registry.load_generator(model, request.device, request.text_encoder, request.threads,
                                                precision=request.precision)
    stop.check()
    return model, generator


def make_takes(job: Prepared, model, generator: Generator, settings: Settings, emit: OnEvent,
               stop: _Stop) -> list[tuple[Clip, Clip, float | None]]:
    """Generate the request's takes as one batch (Step and Preview events) and score them: (raw, new, score) for
    each, ``raw`` with a continuation's pre-roll for the seam, ``new`` without it."""
    from models.damage import check_take

    request = job.request
    seeds = [request.take_seed(index) for index in range(request.takes)]
    takes = generator.generate(
        request.prompt, job.make_seconds, seeds=seeds, settings=settings, prompt=job.source, melody=job.melody,
        preroll_seconds=job.overlap, should_stop=stop.asked, on_step=_steps(emit, len(seeds)),
        on_preview=_previews(emit, generator.sample_rate),  # growing takes, or each finished one (supports_preview)
    )
    made = []
    for samples in takes:
        raw = Clip(samples, generator.sample_rate)
        check_take(raw.samples, model.folder)  # NaN or silence: damaged weights, never a take
        new = Clip(raw.samples[:, round(job.overlap * raw.sample_rate):], raw.sample_rate)
        score = getattr(generator, "score", None)  # a text-audio match, for models that can tell (not a Protocol must)
        made.append((raw, new, score(request.prompt, new.samples) if score and request.prompt else None))
    return made


class _Stop:
    """The job's cancel flag, polled between stages and inside them."""

    def __init__(self, should_stop: Callable[[], bool] | None):
        self.asked = should_stop or (lambda: False)

    def check(self) -> None:
        if self.asked():
            raise Cancelled()


def _ignore(event) -> None:
    pass


def _steps(emit: OnEvent, takes: int):
    """The generator's (done, total) as `Step` events, each with the seconds left at the pace so far."""
    started = time.monotonic()

    def on_step(done: int, total: int) -> None:
        pace = (time.monotonic() - started) / done if done else None
        emit(events.Step(takes, done, total, None if pace is None else pace * (total - done)))

    return on_step


def _previews(emit: OnEvent, sample_rate: int):
    """Each take's new chunks, in order, as `Preview` events placed after that take's earlier ones."""
    offsets: dict[int, int] = {}

    def on_preview(take: int, chunk) -> None:
        offset = offsets.get(take, 0)
        emit(events.Preview(take, chunk, sample_rate, offset))
        offsets[take] = offset + chunk.shape[-1]

    return on_preview


def _download_watcher(emit: OnEvent, stop: _Stop):
    """A huggingface_hub progress bar class that draws as usual, sends the bytes as `Downloading` events and
    stops the download (raising `Cancelled` from the download threads) when the job is cancelled."""
    from huggingface_hub.utils import tqdm as hub_tqdm

    class Watcher(hub_tqdm):
        def __init__(self, *args, name: str | None = None, **kwargs):
            self.bytes_bar = name == "huggingface_hub.snapshot_download"  # the bytes written, of all files
            self.done_bytes = kwargs.get("initial") or 0
            super().__init__(*args, name=name, **kwargs)

        def update(self, n=1):
            stop.check()
            if self.bytes_bar:  # counted here: a hidden bar (no terminal) does not count
                self.done_bytes += int(n or 0)
                emit(events.Downloading(self.done_bytes, self.total or None))
            return super().update(n)

    return Watcher


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
    seconds = request.bars * target.bar_seconds if request.bars is not None else request.seconds
    assert seconds is not None  # a request gives seconds or bars: `GenerationRequest` checks it
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
    clip = as_clip(request.melody)
    return clip.region(request.melody_region, "melody_region") if request.melody_region else clip


def _insert(host: Host, request: GenerationRequest, path: Path, overlap: float) -> Placement:
    at = request.at_seconds
    if at is None:  # a continuation lands where its region ends, less the cross-faded seam
        at = max(request.region.end_seconds - overlap, 0.0) if request.region is not None else 0.0
    try:
        return host.insert(path, request.track, at)
    except HostError as error:
        raise HostError(f"{error} The take is kept at {path}.") from error


def _conditioning(job: Prepared) -> dict[str, Clip]:
    """The audio the take was conditioned on, kept with it so it regenerates without the original."""
    return {kind: clip for kind, clip in (("source", job.source), ("melody", job.melody)) if clip is not None}


def _stem(request: GenerationRequest, seed: int) -> str:
    if request.clip is not None:
        name = request.clip_name or (not isinstance(request.clip, Clip) and Path(request.clip).stem) or "clip"
        return f"{slug(name)}-continued-seed{seed}"
    return f"{slug(request.prompt)}-seed{seed}"
