"""What the remote worker's test modules share: the repository, the token their servers run with, a free port, and
asking a server how it is."""

import socket
from pathlib import Path

from daw_plugin.remote.client import Worker
from models.errors import UserError

REPO = Path(__file__).resolve().parents[1]
TOKEN = "test-token-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def healthy(url: str) -> bool:
    try:
        return "status" in Worker(url, TOKEN).get("/health")
    except UserError:
        return False


def stats(url: str) -> dict:
    """Every replica's job counts, summed and each (never waits on a busy replica)."""
    return Worker(url, TOKEN).get("/stats")
