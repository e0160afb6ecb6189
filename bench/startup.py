"""How long a user waits before anything happens: `daw-plugin --help`, and a command to its first decode step.

Each figure is timed in a fresh subprocess (`python -m daw_plugin.cli ...` from this checkout), ``--repeats``
times, and the table gives the median and the spread (min-max):

1. ``--help``: the command to its exit;
2. ``generate`` with the tiny MusicGen folder (built as tests/fixtures/tiny_musicgen.py builds it, so loading
   and the text encoder cost next to nothing and what is left is importing): the command to its first decode
   step, which is when the progress bar first appears (the bar is made on the first step's event);
3. the same with the tiny AudioLDM 2 folder (tests/fixtures/tiny_audioldm2.py): to its first denoising step.

The disk is warm: one untimed run of each comes first. Then each command runs once more under
``python -X importtime``, and the largest imports are listed: top-level modules by cumulative time (what a
lazy import could save), and a few named stacks (torch, transformers, diffusers, scipy, ...) by the time
spent in their modules wherever they were imported from. ``-X importtime`` slows importing itself by about a
third; its figures are shares, the table's are the wall clock. Threads: 1 (``--threads 1``, OMP_NUM_THREADS=1).

    python bench/startup.py [--repeats 7] [--top 12]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIRST_STEP = re.compile(rb"takes?:")  # tqdm's bar, described "take" or "N takes", printed once a step is done
STACKS = ("torch", "transformers", "diffusers", "scipy", "sympy", "numpy", "pedalboard", "tokenizers",
          "safetensors", "huggingface_hub", "librosa", "PIL", "daw_plugin", "models")


def environment(workdir: Path) -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
            "DAW_PLUGIN_CACHE": str(workdir / "cache"), "DAW_PLUGIN_CONFIG": str(workdir / "config"),
            "HF_HOME": str(workdir / "hf")}


def build_models(workdir: Path) -> dict[str, Path]:
    """The tests' tiny folders, in a child process so that this one stays free of their imports."""
    script = (
        "import sys; from pathlib import Path; sys.path.insert(0, 'tests')\n"
        "from fixtures.tiny_musicgen import save_tiny_musicgen\n"
        "from fixtures.tiny_audioldm2 import save_tiny_audioldm2\n"
        f"save_tiny_musicgen(Path({str(workdir / 'musicgen-tiny')!r}))\n"
        f"save_tiny_audioldm2(Path({str(workdir / 'audioldm2-tiny')!r}))\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=environment(workdir), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return {"musicgen": workdir / "musicgen-tiny", "audioldm2": workdir / "audioldm2-tiny"}


def commands(models: dict[str, Path], workdir: Path) -> dict[str, list[str]]:
    def generate(model: str, seconds: str) -> list[str]:
        return ["generate", "rain on a tin roof", "--model", str(models[model]), "--seconds", seconds,
                "--seed", "1", "--threads", "1", "--device", "cpu", "--out", str(workdir / "takes" / model)]

    return {"--help": ["--help"], "MusicGen (tiny): first step": generate("musicgen", "0.5"),
            "AudioLDM 2 (tiny): first step": generate("audioldm2", "1")}


def seconds_to(args: list[str], env: dict[str, str], *, first_step: bool, python: list[str] | None = None) -> float:
    """Wall time from starting ``daw-plugin args`` to its first step (``first_step``) or to its exit."""
    command = [*(python or [sys.executable]), "-m", "daw_plugin.cli", *args]
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert process.stderr is not None
    seen, stderr = None, b""
    while chunk := process.stderr.read1(4096):
        stderr += chunk
        if seen is None and first_step and FIRST_STEP.search(stderr):
            seen = time.perf_counter() - start
    process.wait()
    ended = time.perf_counter() - start
    if process.returncode != 0 or (first_step and seen is None):
        raise SystemExit(f"{' '.join(args)} failed ({process.returncode}):\n{stderr.decode(errors='replace')}")
    return seen if first_step else ended


def import_shares(args: list[str], env: dict[str, str], top: int) -> tuple[list, list, set[str]]:
    """(top-level modules by cumulative seconds, stacks by their own modules' seconds, modules imported)."""
    command = [sys.executable, "-X", "importtime", "-m", "daw_plugin.cli", *args]
    lines = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True).stderr.splitlines()
    rows = []
    for line in lines:
        if match := re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)", line):
            rows.append((int(match[1]) / 1e6, int(match[2]) / 1e6, len(match[3]) // 2, match[4]))
    top_level = sorted(((cumulative, name) for _, cumulative, depth, name in rows if depth == 0), reverse=True)
    stacks: dict[str, float] = defaultdict(float)
    for own, _, _, name in rows:
        stacks[name.split(".")[0]] += own
    named = sorted(((stacks[name], name) for name in STACKS if stacks[name] > 0), reverse=True)
    return top_level[:top], named, {name for *_, name in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--top", type=int, default=12, help="top-level imports listed per command")
    options = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import torch
    from machine import machine  # noqa: E402  (bench/ is on sys.path now)

    torch.set_num_threads(1)  # as the children run: the machine line names it

    with tempfile.TemporaryDirectory(prefix="daw-plugin-startup-") as scratch:
        workdir = Path(scratch)
        env = environment(workdir)
        runs = commands(build_models(workdir), workdir)
        for name, args in runs.items():  # warm the disk, and the conversion or compile caches if any
            seconds_to(args, env, first_step=name != "--help")
        samples: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(options.repeats):  # interleaved, so a busy moment on the machine hits each alike
            for name, args in runs.items():
                samples[name].append(seconds_to(args, env, first_step=name != "--help"))

        print(f"Machine: {machine('cpu')}; python {sys.version.split()[0]}; load average "
              f"{os.getloadavg()[0]:.1f}; {options.repeats} runs each\n")
        print("| command | median s | min-max s |\n|---|---:|---:|")
        for name, values in samples.items():
            print(f"| {name} | {statistics.median(values):.2f} | {min(values):.2f}-{max(values):.2f} |")
        for name, args in runs.items():
            top_level, stacks, imported = import_shares(args, env, options.top)
            flags = ", ".join(f"{lib} {'yes' if lib in imported else 'no'}"
                              for lib in ("torch", "transformers", "diffusers"))
            print(f"\n{name} under -X importtime ({flags}):")
            print("  top-level imports, cumulative s: " + ", ".join(f"{n} {s:.2f}" for s, n in top_level))
            print("  by package, own s: " + ", ".join(f"{n} {s:.2f}" for s, n in stacks))


if __name__ == "__main__":
    main()
