"""Model names -> folders on disk: what ``--model`` may be, and where that model is.

A model is named by a known id (``musicgen-small``), a name the user registered with ``models add``,
a hub repo (``facebook/musicgen-small``) or a folder.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from models import registrations
from models.catalog import BY_ID, ModelInfo, hub_repo
from models.errors import UserError
from models.formats import Format, detect, is_complete
from models.hub import local_snapshot, pull


@dataclass(frozen=True)
class Resolved:
    name: str  # as the user gave it: how messages name the model
    folder: Path
    format: Format
    info: ModelInfo | None = None  # when the model is one the plugin knows by name
    text_encoder: str | None = None  # the T5 an audiocraft checkpoint was registered with (`models add`)


def resolve(model: str, tqdm_class=None) -> Resolved:
    """Find ``model`` on disk, downloading a hub model when it is missing and the hub can be reached.

    ``tqdm_class`` (a `huggingface_hub.utils.tqdm` subclass) watches a download's progress bars.
    """
    path = Path(model).expanduser()
    if path.exists():
        return local_model(model, path)
    # Known ids and hub repos are never registration names (`models add` refuses them), so a models.json the
    # user broke by hand blocks only the names it holds.
    registered = None if model in BY_ID or "/" in model else registrations.read().get(model)
    if registered is not None:
        if not Path(registered.path).is_dir():
            raise UserError(f"The model {model!r} was added from {registered.path}, which is gone; add it again.")
        return replace(local_model(model, Path(registered.path)), text_encoder=registered.text_encoder)
    info, repo = hub_repo(model, f"use one of {', '.join(BY_ID)}, a name from `daw-plugin models list`, "
                                 "a hub repo id or a folder")
    folder = local_snapshot(repo, info) or pull(model, tqdm_class)
    return local_model(model, folder, info)


def local_model(name: str, folder: Path, info: ModelInfo | None = None) -> Resolved:
    """``folder`` as a model, named ``name``; `UserError` when it holds no model we know, or only part of one."""
    found = detect(folder)
    if found is None:
        raise UserError(
            f"{folder} holds no model this plugin knows: expected a transformers MusicGen folder, a diffusers "
            "AudioLDM 2 folder, or an audiocraft checkpoint (state_dict.bin + compression_state_dict.bin)."
        )
    if not is_complete(folder, found.kind):
        raise UserError(f"The model in {folder} is missing weight files; download or copy it again.")
    return Resolved(name, folder, found, info)
