"""Apple's MPS, checked without a Mac: the CPU fallback is turned on before torch loads, and said once.

There is no MPS device here. Where a test needs one, a STAND-IN takes its place: ``sys.platform = "darwin"`` for
a Mac, and ``torch.backends.mps.is_available`` answering True for its GPU. What has and has not been tried on a
real Mac is in the README (Apple silicon).
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import models.mps
from daw_plugin.engine import Engine, _is_out_of_memory
from models.device import resolve_device
from models.errors import NOTICES
from models.mps import FALLBACK, allow_cpu_fallback, notice

ROOT = Path(__file__).resolve().parents[1]


def test_the_fallback_is_set_on_a_mac_unless_the_user_chose_or_torch_has_loaded():
    environ: dict[str, str] = {}
    assert allow_cpu_fallback(environ, "darwin", torch_loaded=False) and environ == {FALLBACK: "1"}
    chosen = {FALLBACK: "0"}
    assert not allow_cpu_fallback(chosen, "darwin", torch_loaded=False) and chosen == {FALLBACK: "0"}
    late: dict[str, str] = {}  # torch read the variable as it loaded: setting it now would change nothing
    assert not allow_cpu_fallback(late, "darwin", torch_loaded=True) and late == {}
    linux: dict[str, str] = {}
    assert not allow_cpu_fallback(linux, "linux", torch_loaded=False) and linux == {}


def test_the_cli_sets_the_fallback_before_torch_loads():
    # STAND-IN Mac: sys.platform says darwin while the CLI is imported (only then: torch's own imports would
    # look for macOS modules). Its first import of `models` must set the variable while torch is still unloaded.
    code = ("import os, sys; real, sys.platform = sys.platform, 'darwin'\n"
            "os.environ.pop('PYTORCH_ENABLE_MPS_FALLBACK', None)\n"
            "import daw_plugin.cli\n"
            "sys.platform = real\n"
            "print(os.environ.get('PYTORCH_ENABLE_MPS_FALLBACK'), 'torch' in sys.modules)\n"
            "import models.device\n"
            "print(os.environ.get('PYTORCH_ENABLE_MPS_FALLBACK'), 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.split("\n")[:2] == ["1 False", "1 True"]


def test_auto_picks_mps_and_says_how_missing_ops_run_once(monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)  # STAND-IN for a Mac's GPU
    monkeypatch.setattr(models.mps, "_said", False)
    monkeypatch.setattr(models.mps, "_fallback_on", True)
    with caplog.at_level(logging.WARNING, logger=NOTICES):
        assert resolve_device("auto").type == "mps"
        assert resolve_device("mps").type == "mps"  # the engine resolves again for every job
    said = [record.getMessage() for record in caplog.records if record.name == NOTICES]
    assert said == [notice(True)]
    assert f"{FALLBACK}=1" in said[0] and "--device cpu" in said[0]


def test_the_notice_without_the_fallback_names_how_to_turn_it_on():
    text = notice(False)
    assert f"start with {FALLBACK}=1" in text and "--device cpu" in text


@pytest.mark.parametrize(("error", "expected"), [
    (RuntimeError("MPS backend out of memory (MPS allocated: 7.64 GiB, other allocations: 68.91 GiB, max allowed: "
                  "88.13 GiB). Tried to allocate 33.92 GiB on private pool."), True),  # torch's text on a Mac
    (RuntimeError("shape mismatch"), False),
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), True),
])
def test_running_out_of_mps_memory_is_told_as_running_out_of_memory(error, expected):
    assert _is_out_of_memory(error) is expected


def test_freeing_models_hands_the_gpu_cache_back_on_mps_and_cuda(tmp_path, monkeypatch):
    # STAND-IN: no GPU here, so torch's cache calls are recorded instead of run; the generators only name a device
    emptied = []
    monkeypatch.setattr(torch.mps, "empty_cache", lambda: emptied.append("mps"))
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append("cuda"))
    with Engine(tmp_path) as engine:
        for device in ("mps", "cpu", "cuda", "mps"):
            engine._warm.append(SimpleNamespace(generator=SimpleNamespace(device=torch.device(device))))
        engine._free()
        assert engine._warm == [] and sorted(emptied) == ["cuda", "mps"]
