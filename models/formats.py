"""Telling which kind of model a folder holds, from its files alone (no weights are read)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

MARKER = "daw-plugin.json"  # written by our AudioGen conversion: its folder is MusicGen-shaped but runs as AudioGen
WEIGHTS = ("*.safetensors", "*.bin")


@dataclass(frozen=True)
class Format:
    kind: str  # audiocraft, transformers or diffusers
    family: str  # audiogen, musicgen or audioldm2
    stereo: bool = False
    melody: bool = False


def read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def detect(folder: Path) -> Format | None:
    """The model in ``folder``, or None when it holds none this plugin knows.

    A transformers config wins over audiocraft files: Meta's MusicGen repos carry both.
    """
    config = read_json(folder / "config.json")
    model_type = config.get("model_type")
    if model_type in ("musicgen", "musicgen_melody"):
        family = read_json(folder / MARKER).get("family", "musicgen")
        stereo = config.get("decoder", {}).get("audio_channels", 1) == 2
        return Format("transformers", family, stereo=stereo, melody=model_type == "musicgen_melody")
    if read_json(folder / "model_index.json").get("_class_name") == "AudioLDM2Pipeline":
        return Format("diffusers", "audioldm2")
    if (folder / "state_dict.bin").is_file() and (folder / "compression_state_dict.bin").is_file():
        return Format("audiocraft", "audiogen")
    return None


def is_complete(folder: Path, kind: str) -> bool:
    """Whether every weight file the format needs is there (a download may have stopped half way)."""
    if kind == "audiocraft":
        return all((folder / name).is_file() for name in ("state_dict.bin", "compression_state_dict.bin"))
    if kind == "transformers":
        return _has_weights(folder)
    if kind == "diffusers":
        components = [name for name, value in read_json(folder / "model_index.json").items()
                      if not name.startswith("_") and isinstance(value, list) and value[0] is not None]
        # Networks have a config.json and weights; tokenizers, schedulers and feature extractors have neither.
        return all((folder / name).is_dir() for name in components) and all(
            _has_weights(folder / name) for name in components if (folder / name / "config.json").is_file())
    return False


def _has_weights(folder: Path) -> bool:
    index = next(filter(None, (read_json(index) for index in folder.glob("*.safetensors.index.json"))), None)
    if index:
        return all((folder / shard).is_file() for shard in set(index.get("weight_map", {}).values()))
    return any(next(folder.glob(pattern), None) is not None for pattern in WEIGHTS)
