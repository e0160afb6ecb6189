"""What the benchmarks ran on, and how they time a call on it."""

import platform
import time

import torch


def machine(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    return f"{cpu}, {torch.get_num_threads()} threads"


def seconds_for(call, device: str) -> float:
    """Wall time of ``call()``; on CUDA, after the queued kernels have finished."""
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    call()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start
