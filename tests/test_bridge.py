"""The seam between worker threads and the UI thread (ui/bridge.py), on real QObjects."""

import threading

import panel_helpers  # noqa: F401  (Qt offscreen)
from PyQt6 import sip
from PyQt6.QtCore import QObject

from ui.bridge import Background


def test_a_call_that_ends_after_its_panel_closed_is_dropped_not_a_crash(qtbot, monkeypatch):
    caught: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: caught.append(args.exc_value))
    owner = QObject()  # the panel
    background = Background(owner)
    release, delivered = threading.Event(), []
    background.run(lambda: release.wait(10) and "late", lambda result, error: delivered.append((result, error)))
    sip.delete(owner)  # the panel closes while the call runs: its Background goes with it
    release.set()
    qtbot.waitUntil(lambda: not any(t.name == "daw-plugin-panel-worker" for t in threading.enumerate()))
    qtbot.wait(50)  # time for a queued delivery, had one been kept
    assert caught == [] and delivered == []  # no emit on the destroyed object, and nothing delivered to it


def test_a_call_hands_back_its_result_or_its_error_on_the_ui_thread(qtbot):
    background, seen = Background(), []
    background.run(lambda: 42, lambda result, error: seen.append((result, error, threading.current_thread())))
    background.run(lambda: 1 / 0, lambda result, error: seen.append((result, type(error), None)))
    qtbot.waitUntil(lambda: len(seen) == 2)
    assert (42, None, threading.main_thread()) in seen and (None, ZeroDivisionError, None) in seen
    assert not background.busy
