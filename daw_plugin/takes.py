"""The takes library: one folder per take, holding its finished audio, its raw generation and its recipe.

``<id>/<id>.wav`` is what lands on a track, ``<id>/<id>.raw.wav`` what the model made, and
``<id>/<id>.json`` how to make it again. A take's folder appears in one rename, whole, and never in
place of another: a taken id moves the take to the next one (``-2``, ``-3``, ...).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from daw_plugin.audio import Clip, write_new_file
from daw_plugin.files import clean_stale_staging, numbered, os_reason, rename_new, staging_dir, sync
from models.errors import UserError


def slug(text: str, limit: int = 40) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return words[:limit].rstrip("-") or "take"


def audio_name(take_id: str, kind: str, audio_format: str) -> str:
    """``kind`` is "finished" (what lands on a track) or "raw" (the model's own output)."""
    return f"{take_id}.{audio_format}" if kind == "finished" else f"{take_id}.{kind}.{audio_format}"


def save_take(folder: Path, audio: dict[str, Clip], recipe: dict, stem: str, audio_format: str = "wav") -> Path:
    """Write the clips of ``audio`` (by kind) and ``recipe`` as the take ``<folder>/<id>/``; return the finished path.

    The take is written into a hidden folder beside it and renamed into place in one step, so it is
    there whole or not at all (a run killed midway leaves no partial take), and a taken id is skipped.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with staging_dir(folder) as staging:
            written = {kind: write_new_file(clip, staging / f"{kind}.{audio_format}") for kind, clip in audio.items()}
            for path in written.values():
                sync(path)
            for take_id in numbered(stem):  # endless: some id is always free
                if os.path.lexists(folder / take_id):
                    continue
                names = {kind: audio_name(take_id, kind, audio_format) for kind in written}
                written = {kind: path.rename(staging / names[kind]) for kind, path in written.items()}
                text = json.dumps({**recipe, "id": take_id, "audio": names}, indent=2)
                (staging / f"{take_id}.json").write_text(text)
                if rename_new(staging, folder / take_id):
                    return folder / take_id / names["finished"]
                (staging / f"{take_id}.json").unlink()  # taken meanwhile: try the next id
    except OSError as error:
        raise UserError(f"Cannot write takes to {folder} ({os_reason(error)}); choose another --out folder.") from error


def list_takes(folder: Path) -> list[dict]:
    """Every take's recipe in ``folder``, oldest first; files that are not our recipes are skipped."""
    clean_stale_staging(folder)  # what a killed writer left
    recipes = []
    for path in sorted(folder.glob("[!.]*/[!.]*.json")) if folder.is_dir() else []:  # hidden entries are no takes
        try:
            recipe = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(recipe, dict) and recipe.get("program", {}).get("name") == "daw-plugin":
            recipes.append(recipe)
    return sorted(recipes, key=lambda r: (r.get("created", ""), r.get("id", "")))


def load_recipe(folder: Path, take_id: str) -> dict:
    path = folder / take_id / f"{take_id}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"There is no take {take_id!r} in {folder}; `daw-plugin takes list` shows them.") from error
