"""mod-script-pipe's wire protocol: one command line out, reply lines back, every read bounded.

Audacity (Linux, macOS) reads commands from the FIFO ``/tmp/audacity_script_pipe.to.<uid>`` and
writes replies to ``.from.<uid>``. A reply is body lines, then ``BatchCommand finished: OK`` (or
``Failed!``), then an empty line. Both FIFOs are opened non-blocking: opening a FIFO for writing
fails at once (ENXIO) when no process reads it, which is how a stale pipe left by a killed
Audacity tells us nobody is there, instead of blocking the caller for ever.
"""

from __future__ import annotations

import errno
import os
import re
import select
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

_FINISHED = re.compile(rb"^BatchCommand finished: ([^\n]*)\n\n", re.MULTILINE)
_EOF_POLL_S = 0.01  # how often to look again while Audacity has not opened its end of the reply FIFO
CONNECT_GRACE_S = 0.5  # how long a missing or unread FIFO may be Audacity re-creating it
RESYNC_RETRY_S = 1.0  # an idle Audacity answers Message in milliseconds; one starting up drops it


class PipeGone(Exception):
    """Nobody reads the command FIFO (or its files are missing): Audacity is not running, or just stopped."""


class PipeTimeout(Exception):
    """Audacity took longer than ``seconds`` to answer; it may be busy or stuck in a dialog."""

    def __init__(self, seconds: float):
        super().__init__(f"no reply within {seconds:g} s")
        self.seconds = seconds


class _Late(Exception):
    """The deadline passed; `ScriptPipe._exchange` turns it into a `PipeTimeout` naming the limit."""


class _Unsent(Exception):
    """The command FIFO lost its reader before a byte of the command went in."""

    def __str__(self) -> str:
        return "Audacity closed the command pipe"


@dataclass(frozen=True)
class Reply:
    ok: bool
    body: str  # everything before the "BatchCommand finished" line, without its trailing newline
    status: str  # "OK", "Failed!", ...


def pipe_paths(pipe_dir: Path, uid: int | None = None) -> tuple[Path, Path]:
    uid = os.getuid() if uid is None else uid
    return Path(pipe_dir) / f"audacity_script_pipe.to.{uid}", Path(pipe_dir) / f"audacity_script_pipe.from.{uid}"


