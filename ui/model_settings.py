"""The model's own settings, shown only for the families that take them (`models.families`), and a melody clip
for the models that follow one (MusicGen melody).

Each is a text field: empty asks for the model's default, and what is typed goes to the request as it is
(a number when it reads as one), so the request's own check words any mistake.
"""

from __future__ import annotations

from PyQt6.QtWidgets import QFormLayout, QLineEdit, QWidget

from models.families import FAMILIES
from ui.melody_box import MelodyBox

# field: (label, what an empty field means)
SETTINGS = {
    "guidance": ("Guidance", "model default (3 or 3.5)"),
    "top_k": ("Top-k", "model default (250)"),
    "top_p": ("Top-p", "model default (0, off)"),
    "temperature": ("Temperature", "model default (1)"),
    "steps": ("Steps", "model default (25)"),
    "negative_prompt": ("Negative prompt", "none, e.g. low quality, noise"),
}
WHOLE = {"top_k", "steps", "seed"}  # fields read as whole numbers (the panel reads its seed here too)


def typed_value(field: str, text: str):
    """What a request gets for ``text``: None when empty, a number when it reads as one, else the text."""
    text = text.strip()
    if field == "negative_prompt" or not text:
        return text or None
    for kind in ((int, float) if field in WHOLE else (float,)):
        try:
            return kind(text)
        except ValueError:
            continue
    return text  # the request refuses it in one sentence naming the field


class ModelSettings(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._form = layout = QFormLayout(self)  # kept: layout() gives only a QLayout, without setRowVisible
        layout.setContentsMargins(0, 0, 0, 0)
        self.fields: dict[str, QLineEdit] = {}
        for field, (label, placeholder) in SETTINGS.items():
            edit = QLineEdit()
            edit.setAccessibleName(label)
            edit.setPlaceholderText(placeholder)
            layout.addRow(label, edit)
            self.fields[field] = edit
        self.melody = MelodyBox()
        layout.addRow("Melody clip", self.melody)
        self.show_for(None)

    def show_for(self, family: str | None, melody: bool = False) -> None:
        """Guidance for every model; the rest only for a family that takes them (a model not known yet, such
        as a name being typed, gets guidance alone); the melody clip only for a model that follows one."""
        self.shown = set(FAMILIES[family].settings) if family in FAMILIES else {"guidance"}
        for field, edit in self.fields.items():
            self._form.setRowVisible(edit, field in self.shown)
        self._form.setRowVisible(self.melody, melody)
        self.shown |= {"melody"} if melody else set()

    @property
    def controls(self) -> dict:
        """Each request field's control, to mark a bad value at."""
        return {**self.fields, "melody": self.melody.path}

    def values(self) -> dict:
        """The shown settings, by request field (None: the model's default; no melody clip: none)."""
        values = {field: typed_value(field, edit.text()) for field, edit in self.fields.items() if field in self.shown}
        return values | ({"melody": self.melody.melody} if "melody" in self.shown else {})
