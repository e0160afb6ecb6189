"""The core's front door to `models.atomic_files`: one atomic writer, `write_file`, and its staging.

`write_new`, `write_output`, `replace_file` and `replace_output` are `write_file` with the option sets the
core uses most, by name; `rename_new` publishes a folder (a take) the same never-replacing way.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from models.atomic_files import (  # noqa: F401  (re-exported for the core)
    Writer,
    clean_stale_staging,
    link_new,
    numbered,
    os_reason,
    refuse_existing,
    staging_dir,
    staging_file,
    sync,
    write_file,
)


def write_new(out: Path, write: Writer, *, numbered_if_taken: bool = False) -> Path:
    """`write_file`, new only: a taken ``out`` is `FileExistsError`, or "out-2", "out-3"... if so asked."""
    return write_file(out, write, numbered_if_taken=numbered_if_taken)


def write_output(out: Path, write: Writer) -> Path:
    """`write_file` for a new file the user named: every failure is one `UserError`; ``out`` is never replaced."""
    return write_file(out, write, user_named=True)


def replace_file(path: Path, write: Writer, *, keep_mode: bool = False) -> Path:
    """`write_file` replacing ``path`` (or creating it): readers see the old file or the new one."""
    return write_file(path, write, replace=True, keep_mode=keep_mode)


def replace_output(out: Path, write: Writer) -> Path:
    """`write_file` for a file the user named and asked to overwrite (``--force``): failures are one `UserError`."""
    return write_file(out, write, replace=True, user_named=True)


def rename_new(src: Path, out: Path) -> bool:
    """Move the folder ``src`` to ``out`` in one step unless ``out`` is taken (then False, ``out`` untouched).

    rename(2) replaces only an *empty* folder, which holds nothing of the user's; a folder with files,
    or a file, at ``out`` makes it fail, and that failure is our "taken".
    """
    try:
        os.rename(src, out)
        return True
    except OSError as error:
        if error.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR):
            return False
        raise
