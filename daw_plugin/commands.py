"""What each ``daw-plugin`` command does; `daw_plugin.cli` parses the arguments and handles errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from daw_plugin.audio import Region
from models.errors import UserError

OK = 0
BAD_INPUT = 2  # ExitStatus.BAD_INPUT, for a command whose answer is "no" rather than an error


def generate(args) -> int:
    return _run(build_request(args), args.out, args.json)


def build_request(args):
    """The `GenerationRequest` that ``generate`` or ``continue`` arguments ask for (checked as it is made)."""
    from daw_plugin.request import GenerationRequest

    options = dict(
        prompt=args.prompt, model=args.model, seconds=args.seconds, takes=args.takes, guidance=args.guidance,
        top_k=args.top_k, top_p=args.top_p, temperature=args.temperature, device=args.device,
        text_encoder=args.text_encoder, audio_format=args.audio_format, preset=args.preset, source_bpm=args.bpm,
        host=args.host, track=args.track, at_seconds=args.at, steps=args.steps, negative_prompt=args.negative_prompt,
        melody=args.melody, bars=args.bars, sample_rate=args.sample_rate, beats_per_bar=args.beats_per_bar,
        threads=args.threads, precision=args.precision, loop=args.loop, worker=args.worker,
    )
    if args.bars is not None:  # the length is in bars; --seconds is left at its default
        options["seconds"] = None
    if args.seed is not None:
        options["seed"] = args.seed
    if args.command == "continue":
        options.update(clip=args.clip, region=_region(args))
    elif args.start is not None or args.end is not None:
        options["melody_region"] = _melody_region(args)
    return GenerationRequest(**options)


def _region(args) -> Region | None:
    """The part of the clip to continue: the take starts at --end, or at the clip's end without one."""
    from daw_plugin.request import CONTEXT_SECONDS, context_region

    if args.end is None:
        if args.start is not None:
            raise UserError("--start alone does not say where the take starts; add --end, or leave out both to "
                            f"continue from the clip's end (hearing its last {CONTEXT_SECONDS:g} s).", field="region")
        return None  # the clip's end, once the clip is read
    return context_region(args.end) if args.start is None else Region(args.start, args.end)


def _melody_region(args) -> Region:
    if args.start is None or args.end is None:
        raise UserError("--start and --end go together: give both to choose part of the --melody clip.",
                        field="melody_region")
    return Region(args.start, args.end)


def regenerate(args) -> int:
    from daw_plugin.request import GenerationRequest
    from daw_plugin.takes import check_recipe, load_recipe, recipe_fault, recipe_path

    recipe = load_recipe(args.dir, args.id)
    # Another device may not run the recipe's precision (float16 is a GPU's): it gets that device's own choice.
    changes: dict = {"device": args.device, "precision": None, "worker": None} if args.device else {}
    if args.worker:  # the take's worker moved, or another one serves the model
        changes["worker"] = args.worker
    try:
        request = GenerationRequest.from_recipe(recipe, args.dir / args.id, **changes)
    except (KeyError, TypeError, ValueError, AttributeError, UserError) as error:  # a hand edit we did not foresee
        from daw_plugin.cli import FLAGS

        check_recipe(recipe_path(args.dir, args.id), recipe, recipe_fault(error, FLAGS))
        raise
    return _run(request, args.dir, args.json)


def _run(request, out: Path, as_json: bool = False) -> int:
    """Paths on stdout, one per take (or one JSON object per take); everything else on stderr.

    The job runs on an `Engine`; Ctrl-C cancels it, waits for it to stop, and exits 130.
    """
    from daw_plugin.engine import Engine

    progress = _ProgressBar()
    with Engine() as engine:
        job = engine.submit(request, out, on_event=progress.on_event)
        try:
            try:
                delivered = job.result()
            except KeyboardInterrupt:
                job.cancel()
                _wait_quietly(job)
                raise
        finally:
            progress.close()
    for take in delivered:
        print(json.dumps(_take_json(take, request.host)) if as_json else take.path)
        if take.score is not None:
            print(f"{take.path.name}: CLAP score {take.score:.2f}", file=sys.stderr)
        if take.placement is not None:
            where = take.placement
            print(f"placed on track {where.track.name!r} at {where.start_seconds:.3f} s", file=sys.stderr)
    return OK


def _wait_quietly(job) -> None:
    """Wait for a cancelled job to stop (a second Ctrl-C stops waiting); its outcome no longer matters."""
    try:
        job.result()
    except BaseException:  # noqa: BLE001
        pass


def _take_json(take, host: str | None) -> dict:
    where = take.placement
    placement = where and {"host": host, "track": where.track.name, "start_seconds": where.start_seconds,
                           "end_seconds": where.end_seconds}
    return {"path": str(take.path), "seed": take.seed, "score": take.score, "placement": placement}


TAKES_COLUMNS = ("ID", "SECONDS", "SEED", "MODEL", "PRESET", "PROMPT", "CLAP")


