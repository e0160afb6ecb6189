"""The takes library: one folder per take, holding its finished audio, its raw generation and its recipe.

``<id>/<id>.wav`` is what lands on a track, ``<id>/<id>.raw.wav`` what the model made, and
``<id>/<id>.json`` how to make it again. A continuation keeps the region it continued (``<id>.source.wav``),
a melody take the part it followed (``<id>.melody.wav``): float WAV, exactly the samples the model heard.
A take's folder appears in one rename, whole, and never in place of another: a taken id moves the take to
the next one (``-2``, ``-3``, ...).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path

from daw_plugin.audio import Clip, write_new_file
from daw_plugin.files import clean_stale_staging, numbered, os_reason, rename_new, staging_dir, sync
from models.errors import Cancelled, UserError, brief, notify

# The fields `takes list` and `takes regenerate` read: (where, what it must hold, whether it must be there).
# A field under an optional object ("source.clip") is checked when that object is there.
RECIPE_FIELDS = (
    ("prompt", "text", True), ("model", "text", True), ("seconds", "a number", True), ("seed", "an integer", True),
    ("device", "text", True), ("audio_format", "text", True), ("created", "text", False),
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
    ("source", "an object or null", False), ("source.clip", "text or null", True),
    ("source.start_seconds", "a number", True), ("source.end_seconds", "a number", True),
    ("melody", "an object or null", False), ("melody.clip", "text or null", True),
    ("melody.start_seconds", "a number or null", False), ("melody.end_seconds", "a number or null", False),
    ("clap_score", "a number", False),
)
_KINDS = {
    "text": lambda v: isinstance(v, str),
    "an integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "a number": lambda v: isinstance(v, int) and not isinstance(v, bool) or isinstance(v, float) and math.isfinite(v),
    "an object": lambda v: isinstance(v, dict),
    "null": lambda v: v is None,
}


def slug(text: str, limit: int = 40) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return words[:limit].rstrip("-") or "take"


# Conditioning audio kept with a take is float WAV whatever the take's format: FLAC's 24 bits could change it.
EXACT_KINDS = ("source", "melody")


def audio_name(take_id: str, kind: str, audio_format: str) -> str:
    """``kind`` is "finished" (what lands on a track), "raw" (the model's own output), or one of EXACT_KINDS."""
    if kind in EXACT_KINDS:
        audio_format = "wav"
    return f"{take_id}.{audio_format}" if kind == "finished" else f"{take_id}.{kind}.{audio_format}"


def save_take(folder: Path, audio: dict[str, Clip], recipe: dict, stem: str, audio_format: str = "wav",
              should_stop=None) -> Path:
    """Write the clips of ``audio`` (by kind) and ``recipe`` as the take ``<folder>/<id>/``; return the finished path.

    The take is written into a hidden folder beside it and renamed into place in one step, so it is
    there whole or not at all (a run killed midway leaves no partial take, and its staging is removed
    by the next run), and a taken id is skipped. A full disk is one `UserError`, leaving nothing behind.
    ``should_stop`` (a job's cancel) is asked last before the rename: yes raises `Cancelled` and leaves nothing.
    """
    if found := non_finite(recipe):  # the last guard: strict JSON parsers reject NaN, and so would regenerate
        raise UserError(f"The take was not saved: its recipe's {found[0]!r} is {found[1]}, not a finite number; "
                        "check the value given for it.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with staging_dir(folder) as staging:
            written = {kind: write_new_file(clip, staging / audio_name(kind, kind, audio_format))
                       for kind, clip in audio.items()}
            for path in written.values():
                sync(path)
            for take_id in numbered(stem):  # endless: some id is always free
                if os.path.lexists(folder / take_id):
                    continue
                names = {kind: audio_name(take_id, kind, audio_format) for kind in written}
                written = {kind: path.rename(staging / names[kind]) for kind, path in written.items()}
                text = json.dumps({**recipe, "id": take_id, "audio": names}, indent=2, allow_nan=False)
                (staging / f"{take_id}.json").write_text(text)
                if should_stop is not None and should_stop():
                    raise Cancelled()
                if rename_new(staging, folder / take_id):
                    return folder / take_id / names["finished"]
                (staging / f"{take_id}.json").unlink()  # taken meanwhile: try the next id
    except OSError as error:
        raise UserError(f"Cannot write takes to {folder} ({os_reason(error)}); free some space or choose another "
                        "--out folder.") from error


def list_takes(folder: Path) -> list[dict]:
    """Every take's recipe in ``folder``, oldest first, each with ``id`` its folder's name.

    Hidden entries (a take still being written, or the user's own) are not takes; what a killed
    writer left is removed first. A recipe that cannot be used is left out with a notice naming it.
    """
    clean_stale_staging(folder)
    try:
        takes = sorted(folder.iterdir()) if folder.is_dir() else []
    except OSError as error:
        raise UserError(f"Cannot read the takes library {folder} ({os_reason(error)}); check the folder.") from error
    recipes = []
    for take in takes:
        path = take / f"{take.name}.json"
        if take.name.startswith(".") or not os.path.isfile(path):
            continue
        try:
            recipe = _parse(path)
            if isinstance(recipe, dict) and not _is_ours(recipe):
                continue  # some other program's file
            check_recipe(path, recipe)
        except UserError as error:
            notify(f"{error} It is left out of the list.")
            continue
        recipes.append({**recipe, "id": take.name})
    return sorted(recipes, key=lambda r: (r.get("created", ""), r["id"]))


def recipe_path(folder: Path, take_id: str) -> Path:
    return folder / take_id / f"{take_id}.json"


def load_recipe(folder: Path, take_id: str) -> dict:
    """The recipe of the take ``take_id``, checked for the fields `takes regenerate` reads."""
    path = recipe_path(folder, take_id)
    if take_id.startswith(".") or os.sep in take_id or "/" in take_id or not os.path.isfile(path):
        raise UserError(f"There is no take {take_id!r} in {folder}; `daw-plugin takes list` shows them.")
    recipe = _parse(path)
    check_recipe(path, recipe)
    return recipe


def check_recipe(path: Path, recipe, problem: str | None = None) -> None:
    """One `UserError` naming the recipe file and what is wrong with it (``problem``, or its shape)."""
    if problem := problem or recipe_problem(recipe):
        raise UserError(f"The recipe {printable(str(path))} {problem}; correct it by hand, or move that take's "
                        "folder away.")


def recipe_fault(error: Exception, labels: Mapping[str, str] | None = None) -> str:
    """What `GenerationRequest.from_recipe` found wrong in a recipe, as a phrase for `check_recipe`.

    ``labels``: how the front end names a request's fields (the CLI: by its flags).
    """
    if isinstance(error, KeyError):
        return f"has no {error.args[0]!r}" if error.args else "lacks a field"
    if isinstance(error, UserError):  # a value the request refuses, named by its field
        return f"asks for what cannot be made ({printable(error.worded(labels).rstrip('.'))})"
    return f"cannot be used ({printable(brief(error))})"


def _parse(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        problem = f"cannot be read ({os_reason(error)})"
    except UnicodeDecodeError:
        problem = "is not UTF-8 text"
    except json.JSONDecodeError as error:
        problem = f"is not valid JSON ({error.msg} at line {error.lineno})"
    except RecursionError:
        problem = "is nested too deeply to be a recipe"
    check_recipe(path, None, problem)


def _is_ours(recipe: dict) -> bool:
    program = recipe.get("program")
    return isinstance(program, dict) and program.get("name") == "daw-plugin"


def recipe_problem(recipe) -> str | None:
    """What is wrong with a recipe's shape, as a phrase ("has no 'seed'"), or None when it can be used."""
    if not isinstance(recipe, dict):
        return "is not a JSON object"
    for where, kinds, required in RECIPE_FIELDS:
        *parents, key = where.split(".")
        holder = recipe
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
    return None


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
