"""What the panel remembers between runs, in `QSettings` under one organisation and application name.

Tests point it elsewhere with ``QSettings.setPath`` or hand the panel its own ini file.
"""

from __future__ import annotations

from PyQt6.QtCore import QSettings

ORGANIZATION, APPLICATION = "daw-plugin", "panel"
HISTORY_LIMIT = 100  # prompts kept for Up and Down


def panel_settings() -> QSettings:
    # IniFormat on every platform: one readable file, and one that `setPath` moves for tests.
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION)


def text(settings: QSettings, key: str, default: str = "") -> str:
    value = settings.value(key, default)
    return value if isinstance(value, str) else default


def flag(settings: QSettings, key: str, default: bool = False) -> bool:
    value = settings.value(key, default)
    return value in (True, "true", "1", 1) if not isinstance(value, bool) else value


def history(settings: QSettings) -> list[str]:
    """The prompts asked for, oldest first."""
    value = settings.value("prompt/history", [])
    if isinstance(value, str):  # an ini file holding one entry gives it back as a string
        value = [value]
    return [item for item in value or [] if isinstance(item, str)][-HISTORY_LIMIT:]


def remember_prompt(settings: QSettings, prompt: str) -> list[str]:
    """``prompt`` as the newest in the history (moved there if it was asked before); the history returned."""
    kept = [item for item in history(settings) if item != prompt] + [prompt]
    kept = kept[-HISTORY_LIMIT:]
    settings.setValue("prompt/history", kept)
    return kept