def list_takes(args) -> int:
    from daw_plugin.takes import list_takes, printable

    recipes = list_takes(args.dir)
    if args.json:
        print(json.dumps(recipes, indent=2))
        return OK
    print("\t".join(TAKES_COLUMNS))
    for recipe in recipes:
        source = recipe.get("source")
        what = recipe["prompt"] or (f"continues {Path(source['clip'] or 'audio in memory').name}" if source else "")
        row = (recipe["id"], f"{recipe['seconds']:.2f}", recipe["seed"], _short_name(recipe["model"]),
               _short_name(recipe["finishing"]["preset"]), what,
               f"{recipe['clap_score']:.2f}" if "clap_score" in recipe else "-")
        print("\t".join(printable(str(field)) for field in row))  # a recipe must not drive the terminal
    return OK


def _short_name(name: str) -> str:
    """A model or preset named by a folder or file shows its own name; an id ("facebook/musicgen-small") stays."""
    return Path(name).name if Path(name).is_absolute() else name


def check_hosts(args) -> int:
    """Exit 2 when a host named on the command line is unreachable or unknown; the survey alone exits 0."""
    from daw_plugin.hosts import HostError, open_host

    unreachable = False
    for spec in args.hosts or ["audacity", "reaper"]:
        try:
            open_host(spec).check()
            print(f"{spec}: reachable")
        except HostError as error:
            unreachable = True
            print(f"{spec}: not reachable: {error}")
    return BAD_INPUT if unreachable and args.hosts else OK


def new_session(args) -> int:
    from daw_plugin.hosts.session import SessionHost

    SessionHost.create(args.dir, tempo_bpm=args.bpm, sample_rate=args.sample_rate)
    print(args.dir)
    return OK


def render_session(args) -> int:
    from daw_plugin.hosts.session import render

    print(render(args.dir, args.out, force=args.force))
    return OK


def export_session(args) -> int:
    from daw_plugin.hosts.dawproject import export

    print(export(args.dir, args.out, force=args.force))
    return OK


def panel(args) -> int:
    from ui.app import run_panel  # Qt only here: the rest of the CLI starts without it

    return run_panel(args.model, args.host, args.out, args.preset)


def serve(args) -> int:
    from daw_plugin.remote.running import read_token, serve_until_stopped

    limits = {"max_body_bytes": int(args.max_body_mb * 2**20), "max_seconds": args.max_seconds,
              "max_takes": args.max_takes}
    names = [name.strip() for name in args.models.split(",") if name.strip()]
    serve_until_stopped(names, args.host, args.port, read_token(args.token_file), limits, args.address, args.replicas)
    return OK


def list_models(args) -> int:
    from dataclasses import asdict

    from models.registry import entries

    rows = entries()
    if args.json:
        print(json.dumps([asdict(row) for row in rows], indent=2))
        return OK
    print("ID\tFAMILY\tSIZE\tON DISK\tLICENSE\tSOURCE")
    for row in rows:
        tags = "".join(f" ({tag})" for tag, on in (("stereo", row.stereo), ("melody", row.melody)) if on)
        print(f"{row.name}\t{row.family}{tags}\t{row.size}\t{'yes' if row.on_disk else 'no'}\t{row.license}\t"
              f"{row.where}")
    return OK


def pull_model(args) -> int:
    from models.registry import pull

    print(pull(args.id))
    return OK


def add_model(args) -> int:
    from models.registry import add

    name, found = add(args.path, args.name, args.text_encoder)
    print(f"added {name!r}: {found.family} ({found.kind} format); use it with --model {name}")
    return OK


def remove_model(args) -> int:
    from models.registry import remove

    removed = remove(args.name)
    print(f"removed {args.name!r}; its folder {removed.path} is left as it is")
    return OK


def convert(args) -> int:
    from models.audiocraft_conversion import convert

    print(convert(args.src, args.dst, args.text_encoder))
    return OK


class _ProgressBar:
    """One tqdm bar on stderr for the steps of the batch of takes, fed by the job's `Step` events (on the
    inference thread); before it, on a terminal, a line when the model starts loading."""

    def __init__(self) -> None:
        self.bar: Any = None  # a tqdm bar once the first step comes (tqdm has no types)

    def on_event(self, event) -> None:
        from daw_plugin.events import Loading, Queued, Step

        if isinstance(event, Loading) and sys.stderr.isatty():  # seconds of importing and loading ahead: not a hang
            print(f"daw-plugin: loading {event.model}...", file=sys.stderr, flush=True)
        if isinstance(event, Queued) and event.position > 0:  # a GPU server's other jobs come first
            jobs = "job" if event.position == 1 else "jobs"
            print(f"daw-plugin: waiting for the worker: {event.position} {jobs} ahead", file=sys.stderr, flush=True)
        if isinstance(event, Step):
            if self.bar is None:
                from tqdm import tqdm

                what = "take" if event.takes == 1 else f"{event.takes} takes"
                self.bar = tqdm(total=event.total, desc=what, unit="step", file=sys.stderr)
            self.bar.update(event.done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
