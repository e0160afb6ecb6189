"""Every `daw-plugin` command the README shows parses as written, with options its model takes."""

import argparse
import re
import shlex
from pathlib import Path

import pytest

from daw_plugin import commands
from daw_plugin.cli import build_parser
from daw_plugin.model_options import check_model_options
from models.catalog import AUDIOCRAFT_FILES, BY_ID, TRANSFORMERS_FILES
from models.formats import Format

README = Path(__file__).resolve().parents[1] / "README.md"
SEPARATORS = {"&&", "||", ";", "|"}


def readme_commands() -> list[list[str]]:
    """The arguments of each `daw-plugin` command in the README's code blocks, comments stripped."""
    found = []
    for block in re.findall(r"```\w*\n(.*?)```", README.read_text(), re.S):
        for line in block.splitlines():
            words, command = shlex.split(line, comments=True) + [";"], None
            for word in words:
                if word in SEPARATORS:
                    if command is not None:
                        found.append(command)
                    command = None
                elif command is not None:
                    command.append(word)
                elif Path(word).name == "daw-plugin":
                    command = []
    return found


COMMANDS = readme_commands()


def test_the_readme_shows_the_commands_we_mean_to_check():
    assert len(COMMANDS) >= 15
    assert ["continue", "loop.wav", "--start", "4.0", "--end", "8.0", "with a rising synth", "--seconds", "6",
            "--host", "session:my-song"] in COMMANDS
    assert ["generate", "rain on a tin roof", "--seconds", "5", "--takes", "2", "--out", "takes"] in COMMANDS


def known_format(model: str) -> Format | None:
    """A catalog model's format, from what the catalog says it downloads (no files needed)."""
    info = BY_ID.get(model)
    if info is None:
        return None
    kind = {AUDIOCRAFT_FILES: "audiocraft", TRANSFORMERS_FILES: "transformers"}.get(info.files, "diffusers")
    return Format(kind, info.family, info.stereo, info.melody)


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(argv) for argv in COMMANDS])
def test_readme_command_parses(argv):
    args = build_parser().parse_args(argv)
    assert hasattr(args, "handler"), f"`daw-plugin {' '.join(argv)}` names no command"
    if args.handler is commands.generate:  # and the request it makes is one its model takes
        request = commands.build_request(args)
        if (found := known_format(request.model)) is not None:
            check_model_options(request, found)


def leaf_parsers(parser, name="daw-plugin"):
    subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subcommands:
        yield name, parser
    for action in subcommands:
        for sub_name, sub in action.choices.items():
            yield from leaf_parsers(sub, f"{name} {sub_name}")


def test_every_option_and_argument_has_help():
    leaves = dict(leaf_parsers(build_parser()))
    assert {"daw-plugin continue", "daw-plugin takes list", "daw-plugin session render"} <= set(leaves)
    for name, parser in leaves.items():
        for action in parser._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"


def test_the_takes_library_has_one_name():
    """`--out` everywhere; `takes`' old `--dir` still works but is not listed."""
    leaves = dict(leaf_parsers(build_parser()))
    for name in ("daw-plugin generate", "daw-plugin continue", "daw-plugin takes list", "daw-plugin takes regenerate"):
        assert "--out" in leaves[name].format_help() and "--dir" not in leaves[name].format_help()
    assert build_parser().parse_args(["takes", "list", "--dir", "old"]).dir == Path("old")
