"""``daw-plugin``: generate and continue takes from the command line.

Error handling lives in one wrapper (`raw_main`): a mistake the user can fix prints one line and
exits 2, a cancel exits 130, and a bug prints one line too unless ``--traceback`` asks for more.
"""

from __future__ import annotations

import argparse
import logging
import sys
from enum import IntEnum
from pathlib import Path

from daw_plugin import __version__
from daw_plugin import commands as run
from models.errors import NOTICES, Cancelled, UserError


class ExitStatus(IntEnum):
    OK = 0
    ERROR = 1
    BAD_INPUT = 2
    CANCELLED = 130  # as for Ctrl-C in a shell


# How the CLI names a request's fields in its errors: by the flag that sets them ("--cfg must be from 0 to 30").
# A field without an entry is named as it is (a recipe's tempo_bpm, say).
FLAGS = {
    "prompt": "The prompt", "negative_prompt": "--negative-prompt", "seconds": "--seconds", "bars": "--bars",
    "takes": "--takes", "seed": "--seed", "guidance": "--guidance", "top_k": "--top-k", "top_p": "--top-p",
    "temperature": "--temperature", "steps": "--steps", "source_bpm": "--bpm", "at_seconds": "--at",
    "sample_rate": "--sample-rate", "threads": "--threads", "track": "--track", "host": "--host",
    "region": "--start and --end", "melody_region": "--start and --end", "melody": "--melody",
    "audio_format": "--format", "model": "--model", "device": "--device", "text_encoder": "--text-encoder",
    "preset": "--preset", "out": "--out", "precision": "--precision", "loop": "--loop",
    "worker": "--worker", "beats_per_bar": "--beats-per-bar",
}


def worded(error: UserError) -> str:
    """A user's mistake as the CLI says it: each field named by its flag, all of a request's problems on one line."""
    return error.worded(FLAGS)


class _Parser(argparse.ArgumentParser):
    """One-line errors, and a command's options and arguments in any order."""

    _intermixing = False

    def error(self, message):  # one line, not a usage dump
        self.exit(ExitStatus.BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_known_args(self, args=None, namespace=None):
        # Plain argparse fills positionals in one pass, so in `continue loop.wav --start 4 "rising synth"`
        # the prompt would be left over. Intermixed parsing reads the options first, then the positionals;
        # it cannot parse subcommands (only leaf commands use it) and calls this method itself (the guard).
        if self._intermixing or self._subparsers is not None:
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


def _add_generation_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="audiogen-medium",
                        help="an id from `models list`, a name from `models add`, a hub repo, or a folder "
                             "(default: %(default)s)")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--seconds", type=float, default=5.0,
                        help="length of each take; with tempo fit, the nearest whole bars (default: %(default)s)")
    length.add_argument("--bars", type=int,
                        help="length in whole bars instead of --seconds, at the host's tempo or --bpm")
    parser.add_argument("--beats-per-bar", type=int, default=4,
                        help="beats in a bar, for --bars, loops and tempo fit: 3 for 3/4 (default: %(default)s)")
    parser.add_argument("--takes", type=int, default=1, help="how many takes (default: %(default)s)")
    parser.add_argument("--seed", type=int, help="seed of the first take; take N uses seed + N - 1 (default: random)")
    _add_library_option(parser, "out")
    parser.add_argument("--format", dest="audio_format", choices=("wav", "flac"), default="wav",
                        help="the takes' audio files: wav (32-bit float) or flac (24-bit) (default: %(default)s)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object per take (path, seed, score, placement) instead of its path")
    parser.add_argument("--guidance", "--cfg", dest="guidance", type=float,
                        help="classifier-free guidance; 1 turns it off (default: the model's, 3 or 3.5)")
    # None, not the default value: an option the model cannot use is refused only if the user gave it.
    parser.add_argument("--top-k", type=int,
                        help="token models: sample from the k likeliest; 1 is greedy (default: 250)")
    parser.add_argument("--top-p", type=float,
                        help="token models: nucleus sampling; overrides --top-k (default: 0, off)")
    parser.add_argument("--temperature", type=float, help="token models: sampling temperature (default: 1)")
    parser.add_argument("--steps", type=int, help="AudioLDM 2: denoising steps (default: 25, DPM-Solver++)")
    parser.add_argument("--negative-prompt", help='AudioLDM 2: what to steer away from, e.g. "low quality, noise"')
    parser.add_argument("--melody", help="melody models: a clip whose melody (chroma) the takes follow")
    parser.add_argument("--text-encoder", help="audiocraft checkpoints: a local T5 folder (default: the cache)")
    parser.add_argument("--device", default="auto", help="auto, cuda, mps or cpu (default: %(default)s)")
    parser.add_argument("--threads", type=int, help="CPU threads for the model (default: 1 for tiny models, else "
                                                    "one per free physical core)")
    parser.add_argument("--precision", help="token models' weights on the CPU: float32, bfloat16 (CPUs with native "
                                            "bfloat16) or int8 (default: auto, the fastest that passed our checks)")
    parser.add_argument("--preset", default="foley",
                        help="finishing: raw, foley, music-stem or a preset JSON (default: %(default)s)")
    parser.add_argument("--bpm", type=float,
                        help="presets with tempo fit (music-stem): the take's own tempo (default: estimated)")
    parser.add_argument("--loop", action=argparse.BooleanOptionalAction,
                        help="a seamless loop of whole bars at the tempo, or not (default: as the preset says)")
    parser.add_argument("--host", help="where takes land: session:DIR, audacity or reaper (default: none)")
    parser.add_argument("--track", help="a track of the host (default: a new track per take)")
    parser.add_argument("--at", type=float, help="seconds on the track (default: 0; a continuation: its region end)")
    parser.add_argument("--sample-rate", type=int,
                        help="the finished takes' rate in Hz (default: the host's, else the model's)")
    parser.add_argument("--worker", help="a GPU server's URL (`daw-plugin serve`) that makes the takes; they are "
                                         "finished, kept and inserted here (token: $DAW_PLUGIN_TOKEN)")


