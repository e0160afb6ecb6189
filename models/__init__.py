"""Generators behind the plugin: torch, transformers and diffusers; no Qt and no DAW knowledge.

Heavy imports happen in the submodules, so importing this package stays cheap.
"""

from models.mps import allow_cpu_fallback

allow_cpu_fallback()  # before any module of ours imports torch: torch reads it once, as it loads (see models.mps)

from models.errors import Cancelled, UserError  # noqa: E402

__all__ = ["Cancelled", "UserError"]
