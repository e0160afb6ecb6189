"""The plugin core: requests, takes, audio values and (later) hosts. No Qt, and no torch at import time."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("daw-plugin")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"

from daw_plugin.audio import Clip, Region, read_clip, write_clip  # noqa: E402
from daw_plugin.request import GenerationRequest  # noqa: E402
from models.errors import Cancelled, UserError  # noqa: E402

Request = GenerationRequest  # the short name for scripts: Engine().submit(Request("rain", model=..., seconds=8))


def __getattr__(name: str):
    """`Engine` and `Job` load on first use: the engine brings finishing (scipy), seconds of imports."""
    if name in ("Engine", "Job"):
        from daw_plugin import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'daw_plugin' has no attribute {name!r}")


__all__ = ["Cancelled", "Clip", "Engine", "GenerationRequest", "Job", "Region", "Request", "UserError",
           "__version__", "read_clip", "write_clip"]
