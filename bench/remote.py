"""The GPU-server worker (`daw-plugin serve`, Ray Serve) against the local engine, in one run on the CPU, on the
tests' tiny MusicGen (`bench/engine.py`'s `tiny_musicgen`: random weights, saved as a transformers folder and named
by its path, so nothing is downloaded):

1. per-take overhead: the same request (one take, seed 0, preset raw; one row for each of ``--seconds``) made by
   the local engine and by a local engine whose request names the worker (``Request(worker=URL)``, what
   ``--worker`` does: the raw take made on the server and streamed back as NDJSON, finished and saved here); both
   warm (a warm-up job each first), medians of ``--repeats`` interleaved runs, the difference in ms and the
   ratio; and what is left of the difference per streamed line (a Step or Preview event) once one
   ``GET /models`` round trip, which each job through the worker makes before it posts, is taken off;
2. two clients at once against one after another: two engines, each sending one ``--long-seconds`` job to the
   same worker, started together, against the same two jobs sent one after the other; medians of
   ``--pairs`` interleaved runs. Whether the two jobs' steps overlapped in time is printed too: the worker runs
   ``--replicas`` replicas (2), and only two replicas that really run at once make the first faster.

The worker is a real `daw-plugin serve` subprocess on a free port (its own local Ray, dashboard off), its token
from $DAW_PLUGIN_TOKEN, its replicas on ``--threads`` torch threads (OMP_NUM_THREADS, and the engine's rule: a
model this small runs on one thread); the local engine runs on ``--threads`` too. The server is always stopped
(SIGINT, then SIGKILL if it does not end). Starting Ray and the replicas takes some 30-60 s on a 2-core box.

    python bench/remote.py [--threads 1] [--seconds 1,4] [--repeats 9] [--long-seconds 30] [--pairs 5]
                           [--replicas 2]
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch
from engine import tiny_musicgen  # bench/ is on sys.path when a script here runs
from machine import machine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from daw_plugin import Engine, Request, events  # noqa: E402
from daw_plugin.remote.client import Worker  # noqa: E402
from models.errors import UserError  # noqa: E402

PROMPT = "dusty boom-bap drum loop 90 bpm"
START_SECONDS = 300.0  # Ray and the replicas' model loads, on a busy 2-core box


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`daw-plugin serve` in a subprocess, until `stop`; its output goes to ``log``."""

    def __init__(self, folder: Path, replicas: int, threads: int, token: str, log: Path):
        self.url, self.token, self.log = f"http://127.0.0.1:{free_port()}", token, log
        env = {**os.environ, "DAW_PLUGIN_TOKEN": token, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads),
               "RAY_DEDUP_LOGS": "0"}
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "daw_plugin.cli", "serve", "--models", str(folder),
                 "--port", self.url.rsplit(":", 1)[1], "--replicas", str(replicas)],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)

    def wait_healthy(self) -> float:
        """Seconds until ``GET /health`` answers; SystemExit with the log's tail if the server ends first."""
        start = time.perf_counter()
        while True:
            try:
                Worker(self.url, self.token).get("/health")
                Worker(self.url, self.token).get("/models")  # the replicas are up and their models loaded
                return time.perf_counter() - start
            except UserError:
                pass
            if self.process.poll() is not None or time.perf_counter() - start > START_SECONDS:
                self.stop()
                sys.exit(f"the worker did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(120)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def request(folder: Path, seconds: float, seed: int, threads: int, worker: str | None) -> Request:
    here = {} if worker else {"device": "cpu", "threads": threads}  # the worker's threads are its own
    return Request(PROMPT, model=str(folder), seconds=seconds, seed=seed, preset="raw", worker=worker, **here)


def one_take(engine: Engine, job: Request) -> tuple[float, float, float, int]:
    """(submit, first step, end) as perf_counter times, the job run to its take, and its Step and Preview events
    (each one NDJSON line when the take comes from the worker)."""
    marks: dict[str, float] = {"lines": 0}

    def on_event(event) -> None:
        if isinstance(event, (events.Step, events.Preview)):
            marks.setdefault("first step", time.perf_counter())
            marks["lines"] += 1

    start = time.perf_counter()
    assert len(engine.submit(job, on_event=on_event).result()) == 1
    return start, marks["first step"], time.perf_counter(), int(marks["lines"])


def overhead(folder: Path, url: str, work: Path, seconds: float, args) -> tuple[float, float, int]:
    """Median seconds of one take made here and through the worker, interleaved (each first in turn), and the
    job's streamed lines."""
    samples: dict[str, list[float]] = {"here": [], "worker": []}
    with Engine(work / "here") as here, Engine(work / "remote") as remote:
        engines = {"here": (here, None), "worker": (remote, url)}
        for engine, worker in engines.values():  # warm-up: the model load and first connection are not timed
            lines = one_take(engine, request(folder, seconds, 0, args.threads, worker))[3]
        for repeat in range(args.repeats):
            for way in ("here", "worker") if repeat % 2 == 0 else ("worker", "here"):
                engine, worker = engines[way]
                start, _, end, _ = one_take(engine, request(folder, seconds, 0, args.threads, worker))
                samples[way].append(end - start)
    return statistics.median(samples["here"]), statistics.median(samples["worker"]), lines


def round_trip(url: str, token: str, repeats: int) -> float:
    """Median seconds of ``GET /models`` (answered by the ingress from its cache: HTTP and Serve's proxy, no
    replica), which every job through the worker asks once before it posts."""
    worker = Worker(url, token)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        worker.get("/models")
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def together_and_in_a_row(folder: Path, url: str, work: Path, args) -> tuple[float, float, int]:
    """Median wall seconds of two clients' jobs sent together and one after the other, and in how many of the
    runs together the two jobs' steps overlapped (the second's first step before the first's end)."""
    samples: dict[str, list[float]] = {"together": [], "in a row": []}
    overlapped = 0
    with Engine(work / "a") as first, Engine(work / "b") as second:
        clients = (first, second)
        for seed, engine in enumerate(clients):  # warm-up: each client's first connection
            one_take(engine, request(folder, 1.0, seed, args.threads, url))

        def together() -> None:
            nonlocal overlapped
            spans: list[tuple[float, float, float, int]] = [(0.0, 0.0, 0.0, 0)] * 2

            def run(index: int) -> None:
                spans[index] = one_take(clients[index], request(folder, args.long_seconds, index, args.threads, url))

            threads = [threading.Thread(target=run, args=(index,)) for index in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            (_, step_a, end_a, _), (_, step_b, end_b, _) = spans
            overlapped += max(step_a, step_b) < min(end_a, end_b)

        def in_a_row() -> None:
            for index, engine in enumerate(clients):
                one_take(engine, request(folder, args.long_seconds, index, args.threads, url))

        for pair in range(args.pairs):
            for name, way in (("together", together), ("in a row", in_a_row))[::1 if pair % 2 == 0 else -1]:
                start = time.perf_counter()
                way()
                samples[name].append(time.perf_counter() - start)
    return statistics.median(samples["together"]), statistics.median(samples["in a row"]), overlapped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads, here and on each replica")
    parser.add_argument("--seconds", type=lambda text: [float(x) for x in text.split(",")], default=[1.0, 4.0],
                        help="the overhead comparison's takes, comma-separated")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--long-seconds", type=float, default=30.0, help="each job of the two-client comparison")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--replicas", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from transformers import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    token = secrets.token_hex(16)
    os.environ["DAW_PLUGIN_TOKEN"] = token  # the client's side of the token
    print(f"# remote worker: {machine('cpu')}, {os.cpu_count()} cores, torch {torch.__version__}, float32, CPU, "
          f"load average {os.getloadavg()[0]:.1f} at start\n")
    with tempfile.TemporaryDirectory() as workdir:
        work = Path(workdir)
        folder = tiny_musicgen(work)
        server = Server(folder, args.replicas, args.threads, token, work / "serve.log")
        try:
            started = server.wait_healthy()
            print(f"`daw-plugin serve --replicas {args.replicas}` answered after {started:.0f} s\n", flush=True)
            asking = round_trip(server.url, token, args.repeats)
            print(f"| tiny MusicGen, one take (median of {args.repeats}) | here | through the worker | overhead | "
                  "worker / here | lines streamed | overhead a line |\n|---|---:|---:|---:|---:|---:|---:|", flush=True)
            for seconds in args.seconds:
                here, remote, lines = overhead(folder, server.url, work, seconds, args)
                print(f"| {seconds:g} s | {here * 1000:.0f} ms | {remote * 1000:.0f} ms "
                      f"| {(remote - here) * 1000:+.0f} ms | {remote / here:.2f}x | {lines} "
                      f"| {(remote - here - asking) * 1000 / lines:.1f} ms |", flush=True)
            print(f"\nOne `GET /models` round trip (each job through the worker asks it once before it posts; "
                  f"taken off before the overhead a line): {asking * 1000:.1f} ms, median of {args.repeats}.\n",
                  flush=True)
            together, in_a_row, overlapped = together_and_in_a_row(folder, server.url, work, args)
            print(f"| two {args.long_seconds:g} s jobs, {args.replicas} replicas | two clients at once | one after "
                  f"another | in a row / at once | steps overlapped |\n|---|---:|---:|---:|---:|\n"
                  f"| median of {args.pairs} | {together:.2f} s | {in_a_row:.2f} s | {in_a_row / together:.2f}x "
                  f"| {overlapped} of {args.pairs} |", flush=True)
        finally:
            server.stop()
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
