"""Reading a JSON file people edit by hand (``models.json``, a session's ``session.json``).

A file that is not a JSON object stops whatever needs it with one line naming the file, the line and
column of a syntax error, and the fix; the file itself is never touched here.
"""

from __future__ import annotations

import json
from pathlib import Path

from models.atomic_files import os_reason
from models.errors import UserError


def read_json_object(path: Path, fix: str, *, holding: str = "a JSON object", missing: dict | None = None,
                     error: type[UserError] = UserError) -> tuple[dict, str]:
    """``path``'s object and its text (to point at a key's line); ``missing`` (and "") when there is no file.

    ``fix`` ends each message ("fix it in a text editor"), ``holding`` says what the file should hold, and
    ``error`` is the `UserError` to raise (a host raises `HostError`). Without ``missing`` a missing file is
    an error like any other file that cannot be read.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as failure:
        if missing is not None:
            return missing, ""
        raise error(f"Cannot read {path} ({os_reason(failure)}); make it readable and try again.") from failure
    except UnicodeDecodeError as failure:
        raise error(f"{path} is not UTF-8 text; {fix}.") from failure
    except OSError as failure:
        raise error(f"Cannot read {path} ({os_reason(failure)}); make it readable and try again.") from failure
    try:
        value = json.loads(text)
    except json.JSONDecodeError as failure:
        raise error(f"{path} is not valid JSON ({failure.msg} at line {failure.lineno} column {failure.colno}); "
                    f"{fix}.") from failure
    if not isinstance(value, dict):
        raise error(f"{path} must hold {holding}, not {_json_kind(value)}; {fix}.")
    return value, text


def _json_kind(value) -> str:
    """What JSON calls ``value``'s type, with its article: "a list", "a string", "null"."""
    return {list: "a list", str: "a string", bool: "true or false", type(None): "null"}.get(type(value), "a number")
