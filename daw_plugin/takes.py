"""The takes library: each take is its finished audio, its raw generation and its JSON recipe.

``<id>.wav`` is what lands on a track, ``<id>.raw.wav`` what the model made, ``<id>.json`` how to make
it again. Files are written to temporary names first and then hard-linked into place, which fails
instead of replacing when a name is taken; the next free id is used then. The recipe is linked
last, so a take exists exactly when its recipe does, and nothing is ever overwritten.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from daw_plugin.audio import Clip, write_new_file
from daw_plugin.files import link_new, new_temp_file, numbered, os_reason
from models.errors import UserError


def slug(text: str, limit: int = 40) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return words[:limit].rstrip("-") or "take"


def audio_name(take_id: str, kind: str, audio_format: str) -> str:
    """``kind`` is "finished" (what lands on a track) or "raw" (the model's own output)."""
    return f"{take_id}.{audio_format}" if kind == "finished" else f"{take_id}.{kind}.{audio_format}"


def save_take(folder: Path, audio: dict[str, Clip], recipe: dict, stem: str, audio_format: str = "wav") -> Path:
    """Write each clip of ``audio`` (by kind) and ``recipe`` under a free id in ``folder``; return the finished path."""
    temps: dict[str, Path] = {}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for kind, clip in audio.items():
            temps[kind] = new_temp_file(folder, ".take-", f".{audio_format}")
            write_new_file(clip, temps[kind])
        recipe_tmp = temps["recipe"] = new_temp_file(folder, ".take-", ".json")
        return _link_under_free_id(folder, stem, audio_format, temps, recipe_tmp, recipe)
    except OSError as error:
        raise UserError(f"Cannot write takes to {folder} ({os_reason(error)}); choose another --out folder.") from error
    finally:
        for temp in temps.values():
            temp.unlink(missing_ok=True)


def _link_under_free_id(folder: Path, stem: str, audio_format: str, temps: dict[str, Path], recipe_tmp: Path,
                        recipe: dict) -> Path:
    for take_id in numbered(stem):  # endless: some id is always free
        recipe_path = folder / f"{take_id}.json"
        if recipe_path.exists():
            continue
        names = {kind: audio_name(take_id, kind, audio_format) for kind in temps if kind != "recipe"}
        recipe_tmp.write_text(json.dumps({**recipe, "id": take_id, "audio": names}, indent=2) + "\n")
        linked = []
        for kind, name in names.items():
            if not link_new(temps[kind], folder / name, keep_tmp=True):
                break
            linked.append(folder / name)
        else:
            if link_new(recipe_tmp, recipe_path, keep_tmp=True):
                return folder / names["finished"]
        for path in linked:  # a name was taken meanwhile: release ours and try the next id
            path.unlink()


def list_takes(folder: Path) -> list[dict]:
    """Every take's recipe in ``folder``, oldest first; files that are not our recipes are skipped."""
    recipes = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            recipe = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(recipe, dict) and recipe.get("program", {}).get("name") == "daw-plugin":
            recipes.append(recipe)
    return sorted(recipes, key=lambda r: (r.get("created", ""), r.get("id", "")))


def load_recipe(folder: Path, take_id: str) -> dict:
    path = folder / f"{take_id}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"There is no take {take_id!r} in {folder}; `daw-plugin takes list` shows them.") from error
