"""A decode step's matrix products in the precision the decoder runs in (`models.precision`).

Each kernel is built once from a float32 weight ``[out, in]`` and called like ``F.linear(x, weight)`` on float32
activations ``[..., in]``, returning float32 ``[..., out]``: only the weights are held in fewer bytes, so the
residual stream, norms, attention and sampling are the same code in every mode.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache, partial

import torch
import torch.nn.functional as F

from models.device import usable_core_count

Linear = Callable[[torch.Tensor], torch.Tensor]


def linear(weight: torch.Tensor, precision: str) -> Linear:
    """``x -> x @ weight.T`` with ``weight`` held in ``precision`` (float32 and the GPU's halves: as it is)."""
    if weight.device.type != "cpu" or precision in ("float32", "float16") or weight.dtype != torch.float32:
        return partial(F.linear, weight=weight)
    if precision == "int8":
        return _int8(weight)
    if precision == "bfloat16":
        return _bfloat16(weight)
    raise ValueError(f"unknown precision {precision!r}")


def linears(weights: list[torch.Tensor], precision: str) -> list[Linear]:
    """`linear` for each of ``weights``; in int8, side by side on the usable cores. Quantising and packing a large
    model's weights is a one-off cost of seconds (5.5 s for musicgen-small's decoder on one core here,
    bench/packing.py) and each weight's is independent of the others': no step-by-step barrier for a busy core to
    hold up, which is why a decode step's threads are chosen with care (`models.device.cpu_threads`). torch keeps
    one thread per worker meanwhile, so that its own threads do not multiply the workers."""
    workers = min(len(weights), usable_core_count())
    if workers == 1 or precision != "int8":  # oneDNN's bfloat16 packing was no faster side by side (0.5 s alone)
        return [linear(weight, precision) for weight in weights]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(workers, thread_name_prefix="daw-plugin-pack") as pool:  # torch lets go of the GIL
            return list(pool.map(partial(linear, precision=precision), weights))
    finally:
        torch.set_num_threads(threads)


def _int8(weight: torch.Tensor) -> Linear:
    """Per-output-channel int8 weights; activations quantised per call, to 8 bits where the CPU has VNNI, else to
    7 (``reduce_range``, fbgemm's default, which keeps its int16 accumulation from saturating without VNNI).
    8 bits halved the logits' error on the tiny model (docs/PERFORMANCE.md)."""
    scale = (weight.abs().amax(dim=1) / 127).clamp_min(1e-12).double()
    with warnings.catch_warnings():  # torch points to torchao, which we do not ship; the kernels are the same
        warnings.simplefilter("ignore")
        quantised = torch.quantize_per_channel(weight, scale, torch.zeros_like(scale, dtype=torch.long), 0,
                                               torch.qint8)
        packed = torch.ops.quantized.linear_prepack(quantised, None)
    return partial(torch.ops.quantized.linear_dynamic, W_prepack=packed, reduce_range=not _vnni())


@cache
def _vnni() -> bool:
    """Whether the CPU multiplies int8 into int32 directly (AVX512-VNNI, AVX-VNNI; Linux says so; ARM has no
    fbgemm int16 step at all)."""
    import platform

    if platform.machine().lower() in ("arm64", "aarch64"):
        return True
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return "vnni" in cpuinfo.read()
    except OSError:
        return False


def _bfloat16(weight: torch.Tensor) -> Linear:
    """oneDNN's packed bfloat16 weights; float32 in and out (a plain bfloat16 ``linear`` was no faster here)."""
    packed = torch.ops.mkldnn._reorder_linear_weight(weight.to(torch.bfloat16), 2)

    def call(x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x.to(torch.bfloat16), packed, None, "none", [], "").float()

    return call
