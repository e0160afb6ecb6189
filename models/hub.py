"""Downloading from the Hugging Face Hub, and finding what was downloaded: the only module that calls the hub.

Hub models live in the Hugging Face cache. Only the files a model needs are fetched (`ModelInfo.files`).
"""

from __future__ import annotations

import os
from pathlib import Path

from models.catalog import TRANSFORMERS_FILES, ModelInfo, hub_repo
from models.errors import Cancelled, UserError, brief
from models.formats import detect, is_complete


def missing(name: str) -> UserError:
    return UserError(
        f"The model {name!r} is not on this machine; run `daw-plugin models pull {name}` while online, "
        "or `daw-plugin models add PATH` for a copy you have."
    )


def local_snapshot(repo: str, info: ModelInfo | None) -> Path | None:
    """The complete copy of a hub repo in the Hugging Face cache, if there is one (never downloads)."""
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(repo, allow_patterns=_patterns(info), local_files_only=True))
    except Exception:  # not cached: huggingface_hub raises several kinds for that
        return None
    found = detect(folder)
    return folder if found is not None and is_complete(folder, found.kind) else None


def _patterns(info: ModelInfo | None) -> list[str] | None:
    return list(info.files) + ["README.md"] if info else None


def pull(model: str, tqdm_class=None) -> Path:
    """Download a known id or hub repo into the Hugging Face cache, with progress.

    A dropped connection resumes mid-file; a pull run again keeps the files already finished.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    info, repo = hub_repo(model, "`daw-plugin models list` shows the ids that can be pulled")
    try:
        folder = Path(snapshot_download(repo, allow_patterns=_patterns(info), tqdm_class=tqdm_class))
        if info is not None and info.text_encoder:
            snapshot_download(info.text_encoder, allow_patterns=list(TRANSFORMERS_FILES), tqdm_class=tqdm_class)
    except Cancelled:  # the watcher stopped it: files already downloaded are kept for the next time
        raise
    except (RepositoryNotFoundError, RevisionNotFoundError) as error:  # gated repos are a kind of not found
        raise UserError(f"The model {repo!r} was not found on the Hugging Face Hub (it may be private or "
                        "gated); check the name.") from error
    except Exception as error:  # offline, network, disk: all end the same way for the user
        if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0"):
            raise missing(model) from error
        raise UserError(f"Could not download {model!r} ({brief(error)}); check the connection and run "
                        f"`daw-plugin models pull {model}` again (files already downloaded are kept), or use "
                        "`daw-plugin models add PATH` for a copy you have.") from error
    return folder


def hub_cache_folder(repo: str) -> Path:
    """Where the Hugging Face cache keeps ``repo`` (for messages: deleting it frees the disk space)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}"
