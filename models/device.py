"""Choosing where a model runs, and how many CPU threads it gets."""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys

import torch

from models.errors import UserError
from models.mps import say_once

DEVICES = ("auto", "cuda", "mps", "cpu")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` prefers CUDA, then Apple's MPS, then the CPU; a named device must exist."""
    available = {"cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available(), "cpu": True}
    if name == "auto":
        name = next(d for d in ("cuda", "mps", "cpu") if available[d])
    if name not in available:
        raise UserError(f"Unknown device {name!r}; use one of {', '.join(DEVICES)}.", field="device")
    if not available[name]:
        raise UserError(f"There is no {name.upper()} device on this machine; use --device cpu or --device auto.",
                        field="device")
    if name == "mps":
        say_once()  # whether ops MPS lacks run on the CPU (models.mps)
    return torch.device(name)


def out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is a GPU running out of memory: CUDA's own class, or Apple's MPS, which runs out as a
    RuntimeError "MPS backend out of memory (MPS allocated: ...). Tried to allocate ..."."""
    return isinstance(error, torch.OutOfMemoryError) or (
        isinstance(error, RuntimeError) and "MPS backend out of memory" in str(error))


def empty_cache(device_type: str) -> None:
    """Hand the allocator's cached blocks back to the GPU, so the next model (or another program) can use them."""
    if device_type == "cuda":
        torch.cuda.empty_cache()
    elif device_type == "mps":
        torch.mps.empty_cache()


def give_back_free_memory() -> None:
    """Return the C allocator's free pages to the system (glibc's ``malloc_trim``; elsewhere nothing). Packing a
    reduced precision's weights and dropping their float32 copies leave pages in malloc's arenas that the process
    would otherwise hold for good: 0.13-0.16 GB after loading musicgen-small's shape in int8 (docs/PERFORMANCE.md)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # a libc without malloc_trim (musl)
            ctypes.CDLL("libc.so.6").malloc_trim(0)


SMALL_MODEL_BYTES = 64 * 2**20  # under this much weight, one thread: the tests' tiny models are a few MB


def cpu_threads(weight_bytes: int, *, physical_cores: int | None = None, usable_cores: int | None = None,
                load: float | None = None) -> int:
    """How many threads torch gets on the CPU for a model holding ``weight_bytes`` of weights.

    The rule:

    - a small model (under `SMALL_MODEL_BYTES`) gets 1 thread: its ops are too small to split, and extra
      threads only add a synchronisation at every op;
    - a bigger one gets one thread per free physical core: ``min(physical cores, usable cores - busy)``, at
      least 1, where busy is the 1-minute load average rounded (other programs' runnable threads).

    torch's default is a thread per logical core whatever else runs, and its OpenMP threads wait on each other
    at every op: with a DAW (or anything) busy beside us, the slowest thread sets the pace. On a 2-core machine
    with the other core busy, 10 s of the tiny MusicGen took 61 s with the default and 2.2 s with one thread
    (`bench/threads.py` measures it). Hyper-threads are not counted: a decode step is bound by memory bandwidth,
    which a core's siblings share. The load average trails by about a minute, so a run that starts right after
    another may take a thread fewer than it could; ``--threads`` overrides the rule.

    The keyword arguments stand in for what is read from this machine (psutil) when left out.
    """
    if weight_bytes < SMALL_MODEL_BYTES:
        return 1
    import psutil

    usable = usable_cores or usable_core_count()
    physical = physical_cores or psutil.cpu_count(logical=False) or usable
    busy = round(psutil.getloadavg()[0] if load is None else load)
    return max(1, min(physical, usable - busy))


def usable_core_count() -> int:
    """Logical cores this process may run on (a container or `taskset` may allow fewer than the machine has)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def use_threads(threads: int) -> int:
    """Set torch's intra-op threads for this process; returns them."""
    if threads < 1:
        raise UserError(f"--threads must be 1 or more, not {threads}.", field="threads")
    torch.set_num_threads(threads)
    return threads
