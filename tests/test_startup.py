"""What a command imports before it can start (`bench/startup.py` times it; these tests keep the heavy libraries
off the paths that do not use them). Each check runs in a fresh interpreter, as a user's command does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "diffusers", "scipy")

# Runs `daw-plugin ARGS` in this process, then prints which of HEAVY it imported (a JSON list), whatever the exit.
PROBE = f"""
import json, sys
from daw_plugin import cli
try:
    status = cli.raw_main(sys.argv[1:])
finally:
    print(json.dumps([name for name in {HEAVY!r} if name in sys.modules]))
sys.exit(status)
"""


def run(*args: str) -> tuple[list[str], list[str]]:
    """(the heavy libraries `daw-plugin args` imported, its other lines on stdout); fails if the command failed."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    *printed, loaded = done.stdout.strip().splitlines()
    return json.loads(loaded), printed


def test_help_imports_neither_torch_nor_transformers():
    assert run("--help")[0] == []
    assert run("generate", "--help")[0] == []


@pytest.mark.parametrize("model", ["musicgen", "audiogen"])
def test_a_token_models_take_never_imports_diffusers(model, musicgen_dirs, converted, tmp_path):
    folder = musicgen_dirs["mono"] if model == "musicgen" else converted
    loaded, printed = run("generate", "rain", "--model", str(folder), "--seconds", "0.3", "--seed", "1",
                         "--threads", "1", "--device", "cpu", "--out", str(tmp_path))
    assert len(printed) == 1 and Path(printed[0]).is_file()  # the take was made: the path ran to its end
    assert "torch" in loaded and "transformers" in loaded  # the probe sees what was imported
    assert "diffusers" not in loaded


# An idle engine asked to import ahead, in a fresh interpreter: what it imported with no job submitted, and whether
# `close` came back while an import was still running (it does not wait for one).
AHEAD = """
import json, sys, time
from daw_plugin import Engine
engine = Engine()
before = [name for name in ("torch", "transformers") if name in sys.modules]
engine.import_ahead(sys.argv[1])
deadline = time.monotonic() + 120  # a broken import ahead ends the probe, not the test run
while not (engine._importing or "transformers" in sys.modules) and time.monotonic() < deadline:  # begun
    time.sleep(0.01)
if sys.argv[2] == "close":
    engine.close()
    print(json.dumps({"before": before, "closed_while_importing": engine._thread.is_alive()}))
else:
    while engine.importing and time.monotonic() < deadline:
        time.sleep(0.05)
    wanted = ("transformers.models.musicgen.modeling_musicgen", "diffusers")
    print(json.dumps({"before": before, "imported": [name for name in wanted if name in sys.modules]}))
    engine.close()
"""


def ahead(family: str, then: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", AHEAD, family, then], cwd=ROOT, env=env, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_an_idle_engine_imports_a_token_models_modules_ahead_and_not_diffusers():
    result = ahead("musicgen", "wait")
    assert result == {"before": [], "imported": ["transformers.models.musicgen.modeling_musicgen"]}


def test_closing_the_engine_does_not_wait_for_an_import_ahead():
    assert ahead("audioldm2", "close") == {"before": [], "closed_while_importing": True}


def test_on_a_terminal_the_command_says_it_is_loading_before_the_seconds_of_importing(musicgen_dirs, tmp_path):
    import fcntl
    import pty
    import struct
    import termios

    terminal, stderr = pty.openpty()  # a real terminal for the command's stderr: the line is for a person
    fcntl.ioctl(stderr, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns, else tqdm draws none
    command = [sys.executable, "-m", "daw_plugin.cli", "generate", "rain", "--model", str(musicgen_dirs["mono"]),
               "--seconds", "0.3", "--threads", "1", "--device", "cpu", "--out", str(tmp_path)]
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
                               stdout=subprocess.PIPE, stderr=stderr)
    os.close(stderr)
    seen = b""
    while True:
        try:
            chunk = os.read(terminal, 4096)
        except OSError:  # the command closed its end
            break
        if not chunk:
            break
        seen += chunk
    os.close(terminal)
    assert process.wait() == 0, seen
    text = seen.decode(errors="replace")
    assert text.index(f"daw-plugin: loading {musicgen_dirs['mono']}...") < text.index("take:")
