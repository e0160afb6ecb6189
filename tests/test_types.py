"""The type checker CI runs (`.venv/bin/mypy`, configured in pyproject.toml) holds a class to
`models.generator.Generator`: one that breaks the contract fails the check, naming what broke."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

HEADER = """\
from collections.abc import Sequence

import numpy as np
import torch

from models.clip import Clip
from models.generator import MODEL_DEFAULTS, Generator, OnPreview, OnStep, Settings, ShouldStop


class Model:
    family = "musicgen"
    name = "This model"
    sample_rate = 32000
    channels = 1
    supports_preview = False
    threads: int | None = None
    precision = "float32"
    device = torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    def settings(self, given: Settings) -> Settings:
        return given
"""

GENERATE = """
    def generate(self, text: str | None, seconds: float, *, seeds: Sequence[int], settings: Settings = MODEL_DEFAULTS,
                 prompt: Clip | None = None, melody: Clip | None = None, preroll_seconds: float = 0.0,
                 on_step: OnStep | None = None, should_stop: ShouldStop | None = None,
                 on_preview: OnPreview | None = None) -> list[np.ndarray]:
        return [np.zeros((self.channels, round(seconds * self.sample_rate)), dtype=np.float32) for _ in seeds]
"""


def mypy(module: Path, cache: Path) -> subprocess.CompletedProcess:
    """The project's own mypy settings on ``module``, which imports `models` from this checkout."""
    command = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(cache),
               "--no-error-summary", str(module)]
    env = {**os.environ, "MYPYPATH": str(ROOT)}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)


def test_mypy_holds_a_class_to_the_generator_protocol(tmp_path, request):
    # numpy's and torch's stubs take a while to read the first time: kept in pytest's cache where there is one
    cache = request.config.cache.mkdir("mypy") if hasattr(request.config, "cache") else tmp_path / "mypy-cache"
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
