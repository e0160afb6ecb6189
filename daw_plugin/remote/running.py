"""Starting and stopping the worker: Ray (local, or an existing cluster), Serve on a host and port, the app.

Ctrl-C or SIGTERM stops Serve and the Ray this process started; a cluster joined with ``--address`` keeps
running (only our application is deleted from it).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path

from models.errors import UserError

TOKEN_VARIABLE = "DAW_PLUGIN_TOKEN"
DEFAULT_PORT = 8765


def read_token(token_file: Path | None) -> str:
    """The bearer token: the file's first line, else $DAW_PLUGIN_TOKEN; one sentence when there is none."""
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as error:
            raise UserError(f"Cannot read the token file {token_file} ({error.strerror}); check the path.") from error
    else:
        token = os.environ.get(TOKEN_VARIABLE, "").strip()
    if not token:
        raise UserError(f"The worker needs a token; set {TOKEN_VARIABLE} or give --token-file (a file holding one "
                        "long random line, e.g. from `openssl rand -hex 32`).")
    return token


def serve_until_stopped(models: list[str], host: str, port: int, token: str, limits: dict,
                        address: str | None = None, replicas: int | None = None) -> None:
    """Run the worker until SIGINT or SIGTERM."""
    try:
        import ray
        from ray import serve

        from daw_plugin.remote.server import APP_NAME, application
    except ImportError as error:
        raise UserError("The worker needs Ray Serve; install it with pip install 'daw-plugin[server]'.") from error

    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    try:
        gpus = int(ray.cluster_resources().get("GPU", 0))
        serve.start(http_options={"host": host, "port": port})
        serve.run(application(models, token, limits, replicas or max(gpus, 1), gpus > 0), name=APP_NAME,
                  route_prefix="/")
        print(f"daw-plugin worker on http://{host}:{port} ({', '.join(models)}); Ctrl-C stops it", flush=True)
        while not stopping.wait(1.0):  # woken by the signal handler
            pass
    finally:
        if address is None:
            serve.shutdown()
        else:
            serve.delete(APP_NAME)  # the cluster is someone else's: only our app goes
        ray.shutdown()
