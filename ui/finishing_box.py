"""The tempo and loop finishing aims at: a "BPM" field (a request's ``tempo_bpm``; empty: the host's tempo, or
none), "Beats per bar" (``beats_per_bar``: 3 for 3/4) and a "Loop" toggle (a request's ``loop``) whose third,
partial state leaves it to the preset."""

from __future__ import annotations

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QCheckBox, QLineEdit, QSpinBox

from ui.model_settings import typed_value
from ui.settings import text

LOOP = {Qt.CheckState.Checked: True, Qt.CheckState.Unchecked: False, Qt.CheckState.PartiallyChecked: None}
SAVED = {True: "on", False: "off", None: "preset"}  # how QSettings keeps the toggle


class FinishingBox:
    def __init__(self, panel):
        self.bpm = panel._named(QLineEdit(), "BPM")
        self.bpm.setPlaceholderText("the host's tempo")
        self.bpm.setToolTip("The tempo of whole bars and tempo fit; empty: the host's tempo")
        self.beats = panel._named(QSpinBox(), "Beats per bar")
        self.beats.setRange(1, 64)  # as a request allows
        self.beats.setValue(4)
        self.beats.setSuffix(" beats a bar")
        self.beats.setToolTip("Beats in a bar, for loops of whole bars and tempo fit: 4 for 4/4, 3 for 3/4")
        self.loop = panel._named(QCheckBox("Loop"), "Loop")
        self.loop.setTristate(True)
        self.loop.setToolTip("Checked: a seamless loop of whole bars at the tempo. Unchecked: no loop. "
                             "Half-checked: as the preset says (music-stem loops).")
        self.set_loop(None)
        self.controls = {"tempo_bpm": self.bpm, "beats_per_bar": self.beats, "loop": self.loop}

    @property
    def loop_choice(self) -> bool | None:
        return LOOP[self.loop.checkState()]

    def set_loop(self, loop: bool | None) -> None:
        self.loop.setCheckState(next(state for state, value in LOOP.items() if value is loop))

    def fields(self) -> dict:
        """The request's fields these controls set (a BPM that is not a number goes as text: the request words it)."""
        return {"tempo_bpm": typed_value("tempo_bpm", self.bpm.text()), "beats_per_bar": self.beats.value(),
                "loop": self.loop_choice}

    def restore(self, settings) -> None:
        self.bpm.setText(text(settings, "bpm"))
        beats = text(settings, "beats_per_bar")
        self.beats.setValue(int(beats) if beats.isdigit() else 4)  # the spin box keeps it in range
        self.set_loop({saved: value for value, saved in SAVED.items()}.get(text(settings, "loop"), None))

    def save(self, settings) -> None:
        settings.setValue("bpm", self.bpm.text())
        settings.setValue("beats_per_bar", str(self.beats.value()))
        settings.setValue("loop", SAVED[self.loop_choice])
