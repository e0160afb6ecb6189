"""The panel's UI thread while a take is made: the real `ui.panel.Panel` (offscreen Qt) and the engine in one
Python process, driven as a user does (a prompt typed, Ctrl+Enter), on the CPU:

1. a 10 ms heartbeat (`QTimer`, precise) on the UI thread: the longest gap between its beats, their 99th
   percentile and median, and how many gaps passed 50 ms (the target: none), from the click to the job's end;
2. the time from the click to the first `Step` and the first `Preview` reaching the UI thread (the panel's
   `JobBridge` signal), and the longest wait of any event between its emission on the inference thread and its
   arrival on the UI thread;
3. what a gap is made of: each gap is put under the stage the inference thread was in when it began (start,
   load, steps, after the last step: final decode, finishing, saving); beside the heartbeat, a plain Python
   thread sleeps 1 ms at a time and records how late it wakes (it needs only the interpreter lock, not Qt's
   loop), and `gc.callbacks` time the garbage collector's passes (which stop every thread).

Each model runs two takes on one panel: the first loads the model ("cold"), the second finds it warm. Models: the
tests' tiny MusicGen (``--seconds``) and a random-weight MusicGen of musicgen-small's shape
(`bench/engine.py`'s `small_shape_musicgen`; ``--small-seconds``), once per ``--threads`` count (torch's
intra-op threads, handed to the engine in each request). A first row measures the heartbeat with no job at all:
what the shared machine alone costs. About 3 minutes on a 2-core box with the defaults.

    python bench/ui_latency.py [--seconds 10] [--small-seconds 3] [--threads 1,2] [--idle-seconds 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import itertools
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # must precede the first QApplication

import torch  # noqa: E402
from engine import small_shape_musicgen, tiny_musicgen  # noqa: E402  (bench/ is on sys.path)
from machine import machine  # noqa: E402
from PyQt6.QtCore import QSettings, Qt, QTimer  # noqa: E402
from PyQt6.QtTest import QTest  # noqa: E402
from PyQt6.QtWidgets import QApplication  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from daw_plugin import Engine, events  # noqa: E402
from ui.panel import Panel  # noqa: E402

TARGET_MS = 50.0
PROMPT = "dusty boom-bap drum loop 90 bpm"
STAGES = ("start", "load", "steps", "after")


class Heartbeat:
    """A 10 ms timer on the UI thread; ``beats`` are the perf_counter times its slot ran."""

    def __init__(self):
        self.beats: list[float] = []
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(10)
        self.timer.timeout.connect(lambda: self.beats.append(time.perf_counter()))

    def start(self) -> None:
        self.beats.clear()
        self.timer.start()

    def stop(self) -> list[tuple[float, float]]:
        """(start, length) of each gap between beats, in seconds."""
        self.timer.stop()
        return [(a, b - a) for a, b in itertools.pairwise(self.beats)]


class Pulse(threading.Thread):
    """Sleeps 1 ms at a time and records how late it wakes: a wait for the interpreter lock, not for Qt."""

    def __init__(self):
        super().__init__(daemon=True, name="ui-latency-pulse")
        self.lates: list[tuple[float, float]] = []  # (when it went to sleep, seconds late)
        self.running = True

    def run(self) -> None:
        while self.running:
            before = time.perf_counter()
            time.sleep(0.001)
            self.lates.append((before, time.perf_counter() - before - 0.001))


class GcTimes:
    """(start, seconds) of each garbage-collector pass, from `gc.callbacks`."""

    def __init__(self):
        self.passes: list[tuple[float, float]] = []
        self._began = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.passes.append((self._began, time.perf_counter() - self._began))


class TimedEngine(Engine):
    """The engine the panel gets: each request runs on ``threads`` torch threads, and every event's emission
    time on the inference thread is kept beside the event, so its arrival on the UI thread can be compared."""

    def __init__(self, out: Path, threads: int):
        super().__init__(out)
        self.threads, self.emitted = threads, []  # (perf_counter, event)

    def submit(self, request, out=None, on_event=None):
        request = dataclasses.replace(request, threads=self.threads)
        return super().submit(request, out, lambda event: self.emitted.append((time.perf_counter(), event)))


def stage_at(emitted: list[tuple[float, events.Event]], when: float) -> str:
    """What the inference thread was doing at ``when``, from the last event it had sent by then."""
    stage = "start"
    for sent, event in emitted:
        if sent > when:
            break
        if isinstance(event, events.Loading):
            stage = "load"
        elif isinstance(event, events.Step):
            stage = "after" if event.done >= event.total else "steps"
    return stage


@dataclasses.dataclass
class Take:
    label: str
    threads: int
    gaps: list[tuple[float, float]]
    first_step: float | None = None
    first_preview: float | None = None
    event_lag: float = 0.0
    step_ms: float | None = None
    pulse: list[tuple[float, float]] = dataclasses.field(default_factory=list)
    gc: list[tuple[float, float]] = dataclasses.field(default_factory=list)
    emitted: list = dataclasses.field(default_factory=list)
    imported: int = 0  # modules first imported during the take (an import holds the interpreter lock in C parts)

    def gc_share(self) -> str:
        """How much of the gaps over the target the garbage collector's passes inside them account for."""
        over = [(start, length) for start, length in self.gaps if length * 1000 > TARGET_MS]
        inside = sum(min(g0 + gl, p0 + pl) - max(g0, p0) for g0, gl in over for p0, pl in self.gc
                     if p0 < g0 + gl and p0 + pl > g0)
        return f"{inside / sum(length for _, length in over):.0%}" if over else ""

    def by_stage(self, pairs) -> dict[str, list[float]]:
        found: dict[str, list[float]] = {stage: [] for stage in STAGES}
        for when, length in pairs:
            found[stage_at(self.emitted, when)].append(length)
        return found


