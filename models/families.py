"""What each model family takes, in one place: the core asks here instead of branching on a family's name.

Known from a model's configs alone (`models.formats.detect`), so a request is checked before any weights load.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from models.generator import Settings

SETTINGS = tuple(field.name for field in fields(Settings))


@dataclass(frozen=True)
class Family:
    name: str  # as `models.formats.Format.family` says it
    title: str  # as a musician reads it
    how: str  # how it makes audio, for messages: "<model> <how> and has no ..."
    settings: tuple[str, ...]  # the `Settings` fields it takes
    text_encoder_option: bool  # a text encoder can be named (audiocraft checkpoints), so recipes record it


_TOKENS = ("guidance", "top_k", "top_p", "temperature")
FAMILIES = {
    "audiogen": Family("audiogen", "AudioGen", "generates token by token", _TOKENS, True),
    "musicgen": Family("musicgen", "MusicGen", "generates token by token", _TOKENS, True),
    "audioldm2": Family("audioldm2", "AudioLDM 2", "denoises instead of sampling tokens",
                        ("guidance", "steps", "negative_prompt"), False),
}


def family(name: str) -> Family:
    return FAMILIES[name]


def taking(settings: list[str]) -> str:
    """The families that take all of ``settings``, as a musician reads them: "AudioGen or MusicGen"."""
    titles = [f.title for f in FAMILIES.values() if set(settings) <= set(f.settings)]
    return " or ".join(titles) or "no model"
