"""Writing files so that nobody ever sees half of one, and nothing is replaced unless that is the point.

Every write goes to a temporary file in the target's own folder first (a rename or a link only stays
atomic within one file system), then is either linked into place, which fails instead of replacing
when the name is taken (`write_new`, `link_new`), or renamed over the old file (`replace_file`).
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from itertools import count
from pathlib import Path

from models.errors import UserError

_UMASK = os.umask(0)
os.umask(_UMASK)  # read once: there is no way to read the umask without setting it

Writer = Callable[[Path], object]  # fills the (empty) file at the path it is given


def new_temp_file(folder: Path, prefix: str, suffix: str) -> Path:
    """An empty, uniquely named file with the permissions a normally created file would get.

    ``mkstemp`` makes files private (0600), and a rename or link into place keeps that: a DAW running
    as another user could not read the take.
    """
    fd, name = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=suffix)
    os.fchmod(fd, 0o666 & ~_UMASK)
    os.close(fd)
    return Path(name)


def new_temp_dir(folder: Path, prefix: str) -> Path:
    """An empty, uniquely named folder with the permissions a normally created one would get (not 0700)."""
    path = Path(tempfile.mkdtemp(dir=folder, prefix=prefix))
    path.chmod(0o777 & ~_UMASK)
    return path


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


def sync(path: Path) -> None:
    """Flush ``path``'s bytes to disk: a rename or link must never publish a file still in flight."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def numbered(stem: str, suffix: str = "") -> Iterator[str]:
    """The names tried, in order, until one is free: "rain.wav", "rain-2.wav", "rain-3.wav", ..."""
    return (f"{stem}{suffix}" if n == 1 else f"{stem}-{n}{suffix}" for n in count(1))


def link_new(tmp: Path, out: Path, *, keep_tmp: bool = False) -> bool:
    """Give ``tmp``'s content the name ``out`` unless that name is taken (then False, ``out`` untouched).

    Where the file system has no hard links (FAT, some network shares), ``tmp`` is renamed to ``out``
    instead, after a check: a tiny race we accept there. ``keep_tmp=True`` refuses that fallback (the
    `OSError` is raised) for callers that may link the same ``tmp`` again under another name.
    """
    try:
        os.link(tmp, out)  # fails instead of replacing, with no gap between the check and the write
        return True
    except FileExistsError:
        return False
    except OSError:
        if keep_tmp:
            raise
        if os.path.lexists(out):
            return False
        os.replace(tmp, out)
        return True


def write_new(out: Path, write: Writer, *, numbered_if_taken: bool = False) -> Path:
    """Create ``out`` atomically through ``write(temp)``; return the path written.

    A taken ``out`` is never replaced: `FileExistsError`, or with ``numbered_if_taken`` the first free
    name of "out-2", "out-3", ... in the same folder.
    """
    folder = out.parent
    tmp = new_temp_file(folder, f".{out.stem}.", out.suffix)
    try:
        write(tmp)
        sync(tmp)
        names = numbered(out.stem, out.suffix) if numbered_if_taken else iter([out.name])
        name = next((name for name in names if link_new(tmp, folder / name)), None)
        if name is None:
            raise FileExistsError(errno.EEXIST, "File exists", str(out))
        return folder / name
    finally:
        tmp.unlink(missing_ok=True)


def refuse_existing(out: Path) -> None:
    """Fail early, before any work, when ``out`` is taken; `write_output` checks again when it lands."""
    if os.path.lexists(out):
        raise UserError(_taken(out))


def write_output(out: Path, write: Writer) -> Path:
    """`write_new` for a file the user named: every failure is one `UserError`, and ``out`` is never replaced."""
    try:
        return write_new(out, write)
    except FileExistsError as error:
        raise UserError(_taken(out)) from error
    except OSError as error:
        raise UserError(f"Cannot write {out} ({os_reason(error)}); choose a folder that exists and is "
                        "writable.") from error


def replace_output(out: Path, write: Writer) -> Path:
    """`replace_file` for a file the user named and asked to overwrite (``--force``): failures are one `UserError`."""
    if out.is_dir():
        raise UserError(f"{out} is a folder; choose a file name.")
    try:
        return replace_file(out, write)
    except OSError as error:
        raise UserError(f"Cannot write {out} ({os_reason(error)}); choose a folder that exists and is "
                        "writable.") from error


def replace_file(path: Path, write: Writer, *, keep_mode: bool = False) -> Path:
    """Replace (or create) ``path`` atomically through ``write(temp)``: readers see the old file or the new one.

    ``keep_mode=True`` carries over the old file's permissions (a file the user owns and may have
    locked down); otherwise the new file gets the normal ones. `OSError` and the writer's own errors
    propagate, and the old file is then left as it was.
    """
    tmp = new_temp_file(path.parent, f".{path.stem}.", path.suffix)
    try:
        write(tmp)
        if keep_mode and path.exists():
            shutil.copymode(path, tmp)
        sync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def os_reason(error: OSError) -> str:
    """The short reason an OS call failed ("Permission denied"), to sit inside a one-line error."""
    return error.strerror or type(error).__name__


def _taken(out: Path) -> str:
    return f"{out} already exists; choose another name or move the old file away."
