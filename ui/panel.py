"""The panel beside the DAW: a prompt in, takes out, on a window that never waits on the model.

Everything goes through the engine's public API: a click builds a `daw_plugin.Request` (checked as it is made)
and submits it; the job's events come back through `JobBridge` on the UI thread. The UI thread never waits on
a job, loads a model or reads audio; the takes library and the model list are read on a worker thread.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import TypeVar

from PyQt6.QtCore import QSettings, Qt
from PyQt6.QtGui import QCloseEvent, QKeyEvent, QKeySequence, QShortcut
from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from daw_plugin import Request, UserError, events
from daw_plugin.presets import PRESETS
from models.errors import NOTICES, InvalidRequest
from ui import settings as saved
from ui.bridge import Background, JobBridge, NoticeRelay
from ui.device_box import DeviceBox
from ui.finishing_box import FinishingBox
from ui.job_queue import JobQueue, Progress
from ui.marks import Marks
from ui.model_picker import ModelPicker, model_rows
from ui.model_settings import SETTINGS, ModelSettings, typed_value
from ui.player import Player
from ui.prompt_box import PromptBox
from ui.region import RegionBox
from ui.take_actions import TakeActions
from ui.takes_list import TakesList, library_rows
from ui.worker_box import WorkerBox

# How the panel names a request's fields in messages: by the label of the control that sets them.
LABELS = {"prompt": "Prompt", "model": "Model", "seconds": "Seconds", "takes": "Takes", "seed": "Seed",
          "preset": "Preset", "out": "Output folder", "host": "Host", "track": "Track",
          "device": "Device", "tempo_bpm": "BPM", "beats_per_bar": "Beats per bar", "loop": "Loop",
          "melody": "Melody clip", "worker": "Worker URL",
          **{field: label for field, (label, _) in SETTINGS.items()}}
Control = TypeVar("Control", bound=QWidget)  # `Panel._named` hands back the control with its own type


class Panel(QMainWindow):
    def __init__(self, engine=None, settings: QSettings | None = None, model: str | None = None,
                 host: str | None = None, out: str | Path | None = None, preset: str | None = None):
        super().__init__()
        self.setWindowTitle("daw-plugin")
        self.settings = settings if settings is not None else saved.panel_settings()
        self.bridge, self.background = JobBridge(self), Background(self)
        self.bridge.job_event.connect(self._on_event)
        self.notices = NoticeRelay(self)
        self.notices.said.connect(lambda text: self.say(f"Note: {text}"))
        logging.getLogger(NOTICES).addHandler(self.notices.handler)
        self.marks = Marks()
        self._library_read: Path | None = None  # the folder whose listing is awaited
        self._build()
        saved.restore(self, model, host, out, preset)
        if engine is None:
            from daw_plugin import Engine  # finishing's imports (scipy) take a moment: only when a panel opens

            engine, self._owns_engine = Engine(self.out_folder), True
        else:
            self._owns_engine = False
        self.engine = engine
        self.model.family_changed.connect(self._import_ahead)  # known once the model list is read, just below
        self.worker_box.choice.currentTextChanged.connect(lambda _: self._import_ahead(self.model.family))
        self.device_box.offer()  # which devices torch offers, asked on a worker thread
        chosen = self.model.model  # read here, on the UI thread
        self.background.run(lambda: model_rows(chosen), self._got_models)
        self.read_library()
        self.prompt.setFocus()

    # --- building ---------------------------------------------------------------------------------------

    def _build(self) -> None:
        self.prompt = self._named(PromptBox(saved.history(self.settings)), "Prompt")
        self.prompt.submitted.connect(self.generate)
        self.model = self._named(ModelPicker(), "Model")
        self.seconds = self._named(QDoubleSpinBox(), "Seconds")
        self.seconds.setRange(0.0, 100000.0)  # wider than a request allows: the request words the mistake
        self.seconds.setValue(5.0)
        self.takes = self._named(QSpinBox(), "Takes")
        self.takes.setRange(0, 1000)
        self.takes.setValue(1)
        self.seed = self._named(QLineEdit(), "Seed")
        self.seed.setPlaceholderText("random")
        self.seed_lock = self._named(QCheckBox("Lock"), "Lock seed")
        self.seed_lock.setToolTip("Locked: every Generate uses this seed. Unlocked: a new random seed each time.")
        self.model_settings = ModelSettings()
        self.model.family_changed.connect(lambda family: self.model_settings.show_for(family, self.model.melody))
        self.device_box = DeviceBox(self)  # the Device picker, and the warm model's device and memory
        self.finishing_box = FinishingBox(self)  # BPM and Loop
        self.worker_box = WorkerBox(self)  # Generate on: this computer, or a GPU server's URL and token
        self.preset = self._named(QComboBox(), "Preset")
        self.preset.setEditable(True)  # a user preset's name or a preset file's path can be typed
        self.preset.addItems(PRESETS)
        self.out = self._named(QLineEdit(), "Output folder")
        self.out.editingFinished.connect(self.read_library)
        self.choose_out = self._named(QPushButton("Choose…"), "Choose output folder")
        self.choose_out.clicked.connect(self._choose_out)
        self.host = self._named(QLineEdit(), "Host")
        self.host.setPlaceholderText("none, or session:DIR, audacity, reaper")
        self.generate_button = self._named(QPushButton("Generate"), "Generate")
        self.generate_button.setToolTip("Ctrl+Enter")
        self.generate_button.clicked.connect(self.generate)
        self.cancel_button = self._named(QPushButton("Cancel"), "Cancel")
        self.cancel_button.setToolTip("Esc: the selected job in the queue, else the one running")
        self.cancel_button.clicked.connect(self.cancel)
        self.unload_button = self._named(QPushButton("Unload model"), "Unload model")
        self.unload_button.clicked.connect(self.unload)
        self.progress = Progress()
        self.queue = self._named(JobQueue(), "Job queue")
        self.takes_list = self._named(TakesList(), "Takes list")
        self.take_actions = TakeActions(self)  # insert, drag out, show, regenerate, discard; the track
        self.player = Player(lambda: self.takes_list.selected_path() or next(iter(self.takes_list.paths()), None))
        self.player.said.connect(self.say)
        self.player.take_space_from(self.takes_list)  # where it would only select; elsewhere see keyPressEvent
        self.message = self._named(QLabel(), "Message")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.region = RegionBox(self)  # the clip under work, its region and Continue
        for keys in ("Ctrl+Return", "Ctrl+Enter"):
            QShortcut(QKeySequence(keys), self, self.generate)
        QShortcut(QKeySequence("Escape"), self, self.cancel)
        scroll = QScrollArea()  # a short screen still reaches every control
        scroll.setWidgetResizable(True)
        scroll.setWidget(self._layout())
        self.setCentralWidget(scroll)

    def _layout(self) -> QWidget:
        form = QFormLayout()
        form.addRow("Prompt", self.prompt)
        form.addRow("Model", self.model)
        form.addRow("Seconds", self.seconds)
        form.addRow("Takes", self.takes)
        form.addRow("Seed", _row(self.seed, self.seed_lock))
        form.addRow(self.model_settings)
        form.addRow("Preset", self.preset)
        form.addRow("BPM", _row(self.finishing_box.bpm, self.finishing_box.beats, self.finishing_box.loop))
        form.addRow("Device", self.device_box.picker)
        form.addRow("Generate on", self.worker_box)
        form.addRow("Output folder", _row(self.out, self.choose_out))
        form.addRow("Host", self.host)
        form.addRow("Track", self.take_actions.placement)
        column = QVBoxLayout()
        column.addLayout(form)
        column.addLayout(_row(self.generate_button, self.cancel_button, self.unload_button, widget=False))
        column.addWidget(self.region, 2)
        column.addWidget(self.progress)
        column.addWidget(self.device_box.status)
        column.addWidget(QLabel("Jobs"))
        column.addWidget(self.queue, 1)
        column.addWidget(QLabel("Takes"))
        column.addWidget(self.takes_list, 3)
        column.addWidget(self.take_actions.buttons)
        column.addWidget(self.player)
        column.addWidget(self.message)
        central = QWidget()
        central.setLayout(column)
        return central

    def _named(self, widget: Control, name: str) -> Control:
        """What a screen reader says, and how the tests find the control."""
        widget.setAccessibleName(name)
        widget.setObjectName(name)
        return widget

    def control(self, name: str) -> QWidget:
        """The control whose accessible name is ``name``."""
        return next(w for w in self.findChildren(QWidget) if w.accessibleName() == name)

    # --- asking -----------------------------------------------------------------------------------------

    def generate(self) -> None:
        self.ask()  # a slot's arguments (a click's "checked") must not reach the request

    def ask(self, **continuation):
        """Queue a job for what the controls say (``continuation``: a request's clip, region...) and return it;
        a bad value is marked at its control and nothing is queued."""
        self.marks.clear()
        if not self.seed_lock.isChecked():
            self.seed.setText(str(random.randrange(2**31)))  # shown, so a good take's seed is never lost
        if self.worker_box.on_server:
            self.worker_box.store_token()  # typed but not yet stored (Generate pressed from the field): sent now
        try:
            request = Request(prompt=self.prompt.prompt, model=self.model.model, seconds=self.seconds.value(),
                              takes=self.takes.value(), seed=typed_value("seed", self.seed.text()),
                              preset=self.preset.currentText().strip(), device=self.device_box.device,
                              worker=self.worker_box.worker,
                              **self.finishing_box.fields(),
                              **self.take_actions.placement_fields(self.host.text()),
                              **self.model_settings.values(), **continuation)
        except InvalidRequest as error:
            for problem in error.problems:
                self._mark(problem.fields, problem.worded(LABELS))
            self.say(error.worded(LABELS), error=True)
            return None
        job = self.engine.submit(request, self.out_folder)
        self.bridge.watch(job)
        self.queue.add(job, request.prompt)
        if request.prompt:  # a continuation may have none
            self.prompt.set_history(saved.remember_prompt(self.settings, request.prompt))
        self.say(f"Job #{job.number} queued: seed {request.seed}" + (f" to {request.seed + request.takes - 1}"
                                                                     if request.takes > 1 else "") + ".")
        return job

    def cancel(self) -> None:
        job = self.queue.chosen()
        if job is not None:
            job.cancel()  # never waits: the job ends at its next step and says so with an event
            self.queue.tell(job, "cancelling")

    def _import_ahead(self, family: str | None) -> None:
        """While the musician types, the engine imports what the chosen model loads with (`Engine.import_ahead`):
        the first Generate then waits for the weights only. A GPU server imports its own."""
        if not self.worker_box.on_server:
            self.engine.import_ahead(family)

    def unload(self) -> None:
        self.background.run(self.engine.unload, self._unloaded)

    def _unloaded(self, _: object, error: BaseException | None) -> None:
        self.device_box.refresh()
        self.say("The models are unloaded; the next job loads its model again." if error is None else str(error),
                 error=error is not None)

    @property
    def out_folder(self) -> Path:
        return Path(self.out.text().strip() or "takes").expanduser()

    def _choose_out(self) -> None:  # a modal dialog of the UI's own: it waits on the user, not the disk
        folder = QFileDialog.getExistingDirectory(self, "Output folder", str(self.out_folder))
        if folder:
            self.out.setText(folder)
            self.read_library()

    # --- what comes back ----------------------------------------------------------------------------------

    def _on_event(self, job, event: events.Event) -> None:
        """Every job's events, on the UI thread, in order."""
        self.device_box.on_event(event)
        if isinstance(event, events.Queued):
            self.queue.tell(job, "next" if event.position == 0 else f"queued, {event.position} ahead")
        elif isinstance(event, events.Downloading):
            total = f" of {event.total_bytes / 1e6:.0f}" if event.total_bytes else ""
            self._working(job, f"downloading the model: {event.done_bytes / 1e6:.0f}{total} MB")
        elif isinstance(event, events.Loading):
            self._working(job, f"loading {event.model}")
        elif isinstance(event, events.Step):
            self.progress.step(event)
            self.queue.tell(job, f"step {event.done} of {event.total}")
        elif isinstance(event, events.Preview):
            self.region.preview(job, event)
        elif isinstance(event, events.TakeDone):
            self.takes_list.add_take(event.path.parent.name, event.recipe.get("prompt", ""),
                                     event.recipe["seed"], event.score, event.path)
        elif isinstance(event, events.Inserted):
            self.say(f"Take {event.take + 1} is on track {event.track!r} at {event.start_seconds:.3f} s.")
        elif isinstance(event, events.FINAL):
            self._ended(job, event)

    def _working(self, job, text: str) -> None:
        self.progress.working(text)
        self.queue.tell(job, text)

    def _ended(self, job, event: events.Finished | events.Failed | events.Cancelled) -> None:
        self.queue.remove(job)
        if isinstance(event, events.Finished):
            self.say(f"Job #{job.number}: {len(event.paths)} take{'s' * (len(event.paths) != 1)} made.")
        elif isinstance(event, events.Cancelled):
            self.say(f"Job #{job.number} cancelled; takes already made are kept, no partial take was written.")
        else:  # Failed: a refused request's problems mark their fields in the panel's words; a model error, the picker
            marks = [(problem.fields, problem.worded(LABELS)) for problem in event.problems]
            if not marks and event.field is not None:
                marks = [((event.field,), event.message)]
            for fields, text in marks:
                self._mark(fields, text)
            self.say(event.worded(LABELS), error=True)
        self.progress.reset("Ready" if not self.queue.count() else "Waiting for the next job")

    @property
    def ready(self) -> bool:
        """No job queued or running."""
        return self.queue.count() == 0

    def say(self, text: str, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setStyleSheet("color: #b02020;" if error else "")

    def _mark(self, fields, message: str) -> None:
        controls = {"prompt": self.prompt, "model": self.model, "seconds": self.seconds, "takes": self.takes,
                    "seed": self.seed, "preset": self.preset, "out": self.out, "host": self.host,
                    "track": self.take_actions.track, "clip": self.region.waveform, "region": self.region.waveform,
                    "device": self.device_box.picker, "worker": self.worker_box.url,
                    **self.finishing_box.controls, **self.model_settings.controls}
        self.marks.mark(controls, fields, message)

    # --- the disk, on a worker thread -------------------------------------------------------------------

    def read_library(self) -> None:
        folder = self._library_read = self.out_folder
        self.background.run(lambda: library_rows(folder), lambda rows, error: self._got_library(folder, rows, error))

    def _got_library(self, folder: Path, rows, error) -> None:
        if folder != self._library_read:
            return  # the output folder changed meanwhile: a newer listing is on its way
        if error is not None:
            self.say(str(error) if isinstance(error, UserError) else f"Cannot list the takes: {error}", error=True)
        else:
            self.takes_list.show_library(rows)

    def _got_models(self, rows, error) -> None:
        if error is not None:
            self.say(f"Cannot list the models: {error}", error=True)
        else:
            self.model.set_rows(rows, self.model.model)

    # --- keys and closing ------------------------------------------------------------------------------

    def keyPressEvent(self, event: QKeyEvent | None) -> None:
        """Keys no control took: Esc cancels, Ctrl+Enter generates (the shortcuts, when the window is not active),
        Space plays or stops."""
        assert event is not None  # Qt always hands its handlers the event; None is only its C++ pointer type
        control = event.modifiers() & Qt.KeyboardModifier.ControlModifier
        if event.key() == Qt.Key.Key_Escape:
            self.cancel()
        elif control and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.generate()
        elif event.key() == Qt.Key.Key_Space and not event.modifiers():
            self.player.toggle()
        else:
            super().keyPressEvent(event)

    def closeEvent(self, event: QCloseEvent | None) -> None:
        saved.save(self)
        self.player.stop()
        logging.getLogger(NOTICES).removeHandler(self.notices.handler)
        if self._owns_engine:
            self.engine.close()  # cancels what runs and waits for its current step: the window is going
        super().closeEvent(event)


def _row(*widgets, widget: bool = True):
    layout = QHBoxLayout()
    layout.setContentsMargins(0, 0, 0, 0)
    for item in widgets:
        layout.addWidget(item)
    if not widget:
        return layout
    holder = QWidget()
    holder.setLayout(layout)
    return holder
