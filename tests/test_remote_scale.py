"""The worker at scale: one real `daw-plugin serve --replicas 2` (a subprocess, two CPU replicas of the tiny AudioGen)
serving clients at once, telling a waiting client its place, losing a replica mid-job, and stopped with SIGTERM
(the last test), after which none of the processes it started is left."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest
from remote_helpers import REPO, TOKEN, Server, free_port, healthy, stats

from daw_plugin import events
from daw_plugin.cli import raw_main
from daw_plugin.remote.client import Worker
from daw_plugin.remote.protocol import RawJob, Started, parse_line
from models.errors import Cancelled, UserError

LONG = 300.0  # seconds of audio: a job that runs until the test cancels it
BOUND = 180.0  # seconds: past this a wait fails the test (a guard against hanging, never a measure)


def test_replicas_share_what_there_is_so_every_one_starts():
    from daw_plugin.remote.running import _replicas

    assert _replicas({"CPU": 2.0}, 2) == (2, {"num_cpus": 1.0})
    assert _replicas({"CPU": 2.0}, 3) == (3, {"num_cpus": 2.0 / 3})  # three on a two-core laptop
    assert _replicas({"CPU": 16.0}, None) == (1, {"num_cpus": 1.0})
    assert _replicas({"CPU": 16.0, "GPU": 2.0}, None) == (2, {"num_gpus": 1.0})  # one per GPU
    assert _replicas({"CPU": 16.0, "GPU": 2.0}, 3) == (3, {"num_gpus": 0.5})  # a share fits on one GPU


@pytest.fixture(scope="module")
def server(converted, tmp_path_factory):
    """`daw-plugin serve --replicas 2` on a machine without GPUs; stopped with SIGTERM at the end."""
    running = Server(tmp_path_factory.mktemp("scale") / "serve.log", "--models", str(converted), "--replicas", "2",
                     "--max-seconds", "600")
    process = running.process
    try:
        _until(lambda: process.poll() is not None or (healthy(running.url) and len(_live(running.url)) == 2),
               "the worker to start")
        if process.poll() is not None:
            pytest.fail(f"the worker exited ({process.returncode}):\n{running.log.read_text()[-3000:]}")
        yield running
    finally:
        running.stop()


def _live(url: str) -> list[dict]:
    return [replica for replica in stats(url)["replicas"] if not replica["lost"]]


def _until(check, what: str):
    """``check()``'s first true answer, asked every 0.2 s; fails the test past `BOUND`."""
    deadline = time.monotonic() + BOUND
    while not (answer := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"waited {BOUND:g} s for {what}")
        time.sleep(0.2)
    return answer


class Client(threading.Thread):
    """One client posting one job and reading its lines, as they come, until it ends or `stop` is set."""

    def __init__(self, url: str, model: Path, seconds: float):
        super().__init__(daemon=True)
        self.url, self.seconds, self.model = url, seconds, str(model)
        self.seen: list[events.Event] = []
        self.stopping = threading.Event()
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        body = json.dumps(RawJob(self.model, "rain", self.seconds, (1,)).to_json()).encode()
        try:
            for line in Worker(self.url, TOKEN).stream("/jobs", body, self.stopping.is_set):
                self.seen.append(event := parse_line(line))
                if isinstance(event, events.FINAL):
                    return
        except (Cancelled, UserError) as error:
            self.error = error

    def first(self, kind) -> events.Event:
        return _until(lambda: next((e for e in self.seen if isinstance(e, kind)), None) or self._ended(kind),
                      f"a {kind.__name__} event")

    def _ended(self, kind):
        if not self.is_alive():
            pytest.fail(f"the job ended ({self.error}) before a {kind.__name__} event: {self.seen}")

    def stop(self) -> None:
        self.stopping.set()
        self.join(BOUND)


def test_two_replicas_serve_two_clients_at_once(server, converted):
    one = Client(server.url, converted, LONG)
    one.first(events.Step)
    two = Client(server.url, converted, LONG)  # one's replica is busy: only the other can take this job
    two.first(events.Step)
    both = stats(server.url)  # while both still run: neither is stopped before this
    one.stop(), two.stop()
    first, second = one.first(Started), two.first(Started)
    assert first.replica != second.replica and first.pid != second.pid
    busy = {replica["pid"] for replica in both["replicas"] if replica["busy"]}
    assert busy == {first.pid, second.pid}, both
    assert not any(isinstance(event, events.Queued) for event in one.seen + two.seen)  # neither waited
    _until(lambda: not any(replica["busy"] for replica in stats(server.url)["replicas"]), "both jobs to end")


def test_a_waiting_client_is_told_its_place(server, converted, tmp_path, monkeypatch):
    from daw_plugin.engine import Engine
    from daw_plugin.request import GenerationRequest

    monkeypatch.setenv("DAW_PLUGIN_TOKEN", TOKEN)
    busy = [Client(server.url, converted, LONG) for _ in range(2)]
    for client in busy:
        client.first(events.Step)
    seen: list[events.Event] = []
    with Engine(tmp_path) as engine:  # the third job goes through the engine: its Queued reach the panel and CLI
        third = engine.submit(GenerationRequest("rain", model=str(converted), seconds=0.5, seed=3, preset="raw",
                                                worker=server.url), on_event=seen.append)
        _until(lambda: events.Queued(1) in seen, "the third job's place")
        fourth = Client(server.url, converted, 0.5)
        fourth.first(events.Queued)
        busy[0].stop()  # a replica frees: the third job runs, the fourth moves up
        third.result()
        fourth.first(events.Step)
        busy[1].stop()
        fourth.join(BOUND)
    kinds = [type(event) for event in seen]
    assert seen[0] == events.Queued(0)  # the engine's own: it runs next here
    assert events.Queued(1) in seen[:kinds.index(events.Step)]  # the worker's: one job ends before it starts
    assert isinstance(seen[-1], events.Finished) and len(seen[-1].paths) == 1
    places = [event.position for event in fourth.seen if isinstance(event, events.Queued)]
    assert places == [2, 1] and fourth.seen.index(events.Queued(1)) < fourth.seen.index(fourth.first(events.Step))
    assert isinstance(fourth.seen[-1], events.Finished)


