"""Writing files so that nobody ever sees half of one, and nothing is replaced unless that is the point.

One writer, `write_file`, for every file the plugin and its models write: takes' audio, presets, a
session's manifest, renders, ``models.json``. Its content goes to a temporary file in the target's own
folder first (a rename or a link only stays atomic within one file system), is flushed to disk, then is
either linked into place, which fails instead of replacing when the name is taken (the default), or
renamed over the old file (``replace=True``).

That temporary "staging" has a hidden name of our own shape, and its writer holds an exclusive
``flock`` on it for as long as it lives. A writer killed midway leaves its staging behind, unlocked:
the next staging made in that folder first removes every unlocked entry of our shape
(`clean_stale_staging`). A lock, not a PID in the name: the kernel drops it however the process dies,
a reused PID cannot fake it, and it also tells a live thread's staging apart within one process.
Where a file system cannot lock (some network shares), ownership cannot be shown and nothing is removed.

It lives in `models` so that ``models.json`` is written the same way; ``daw_plugin.files`` is its front
door for the core.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import count
from pathlib import Path

from models.errors import UserError

_UMASK = os.umask(0)
os.umask(_UMASK)  # read once: there is no way to read the umask without setting it

Writer = Callable[[Path], object]  # fills the (empty) file at the path it is given


TAKE_STAGING = ".daw-plugin-take-"  # the prefix of a take being written into the takes library
FILE_STAGING = "daw-plugin-staging-"  # a file being written: ".<stem>.daw-plugin-staging-XXXXXXXX<suffix>"
# Only names we make, marked with our name (a user's ".backup.staging-2024..." is theirs), then tempfile's
# 8 random characters: folders by the take prefix, files by the file marker, never one for the other.
_STAGING_DIR = re.compile(re.escape(TAKE_STAGING) + r"[a-z0-9_]{8}")
_STAGING_FILE = re.compile(r"\..*\." + re.escape(FILE_STAGING) + r"[a-z0-9_]{8}(\.[^.]*)?")


@contextmanager
def staging_file(folder: Path, stem: str, suffix: str) -> Iterator[Path]:
    """A new, empty hidden file in ``folder`` to fill and publish; removed at the end unless renamed away.

    It gets the permissions a normally created file would (``mkstemp`` makes 0600, which a rename or
    link keeps: a DAW running as another user could not read the take), and this process owns it.
    """
    clean_stale_staging(folder)
    while True:
        fd, name = tempfile.mkstemp(dir=folder, prefix=f".{stem}.{FILE_STAGING}", suffix=suffix)
        if _claim(fd, name):
            break
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)  # gone already when it was renamed into place
        os.close(fd)  # the lock goes last: until the name is gone, no cleaner may take it


@contextmanager
def staging_dir(folder: Path, prefix: str = TAKE_STAGING) -> Iterator[Path]:
    """`staging_file` for a folder (normal permissions, not mkdtemp's 0700); removed at the end unless renamed."""
    clean_stale_staging(folder)
    while True:
        name = tempfile.mkdtemp(dir=folder, prefix=prefix)
        fd = os.open(name, os.O_RDONLY)
        if _claim(fd, name):
            break
    try:
        os.chmod(name, 0o777 & ~_UMASK)
        yield Path(name)
    finally:
        shutil.rmtree(name, ignore_errors=True)  # gone already when it was renamed into place
        os.close(fd)


def clean_stale_staging(folder: Path) -> None:
    """Remove the staging in ``folder`` that no live process owns: what a killed or interrupted writer left.

    Only hidden names of our staging shape are looked at, never a user's own dotfiles; anything that
    cannot be listed, locked or removed is left as it is.
    """
    try:
        names = [entry.name for entry in os.scandir(folder)
                 if _STAGING_DIR.fullmatch(entry.name) or _STAGING_FILE.fullmatch(entry.name)]
    except OSError:
        return
    for name in names:
        path = os.path.join(folder, name)
        try:
            # A link is not ours to follow; O_NONBLOCK keeps a FIFO of that name from hanging us.
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            if _lock(fd) and _same_file(fd, path):  # still that entry: not renamed into place meanwhile
                mode = os.fstat(fd).st_mode
                if stat.S_ISDIR(mode) and _STAGING_DIR.fullmatch(name):
                    shutil.rmtree(path, ignore_errors=True)
                elif stat.S_ISREG(mode) and _STAGING_FILE.fullmatch(name):
                    os.unlink(path)
        except OSError:
            pass
        finally:
            os.close(fd)


def _claim(fd: int, name: str) -> bool:
    """Lock a staging entry just made; False (and ``fd`` closed) when a cleaner took it in the gap, so try anew.

    A file system that cannot lock at all is let through unlocked: its cleaners cannot lock either.
    """
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    except OSError:
        return True
    if _same_file(fd, name):
        return True
    os.close(fd)
    return False


def _lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:  # held by a live writer, or a file system without locks: not provably stale
        return False


def _same_file(fd: int, path: str) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.lstat(path))
    except OSError:
        return False


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


def write_file(out: Path, write: Writer, *, replace: bool = False, keep_mode: bool = False,
               numbered_if_taken: bool = False, user_named: bool = False) -> Path:
    """Write ``out`` atomically through ``write(temp)``, which fills the empty file it is given; the path written.

    - New only (the default): a taken ``out`` is never replaced: `FileExistsError`, or with
      ``numbered_if_taken`` the first free name of "out-2", "out-3", ... in the same folder.
    - ``replace=True``: ``out`` is replaced (or created); readers see the old file or the new one.
      ``keep_mode=True`` carries over the old file's permissions (a file the user owns and may have
      locked down); otherwise the new file gets the normal ones.
    - ``user_named=True``, for a file the user named (``--out``, ``--force``): every failure is one
      `UserError` that names the file and the fix.

    Otherwise `OSError` and the writer's own errors propagate; either way no staging is left, and an old
    file is left as it was.
    """
    if not user_named:
        return _write(out, write, replace, keep_mode, numbered_if_taken)
    if replace and out.is_dir():
        raise UserError(f"{out} is a folder; choose a file name.")
    try:
        return _write(out, write, replace, keep_mode, numbered_if_taken)
    except FileExistsError as error:
        raise UserError(_taken(out)) from error
    except OSError as error:
        raise UserError(f"Cannot write {out} ({os_reason(error)}); choose a folder that exists and is "
                        "writable.") from error


def _write(out: Path, write: Writer, replace: bool, keep_mode: bool, numbered_if_taken: bool) -> Path:
    folder = out.parent
    with staging_file(folder, out.stem, out.suffix) as tmp:
        write(tmp)
        if replace:
            if keep_mode and out.exists():
                shutil.copymode(out, tmp)
            sync(tmp)
            os.replace(tmp, out)
            return out
        sync(tmp)
        names = numbered(out.stem, out.suffix) if numbered_if_taken else iter([out.name])
        name = next((name for name in names if link_new(tmp, folder / name)), None)
        if name is None:
            raise FileExistsError(errno.EEXIST, "File exists", str(out))
        return folder / name


def refuse_existing(out: Path) -> None:
    """Fail early, before any work, when ``out`` is taken; `write_file` checks again when it lands."""
    if os.path.lexists(out):
        raise UserError(_taken(out))


def os_reason(error: OSError) -> str:
    """The short reason an OS call failed ("Permission denied"), to sit inside a one-line error."""
    return error.strerror or type(error).__name__


def _taken(out: Path) -> str:
    return f"{out} already exists; choose another name or move the old file away."
