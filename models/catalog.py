"""The models the plugin knows by name: where they live on the hub, what they are, and their terms.

Only what a download needs is fetched (``files``): Meta's MusicGen repos carry both audiocraft and
transformers weights, and one of the two is enough.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.errors import UserError

META_LICENSE = "CC-BY-NC 4.0 (non-commercial)"
AUDIOLDM_LICENSE = "CC-BY-NC-SA 4.0 (non-commercial)"

TRANSFORMERS_FILES = ("*.json", "*.safetensors", "spiece.model")
AUDIOCRAFT_FILES = ("state_dict.bin", "compression_state_dict.bin")
DIFFUSERS_FILES = ("*.json", "*.safetensors", "*.txt", "*.model")


@dataclass(frozen=True)
class ModelInfo:
    id: str
    repo: str
    family: str  # audiogen, musicgen, audioldm2
    size: str  # parameters, as the model card gives them
    license: str
    files: tuple[str, ...]  # hub file patterns worth downloading
    stereo: bool = False
    melody: bool = False
    text_encoder: str | None = None  # a second repo the model needs (audiocraft checkpoints name their T5)


def _musicgen(name: str, size: str, stereo: bool = False, melody: bool = False) -> ModelInfo:
    return ModelInfo(name, f"facebook/{name}", "musicgen", size, META_LICENSE, TRANSFORMERS_FILES, stereo, melody)


def _audioldm2(name: str, size: str) -> ModelInfo:
    return ModelInfo(name, f"cvssp/{name}", "audioldm2", size, AUDIOLDM_LICENSE, DIFFUSERS_FILES)


KNOWN = (
    ModelInfo("audiogen-medium", "facebook/audiogen-medium", "audiogen", "1.5B", META_LICENSE, AUDIOCRAFT_FILES,
              text_encoder="google-t5/t5-large"),
    _musicgen("musicgen-small", "300M"),
    _musicgen("musicgen-medium", "1.5B"),
    _musicgen("musicgen-large", "3.3B"),
    _musicgen("musicgen-melody", "1.5B", melody=True),
    _musicgen("musicgen-melody-large", "3.3B", melody=True),
    _musicgen("musicgen-stereo-small", "300M", stereo=True),
    _musicgen("musicgen-stereo-medium", "1.5B", stereo=True),
    _musicgen("musicgen-stereo-large", "3.3B", stereo=True),
    _musicgen("musicgen-stereo-melody", "1.5B", stereo=True, melody=True),
    _musicgen("musicgen-stereo-melody-large", "3.3B", stereo=True, melody=True),
    _audioldm2("audioldm2", "1.1B"),
    _audioldm2("audioldm2-large", "1.5B"),
    _audioldm2("audioldm2-music", "1.1B"),
)
BY_ID = {info.id: info for info in KNOWN}
BY_REPO = {info.repo: info for info in KNOWN}


def hub_repo(model: str, hint: str) -> tuple[ModelInfo | None, str]:
    """A known id or an ``owner/name`` repo -> (what we know of it, its repo); anything else is unknown."""
    info = BY_ID.get(model) or BY_REPO.get(model)
    if info is None and model.count("/") != 1:
        raise UserError(f"Unknown model {model!r}; {hint}.")
    return info, info.repo if info else model
