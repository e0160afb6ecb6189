"""What the benchmarks ran on, for the tables they print."""

import platform

import torch


def machine(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    return f"{cpu}, {torch.get_num_threads()} threads"
