"""Milliseconds per decode step on a busy machine: the threads `models.device.cpu_threads` chooses vs torch's default.

A DAW beside us keeps cores busy; here a spinning process per core but one stands in for it. Each model runs
our decode loop (`models.lm.CodecLM`, batch 1 with classifier-free guidance, top-k 250) with the chosen number
of threads and with torch's default (a thread per core), interleaved, and the table gives the median ms per
step of each and default / chosen. A step's cost is measured differentially, (T(n2) - T(n1)) / (n2 - n1), as in
`bench/decode.py`, on the same two shapes: the tests' tiny model and musicgen-small's decoder (random weights,
built from its config; nothing is downloaded). Run it without OMP_NUM_THREADS, which changes torch's default.

    python bench/threads.py [--repeats 5] [--spinners N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from decode import PROMPT, SHAPES, build  # bench/ is on sys.path when a script here runs
from machine import machine, seconds_for
from transformers import logging as transformers_logging

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from models.device import cpu_threads  # noqa: E402
from models.lm import CodecLM  # noqa: E402
from models.sampling import Sampling  # noqa: E402

STEPS = {"tiny (2 x 32)": (20, 120), "musicgen-small shape (24 x 1024)": (4, 12)}  # n1, n2: fewer than decode.py's


def per_step_ms(lm: CodecLM, threads: dict[str, int], steps: tuple[int, int], repeats: int) -> dict[str, float]:
    """Median ms per step for each named thread count, runs interleaved so a busy moment hits each alike."""
    delay = lm.num_codebooks - 1

    def run(n: int) -> None:  # n pattern steps hold n - delay frames
        lm.generate(PROMPT, (n - delay) / lm.frame_rate, sampling=Sampling(guidance=3.0, top_k=250), seed=0)

    samples = {name: [] for name in threads}
    for count in threads.values():  # warm-up: first calls allocate, and OpenMP starts its threads
        torch.set_num_threads(count)
        run(steps[0])
    n1, n2 = steps
    for _ in range(repeats):
        for name, count in threads.items():
            torch.set_num_threads(count)
            t1, t2 = seconds_for(lambda: run(n1), "cpu"), seconds_for(lambda: run(n2), "cpu")
            samples[name].append(1000 * (t2 - t1) / (n2 - n1))
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--spinners", type=int, default=max(1, (os.cpu_count() or 2) - 1),
                        help="busy processes beside the model (default: one per core but one)")
    args = parser.parse_args()
    if "OMP_NUM_THREADS" in os.environ:
        sys.exit("Unset OMP_NUM_THREADS: it changes torch's default, which is what this compares against.")
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    default = torch.get_num_threads()
    print(f"# decode step on a busy machine: {machine('cpu')}, {args.spinners} spinning process(es), "
          f"torch {torch.__version__}, float32, load average {os.getloadavg()[0]:.1f} at start")
    print("| model | weights | chosen threads | ms/step | default threads | ms/step | default / chosen |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.spinners)]
    try:
        with tempfile.TemporaryDirectory() as workdir:
            for name, (decoder, text_width, _) in SHAPES.items():
                model, tokenizer = build(decoder, text_width, Path(workdir), "cpu")
                size = sum(p.numel() * p.element_size() for p in model.parameters())
                # The rule as load_generator applies it, with the load this bench arranges (the machine's own
                # load average trails by a minute, and other users of a shared machine come and go).
                chosen = cpu_threads(size, load=args.spinners)
                lm = CodecLM(model, tokenizer, window_seconds=30.0, extend_stride_seconds=10.0)
                ms = per_step_ms(lm, {"chosen": chosen, "default": default}, STEPS[name], args.repeats)
                print(f"| {name} | {size / 2**20:,.0f} MiB | {chosen} | {ms['chosen']:.2f} | {default} | "
                      f"{ms['default']:.2f} | {ms['default'] / ms['chosen']:.1f}x |", flush=True)
                del model, lm
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


if __name__ == "__main__":
    main()
