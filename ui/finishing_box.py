"""The tempo and loop finishing aims at: a "BPM" field (a request's ``tempo_bpm``; empty: the host's tempo, or
none) and a "Loop" toggle (a request's ``loop``) whose third, partial state leaves it to the preset."""

from __future__ import annotations

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QCheckBox, QLineEdit

from ui.model_settings import typed_value
from ui.settings import text

LOOP = {Qt.CheckState.Checked: True, Qt.CheckState.Unchecked: False, Qt.CheckState.PartiallyChecked: None}
SAVED = {True: "on", False: "off", None: "preset"}  # how QSettings keeps the toggle


class FinishingBox:
    def __init__(self, panel):
        self.bpm = panel._named(QLineEdit(), "BPM")
        self.bpm.setPlaceholderText("the host's tempo")
        self.bpm.setToolTip("The tempo of whole bars and tempo fit; empty: the host's tempo")
        self.loop = panel._named(QCheckBox("Loop"), "Loop")
        self.loop.setTristate(True)
        self.loop.setToolTip("Checked: a seamless loop of whole bars at the tempo. Unchecked: no loop. "
                             "Half-checked: as the preset says (music-stem loops).")
        self.set_loop(None)
        self.controls = {"tempo_bpm": self.bpm, "loop": self.loop}

    @property
    def loop_choice(self) -> bool | None:
        return LOOP[self.loop.checkState()]

    def set_loop(self, loop: bool | None) -> None:
        self.loop.setCheckState(next(state for state, value in LOOP.items() if value is loop))

    def fields(self) -> dict:
        """The request's fields these controls set (a BPM that is not a number goes as text: the request words it)."""
        return {"tempo_bpm": typed_value("tempo_bpm", self.bpm.text()), "loop": self.loop_choice}

    def restore(self, settings) -> None:
        self.bpm.setText(text(settings, "bpm"))
        self.set_loop({saved: value for value, saved in SAVED.items()}.get(text(settings, "loop"), None))

    def save(self, settings) -> None:
        settings.setValue("bpm", self.bpm.text())
        settings.setValue("loop", SAVED[self.loop_choice])
