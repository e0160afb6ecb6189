"""A resolved model -> a ready generator on a device, with the threads torch gets chosen for its size."""

from __future__ import annotations

import json
import math
from pathlib import Path

from models.conversion_cache import converted
from models.formats import WEIGHTS, detect
from models.resolution import Resolved, resolve

# How far each window moves on past the model's training window, as a share of it (audiocraft's
# defaults: AudioGen adds 2 s to 8 s of context, MusicGen 18 s to 12 s).
EXTEND_STRIDE = {"audiogen": 0.2, "musicgen": 0.6}


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


def _window_seconds(folder: Path) -> float:
    """The LM's training window, read from the folder's configs without loading weights."""
    config = json.loads((folder / "config.json").read_text())["audio_encoder"]
    frame_rate = math.ceil(config["sampling_rate"] / math.prod(config["upsampling_ratios"]))
    return json.loads((folder / "generation_config.json").read_text())["max_length"] / frame_rate


def weight_bytes(folder: Path) -> int:
    """The size of the weight files under ``folder`` (diffusers keeps them in subfolders): the model's size."""
    return sum(path.stat().st_size for pattern in WEIGHTS for path in folder.rglob(pattern) if path.is_file())
