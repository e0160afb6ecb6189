"""The visible queue of jobs (any of them can be cancelled) and the progress of the one running."""

from __future__ import annotations

import time
from collections.abc import Iterator

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QLabel, QListWidget, QListWidgetItem, QProgressBar, QVBoxLayout, QWidget

from daw_plugin import events

JOB_ROLE = Qt.ItemDataRole.UserRole


class JobQueue(QListWidget):
    """One row per job not yet ended, in the order they run."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._prompts: dict[int, str] = {}

    def add(self, job, prompt: str) -> None:
        item = QListWidgetItem()
        item.setData(JOB_ROLE, job)
        self.addItem(item)
        self._prompts[job.number] = prompt
        self.tell(job, "queued")

    def tell(self, job, state: str) -> None:
        item = self._item(job)
        if item is not None:
            item.setText(f"#{job.number} {self._prompts.get(job.number, '')!r}: {state}")

    def remove(self, job) -> None:
        item = self._item(job)
        if item is not None:
            self.takeItem(self.row(item))
        self._prompts.pop(job.number, None)

    def jobs(self) -> list:
        return [item.data(JOB_ROLE) for item in self._rows()]

    def chosen(self):
        """The selected job, else the first (the one running): what Cancel stops."""
        selected = self.selectedItems()
        jobs = [item.data(JOB_ROLE) for item in selected] or self.jobs()[:1]
        return jobs[0] if jobs else None

    def _item(self, job) -> QListWidgetItem | None:
        return next((item for item in self._rows() if item.data(JOB_ROLE) is job), None)

    def _rows(self) -> Iterator[QListWidgetItem]:
        """Every row's item, in order (Qt types item() as Optional for a row out of range; these are in range)."""
        return (item for row in range(self.count()) if (item := self.item(row)) is not None)


class Progress(QWidget):
    """A bar of the running batch's steps, with the time elapsed and the engine's estimate of the time left."""

    def __init__(self, parent=None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.bar = QProgressBar()
        self.bar.setAccessibleName("Progress")
        self.label = QLabel()
        self.label.setAccessibleName("Progress details")
        layout.addWidget(self.bar)
        layout.addWidget(self.label)
        self._started: float | None = None
        self.reset()

    def reset(self, text: str = "Ready") -> None:
        self._started = None
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.label.setText(text)

    def working(self, text: str) -> None:
        """A stage before the steps (loading, downloading): the bar moves without a count."""
        self._start()
        self.bar.setRange(0, 0)
        self.label.setText(text)

    def step(self, event: events.Step) -> None:
        self._start()
        self.bar.setRange(0, event.total)
        self.bar.setValue(event.done)
        left = "" if event.seconds_left is None else f", {_clock(event.seconds_left)} left"
        what = "take" if event.takes == 1 else f"{event.takes} takes"
        self.label.setText(f"{what}: step {event.done} of {event.total}, {_clock(self.elapsed)} elapsed{left}")

    @property
    def elapsed(self) -> float:
        return 0.0 if self._started is None else time.monotonic() - self._started

    def _start(self) -> None:
        if self._started is None:
            self._started = time.monotonic()


def _clock(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"
