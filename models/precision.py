"""How a token model's decoder holds its weights: the precision a user asks for, and what ``auto`` picks.

Only the LM's per-step matrix products change (`models.linear`), and, where the CPU has native bfloat16, the
KV cache of the reduced modes (`bfloat16_cache`); the text encoder, the codec, the embeddings and the norms stay
float32 on the CPU. On the CPU a decode step of a big model is bound by reading its weights (docs/PERFORMANCE.md),
so fewer bytes per weight is the only way past the float32 floor:

- ``int8``: each output channel's weights rounded to 8 bits with its own scale, activations quantised per call
  (torch's dynamic quantisation, fbgemm/x86 kernels; qnnpack on ARM): a quarter of the bytes;
- ``bfloat16``: half the bytes, through oneDNN's packed bfloat16 kernels where the CPU has native bfloat16;
- ``float16``: the GPU's default (the whole decoder halved, as before this option existed).

``auto`` (None): float16 on CUDA, and on the CPU the fastest mode that passed the quality checks
(`models.quality`, thresholds in docs/PERFORMANCE.md) on musicgen-small's shape: int8, for models big enough to be
bound by their weights; small models stay float32 (their step is overhead, which int8 does not shrink).
"""

from __future__ import annotations

PRECISIONS = ("float32", "bfloat16", "int8", "float16")
AUTO_INT8_BYTES = 64 * 2**20  # from this much weight on, auto picks int8 on the CPU (as models.device's threads)


def resolve_precision(precision: str | None, device_type: str, weight_bytes: int) -> str:
    """The precision a decoder on ``device_type`` runs in: ``precision``, checked, or ``auto``'s choice for a model
    holding ``weight_bytes``. Raises `UserError` (one sentence naming the fix) where this machine cannot run it."""
    from models.errors import UserError

    if precision in (None, "auto"):
        if device_type == "cuda":
            return "float16"
        if device_type == "cpu" and weight_bytes >= AUTO_INT8_BYTES and int8_available():
            return "int8"
        return "float32"
    if precision not in PRECISIONS:
        raise UserError(f"Unknown precision {precision!r}; use one of {', '.join(PRECISIONS)} or auto.")
    if device_type == "cpu":
        if precision == "float16":
            raise UserError("float16 runs on a GPU only; on the CPU use --precision int8, bfloat16 or float32.")
        if precision == "bfloat16" and not bfloat16_native():
            raise UserError("This CPU has no native bfloat16 (AVX512-BF16 or AMX); use --precision int8 or float32.")
        if precision == "int8" and not int8_available():
            raise UserError("This build of torch has no int8 CPU kernels (fbgemm or qnnpack); use --precision "
                            "float32.")
    elif precision == "int8":
        raise UserError(f"int8 runs on the CPU only; on {device_type} use --precision float16, bfloat16 or float32.")
    return precision


def bfloat16_native() -> bool:
    """Whether oneDNN runs bfloat16 matrix products natively here (AVX512-BF16, AMX), not emulated in float32."""
    import torch

    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def bfloat16_cache(precision: str, device_type: str) -> bool:
    """Whether a decoder in ``precision`` keeps its KV cache in bfloat16: a long take's step reads more cache than
    int8 weights (docs/PERFORMANCE.md), and attention over a bfloat16 cache is 1.5-2.2x faster where the CPU has
    native bfloat16. float32 keeps its cache: it is the exact reference the other modes are checked against."""
    return device_type == "cpu" and precision in ("int8", "bfloat16") and bfloat16_native()


def int8_available() -> bool:
    import torch

    return any(engine in torch.backends.quantized.supported_engines for engine in ("x86", "fbgemm", "qnnpack"))
