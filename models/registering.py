"""``models add`` and ``models remove``: checking a folder and a name before they go into ``models.json``.

The file itself, its format and its lock are `models.registrations`.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from models import registrations
from models.catalog import BY_ID, BY_REPO
from models.errors import UserError
from models.formats import Format
from models.hub import hub_cache_folder
from models.registrations import Registration
from models.resolution import local_model


def registered_models() -> dict[str, Registration]:
    """The ``models add`` registrations; a ``models.json`` that cannot be read raises `UserError`."""
    return registrations.read()


def add(path: Path, name: str | None = None, text_encoder: str | None = None) -> tuple[str, Format]:
    """Register a local folder under ``name`` (default: the folder's name).

    Adding the same folder under the same name again sets its ``text_encoder``, or keeps the one it had.
    """
    folder = path.expanduser().resolve()
    if not folder.is_dir():
        raise UserError(f"{path} is not a folder; give the folder that holds the model.")
    found = local_model(str(path), folder).format
    name = name or folder.name
    if "/" in name or name in BY_ID:
        raise UserError(f"{name!r} is a hub repo or a known id; choose another name with --as.")
    entry = Registration(str(folder), _registered_text_encoder(found, text_encoder))

    def with_entry(models: dict[str, Registration]) -> dict[str, Registration]:
        before = models.get(name, entry)
        if before.path != entry.path:
            raise UserError(f"{name!r} already names {before.path}; choose another name with --as.")
        return {**models, name: replace(entry, text_encoder=entry.text_encoder or before.text_encoder)}

    registrations.change(with_entry)
    return name, found


def _registered_text_encoder(found: Format, text_encoder: str | None) -> str | None:
    """A local T5 folder (kept as an absolute path) or a hub id, for an audiocraft checkpoint only."""
    if text_encoder is None:
        return None
    if found.kind != "audiocraft":
        raise UserError(f"A {found.kind} folder carries its own text encoder; --text-encoder is for audiocraft "
                        "checkpoints, so drop it.")
    local = Path(text_encoder).expanduser()
    if local.exists():
        if not (local / "config.json").is_file():
            raise UserError(f"{text_encoder} is not a T5 folder (it has no config.json); give the folder that "
                            "holds the T5 model and its tokenizer.")
        return str(local.resolve())
    if text_encoder.startswith((".", "~", os.sep)) or text_encoder.count("/") > 1:
        raise UserError(f"There is no folder {text_encoder}; give the folder that holds the T5 model and its "
                        "tokenizer.")
    return text_encoder  # a hub id (google-t5/t5-large): taken from the Hugging Face cache


def remove(name: str) -> Registration:
    """Unregister a ``models add`` name. The model's folder is left as it is: it is the user's."""
    info = BY_ID.get(name) or BY_REPO.get(name)
    if info is not None or name.count("/") == 1:  # hub models are never registered (`add` refuses those names)
        repo = info.repo if info else name
        raise UserError(f"{name!r} comes from the Hugging Face Hub, not from `models add`; to free its disk space, "
                        f"run `hf cache rm model/{repo}` (or delete {hub_cache_folder(repo)}).")
    removed = []

    def without(models: dict[str, Registration]) -> dict[str, Registration]:
        if name not in models:
            raise UserError(f"No model was added under the name {name!r}; `daw-plugin models list` shows the "
                            "names added with `models add`.")
        removed.append(models[name])
        return {key: value for key, value in models.items() if key != name}

    registrations.change(without)
    return removed[0]