class ScriptPipe:
    """One connection to mod-script-pipe; `command` sends a line and returns its `Reply`.

    The connection stays open between commands, like Audacity's own ``pipe_test.py``. After a
    timeout a late reply may still arrive, so the next command first re-synchronises with a
    ``Message`` token and throws away whatever came before it. A connection to an Audacity that
    has since exited (and maybe started again) is replaced: nothing was delivered through it.
    """

    def __init__(self, pipe_dir: Path = Path("/tmp"), timeout_s: float = 10.0):
        self.to_path, self.from_path = pipe_paths(pipe_dir)
        self.timeout_s = timeout_s
        self._to: int | None = None
        self._from: int | None = None
        self._pending = b""
        self._in_sync = False
        self._lock = threading.Lock()

    def command(self, line: str, timeout_s: float | None = None) -> Reply:
        if "\n" in line:
            raise ValueError(f"A script command is one line, got {line!r}")
        with self._lock:  # one conversation at a time: replies carry no id
            for _ in range(2):
                self._ensure_connected()
                try:
                    return self._exchange(line, self.timeout_s if timeout_s is None else timeout_s)
                except _Unsent:
                    # Our FIFO lost its reader (Audacity exited, maybe started again) before a byte
                    # went in: nothing was delivered, so a fresh connection may send it once more.
                    self.close()
            raise PipeGone(str(_Unsent()))

    def _ensure_connected(self) -> None:
        """Connect and re-synchronise, retrying briefly: Audacity re-creates its FIFOs whenever a client leaves."""
        # Each time a client closes the command FIFO, mod-script-pipe unlinks both FIFOs and makes
        # new ones, so a connection made in that instant can find no files, or old ones that lead
        # nowhere. Within the grace period that is a blink; past it, nobody is there.
        grace = time.monotonic() + CONNECT_GRACE_S
        fresh = self._to is None
        while True:
            try:
                self._connect()
                if not self._in_sync:
                    self._resync()
                return
            except (PipeGone, _Unsent) as error:
                self.close()
                if fresh and time.monotonic() > grace:
                    raise PipeGone(str(error)) from None
                fresh = True  # a connection from before Audacity restarted gets one fresh start
            time.sleep(_EOF_POLL_S)

    def close(self) -> None:
        for fd in (self._to, self._from):
            if fd is not None:
                os.close(fd)
        self._to = self._from = None
        self._pending, self._in_sync = b"", False

    def __del__(self):
        self.close()

    def _connect(self) -> None:
        if self._to is not None:
            return
        if not (self.to_path.exists() and self.from_path.exists()):
            raise PipeGone(f"there is no {self.to_path}")
        try:
            self._to = os.open(self.to_path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as error:
            if error.errno in (errno.ENXIO, errno.ENOENT):  # a stale FIFO with no reader, or just removed
                raise PipeGone(f"nothing reads {self.to_path}") from error
            raise
        try:
            self._from = os.open(self.from_path, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError as error:
            self.close()
            raise PipeGone(f"there is no {self.from_path}") from error

    def _resync(self) -> None:
        # Commands sent before Audacity's main loop runs are dropped, and a reply to a command we gave
        # up on may still come: a unique token marks where our conversation starts. A dropped token
        # is sent again; replies come in order, so waiting for the newest one skips all the others.
        deadline = time.monotonic() + self.timeout_s
        while True:
            token = f"sync-{uuid.uuid4().hex}"
            window = min(RESYNC_RETRY_S, deadline - time.monotonic())
            try:
                self._in_sync = self._exchange(f"Message: Text={token}", window, until=token).ok
                return
            except PipeTimeout:
                if time.monotonic() >= deadline:
                    raise PipeTimeout(self.timeout_s) from None

    def _exchange(self, line: str, timeout_s: float, until: str | None = None) -> Reply:
        self._in_sync = False  # until this reply is fully read, a later command could get it
        deadline = time.monotonic() + timeout_s
        try:
            self._write((line + "\n").encode(), deadline)
            while True:
                reply = self._read_reply(deadline)
                if until is None or until in reply.body.splitlines():
                    self._in_sync = True
                    return reply
        except _Late:
            raise PipeTimeout(timeout_s) from None

    def _fds(self) -> tuple[int, int]:
        """Our (command, reply) descriptors; `PipeGone` once the connection is closed."""
        if self._to is None or self._from is None:
            raise PipeGone("the connection to Audacity is closed")
        return self._to, self._from

    def _write(self, data: bytes, deadline: float) -> None:
        to_fd, _ = self._fds()
        while data:
            try:
                data = data[os.write(to_fd, data) :]
            except BlockingIOError:
                self._wait(to_fd, deadline, for_write=True)
            except BrokenPipeError:
                raise _Unsent from None  # a FIFO without a reader takes no bytes at all

    def _read_reply(self, deadline: float) -> Reply:
        _, from_fd = self._fds()
        while not (match := _FINISHED.search(self._pending)):
            self._wait(from_fd, deadline)
            chunk = os.read(from_fd, 65536)
            if chunk:
                self._pending += chunk
            elif not self._still_connected():
                self.close()
                raise PipeGone("Audacity closed the pipes")
            else:
                # No writer yet: Audacity opens its end of this FIFO only after reading a command.
                time.sleep(_EOF_POLL_S)
        body = self._pending[: match.start()].decode("utf-8", "replace").rstrip("\n")
        self._pending = self._pending[match.end() :]
        status = match.group(1).decode("utf-8", "replace").strip()
        return Reply(ok=status == "OK", body=body, status=status)

    def _wait(self, fd: int, deadline: float, for_write: bool = False) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Late
        ready = select.select([], [fd], [], remaining) if for_write else select.select([fd], [], [], remaining)
        if not any(ready):
            raise _Late

    def _still_connected(self) -> bool:
        """Whether our FIFOs are still the ones Audacity reads and writes.

        When a client leaves, mod-script-pipe closes both FIFOs, unlinks them and makes new ones;
        when Audacity exits, nobody reads the command FIFO any more. Either way ours lead nowhere.
        """
        if self._to is None or self._from is None:
            return False
        try:
            if (os.stat(self.to_path).st_ino != os.fstat(self._to).st_ino
                    or os.stat(self.from_path).st_ino != os.fstat(self._from).st_ino):
                return False  # never open new FIFOs here: opening and closing one makes Audacity recycle it
            os.close(os.open(self.to_path, os.O_WRONLY | os.O_NONBLOCK))  # ENXIO when no process reads ours
        except OSError:
            return False
        return True
