"""Apple's GPU (MPS): the CPU fallback for the ops it lacks, turned on before torch loads, and said once.

torch runs an op that MPS lacks on the CPU only when ``PYTORCH_ENABLE_MPS_FALLBACK=1`` is set as its library
loads: it reads the variable once, while registering its MPS kernels (aten/src/ATen/mps/MPSFallback.mm), and
without it such an op raises NotImplementedError. So `models/__init__.py` calls `allow_cpu_fallback` before any
module of ours imports torch, and the first time a generator is placed on MPS, `say_once` tells the user which
way it went. The decode loop and the codec need no MPS code of their own: they run on the device the model's
weights are on (`models.lm.CodecLM.device`), sampling included (a ``torch.Generator`` on that device).

No torch import here: this runs at ``import models``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

FALLBACK = "PYTORCH_ENABLE_MPS_FALLBACK"
_fallback_on: bool | None = None  # what torch will do with an op MPS lacks; set by allow_cpu_fallback
_said = False


def allow_cpu_fallback(environ: MutableMapping[str, str] = os.environ, platform: str | None = None,
                       torch_loaded: bool | None = None) -> bool:
    """On a Mac, set ``PYTORCH_ENABLE_MPS_FALLBACK=1`` unless the user set it or torch has loaded already;
    returns whether ops MPS lacks will run on the CPU (False off a Mac, where there is no MPS)."""
    global _fallback_on
    platform = sys.platform if platform is None else platform
    loaded = "torch" in sys.modules if torch_loaded is None else torch_loaded
    if platform == "darwin" and FALLBACK not in environ and not loaded:
        environ[FALLBACK] = "1"
    _fallback_on = platform == "darwin" and environ.get(FALLBACK, "0").strip() not in ("", "0")
    return _fallback_on


def notice(fallback_on: bool) -> str:
    if fallback_on:
        return (f"Running on Apple's GPU (MPS): any op it lacks runs on the CPU instead ({FALLBACK}=1), correct "
                "but slower; if takes come slowly, compare with --device cpu.")
    return (f"Running on Apple's GPU (MPS) without the CPU fallback for ops it lacks, so such an op would stop "
            f"generation; start with {FALLBACK}=1 set in the environment, or use --device cpu.")


def say_once() -> None:
    """The notice for a generator placed on MPS, the first time only (a process places many)."""
    global _said
    if _said:
        return
    _said = True
    from models.errors import notify

    notify(notice(bool(_fallback_on)))
