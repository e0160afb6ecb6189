"""The type checker CI runs (`.venv/bin/mypy`, configured in pyproject.toml) holds a class to
`models.generator.Generator`: one that breaks the contract fails the check, naming what broke."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

HEADER = """\
import numpy as np
import torch

from models.generator import Generator


class Model:
    family = "musicgen"
    sample_rate = 32000
    channels = 1
    device = torch.device("cpu")
    default_guidance = 3.0
    supports_preview = False

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32
"""

GENERATE = """
    def generate(self, text: str | None, seconds: float, *, audio_prompt: np.ndarray | None = None,
                 preroll_seconds: float = 0.0, seed: int = 0, on_step=None, should_stop=None, on_preview=None,
                 **options) -> np.ndarray:
        return np.zeros((self.channels, round(seconds * self.sample_rate)), dtype=np.float32)
"""


def mypy(module: Path, cache: Path) -> subprocess.CompletedProcess:
    """The project's own mypy settings on ``module``, which imports `models` from this checkout."""
    command = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(cache),
               "--no-error-summary", str(module)]
    env = {**os.environ, "MYPYPATH": str(ROOT)}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)


def test_mypy_holds_a_class_to_the_generator_protocol(tmp_path, request):
    cache = request.config.cache.mkdir("mypy")  # numpy's and torch's stubs take a while to read the first time
    fits = tmp_path / "fits.py"
    fits.write_text(HEADER + GENERATE + "\n\nmodel: Generator = Model()\n")
    assert mypy(fits, cache).returncode == 0, mypy(fits, cache).stdout

    no_generate = tmp_path / "no_generate.py"
    no_generate.write_text(HEADER + "\n\nmodel: Generator = Model()\n")
    checked = mypy(no_generate, cache)
    assert checked.returncode == 1 and '"Model" is missing following "Generator" protocol member' in checked.stdout
    assert "    generate\n" in checked.stdout

    wrong_rate = tmp_path / "wrong_rate.py"
    wrong_rate.write_text(HEADER.replace("sample_rate = 32000", 'sample_rate = "32 kHz"') + GENERATE
                          + "\n\nmodel: Generator = Model()\n")
    checked = mypy(wrong_rate, cache)
    assert checked.returncode == 1 and 'sample_rate: expected "int", got "str"' in checked.stdout

    # One name for each argument in every family: a generate that calls `seconds` something else does not fit.
    renamed = tmp_path / "renamed.py"
    renamed.write_text(HEADER + GENERATE.replace("seconds", "duration") + "\n\nmodel: Generator = Model()\n")
    checked = mypy(renamed, cache)
    assert checked.returncode == 1 and 'Following member(s) of "Model" have conflicts' in checked.stdout
    assert "def generate(self, text: str | None, duration: float" in checked.stdout