def _add_library_option(parser: argparse.ArgumentParser, dest: str) -> None:
    """The takes library is `--out` in every command; `--dir`, its old name in `takes`, still works unlisted."""
    parser.add_argument("--out", dest=dest, type=Path, default=Path("takes"), metavar="DIR",
                        help="the takes library, one folder per take (default: %(default)s)")
    parser.add_argument("--dir", dest=dest, type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="daw-plugin", description="Generate audio stems and continue clips.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--traceback", action="store_true", help="show the full traceback of unexpected errors")
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)

    generate = commands.add_parser("generate", help="turn a prompt into takes")
    generate.add_argument("prompt", help='what to hear, e.g. "rain on a tin roof"')
    _add_generation_options(generate)
    generate.add_argument("--start", type=float, help="with --melody: where in the clip the melody starts (seconds)")
    generate.add_argument("--end", type=float, help="with --melody: where it ends (seconds)")
    generate.set_defaults(handler=run.generate)

    cont = commands.add_parser("continue", help="continue a clip from its end, or from the end of a region")
    cont.add_argument("clip", help="the audio file (WAV, FLAC, AIFF, OGG or MP3)")
    cont.add_argument("prompt", nargs="?", default="", help="optional text to steer the continuation")
    cont.add_argument("--start", type=float,
                      help="region start in seconds: the model listens from here (default: up to 12 s before --end)")
    cont.add_argument("--end", type=float, help="region end in seconds: the take starts here (default: the clip's end)")
    _add_generation_options(cont)
    cont.set_defaults(handler=run.generate)

    takes = _group(commands, "takes", "the takes library")
    listing = takes.add_parser("list", help="list the takes in a library")
    listing.add_argument("--json", action="store_true", help="print the recipes as JSON")
    regenerate = takes.add_parser("regenerate", help="make a take again from its recipe (same seed, same audio)")
    regenerate.add_argument("id", help="the take's id, as `takes list` shows it")
    regenerate.add_argument("--device", help="run on another device than the recipe's (the audio may differ)")
    regenerate.add_argument("--worker", help="the GPU server to make it on (default: where the take was made; "
                                             "with --device alone: this computer)")
    regenerate.add_argument("--json", action="store_true",
                            help="print a JSON object (path, seed, score, placement) instead of the path")
    for sub, handler in ((listing, run.list_takes), (regenerate, run.regenerate)):
        _add_library_option(sub, "dir")
        sub.set_defaults(handler=handler)

    hosts = _group(commands, "hosts", "the hosts takes land in")
    check = hosts.add_parser("check", help="say which hosts are reachable, and why not (exit 2: a named one is not)")
    check.add_argument("hosts", nargs="*", help="session:DIR, audacity, reaper (default: audacity and reaper)")
    check.set_defaults(handler=run.check_hosts)

    session = _group(commands, "session", "our own project folder, no DAW needed")
    new = session.add_parser("new", help="make an empty session folder")
    new.add_argument("dir", type=Path, help="the new session folder")
    new.add_argument("--bpm", type=float, default=120.0, help="the session's tempo (default: %(default)s)")
    new.add_argument("--sample-rate", type=int, default=48000, help="the session's sample rate (default: %(default)s)")
    new.set_defaults(handler=run.new_session)
    for name, help_text, out_help, handler in (
            ("render", "mix a session down to one WAV or FLAC", "the mix to write (.wav or .flac)",
             run.render_session),
            ("export", "write a session as a .dawproject file", "the .dawproject file to write", run.export_session)):
        sub = session.add_parser(name, help=help_text)
        sub.add_argument("dir", type=Path, help="the session folder")
        sub.add_argument("out", type=Path, help=out_help)
        sub.add_argument("--force", action="store_true", help="replace OUT if it exists (atomically)")
        sub.set_defaults(handler=handler)

    panel = commands.add_parser("panel", help="open the panel: prompt, model and settings in, takes out")
    panel.add_argument("--model", help="the model to open with (default: the one used last)")
    panel.add_argument("--host", help="where takes land: session:DIR, audacity or reaper (default: the last one)")
    panel.add_argument("--out", type=Path, metavar="DIR", help="the takes library (default: the last one)")
    panel.add_argument("--preset", help="finishing: raw, foley, music-stem or a preset JSON (default: the last one)")
    panel.set_defaults(handler=run.panel)

    serve = commands.add_parser("serve", help="make takes for other machines: a Ray Serve worker (pip install "
                                              "'daw-plugin[server]')")
    serve.add_argument("--models", required=True, help="the models to keep warm, comma-separated (ids or folders)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="the address to listen on; put TLS in front before opening it to others (default: "
                            "%(default)s)")
    serve.add_argument("--port", type=int, default=8765, help="(default: %(default)s)")
    serve.add_argument("--address", help="join this running Ray cluster (default: start one on this machine)")
    serve.add_argument("--token-file", type=Path, help="a file holding the bearer token (default: $DAW_PLUGIN_TOKEN)")
    serve.add_argument("--replicas", type=int, help="replicas (default: one per GPU, or one on the CPU)")
    serve.add_argument("--max-body-mb", type=float, default=64.0, help="the largest job body (default: %(default)s)")
    serve.add_argument("--max-seconds", type=float, default=120.0, help="the longest take (default: %(default)s)")
    serve.add_argument("--max-takes", type=int, default=8, help="the most takes a job (default: %(default)s)")
    serve.set_defaults(handler=run.serve)

    models = _group(commands, "models", "manage models")
    listing = models.add_parser("list", help="every known model: family, size, license, and whether it is on disk")
    listing.add_argument("--json", action="store_true", help="print the list as JSON")
    listing.set_defaults(handler=run.list_models)
    pull = models.add_parser("pull", help="download a model into the Hugging Face cache (run again after a break: "
                                  "finished files are kept)")
    pull.add_argument("id", help="an id from `models list` or a hub repo")
    pull.set_defaults(handler=run.pull_model)
    add = models.add_parser("add", help="register a local model folder (transformers, diffusers or audiocraft)")
    add.add_argument("path", type=Path, help="the model's folder")
    add.add_argument("--as", dest="name", help="the name to use with --model (default: the folder's name)")
    add.add_argument("--text-encoder", help="audiocraft checkpoints: a local T5 folder (or hub id) to keep with it")
    add.set_defaults(handler=run.add_model)
    remove = models.add_parser("remove", help="unregister a name from `models add` (its folder is left as it is)")
    remove.add_argument("name", help="the name given with `models add`")
    remove.set_defaults(handler=run.remove_model)
    convert = models.add_parser("convert-audiocraft", help="write an audiocraft checkpoint as a transformers folder")
    convert.add_argument("src", type=Path, help="folder with state_dict.bin and compression_state_dict.bin")
    convert.add_argument("dst", type=Path, help="new folder to write")
    convert.add_argument("--text-encoder", help="a local T5 folder or hub id (default: the one the checkpoint names)")
    convert.set_defaults(handler=run.convert)
    return parser


def _group(commands, name: str, help_text: str):
    """A command of commands (``takes list``); the group alone is an argument error, in one line like the others."""
    group = commands.add_parser(name, help=help_text)
    actions = group.add_subparsers(dest="action", parser_class=_Parser)
    group.set_defaults(unfinished=lambda: group.error(f"say what to do: {', '.join(actions.choices)}"))
    return actions


class _NoticeLine(logging.Handler):
    """`models.errors.notify` messages as one stderr line each, beside (not inside) the output."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm  # a notice sent mid-take (a session created on insert) goes above the progress bar

        tqdm.write(f"daw-plugin: note: {record.getMessage()}", file=sys.stderr)  # sys.stderr now, not at set-up


def _print_notices() -> None:
    notices = logging.getLogger(NOTICES)
    if not any(isinstance(h, _NoticeLine) for h in notices.handlers):
        notices.addHandler(_NoticeLine())
        notices.propagate = False


def raw_main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    _print_notices()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        if args.command is not None:  # a group without its action (`takes`): one line, exit 2
            args.unfinished()
        parser.print_help()  # no command at all: the overview
        return ExitStatus.OK
    try:
        return args.handler(args)
    except UserError as error:
        print(f"daw-plugin: error: {worded(error)}", file=sys.stderr)
        return ExitStatus.BAD_INPUT
    except (Cancelled, KeyboardInterrupt):
        kept = ("files already downloaded are kept; run it again to go on" if args.command == "models"
                else "finished takes are kept, no partial take was written")
        print(f"daw-plugin: cancelled; {kept}.", file=sys.stderr)
        return ExitStatus.CANCELLED
    except Exception as error:
        if args.traceback:
            raise
        print(f"daw-plugin: error: {type(error).__name__}: {error} (run with --traceback for details)",
              file=sys.stderr)
        return ExitStatus.ERROR


def main(argv: list[str] | None = None) -> None:
    sys.exit(raw_main(argv))


if __name__ == "__main__":
    main()
