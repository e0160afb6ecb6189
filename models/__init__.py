"""Generators behind the plugin: torch, transformers and diffusers; no Qt and no DAW knowledge.

Heavy imports happen in the submodules, so importing this package stays cheap.
"""

from models.errors import Cancelled, UserError

__all__ = ["Cancelled", "UserError"]
