"""What the remote worker's test modules share: the repository, the token their servers run with, a free port, a
`daw-plugin serve` subprocess, and asking a server how it is."""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from daw_plugin.remote.client import Worker
from models.errors import UserError

REPO = Path(__file__).resolve().parents[1]
TOKEN = "test-token-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`daw-plugin serve OPTIONS` in a subprocess on a free port, with the tests' token; its output goes to ``log``."""

    def __init__(self, log: Path, *options: str, env: dict | None = None):
        port = free_port()
        self.url, self.log = f"http://127.0.0.1:{port}", log
        if env is None:
            env = {**os.environ, "DAW_PLUGIN_TOKEN": TOKEN, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
                   "RAY_DEDUP_LOGS": "0"}
        with open(log, "wb") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "daw_plugin.cli", "serve", "--port", str(port),
                                             *options], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """Its exit status once ``signum`` has stopped it (killed, and the test failed, after 120 s)."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            return self.process.wait(120)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


def healthy(url: str) -> bool:
    try:
        return "status" in Worker(url, TOKEN).get("/health")
    except UserError:
        return False


def stats(url: str) -> dict:
    """Every replica's job counts, summed and each (never waits on a busy replica)."""
    return Worker(url, TOKEN).get("/stats")
