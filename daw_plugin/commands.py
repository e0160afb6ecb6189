"""What each ``daw-plugin`` command does; `daw_plugin.cli` parses the arguments and handles errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from daw_plugin.audio import Region
from models.errors import UserError

OK = 0


def generate(args) -> int:
    from daw_plugin.jobs import GenerationRequest

    options = dict(
        prompt=args.prompt, model=args.model, seconds=args.seconds, takes=args.takes, cfg_coef=args.cfg_coef,
        top_k=args.top_k, top_p=args.top_p, temperature=args.temperature, device=args.device,
        text_encoder=args.text_encoder, audio_format=args.audio_format, preset=args.preset, source_bpm=args.bpm,
        host=args.host, track=args.track, at_seconds=args.at, steps=args.steps, negative_prompt=args.negative_prompt,
        melody=args.melody, threads=args.threads,
    )
    if args.seed is not None:
        options["seed"] = args.seed
    if args.command == "continue":
        options.update(clip=args.clip, region=Region(args.start, args.end))
    elif args.start is not None or args.end is not None:
        options["melody_region"] = _melody_region(args)
    return _run(GenerationRequest(**options), args.out)


def _melody_region(args) -> Region:
    if args.start is None or args.end is None:
        raise UserError("--start and --end go together: give both to choose part of the --melody clip.")
    return Region(args.start, args.end)


def regenerate(args) -> int:
    from daw_plugin.jobs import GenerationRequest
    from daw_plugin.takes import load_recipe

    changes = {"takes": 1} | ({"device": args.device} if args.device else {})
    return _run(GenerationRequest.from_recipe(load_recipe(args.dir, args.id), **changes), args.dir)


def _run(request, out: Path) -> int:
    from daw_plugin.jobs import run

    progress = _ProgressBar(request.takes)
    try:
        delivered = run(request, out, on_progress=progress)
    finally:
        progress.close()
    for take in delivered:
        print(take.path if take.score is None else f"{take.path}\tCLAP {take.score:.2f}")
        if take.placement is not None:
            where = take.placement
            print(f"placed on track {where.track.name!r} at {where.start_seconds:.3f} s", file=sys.stderr)
    return OK


def list_takes(args) -> int:
    from daw_plugin.takes import list_takes

    recipes = list_takes(args.dir)
    if args.json:
        print(json.dumps(recipes, indent=2))
        return OK
    for recipe in recipes:
        what = recipe["prompt"] or f"continues {Path(recipe['source']['clip']).name}"
        score = f"\tCLAP {recipe['clap_score']:.2f}" if "clap_score" in recipe else ""
        print(f"{recipe['id']}\t{recipe['seconds']:g} s\tseed {recipe['seed']}\t"
              f"{recipe['finishing']['preset']}\t{what}{score}")
    return OK


def check_hosts(args) -> int:
    from daw_plugin.hosts import HostError, open_host

    for spec in args.hosts or ["audacity", "reaper"]:
        try:
            open_host(spec).check()
            print(f"{spec}: reachable")
        except HostError as error:
            print(f"{spec}: not reachable: {error}")
    return OK


def new_session(args) -> int:
    from daw_plugin.hosts.session import SessionHost

    SessionHost.create(args.dir, tempo_bpm=args.bpm, sample_rate=args.sample_rate)
    print(args.dir)
    return OK


def render_session(args) -> int:
    from daw_plugin.hosts.session import render

    print(render(args.dir, args.out))
    return OK


def export_session(args) -> int:
    from daw_plugin.hosts.dawproject import export

    print(export(args.dir, args.out))
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
    from models.audiogen import convert

    print(convert(args.src, args.dst, args.text_encoder))
    return OK


class _ProgressBar:
    """One tqdm bar per take on stderr, fed by the job's (take, done, total) events."""

    def __init__(self, takes: int):
        self.takes, self.take, self.bar = takes, None, None

    def __call__(self, take: int, done: int, total: int) -> None:
        if take != self.take:
            from tqdm import tqdm

            self.close()
            self.take = take
            self.bar = tqdm(total=total, desc=f"take {take + 1}/{self.takes}", unit="step", file=sys.stderr)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
