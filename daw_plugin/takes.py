"""Writing takes: each is an audio file with its JSON recipe beside it, and none is ever overwritten.

Both files are written to temporary names first and then hard-linked into place, which fails
instead of replacing when the name is taken; the next free name is used then. The recipe is
linked last, so a take is complete exactly when its recipe exists.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from daw_plugin.audio import Clip, new_temp_file, write_new_file
from models.errors import UserError


def slug(text: str, limit: int = 40) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return words[:limit].rstrip("-") or "take"


def save_take(folder: Path, clip: Clip, recipe: dict, stem: str, audio_format: str = "wav") -> Path:
    """Write ``clip`` and ``recipe`` as ``<stem>[-N].<format>`` + ``.json`` in ``folder``; return the audio path."""
    temps: list[Path] = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        temps.append(new_temp_file(folder, ".take-", f".{audio_format}"))
        write_new_file(clip, temps[0])
        temps.append(new_temp_file(folder, ".take-", ".json"))
        return _link_under_free_name(folder, stem, audio_format, *temps, recipe)
    except OSError as error:
        raise UserError(f"Cannot write takes to {folder} ({error.strerror}); choose another --out folder.") from error
    finally:
        for temp in temps:
            temp.unlink(missing_ok=True)


def _link_under_free_name(folder: Path, stem: str, audio_format: str, audio_tmp: Path, recipe_tmp: Path,
                          recipe: dict) -> Path:
    n = 1
    while True:
        name = stem if n == 1 else f"{stem}-{n}"
        n += 1
        audio_path, recipe_path = folder / f"{name}.{audio_format}", folder / f"{name}.json"
        if recipe_path.exists():
            continue
        recipe_tmp.write_text(json.dumps({**recipe, "audio": audio_path.name}, indent=2) + "\n")
        if not _link(audio_tmp, audio_path):
            continue
        if _link(recipe_tmp, recipe_path):
            return audio_path
        audio_path.unlink()  # the recipe name was taken meanwhile: release ours, try the next


def _link(src: Path, dst: Path) -> bool:
    """Create ``dst`` as a new name for ``src``; False if ``dst`` already exists (it is left alone)."""
    try:
        os.link(src, dst)
        return True
    except FileExistsError:
        return False
