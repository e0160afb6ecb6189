"""Model names -> folders on disk -> loaded generators.

A model is named by a known id (``musicgen-small``), a name the user registered with ``models add``,
a hub repo (``facebook/musicgen-small``) or a folder. Hub models live in the Hugging Face cache;
audiocraft folders are converted once into our own cache and reused after that.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

from models import registrations
from models.catalog import BY_ID, BY_REPO, KNOWN, TRANSFORMERS_FILES, ModelInfo
from models.errors import Cancelled, UserError, brief
from models.formats import WEIGHTS, Format, detect, is_complete
from models.registrations import Registration, config_dir  # noqa: F401  (config_dir: where models.json lives)

# How far each window moves on past the model's training window, as a share of it (audiocraft's
# defaults: AudioGen adds 2 s to 8 s of context, MusicGen 18 s to 12 s).
EXTEND_STRIDE = {"audiogen": 0.2, "musicgen": 0.6}


@dataclass(frozen=True)
class Resolved:
    name: str  # as the user gave it: how messages name the model
    folder: Path
    format: Format
    info: ModelInfo | None = None  # when the model is one the plugin knows by name
    text_encoder: str | None = None  # the T5 an audiocraft checkpoint was registered with (`models add`)


def cache_dir() -> Path:
    root = os.environ.get("DAW_PLUGIN_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "daw-plugin"
    return Path(root).expanduser()


def _missing(name: str) -> UserError:
    return UserError(
        f"The model {name!r} is not on this machine; run `daw-plugin models pull {name}` while online, "
        "or `daw-plugin models add PATH` for a copy you have."
    )


def resolve(model: str, tqdm_class=None) -> Resolved:
    """Find ``model`` on disk, downloading a hub model when it is missing and the hub can be reached.

    ``tqdm_class`` (a `huggingface_hub.utils.tqdm` subclass) watches a download's progress bars.
    """
    path = Path(model).expanduser()
    if path.exists():
        return _local(model, path)
    registered = registered_models().get(model)
    if registered is not None:
        if not Path(registered.path).is_dir():
            raise UserError(f"The model {model!r} was added from {registered.path}, which is gone; add it again.")
        return replace(_local(model, Path(registered.path)), text_encoder=registered.text_encoder)
    info, repo = _on_hub(model, f"use one of {', '.join(BY_ID)}, a name from `daw-plugin models list`, "
                                "a hub repo id or a folder")
    folder = local_snapshot(repo, info) or pull(model, tqdm_class)
    return _local(model, folder, info)


def _on_hub(model: str, hint: str) -> tuple[ModelInfo | None, str]:
    """A known id or an ``owner/name`` repo -> (what we know of it, its repo); anything else is unknown."""
    info = BY_ID.get(model) or BY_REPO.get(model)
    if info is None and model.count("/") != 1:
        raise UserError(f"Unknown model {model!r}; {hint}.")
    return info, info.repo if info else model


def _local(name: str, folder: Path, info: ModelInfo | None = None) -> Resolved:
    found = detect(folder)
    if found is None:
        raise UserError(
            f"{folder} holds no model this plugin knows: expected a transformers MusicGen folder, a diffusers "
            "AudioLDM 2 folder, or an audiocraft checkpoint (state_dict.bin + compression_state_dict.bin)."
        )
    if not is_complete(folder, found.kind):
        raise UserError(f"The model in {folder} is missing weight files; download or copy it again.")
    return Resolved(name, folder, found, info)


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

    info, repo = _on_hub(model, "`daw-plugin models list` shows the ids that can be pulled")
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
            raise _missing(model) from error
        raise UserError(f"Could not download {model!r} ({brief(error)}); check the connection and run "
                        f"`daw-plugin models pull {model}` again (files already downloaded are kept), or use "
                        "`daw-plugin models add PATH` for a copy you have.") from error
    return folder


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
    found = _local(str(path), folder).format
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
        from huggingface_hub import constants

        repo = info.repo if info else name
        cached = Path(constants.HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}"
        raise UserError(f"{name!r} comes from the Hugging Face Hub, not from `models add`; to free its disk space, "
                        f"run `hf cache rm model/{repo}` (or delete {cached}).")
    removed = []

    def without(models: dict[str, Registration]) -> dict[str, Registration]:
        if name not in models:
            raise UserError(f"No model was added under the name {name!r}; `daw-plugin models list` shows the "
                            "names added with `models add`.")
        removed.append(models[name])
        return {key: value for key, value in models.items() if key != name}

    registrations.change(without)
    return removed[0]


@dataclass(frozen=True)
class Entry:
    """One line of ``models list``."""

    name: str
    family: str
    size: str
    license: str
    on_disk: bool
    where: str  # a hub repo, or the folder a registered model lives in
    stereo: bool = False
    melody: bool = False


def entries() -> list[Entry]:
    rows = [Entry(i.id, i.family, i.size, i.license, local_snapshot(i.repo, i) is not None, i.repo, i.stereo,
                  i.melody) for i in KNOWN]
    for name, registered in sorted(registered_models().items()):
        folder = registered.path
        found = detect(Path(folder))
        rows.append(Entry(name, found.family if found else "?", "-", "see the model's own card",
                          found is not None and is_complete(Path(folder), found.kind), folder,
                          bool(found and found.stereo), bool(found and found.melody)))
    return rows


def converted(src: Path, text_encoder: str | None) -> Path:
    """The converted copy of an audiocraft folder, made on first use and keyed by what it came from."""
    from models import audiogen

    files = [src / "state_dict.bin", src / "compression_state_dict.bin"]
    identity = [str(src.resolve()), str(text_encoder)] + [f"{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files]
    key = hashlib.sha256("|".join(identity).encode()).hexdigest()[:16]
    dst = cache_dir() / "converted" / f"{src.resolve().name}-{key}"
    if not (dst / "config.json").is_file():
        audiogen.convert(src, dst, text_encoder)
    return dst


def _window_seconds(folder: Path) -> float:
    """The LM's training window, read from the folder's configs without loading weights."""
    config = json.loads((folder / "config.json").read_text())["audio_encoder"]
    frame_rate = math.ceil(config["sampling_rate"] / math.prod(config["upsampling_ratios"]))
    return json.loads((folder / "generation_config.json").read_text())["max_length"] / frame_rate


def load_generator(model: str | Resolved, device: str = "auto", text_encoder: str | None = None,
                   threads: int | None = None):
    """A ready generator (see `models.generator.Generator`) for ``model`` on ``device``.

    On the CPU torch gets ``threads`` threads, or as many as `models.device.cpu_threads` chooses for the
    model's size and the free cores; on a GPU only a given ``threads`` is applied. ``generator.threads`` says
    which (None: torch's default). ``text_encoder`` (audiocraft checkpoints) overrides the registered one.
    """
    from models.device import cpu_threads, resolve_device, use_threads

    torch_device = resolve_device(device)
    resolved = model if isinstance(model, Resolved) else resolve(model)
    folder = resolved.folder
    if resolved.format.kind == "audiocraft":
        named = resolved.info and resolved.info.text_encoder
        folder = converted(folder, text_encoder or resolved.text_encoder or named)
    if threads is None and torch_device.type == "cpu":
        threads = cpu_threads(weight_bytes(folder))
    if threads is not None:
        use_threads(threads)
    generator = _load(resolved, folder, torch_device)
    generator.threads = threads
    return generator


def _load(resolved: Resolved, folder: Path, torch_device):
    if resolved.format.family == "audioldm2":
        from models import audioldm2

        return audioldm2.load(folder, torch_device)
    from models import musicgen

    family = detect(folder).family
    stride = _window_seconds(folder) * EXTEND_STRIDE[family]
    generator = musicgen.load(folder, torch_device, extend_stride_seconds=stride)
    generator.family, generator.name = family, resolved.name
    return generator


def weight_bytes(folder: Path) -> int:
    """The size of the weight files under ``folder`` (diffusers keeps them in subfolders): the model's size."""
    return sum(path.stat().st_size for pattern in WEIGHTS for path in folder.rglob(pattern) if path.is_file())
