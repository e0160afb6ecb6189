"""The seam between the engine's threads and the UI thread: nothing here touches a widget.

An engine job calls its subscribers on the inference thread; `JobBridge` turns each call into a Qt signal
delivered by a queued connection, so the panel's slots run on the UI thread, between its other events.
`Background` runs a slow call (listing the takes library, the model list, unloading) on a worker thread and
hands its result, or its error, back the same way. The UI thread never waits on either.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from PyQt6.QtCore import QObject, Qt, pyqtBoundSignal, pyqtSignal

Result = TypeVar("Result")


class JobBridge(QObject):
    """``job_event(job, event)`` on the UI thread for every event of every job it watches."""

    # Not `event`: that would hide QObject.event, which Qt calls for every event the bridge gets (a child
    # added, a deleteLater), and the signal in its place aborts the process.
    job_event = pyqtSignal(object, object)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._relay = _Relay()  # the signal is emitted on other threads; the queued connection brings it home
        _queued(self._relay.sent, self._forward)

    def _forward(self, job, event) -> None:  # on the UI thread
        self.job_event.emit(job, event)

    def watch(self, job) -> None:
        """Subscribe to ``job``: the engine calls back on its thread, and only emits a signal there."""
        job.subscribe(lambda event: self._relay.sent.emit(job, event))


class Background(QObject):
    """``run(call, done)``: ``call()`` on a worker thread, then ``done(result, error)`` on the UI thread."""

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        # The worker threads emit on this parentless relay, never on the Background itself: a panel closed while a
        # call still runs destroys the Background with it, and emitting on it then crashed the process now and
        # then. The relay lives as long as a thread holds it; the queued connection goes with the Background.
        self._relay = _Relay()
        _queued(self._relay.sent, self._deliver)
        self._running = 0

    @property
    def busy(self) -> bool:
        return self._running > 0

    def run(self, call: Callable[[], Result], done: Callable[[Result | None, BaseException | None], None]) -> None:
        self._running += 1
        threading.Thread(target=_work, args=(self._relay, call, done), name="daw-plugin-panel-worker",
                         daemon=True).start()

    def _deliver(self, done, outcome: tuple) -> None:
        self._running -= 1
        done(*outcome)


def _work(relay: _Relay, call, done) -> None:
    """A `Background` call on its worker thread, which holds the relay, not the Background."""
    try:
        result, error = call(), None
    except BaseException as caught:  # noqa: BLE001  (handed to the UI thread, which shows it)
        result, error = None, caught
    relay.sent.emit(done, (result, error))


class NoticeRelay(QObject):
    """``said(text)`` on the UI thread for each `models.errors.notify` notice; add ``handler`` to its logger."""

    said = pyqtSignal(str)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._relay = _Relay()
        _queued(self._relay.sent, self._said)
        self.handler = _Handler(self._relay)

    def _said(self, _, text: str) -> None:
        self.said.emit(text)


class _Handler(logging.Handler):
    def __init__(self, relay: _Relay):
        super().__init__()
        self.relay = relay

    def emit(self, record: logging.LogRecord) -> None:  # on whichever thread notified
        self.relay.sent.emit(None, record.getMessage())


class _Relay(QObject):
    sent = pyqtSignal(object, object)


def _queued(signal: pyqtBoundSignal, slot: Callable[..., None]) -> None:
    """Connect ``slot`` so that it runs on its own object's thread, whichever thread emits ``signal``."""
    # PyQt6's stub gives connect() only the slot; at run time it takes the connection type too.
    signal.connect(slot, Qt.ConnectionType.QueuedConnection)  # type: ignore[call-arg]
