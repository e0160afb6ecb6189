"""Choosing where a model runs."""

from __future__ import annotations

import torch

from models.errors import UserError

DEVICES = ("auto", "cuda", "mps", "cpu")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` prefers CUDA, then Apple's MPS, then the CPU; a named device must exist."""
    available = {"cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available(), "cpu": True}
    if name == "auto":
        return torch.device(next(d for d in ("cuda", "mps", "cpu") if available[d]))
    if name not in available:
        raise UserError(f"Unknown device {name!r}; use one of {', '.join(DEVICES)}.")
    if not available[name]:
        raise UserError(f"There is no {name.upper()} device on this machine; use --device cpu or --device auto.")
    return torch.device(name)
