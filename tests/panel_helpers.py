"""What the panel tests share besides fixtures (those are in conftest.py): Qt offscreen, the settings format, the
wait ceiling, and typing as a user does. Import it before anything that makes a QApplication."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # no display here; must precede the first QApplication

from PyQt6.QtCore import QSettings, Qt  # noqa: E402

WAIT_MS = 120_000  # a ceiling for a busy machine, not a measure: the tests assert what happened, never how fast
INI = QSettings.Format.IniFormat


def set_text(qtbot, widget, text: str) -> None:
    """Select what a field holds and type over it, as a user does."""
    editor = widget.lineEdit() if hasattr(widget, "lineEdit") else widget
    editor.selectAll()
    qtbot.keyClick(editor, Qt.Key.Key_Delete)
    qtbot.keyClicks(editor, text)


def ask(qtbot, panel, prompt: str, seconds: str = "0.2") -> None:
    set_text(qtbot, panel.control("Seconds"), seconds)
    qtbot.keyClicks(panel.control("Prompt"), prompt)
    qtbot.keyClick(panel.control("Prompt"), Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
