"""What the panel remembers between runs, in `QSettings` under one organisation and application name.

Tests point it elsewhere with ``QSettings.setPath`` or hand the panel its own ini file.
"""

from __future__ import annotations

from PyQt6.QtCore import QSettings

ORGANIZATION, APPLICATION = "daw-plugin", "panel"
HISTORY_LIMIT = 100  # prompts kept for Up and Down
DEFAULT_MODEL = "audiogen-medium"  # as `daw-plugin generate` defaults


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


def restore(panel, model: str | None, host: str | None, out, preset: str | None) -> None:
    """The panel's controls as they were left, except what the command line chose."""
    s = panel.settings
    panel.model.choose(model or text(s, "model", DEFAULT_MODEL))
    panel.preset.setCurrentText(preset or text(s, "preset", "foley"))
    panel.out.setText(str(out) if out is not None else text(s, "out", "takes"))
    panel.host.setText(host if host is not None else text(s, "host"))
    panel.seed_lock.setChecked(flag(s, "seed/locked"))
    panel.seed.setText(text(s, "seed/value") if panel.seed_lock.isChecked() else "")
    panel.device_box.restore(s)
    panel.finishing_box.restore(s)
    panel.worker_box.restore(s)
    if not ((geometry := s.value("geometry")) and panel.restoreGeometry(geometry)):
        panel.resize(560, 820)


def save(panel) -> None:
    s = panel.settings
    for key, value in (("model", panel.model.model), ("preset", panel.preset.currentText()),
                       ("out", panel.out.text()), ("host", panel.host.text()),
                       ("seed/locked", panel.seed_lock.isChecked()), ("seed/value", panel.seed.text()),
                       ("geometry", panel.saveGeometry())):
        s.setValue(key, value)
    panel.device_box.save(s)
    panel.finishing_box.save(s)
    panel.worker_box.save(s)
    s.sync()
