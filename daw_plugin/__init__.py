"""The plugin core: requests, takes, audio values and (later) hosts. No Qt, and no torch at import time."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("daw-plugin")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"

from daw_plugin.audio import Clip, Region, read_clip, write_clip  # noqa: E402
from models.errors import Cancelled, UserError  # noqa: E402

__all__ = ["Cancelled", "Clip", "Region", "UserError", "__version__", "read_clip", "write_clip"]
