"""The panel's first Generate: from submitting a job to its first decode step, on an engine that has imported
ahead (`Engine.import_ahead`, what the panel asks for once it knows the chosen model) against a cold one.

Each sample is a fresh interpreter that makes an `Engine`, as the panel does when it opens. "cold" submits at
once; "imported ahead" first asks the engine to import the model's family and waits until it has (the musician
typing a prompt), then submits. The time is from `submit` to the job's first `Step` event. The models are the
tests' tiny ones, so loading weights costs next to nothing and what is left is importing and loading's overhead.
A ticker thread beside them wakes every 5 ms; its longest wait is how long a Qt UI thread would have waited for
the interpreter while the import ran (the same import happens in both columns, only earlier in the second).

    python bench/first_job.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, sys, threading, time
from daw_plugin import Engine, Request, events

model, family, out, ahead = sys.argv[1:5]
longest, ticking = [0.0], [True]

def tick():  # what a UI thread's 5 ms timer would see: the longest time it waited to run
    last = time.perf_counter()
    while ticking[0]:
        time.sleep(0.005)
        now = time.perf_counter()
        longest[0] = max(longest[0], now - last - 0.005)
        last = now

threading.Thread(target=tick, daemon=True).start()
engine = Engine(out)
if ahead == "yes":
    engine.import_ahead(family)
    while engine.importing:
        time.sleep(0.01)
stepped = threading.Event()
start = time.perf_counter()
job = engine.submit(Request("rain on a tin roof", model=model, seconds=0.5, seed=1, threads=1, device="cpu"),
                    on_event=lambda event: isinstance(event, events.Step) and stepped.set())
stepped.wait()
first_step = time.perf_counter() - start
job.result()
ticking[0] = False
engine.close()
print(json.dumps({"first_step": first_step, "longest_wait": longest[0]}))
"""


def sample(model: Path, family: str, out: Path, ahead: bool, env: dict[str, str]) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(model), family, str(out), "yes" if ahead else "no"],
                          cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    options = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from machine import machine  # noqa: E402  (bench/ is on sys.path now)
    from startup import build_models, environment  # noqa: E402

    with tempfile.TemporaryDirectory(prefix="daw-plugin-first-job-") as scratch:
        workdir = Path(scratch)
        env = environment(workdir)
        models = build_models(workdir)
        for family, folder in models.items():  # warm the disk
            sample(folder, family, workdir / "takes", False, env)
        rows = []
        for family, folder in models.items():
            runs: dict[bool, list[dict]] = {False: [], True: []}
            for _ in range(options.repeats):  # interleaved, so a busy moment hits both alike
                for ahead in (False, True):
                    runs[ahead].append(sample(folder, family, workdir / "takes", ahead, env))
            rows.append((family, runs))

    print(f"Machine: {machine('cpu')}; python {sys.version.split()[0]}; load average {os.getloadavg()[0]:.1f}; "
          f"{options.repeats} runs each, medians (min-max)\n")
    print("| tiny model | submit to first step, cold s | imported ahead s | cold / ahead | longest 5 ms-tick wait, "
          "cold ms | ahead ms |\n|---|---:|---:|---:|---:|---:|")
    for family, runs in rows:
        cold, warm = ([r["first_step"] for r in runs[a]] for a in (False, True))
        waits = [statistics.median(r["longest_wait"] for r in runs[a]) * 1000 for a in (False, True)]
        print(f"| {family} | {statistics.median(cold):.2f} ({min(cold):.2f}-{max(cold):.2f}) | "
              f"{statistics.median(warm):.2f} ({min(warm):.2f}-{max(warm):.2f}) | "
              f"{statistics.median(cold) / statistics.median(warm):.1f}x | {waits[0]:.0f} | {waits[1]:.0f} |")


if __name__ == "__main__":
    main()
