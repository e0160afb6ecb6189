"""Take ``docs/panel.png``: the real panel window under Xvfb, mid-generation, with a waveform and a selected region.

Driven as a user would, on a tiny random MusicGen built in a temporary folder (the tests' own builder): a first
short take is made (so the takes list has one), a synthesized clip is opened, a region is dragged on its waveform,
Continue is clicked and a second job queued behind it. When the continuation's steps pass ``--at`` of their
total, the inference thread is held at that step, the window is grabbed (the progress bar part-way, the take
growing after the continuation point, the queue showing both jobs), and the job is then let go and cancelled.
Holding the step, rather than racing it, makes the picture the same on a fast machine and a slow one.

Settings, caches, models and takes all live in a temporary folder, never in the user's own.

    xvfb-run -a python scripts/screenshot.py [--out docs/panel.png] [--size 900]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "warm rhodes chords over a dusty boom-bap beat, 84 bpm"
EARLIER_PROMPT = "lo-fi piano loop, vinyl crackle"
SEED = "1984"
RATE = 32000  # the tiny MusicGen's rate: nothing is resampled
KEPT: list = []  # the QApplication, alive until os._exit
HOLD_TIMEOUT_S = 300.0  # the hold lets go by itself if the script dies before it does


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "panel.png", help="the PNG to write")
    parser.add_argument("--size", default="900", help="the window's WIDTHxHEIGHT in pixels; a WIDTH alone: as tall as "
                        "the panel likes to be, so every control shows without scrolling")
    parser.add_argument("--seconds", type=float, default=8.0, help="the continuation's length")
    parser.add_argument("--at", type=float, default=0.45, help="the share of the continuation's steps to grab at")
    parser.add_argument("--threads", type=int, default=1, help="torch's intra-op threads")
    args = parser.parse_args()
    try:
        args.width, args.height = (int(n) for n in (args.size.lower() + "x0").split("x")[:2])
    except ValueError:
        parser.error(f"--size takes WIDTHxHEIGHT or WIDTH, such as 900x1000, not {args.size!r}")
    return args


def isolate(work: Path) -> None:
    """Every setting, cache and download the panel or the engine might touch goes under ``work``. Before Qt."""
    for variable, folder in (("XDG_CONFIG_HOME", "config"), ("DAW_PLUGIN_CONFIG", "daw-plugin-config"),
                             ("DAW_PLUGIN_CACHE", "cache"), ("HF_HOME", "hf")):
        os.environ[variable] = str(work / folder)
    os.environ["HF_HUB_OFFLINE"] = os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["QT_QPA_PLATFORM"] = "xcb"  # the X server's window, not an inherited offscreen platform


def write_clip(path: Path, seconds: float = 6.0) -> Path:
    """A musical-sounding stereo clip: a plucked minor arpeggio over a kick on each beat, 96 bpm."""
    import numpy as np
    import soundfile

    t = np.arange(round(seconds * RATE)) / RATE
    beat = 60 / 96
    audio = np.zeros_like(t)
    for i, midi in enumerate([57, 60, 64, 67, 69, 67, 64, 60] * 4):  # A minor 7, up and down, in eighths
        start = i * beat / 2
        if start >= seconds:
            break
        tail = t[t >= start] - start
        pluck = sum(np.sin(2 * np.pi * 440 * 2 ** ((midi - 69) / 12) * k * tail) / k for k in (1, 2, 3))
        audio[t >= start] += 0.25 * pluck * np.exp(-tail * 5)
    for start in np.arange(0, seconds, beat):  # a kick: a falling sine, short
        tail = t[(t >= start) & (t < start + 0.25)] - start
        audio[(t >= start) & (t < start + 0.25)] += 0.6 * np.sin(2 * np.pi * (50 + 90 * np.exp(-tail * 30)) * tail) \
            * np.exp(-tail * 12)
    audio /= np.abs(audio).max() * 1.25
    stereo = np.stack([audio, np.roll(audio, 200)], axis=1).astype(np.float32)  # a little width
    soundfile.write(path, stereo, RATE)
    return path


def hold_engine(out: Path, threads: int, at: float):
    """An engine whose continuation jobs stop on the inference thread at their first step past ``at`` of the
    total, until ``release`` is set; ``held`` is set once one stops there."""
    from daw_plugin import Engine, events

    class HoldEngine(Engine):
        held, release = threading.Event(), threading.Event()

        def submit(self, request, out=None, on_event=None):
            request = dataclasses.replace(request, threads=threads)
            if request.clip is None:
                return super().submit(request, out, on_event)

            def hold(event) -> None:  # subscribed before the panel's bridge: the panel has seen the step before
                if isinstance(event, events.Step) and event.total and event.done >= at * event.total:
                    if not self.held.is_set():
                        self.held.set()
                        self.release.wait(HOLD_TIMEOUT_S)

            return super().submit(request, out, hold)

    return HoldEngine(out)


def fitted_height(panel) -> int:
    """The window height at which the panel's scroll area (its whole window: it has no menu or status bar) needs
    no scroll bar."""
    scroll = panel.centralWidget()
    return scroll.widget().sizeHint().height() + 2 * scroll.frameWidth()


def wait_until(condition, what: str, timeout_s: float = 600.0) -> None:
    """Run the event loop until ``condition()``; stop the script if it never comes."""
    import time

    from PyQt6.QtTest import QTest

    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"screenshot.py: gave up waiting for {what}")
        QTest.qWait(20)


def type_into(widget, text: str) -> None:
    from PyQt6.QtCore import Qt
    from PyQt6.QtTest import QTest

    editor = widget.lineEdit() if hasattr(widget, "lineEdit") else widget
    editor.setFocus()
    editor.selectAll()
    QTest.keyClick(editor, Qt.Key.Key_Delete)
    QTest.keyClicks(editor, text)


def drag(waveform, start_seconds: float, end_seconds: float) -> None:
    from PyQt6.QtCore import QPoint, Qt
    from PyQt6.QtTest import QTest

    y = waveform.height() // 2
    points = [QPoint(round(waveform.x_of(s)), y) for s in (start_seconds, (start_seconds + end_seconds) / 2,
                                                           end_seconds)]
    QTest.mousePress(waveform, Qt.MouseButton.LeftButton, pos=points[0])
    QTest.mouseMove(waveform, points[1])
    QTest.mouseRelease(waveform, Qt.MouseButton.LeftButton, pos=points[2])


def shoot(args: argparse.Namespace, work: Path) -> None:
    import torch
    from fixtures.tiny_musicgen import save_tiny_musicgen
    from PyQt6.QtCore import QSettings, Qt
    from PyQt6.QtTest import QTest
    from PyQt6.QtWidgets import QApplication
    from transformers import logging as transformers_logging

    from ui.panel import Panel

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    app = QApplication.instance() or QApplication([sys.argv[0]])
    KEPT.append(app)  # destroyed as shoot() returned, it crashed a worker thread still handing back a result
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(work / "qsettings"))
    model, clip = save_tiny_musicgen(work / "musicgen-tiny"), write_clip(work / "rhodes-loop.wav")
    engine = hold_engine(work / "takes", args.threads, args.at)
    panel = Panel(engine=engine, settings=QSettings(str(work / "panel.ini"), QSettings.Format.IniFormat),
                  model=str(model), out=work / "takes", preset="music-stem")
    try:
        panel.resize(args.width, args.height or 1000)
        panel.show()
        QTest.qWaitForWindowExposed(panel)
        wait_until(lambda: not panel.background.busy, "the model list and the takes library")

        QTest.mouseClick(panel.control("Lock seed"), Qt.MouseButton.LeftButton)  # the same seeds each run
        type_into(panel.control("Seed"), SEED)
        type_into(panel.control("Seconds"), "2")  # an earlier take, so the takes list holds one
        type_into(panel.control("Prompt"), EARLIER_PROMPT)
        QTest.keyClick(panel.control("Prompt"), Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
        wait_until(lambda: panel.ready, "the first take")
        if "made" not in panel.control("Message").text():
            raise SystemExit(f"screenshot.py: the first take failed: {panel.control('Message').text()}")

        waveform = panel.control("Waveform")
        panel.region.open_file(str(clip))  # what a dropped file or the Open clip dialog calls
        wait_until(lambda: waveform.clip_seconds > 0, "the clip")
        drag(waveform, 1.875, 4.375)  # two bars' worth of beats, on the beat
        type_into(panel.control("Seconds"), f"{args.seconds:g}")
        type_into(panel.control("Prompt"), PROMPT)
        QTest.mouseClick(panel.control("Continue"), Qt.MouseButton.LeftButton)
        QTest.mouseClick(panel.control("Generate"), Qt.MouseButton.LeftButton)  # a second job waits in the queue
        wait_until(engine.held.is_set, "the continuation to pass part-way")
        QTest.qWait(300)  # the events sent before the held step reach the UI thread
        if not args.height:  # measured now: the size hint grows with what the lists and the labels came to hold
            panel.resize(args.width, fitted_height(panel))
            QTest.qWait(100)
        if waveform.appended_frames == 0:
            raise SystemExit("screenshot.py: no preview of the take reached the waveform before the grab")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        if not panel.grab().save(str(args.out), "PNG"):
            raise SystemExit(f"screenshot.py: could not write {args.out}")
        print(f"{args.out}: {panel.width()}x{panel.height()}, {panel.control('Progress details').text()}")
    finally:
        engine.release.set()
        engine.close()  # cancels both jobs and waits for the current step; the panel closes only its own engine
        # A worker's answer (the device line's reading) delivered to a panel already gone crashes Qt at exit.
        for _ in range(100):
            if not panel.background.busy:
                break
            QTest.qWait(100)
        panel.close()
        app.processEvents()


def main() -> None:
    args = parse()
    if not os.environ.get("DISPLAY"):
        raise SystemExit("screenshot.py: no X display; run it under Xvfb: xvfb-run -a python scripts/screenshot.py")
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the panel, and the tests' tiny-model builder
    with tempfile.TemporaryDirectory(prefix="daw-plugin-screenshot-") as folder:
        isolate(Path(folder))
        shoot(args, Path(folder))


if __name__ == "__main__":
    main()
    # The picture is written and the temporary folder gone; Qt's own teardown at exit is skipped (it gains nothing).
    sys.stdout.flush()
    os._exit(0)
