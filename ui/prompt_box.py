"""The prompt box: plain text, Ctrl+Enter asks for takes, Up and Down walk the prompts asked before."""

from __future__ import annotations

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtGui import QKeyEvent, QTextCursor
from PyQt6.QtWidgets import QPlainTextEdit


class PromptBox(QPlainTextEdit):
    submitted = pyqtSignal()  # Ctrl+Enter

    def __init__(self, history: list[str] | None = None, parent=None):
        super().__init__(parent)
        self.setTabChangesFocus(True)  # Tab moves on to the next control, as in a form
        self.setPlaceholderText("Describe the sound, e.g. rain on a tin roof (Ctrl+Enter generates)")
        self.set_history(history or [])

    def set_history(self, history: list[str]) -> None:
        self._history = list(history)
        self._place = len(self._history)  # past the newest: what is being typed
        self._draft = ""

    @property
    def prompt(self) -> str:
        return self.toPlainText()

    def keyPressEvent(self, event: QKeyEvent | None) -> None:
        assert event is not None  # Qt always hands its handlers the event; None is only its C++ pointer type
        key, modifiers = event.key(), event.modifiers()
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and modifiers & Qt.KeyboardModifier.ControlModifier:
            self.submitted.emit()
            return
        cursor = self.textCursor()
        # Up on the first line and Down on the last walk the history; elsewhere they move the cursor.
        if key == Qt.Key.Key_Up and not modifiers and cursor.blockNumber() == 0 and self._place > 0:
            self._walk(-1)
            return
        if (key == Qt.Key.Key_Down and not modifiers and cursor.blockNumber() == self.blockCount() - 1
                and self._place < len(self._history)):
            self._walk(1)
            return
        super().keyPressEvent(event)

    def _walk(self, by: int) -> None:
        if self._place == len(self._history):
            self._draft = self.prompt  # kept, so Down past the newest gives back what was being typed
        self._place += by
        self.setPlainText(self._history[self._place] if self._place < len(self._history) else self._draft)
        self.moveCursor(QTextCursor.MoveOperation.End)
