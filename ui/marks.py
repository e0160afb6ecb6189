"""Marking a control whose value a request refused: a red border, and the sentence as its tooltip and as its
accessible description (what a screen reader says about the field)."""

from __future__ import annotations

from PyQt6.QtWidgets import QWidget

INVALID_STYLE = "border: 2px solid #d03030;"


class Marks:
    def __init__(self):
        self._marked: dict[QWidget, str] = {}  # each marked control, and the tooltip it had before

    def mark(self, controls: dict[str, QWidget], fields, message: str) -> None:
        """Mark each of ``fields`` that has a control in ``controls`` with ``message``."""
        for field in fields:
            if (control := controls.get(field)) is not None:
                self._marked.setdefault(control, control.toolTip())
                control.setStyleSheet(INVALID_STYLE)
                control.setToolTip(message)
                control.setAccessibleDescription(message)

    def clear(self) -> None:
        for control, tooltip in self._marked.items():
            control.setStyleSheet("")
            control.setToolTip(tooltip)
            control.setAccessibleDescription("")
        self._marked.clear()
