"""The takes library: one folder per take, holding its finished audio, its raw generation and its recipe.

``<id>/<id>.wav`` is what lands on a track, ``<id>/<id>.raw.wav`` what the model made, and
``<id>/<id>.json`` how to make it again. A continuation keeps the region it continued (``<id>.source.wav``),
a melody take the part it followed (``<id>.melody.wav``): float WAV, exactly the samples the model heard.
A take's folder appears in one rename, whole, and never in place of another: a taken id moves the take to
the next one (``-2``, ``-3``, ...).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

from daw_plugin.audio import Clip, write_new_file
from daw_plugin.files import clean_stale_staging, numbered, os_reason, rename_new, staging_dir, sync
from daw_plugin.recipes import Recipe, non_finite, printable, recipe_error, recipe_problem
from models.errors import Cancelled, UserError, brief, notify


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


def save_take(folder: Path, audio: dict[str, Clip], recipe: Recipe | Mapping, stem: str, audio_format: str = "wav",
              should_stop=None) -> Path:
    """Write the clips of ``audio`` (by kind) and ``recipe`` as the take ``<folder>/<id>/``; return the finished path.

    ``recipe`` is a `Recipe`, or JSON already made (a mapping); the file gets the take's ``id`` and ``audio`` names.

    The take is written into a hidden folder beside it and renamed into place in one step, so it is
    there whole or not at all (a run killed midway leaves no partial take, and its staging is removed
    by the next run), and a taken id is skipped. A full disk is one `UserError`, leaving nothing behind.
    ``should_stop`` (a job's cancel) is asked last before the rename: yes raises `Cancelled` and leaves nothing.
    """
    recipe = recipe.to_json() if isinstance(recipe, Recipe) else dict(recipe)
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
            raise AssertionError("numbered() never runs out of ids")
    except OSError as error:
        raise UserError(f"Cannot write takes to {folder} ({os_reason(error)}); free some space or choose another "
                        "--out folder.") from error


def list_takes(folder: Path) -> list[dict]:
    """Every take's recipe in ``folder`` as JSON (`Recipe.to_json`), oldest first, each with ``id`` its folder's name.

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
            data = _parse(path)
            if isinstance(data, dict) and not _is_ours(data):
                continue  # some other program's file
            recipe = Recipe.from_json(data, path)
        except UserError as error:
            notify(f"{error} It is left out of the list.")
            continue
        recipes.append({**recipe.to_json(), "id": take.name})
    return sorted(recipes, key=lambda r: (r.get("created", ""), r["id"]))


def recipe_path(folder: Path, take_id: str) -> Path:
    return folder / take_id / f"{take_id}.json"


def load_recipe(folder: Path, take_id: str) -> Recipe:
    """The recipe of the take ``take_id``; a `UserError` naming the file and the field when it cannot be used."""
    path = recipe_path(folder, take_id)
    if take_id.startswith(".") or os.sep in take_id or "/" in take_id or not os.path.isfile(path):
        raise UserError(f"There is no take {take_id!r} in {folder}; `daw-plugin takes list` shows them.")
    return Recipe.from_json(_parse(path), path)


def check_recipe(path: Path, recipe, problem: str | None = None) -> None:
    """One `UserError` naming the recipe file and what is wrong with it (``problem``, or its shape)."""
    if problem := problem or recipe_problem(recipe):
        raise recipe_error(path, problem)


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


# The trash: a discarded take moves, whole and in one rename, into ``<library>/.trash/<id>/``. Hidden, so
# `list_takes` never shows it; deleted only by `empty_trash`, so a wrong click loses nothing.
TRASH = ".trash"


def discard_take(folder: Path, take_id: str) -> Path:
    """Move the take ``take_id`` into the library's trash; its place there (``<id>``, or ``<id>-2``... if taken)."""
    take = _take_folder(folder, take_id)
    try:
        (folder / TRASH).mkdir(exist_ok=True)
        for name in numbered(take_id):  # endless: some name is always free
            if rename_new(take, folder / TRASH / name):
                return folder / TRASH / name
    except OSError as error:
        raise UserError(f"Cannot move the take {take_id!r} to {folder / TRASH} ({os_reason(error)}); check that "
                        "the takes library is writable.") from error
    raise AssertionError("numbered() never runs out of names")


def trashed_takes(folder: Path) -> list[str]:
    """The names of the takes in the library's trash, sorted."""
    trash = folder / TRASH
    return sorted(entry.name for entry in trash.iterdir() if not entry.name.startswith(".")) if trash.is_dir() else []


def restore_take(folder: Path, name: str) -> Path:
    """Move the take ``name`` out of the trash back into the library under its own id (its recipe file's name)."""
    trashed = _take_folder(folder / TRASH, name)
    take_id = next((p.stem for p in trashed.glob("*.json") if (trashed / f"{p.stem}.wav").exists()
                    or (trashed / f"{p.stem}.flac").exists()), name)
    try:
        if rename_new(trashed, folder / take_id):
            return folder / take_id
    except OSError as error:
        raise UserError(f"Cannot restore the take {name!r} into {folder} ({os_reason(error)}); check that the "
                        "takes library is writable.") from error
    raise UserError(f"A take {take_id!r} is in {folder} again; discard it first to restore the one in the trash.")


def empty_trash(folder: Path) -> int:
    """Delete every take in the library's trash, for good; how many. Each is first renamed to a hidden name, so
    a delete cut short leaves no half take that `trashed_takes` would offer to restore."""
    emptied = 0
    for name in trashed_takes(folder):
        doomed = folder / TRASH / f".{name}.emptying"
        try:
            os.rename(folder / TRASH / name, doomed)
        except OSError as error:
            raise UserError(f"Cannot empty the trash {folder / TRASH} ({os_reason(error)}); check that it is "
                            "writable.") from error
        shutil.rmtree(doomed, ignore_errors=True)
        emptied += 1
    for leftover in (folder / TRASH).glob(".*.emptying"):  # what an earlier, interrupted emptying left
        shutil.rmtree(leftover, ignore_errors=True)
    return emptied


def insert_seconds(recipe: Recipe) -> float:
    """Where a take lands on a track when inserted later: a continuation where its region ends, less the cross-faded
    seam its finished audio starts with (as the engine places it); any other take at 0 s."""
    if recipe.source is None or recipe.source.end_seconds is None:
        return 0.0
    seam_ms = recipe.finishing.report.get("seam_crossfade_ms", 0.0)
    return max(recipe.source.end_seconds - (seam_ms if isinstance(seam_ms, int | float) else 0.0) / 1000, 0.0)


def _take_folder(folder: Path, take_id: str) -> Path:
    if not take_id or take_id.startswith(".") or os.sep in take_id or "/" in take_id or not (folder / take_id).is_dir():
        raise UserError(f"There is no take {take_id!r} in {folder}; it was moved or deleted, so pick another.")
    return folder / take_id
