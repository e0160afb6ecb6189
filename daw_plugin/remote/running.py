"""Starting and stopping the worker: Ray (local, or an existing cluster), Serve on a host and port, the app.

Ctrl-C or SIGTERM stops Serve and the Ray this process started; a cluster joined with ``--address`` keeps
running (only our application is deleted from it).
"""

from __future__ import annotations

import logging
import math
import signal
import threading
from pathlib import Path

from daw_plugin.remote.token_file import TOKEN_VARIABLE, env_token
from models.errors import UserError

DEFAULT_PORT = 8765


def read_token(token_file: Path | None) -> str:
    """The bearer token: the file's first line, else $DAW_PLUGIN_TOKEN; one sentence when there is none."""
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as error:
            raise UserError(f"Cannot read the token file {token_file} ({error.strerror}); check the path.") from error
    else:
        token = env_token()
    if not token:
        raise UserError(f"The worker needs a token; set {TOKEN_VARIABLE} or give --token-file (a file holding one "
                        "long random line, e.g. from `openssl rand -hex 32`).")
    return token


def _replicas(cluster: dict[str, float], asked: int | None) -> tuple[int, dict[str, float]]:
    """(replicas, what each holds): one per GPU by default, else one on the CPU; more replicas than GPUs (or CPUs)
    share them, so every replica asked for starts (two CPU replicas on a two-core laptop each get one core)."""
    gpus, cpus = cluster.get("GPU", 0.0), cluster.get("CPU", 1.0)
    count = asked or max(int(gpus), 1)
    if gpus >= 1:  # a share must fit on one GPU: 3 replicas on 2 GPUs hold half a GPU each
        return count, {"num_gpus": 1.0 / math.ceil(count / int(gpus))}
    return count, {"num_cpus": min(1.0, cpus / count)}


def serve_until_stopped(models: list[str], host: str, port: int, token: str, limits: dict,
                        address: str | None = None, replicas: int | None = None) -> None:
    """Run the worker until SIGINT or SIGTERM."""
    try:
        import ray
        from ray import serve

        from daw_plugin.remote.server import APP_NAME, application
    except ImportError as error:
        raise UserError("The worker needs Ray Serve; install it with pip install 'daw-plugin[server]'.") from error

    # "local": a Ray of our own, never one that `ray start` left on this machine (which address=None would join,
    # and whose Serve our shutdown would then stop).
    ray.init(address=address or "local", include_dashboard=False, logging_level=logging.WARNING,
             log_to_driver=False)
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):  # after ray.init, whose own SIGTERM handler would end us at once
        signal.signal(signum, lambda *_: stopping.set())
    try:
        count, resources = _replicas(ray.cluster_resources(), replicas)
        serve.start(http_options={"host": host, "port": port})
        serve.run(application(models, token, limits, count, resources), name=APP_NAME, route_prefix="/")
        print(f"daw-plugin worker on http://{host}:{port} ({', '.join(models)}); Ctrl-C stops it", flush=True)
        while not stopping.wait(1.0):  # woken by the signal handler
            pass
    finally:
        if address is None:
            serve.shutdown()
        else:
            serve.delete(APP_NAME)  # the cluster is someone else's: only our app goes
        ray.shutdown()
