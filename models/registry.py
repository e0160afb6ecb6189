"""Model ids and paths -> a local transformers folder -> a loaded generator.

A model is named by a short id (``audiogen-medium``), a hub repo (``facebook/audiogen-medium``) or
a local folder. audiocraft folders are converted once into a cache and reused after that.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from models.errors import UserError

KNOWN_MODELS = {"audiogen-medium": "facebook/audiogen-medium"}


def cache_dir() -> Path:
    root = os.environ.get("DAW_PLUGIN_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "daw-plugin"
    return Path(root).expanduser()


def resolve_folder(model: str, text_encoder: str | None = None) -> Path:
    """A folder that ``MusicgenForConditionalGeneration.from_pretrained`` loads, fetching or converting as needed."""
    path = Path(model).expanduser()
    if path.exists():
        folder = path
    elif model in KNOWN_MODELS or model.count("/") == 1:
        folder = download(KNOWN_MODELS.get(model, model), model)
    else:
        known = ", ".join(KNOWN_MODELS)
        raise UserError(f"Unknown model {model!r}; use one of {known}, a hub repo id, or a local folder.")
    from models.audiocraft_checkpoint import is_audiocraft_folder

    if is_audiocraft_folder(folder):
        return converted(folder, text_encoder)
    if _is_musicgen_folder(folder):
        return folder
    raise UserError(
        f"{folder} holds no model this plugin knows: expected an audiocraft checkpoint "
        "(state_dict.bin + compression_state_dict.bin) or a transformers MusicGen folder."
    )


def _is_musicgen_folder(folder: Path) -> bool:
    try:
        return json.loads((folder / "config.json").read_text()).get("model_type") == "musicgen"
    except (OSError, ValueError):
        return False


def download(repo_id: str, asked_as: str) -> Path:
    """Fetch a hub repo into the Hugging Face cache (with progress bars), or find it there offline."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id))
    except Exception as error:  # offline, unknown repo, network: all end the same way for the user
        raise UserError(
            f"The model {asked_as!r} ({repo_id}) is not on this machine and could not be downloaded "
            f"({type(error).__name__}); go online once, or pass --model with a local folder."
        ) from error


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


def load_generator(model: str, device: str = "auto", text_encoder: str | None = None):
    """A ready `CodecLM` for ``model`` on ``device``."""
    from models import audiogen
    from models.device import resolve_device
    from models.lm import CodecLM

    torch_device = resolve_device(device)
    folder = resolve_folder(model, text_encoder)
    network, tokenizer = audiogen.load_pretrained(folder, torch_device)
    frame_rate = network.config.audio_encoder.frame_rate
    window_seconds = network.generation_config.max_length / frame_rate
    return CodecLM(network, tokenizer, window_seconds=window_seconds,
                   extend_stride_seconds=audiogen.EXTEND_STRIDE_SECONDS)
