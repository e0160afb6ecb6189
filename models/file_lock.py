"""Taking turns at a file several processes may rewrite (``models.json``, a session's ``session.json``).

A lock file beside it, held with `filelock` (an ``flock`` the kernel drops however the holder dies, so
a killed writer never leaves it locked); the writer re-reads the file once it holds the lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from models.errors import UserError, brief


@contextmanager
def held(lock_file: Path, *, timeout_s: float, guarding: Path, then: str = "try again",
         error: type[UserError] = UserError) -> Iterator[None]:
    """Hold ``lock_file`` (its folder made if missing) for the block; one ``error`` line if it cannot be had.

    ``guarding`` is the file the lock protects, and ``then`` what to do after the fix, for the message.
    """
    from filelock import FileLock, Timeout

    lock = FileLock(lock_file)
    try:
        lock_file.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire(timeout=timeout_s)
    except Timeout:
        # A dead holder never keeps an flock, so this is a live one: deleting the lock file would let two write.
        raise error(f"Another daw-plugin process has kept {guarding} locked for {timeout_s:g} s; let it finish "
                    f"or stop it, then {then}.") from None
    except OSError as failure:
        raise error(f"Cannot write in {lock_file.parent} ({brief(failure)}); make it writable, then {then}.") \
            from failure
    try:
        yield
    finally:
        lock.release()
