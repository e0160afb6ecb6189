"""Where the model runs: the Device picker, and a line naming the device the warm model is on with, on CUDA,
the GPU memory in use. Both are read on a worker thread: torch is imported there, never on the UI thread."""

from __future__ import annotations

from PyQt6.QtWidgets import QComboBox, QLabel

from daw_plugin import events
from ui.settings import text

ALWAYS = ("auto", "cpu")  # offered before torch has said what else there is
NO_MODEL = "No model loaded"
GIB = 2**30


def offered_devices() -> list[str]:
    """auto, cpu, and cuda or mps where torch offers them. Slow (imports torch): run it on a worker thread."""
    import torch

    return [*ALWAYS, *(["cuda"] if torch.cuda.is_available() else []),
            *(["mps"] if torch.backends.mps.is_available() else [])]


def device_line(use) -> str:
    """What the status line says for an `Engine.device_use` reading (None: no model warm)."""
    if use is None:
        return NO_MODEL
    models = f"{use.models} models" if use.models > 1 else "Model"
    memory = f" · {use.used_bytes / GIB:.1f} of {use.total_bytes / GIB:.1f} GiB in use" if use.total_bytes else ""
    return f"{models} on {use.device}{memory}"


class DeviceBox:
    """The "Device" picker (a request's ``device``) and the "Device status" line; ``panel`` gives `_named`, its
    `Background` and, once made, its engine."""

    def __init__(self, panel):
        self.panel = panel
        self.picker = panel._named(QComboBox(), "Device")
        self.picker.addItems(ALWAYS)
        self.picker.setToolTip("auto: CUDA, else Apple's MPS, else the CPU")
        self.status = panel._named(QLabel(NO_MODEL), "Device status")
        self._readings = 0  # the newest reading asked for: an older one arriving late is dropped

    @property
    def device(self) -> str:
        return self.picker.currentText() or "auto"

    def choose(self, name: str) -> None:
        if self.picker.findText(name) < 0:  # a device saved on another run, before torch says whether it is here
            self.picker.addItem(name)
        self.picker.setCurrentText(name)

    def restore(self, settings) -> None:
        self.choose(text(settings, "device", "auto"))

    def save(self, settings) -> None:
        settings.setValue("device", self.device)

    def offer(self) -> None:
        """Ask torch, on a worker thread, which devices this machine has."""
        self.panel.background.run(offered_devices, self._offered)

    def _offered(self, devices, error) -> None:
        if error is not None:
            self.panel.say(f"Cannot tell which devices torch offers: {error}", error=True)
            return
        chosen = self.device
        self.picker.blockSignals(True)
        self.picker.clear()
        self.picker.addItems(devices if chosen in devices else [*devices, chosen])  # a choice is never dropped
        self.picker.setCurrentText(chosen)
        self.picker.blockSignals(False)

    def refresh(self) -> None:
        """Read the warm model's device and memory on a worker thread; the line changes when the reading comes."""
        self._readings += 1
        number = self._readings
        self.panel.background.run(self.panel.engine.device_use, lambda use, error: self._read(number, use, error))

    def _read(self, number: int, use, error) -> None:
        if number != self._readings:
            return  # a newer reading is on its way
        self.status.setText(device_line(use) if error is None else f"Cannot read the device: {error}")

    def on_event(self, event: events.Event) -> None:
        """A model loaded (a job's first step), a take made, a job ended: the reading may have changed."""
        if (isinstance(event, events.Step) and event.done <= 1) or isinstance(event, (events.TakeDone, *events.FINAL)):
            self.refresh()
