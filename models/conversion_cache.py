"""Our own cache: audiocraft folders converted once into transformers' shape, and reused after that."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from models.file_lock import held

CONVERT_WAIT_SECONDS = 3600.0  # converting a large checkpoint takes minutes on a slow disk


def cache_dir() -> Path:
    root = os.environ.get("DAW_PLUGIN_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "daw-plugin"
    return Path(root).expanduser()


def converted(src: Path, text_encoder: str | None) -> Path:
    """The converted copy of an audiocraft folder, made on first use and keyed by what it came from."""
    from models import audiocraft_conversion

    files = [src / "state_dict.bin", src / "compression_state_dict.bin"]
    identity = [str(src.resolve()), str(text_encoder)] + [f"{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files]
    key = hashlib.sha256("|".join(identity).encode()).hexdigest()[:16]
    dst = cache_dir() / "converted" / f"{src.resolve().name}-{key}"
    # Two processes (the CLI beside a panel) may want the same conversion: one makes it, the other waits for it.
    with held(cache_dir() / "locks" / f"{dst.name}.lock", timeout_s=CONVERT_WAIT_SECONDS, guarding=dst):
        if not (dst / "config.json").is_file():
            audiocraft_conversion.convert(src, dst, text_encoder)
    return dst
