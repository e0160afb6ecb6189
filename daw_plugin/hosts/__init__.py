"""Hosts: where takes land. `open_host` turns a ``--host`` value into an adapter.

Adapters are imported only when asked for, so a missing optional dependency (reapy) or a host
that is not running costs nothing until it is used.
"""

from __future__ import annotations

from pathlib import Path

from daw_plugin.hosts.base import Host, HostError, Placement, Selection, Track, one_read

HOST_SPECS = ("session:DIR", "audacity", "reaper")

__all__ = ["HOST_SPECS", "Host", "HostError", "Placement", "Selection", "Track", "one_read", "open_host"]


def open_host(spec: str, create_session: bool = False) -> Host:
    """``session:DIR``, ``audacity`` or ``reaper`` -> an adapter (not yet connected).

    ``create_session``: a session folder that does not exist yet (or is empty) is created with the
    defaults on the first insert, as ``--host session:DIR`` promises; checks alone never create one.
    """
    kind, _, argument = spec.partition(":")
    if kind == "session":
        if not argument:
            raise HostError("--host session needs a folder: use session:DIR.")
        from daw_plugin.hosts.session import SessionHost

        return SessionHost(Path(argument).expanduser(), create_missing=create_session)
    if kind == "audacity":
        from daw_plugin.hosts.audacity import AudacityHost

        return AudacityHost()
    if kind == "reaper":
        from daw_plugin.hosts.reaper import ReaperHost

        return ReaperHost()
    raise HostError(f"Unknown host {spec!r}; use one of {', '.join(HOST_SPECS)}.")
