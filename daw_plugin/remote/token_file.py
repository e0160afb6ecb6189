"""The worker token the panel stores for this user, so that the panel and the CLI share it: ``worker-token`` in the
config folder (`models.registrations.config_dir`), readable by its owner only. ``$DAW_PLUGIN_TOKEN`` wins over it.

Never in the panel's settings file, which is plain text that other tools (and backups) read.
"""

from __future__ import annotations

import os
from pathlib import Path

from models.atomic_files import os_reason, write_file
from models.errors import UserError
from models.registrations import config_dir

NAME = "worker-token"
TOKEN_VARIABLE = "DAW_PLUGIN_TOKEN"  # the environment variable both sides read first
# Tokens the panel has been given and is still writing (on a worker thread), by path: a job started meanwhile
# sends the new token, not the file's old one.
_pending: dict[Path, str] = {}


def env_token() -> str:
    """``$DAW_PLUGIN_TOKEN``, stripped; "" when unset."""
    return os.environ.get(TOKEN_VARIABLE, "").strip()


def token_path() -> Path:
    return config_dir() / NAME


def stored_token() -> str:
    """The stored token, or the one on its way there (`pend_token`); "" when none is stored."""
    path = token_path()
    if path in _pending:
        return _pending[path]
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""
    except OSError as error:
        raise UserError(f"Cannot read the worker token in {path} ({os_reason(error)}); fix its permissions or set "
                        "the token again.", field="worker") from error


def pend_token(token: str) -> None:
    """Make ``token`` the stored one for this process at once (no disk: the UI thread may call it); `store_token`
    then writes it."""
    _pending[token_path()] = token.strip()


def store_token(token: str) -> Path:
    """Write ``token`` atomically, mode 0600 before a byte of it is written; the file's path. A pending token for
    that path is dropped once written, or once the write failed (the file's token is the stored one again)."""
    path = token_path()
    try:
        return _write(path, token)
    finally:
        if _pending.get(path) == token.strip():
            del _pending[path]


def _write(path: Path, token: str) -> Path:
    def write(tmp: Path) -> None:
        os.chmod(tmp, 0o600)
        tmp.write_text(token.strip() + "\n")

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_file(path, write, replace=True)
    except OSError as error:
        raise UserError(f"Cannot store the worker token in {path} ({os_reason(error)}); set DAW_PLUGIN_CONFIG to a "
                        "folder you can write.") from error