def ms(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds * 1000:.0f}"


def spread(gaps: list[float]) -> str:
    """max | p99 | median | gaps over the target, in ms."""
    if len(gaps) < 2:
        return "| | | |"
    p99 = statistics.quantiles(gaps, n=100, method="inclusive")[98]
    over = sum(gap * 1000 > TARGET_MS for gap in gaps)
    return f"{ms(max(gaps))} | {ms(p99)} | {ms(statistics.median(gaps))} | {over}"


def open_panel(engine: Engine, folder: Path, work: Path, name: str) -> Panel:
    panel = Panel(engine=engine, settings=QSettings(str(work / f"{name}.ini"), QSettings.Format.IniFormat),
                  model=str(folder), out=work / "takes")
    panel.show()
    QTest.qWaitForWindowExposed(panel)
    QTest.qWait(500)  # the model list and the takes library are read on worker threads: let them land
    return panel


def one_take(panel: Panel, engine: TimedEngine, seconds: float, label: str, timeout_s: float = 600) -> Take:
    """Type the prompt, press Ctrl+Enter, and wait on the event loop until the panel is ready again."""
    arrived: list[tuple[float, events.Event]] = []

    def on_event(job, event) -> None:  # connected after the panel's own slot: it runs once the panel's has
        arrived.append((time.perf_counter(), event))

    panel.bridge.job_event.connect(on_event)
    seconds_box = panel.control("Seconds")
    seconds_box.lineEdit().selectAll()
    QTest.keyClicks(seconds_box.lineEdit(), f"{seconds:g}")
    prompt = panel.control("Prompt")
    prompt.setFocus()
    prompt.selectAll()
    QTest.keyClicks(prompt, PROMPT)
    engine.emitted.clear()
    modules = len(sys.modules)
    heartbeat, pulse, gcs = Heartbeat(), Pulse(), GcTimes()
    heartbeat.start()
    pulse.start()
    clicked = time.perf_counter()
    QTest.keyClick(prompt, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    deadline = clicked + timeout_s
    while not panel.ready and time.perf_counter() < deadline:
        QTest.qWait(20)
    gaps = heartbeat.stop()
    pulse.running = False
    pulse.join()
    gc.callbacks.remove(gcs._callback)
    panel.bridge.job_event.disconnect(on_event)
    if not panel.ready:
        raise SystemExit(f"{label}: the take did not end in {timeout_s:g} s")
    if "made" not in panel.control("Message").text():
        raise SystemExit(f"{label}: {panel.control('Message').text()}")

    def first(kind) -> float | None:
        return next((when - clicked for when, event in arrived if isinstance(event, kind)), None)

    sent = {id(event): when for when, event in engine.emitted}
    steps = [when for when, event in engine.emitted if isinstance(event, events.Step) and event.done > 0]
    return Take(label, engine.threads, gaps, first(events.Step), first(events.Preview),
                max((when - sent[id(event)] for when, event in arrived if id(event) in sent), default=0.0),
                (steps[-1] - steps[0]) / (len(steps) - 1) if len(steps) > 1 else None,
                pulse.lates, gcs.passes, list(engine.emitted), len(sys.modules) - modules)


def idle(seconds: float) -> Take:
    heartbeat, pulse = Heartbeat(), Pulse()
    heartbeat.start()
    pulse.start()
    QTest.qWait(round(seconds * 1000))
    gaps = heartbeat.stop()
    pulse.running = False
    pulse.join()
    return Take("no job (the machine alone)", torch.get_num_threads(), gaps, pulse=pulse.lates)


def tables(takes: list[Take]) -> None:
    print("| model, take | threads | ms/step | click to first Step | to first Preview | heartbeat gap max "
          "| p99 | median | gaps over 50 ms | event emitted to UI, max |\n|---|" + "---:|" * 9)
    for take in takes:
        print(f"| {take.label} | {take.threads} | {'' if take.step_ms is None else f'{take.step_ms * 1000:.1f}'} "
              f"| {ms(take.first_step)} | {ms(take.first_preview)} | {spread([g for _, g in take.gaps])} "
              f"| {ms(take.event_lag) if take.emitted else ''} |")
    print("\nWhere the gaps are (ms): the heartbeat's longest gap and gaps over 50 ms in each stage; a Python "
          "thread's longest lateness on a 1 ms sleep (the interpreter lock alone); the longest garbage-collector "
          "pass.\n")
    print("| model, take | threads | " + " | ".join(f"{stage}: max gap (over 50)" for stage in STAGES)
          + " | Python thread late, max | gc pass, max | gc's share of the gaps over 50 ms | modules imported "
          "|\n|---|---:|" + "---:|" * (len(STAGES) + 4))
    for take in takes[1:]:
        gaps = take.by_stage(take.gaps)
        cells = " | ".join(f"{ms(max(found))} ({sum(g * 1000 > TARGET_MS for g in found)})" if found else ""
                           for found in gaps.values())
        print(f"| {take.label} | {take.threads} | {cells} | {ms(max((late for _, late in take.pulse), default=0))} "
              f"| {ms(max((length for _, length in take.gc), default=0))} | {take.gc_share()} | {take.imported} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="the tiny model's take")
    parser.add_argument("--small-seconds", type=float, default=3.0, help="the musicgen-small shape's take")
    parser.add_argument("--threads", default="1,2", help="torch threads for the musicgen-small shape, each a run")
    parser.add_argument("--idle-seconds", type=float, default=3.0)
    parser.add_argument("--no-small", action="store_true", help="only the tiny model")
    parser.add_argument("--gc-freeze", action="store_true",
                        help="gc.freeze() once the first panel is open: the collector skips what start-up made")
    args = parser.parse_args()
    from transformers import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    load = os.getloadavg()[0]
    torch.set_num_threads(1)
    print(f"# panel latency: {machine('cpu').rsplit(',', 1)[0]}, torch {torch.__version__}, python "
          f"{sys.version.split()[0]}, {os.cpu_count()} CPUs, GIL switch interval "
          f"{sys.getswitchinterval() * 1000:g} ms{', gc.freeze() after the panel opens' * args.gc_freeze}, "
          f"load average {load:.1f} at start\n", flush=True)
    with tempfile.TemporaryDirectory() as workdir:
        work = Path(workdir)
        for variable, folder in (("DAW_PLUGIN_CACHE", "cache"), ("DAW_PLUGIN_CONFIG", "config")):
            os.environ[variable] = str(work / folder)  # conversions and config stay in the throwaway folder
        runs = [("tiny MusicGen", tiny_musicgen(work), args.seconds, 1)]
        if not args.no_small:
            small = small_shape_musicgen(work)
            runs += [("musicgen-small shape", small, args.small_seconds, int(n)) for n in args.threads.split(",")]
        takes = [idle(args.idle_seconds)]
        for name, folder, seconds, threads in runs:
            with TimedEngine(work / "takes", threads) as engine:
                panel = open_panel(engine, folder, work, f"{name}-{threads}")
                if args.gc_freeze:
                    gc.freeze()
                for kind in ("cold", "warm"):
                    takes.append(one_take(panel, engine, seconds, f"{name}, {seconds:g} s, {kind}"))
                    print(f"# {takes[-1].label}, {threads} threads: done", file=sys.stderr, flush=True)
                panel.close()
        tables(takes)
    app.quit()


if __name__ == "__main__":
    main()