def test_a_replica_killed_mid_job_costs_one_sentence_then_the_next_job_runs(server, converted, tmp_path, capsys,
                                                                            monkeypatch):
    from daw_plugin.engine import Engine
    from daw_plugin.request import GenerationRequest

    monkeypatch.setenv("DAW_PLUGIN_TOKEN", TOKEN)
    before = stats(server.url)
    stepped = threading.Event()
    with Engine(tmp_path / "lost") as engine:
        job = engine.submit(GenerationRequest("rain", model=str(converted), seconds=LONG, seed=3, preset="raw",
                                              worker=server.url),
                            on_event=lambda event: isinstance(event, events.Step) and stepped.set())
        _until(stepped.is_set, "the job's first step")
        (victim,) = [replica for replica in _live(server.url) if replica["busy"]]
        os.kill(victim["pid"], signal.SIGKILL)
        with pytest.raises(UserError) as lost:
            job.result()
    assert str(lost.value).startswith("The GPU server lost this job") and str(lost.value).count(". ") == 0
    assert not (tmp_path / "lost").exists() or not list((tmp_path / "lost").iterdir())  # nothing half-made kept
    after = stats(server.url)
    assert after["failed"] == before["failed"] + 1
    assert any(replica["pid"] == victim["pid"] and replica["lost"] for replica in after["replicas"])
    replaced = _until(lambda: len(live := _live(server.url)) == 2 and victim["pid"] not in
                      {replica["pid"] for replica in live} and live, "Ray to replace the replica")
    assert not psutil.pid_exists(victim["pid"]) and len(replaced) == 2
    status, out, err = _cli(capsys, "generate", "rain", "--model", converted, "--seconds", 0.5, "--seed", 5,
                            "--preset", "raw", "--out", tmp_path / "next", "--worker", server.url)
    assert status == 0, err
    assert Path(out.split()[0]).is_file()


def _cli(capsys, *argv):
    status = raw_main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_sigterm_stops_the_server_and_every_process_it_started(server):
    """Run last: it stops the module's server."""
    started = psutil.Process(server.process.pid).children(recursive=True)
    names = {process.name() for process in started}
    assert {"raylet", "gcs_server"} <= names, names  # the Ray this server started, seen before it stops
    assert server.stop() == 0, server.log.read_text()[-3000:]
    gone, alive = psutil.wait_procs(started, timeout=60)
    assert not alive, [(process.pid, process.name()) for process in alive]


def test_sigterm_after_joining_a_cluster_leaves_the_cluster_running(converted, tmp_path):
    """`serve --address` joins a cluster someone else started (`ray start --block`, on free ports only): stopped,
    it deletes its application and leaves the cluster up."""
    ray, port = Path(sys.executable).parent / "ray", free_port()
    ports = [f"--{name}={free_port()}" for name in ("ray-client-server-port", "dashboard-agent-listen-port",
                                                     "dashboard-agent-grpc-port", "metrics-export-port",
                                                     "runtime-env-agent-port")]
    env = {**os.environ, "DAW_PLUGIN_TOKEN": TOKEN, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
           "RAY_AUTH_MODE": "disabled"}  # a cluster local to the test: no Ray token to hand around
    env.pop("RAY_ADDRESS", None)
    # Its own temp dir: the default one's ray_current_cluster would point every plain ray.init on this machine at it.
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths live under it
    cluster = subprocess.Popen([ray, "start", "--head", "--block", f"--port={port}", "--num-cpus=1",
                                "--include-dashboard=false", f"--temp-dir={temp}", *ports], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        _until(lambda: _answers(ray, address, env), "the cluster to start")
        joined = Server(tmp_path / "serve.log", "--models", str(converted), "--address", address, env=env)
        try:
            _until(lambda: healthy(joined.url) or joined.process.poll() is not None, "the worker to start")
            assert healthy(joined.url), joined.log.read_text()[-3000:]
        finally:
            assert joined.stop() == 0, joined.log.read_text()[-3000:]
        assert _answers(ray, address, env)  # the cluster is someone else's: still up
        assert not healthy(joined.url)  # but our application is gone from it
    finally:
        started = psutil.Process(cluster.pid).children(recursive=True)
        cluster.send_signal(signal.SIGTERM)  # `ray start --block` stops the cluster it started, and only it
        cluster.wait(120)
        for process in psutil.wait_procs(started, timeout=60)[1]:  # never left behind on a shared machine
            process.kill()
        shutil.rmtree(temp, ignore_errors=True)


def _answers(ray: Path, address: str, env: dict) -> bool:
    return subprocess.run([ray, "status", f"--address={address}"], env=env, capture_output=True).returncode == 0


def test_the_cli_says_how_many_jobs_are_ahead_on_the_worker(capsys):
    from daw_plugin.commands import _ProgressBar

    bar = _ProgressBar()
    for event in (events.Queued(0), events.Queued(2), events.Queued(1), events.Step(1, 4, 1, 0.1)):
        bar.on_event(event)
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert lines[:2] == ["daw-plugin: waiting for the worker: 2 jobs ahead",
                         "daw-plugin: waiting for the worker: 1 job ahead"]
    assert "take" in lines[-1]  # then the steps' bar
