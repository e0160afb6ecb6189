"""The user's registrations (``models add``): ``models.json`` in the config folder, name -> model folder.

The file is the user's as much as ours: it may have been edited by hand. One that cannot be read is never
overwritten, nor taken as empty (that would lose every registration in it): whatever needs it stops with one
line naming the file, the line and column, and the fix. Writers (``models add`` and ``models remove``, maybe
in two terminals at once) hold a lock file and re-read under it, so that neither loses the other's change.

A value is the model's folder (the original form, still written when nothing else is kept), or
``{"path": folder, "text_encoder": T5 folder or hub id}`` for an audiocraft checkpoint whose T5 lives apart.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from models.atomic_files import write_file
from models.errors import UserError
from models.file_lock import held
from models.hand_edited import read_json_object

LOCK_TIMEOUT_SECONDS = 30.0  # a write takes milliseconds; this long means a writer hung with the lock
FIX = "fix it by hand (it is left as it is)"


@dataclass(frozen=True)
class Registration:
    path: str  # the model's folder, absolute
    text_encoder: str | None = None  # audiocraft checkpoints: the T5 they were registered with

    def to_json(self) -> str | dict:
        return self.path if self.text_encoder is None else {"path": self.path, "text_encoder": self.text_encoder}


def config_dir() -> Path:
    root = os.environ.get("DAW_PLUGIN_CONFIG") or Path(os.environ.get("XDG_CONFIG_HOME", "~/.config")) / "daw-plugin"
    return Path(root).expanduser()


def models_file() -> Path:
    return config_dir() / "models.json"


def read() -> dict[str, Registration]:
    """Every registration; none when there is no file yet. A file that cannot be read raises `UserError`."""
    path = models_file()
    value, text = read_json_object(path, FIX, holding="a JSON object of names and model folders", missing={})
    return {name: _registration(name, entry, path, text) for name, entry in value.items()}


def _registration(name: str, entry, path: Path, text: str) -> Registration:
    if isinstance(entry, str):
        return Registration(entry)
    if isinstance(entry, dict) and isinstance(entry.get("path"), str) and set(entry) <= {"path", "text_encoder"} \
            and isinstance(entry.get("text_encoder"), str | None):
        return Registration(entry["path"], entry.get("text_encoder"))
    raise UserError(f"{path}{_where(text, name)}: the entry {name!r} must be a model folder (a string) or "
                    f'{{"path": ..., "text_encoder": ...}}, not {json.dumps(entry)[:60]}; {FIX}.')


def _where(text: str, name: str) -> str:
    """' line L column C' of ``name``'s key in ``text``, as a JSON writer would quote it; '' when not found."""
    at = text.find(json.dumps(name))
    if at < 0:
        return ""
    line = text.count("\n", 0, at) + 1
    column = at - text.rfind("\n", 0, at)  # 1-based: rfind gives -1 on the first line
    return f" line {line} column {column}"


def change(edit: Callable[[dict[str, Registration]], dict[str, Registration]]) -> dict[str, Registration]:
    """Apply ``edit`` to the registrations as they are on disk now, and write the result; returns it.

    Under the lock the file is read afresh, so a registration another process wrote meanwhile is kept; a file
    that cannot be read raises before anything is written.
    """
    with _locked():
        registrations = edit(read())
        _write_json(models_file(), {name: entry.to_json() for name, entry in registrations.items()})
        return registrations


def _locked():
    return held(config_dir() / ".models.json.lock", timeout_s=LOCK_TIMEOUT_SECONDS, guarding=models_file(),
                then="try again (or set DAW_PLUGIN_CONFIG to a folder you can write)")


def _write_json(path: Path, value: dict) -> None:
    """Atomically, keeping the file's permissions: a crash leaves the old registrations, never half a file."""
    write_file(path, lambda tmp: tmp.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8"), replace=True,
               keep_mode=True)
