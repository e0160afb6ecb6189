"""The GPU-server worker: the wire format, and a real Ray Serve app (`daw-plugin serve`, in a subprocess) on the
tiny AudioGen, driven through the real client (`--worker`, the engine with ``request.worker``)."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from remote_helpers import TOKEN, Server, free_port, healthy, stats

from daw_plugin import events
from daw_plugin.audio import read_clip
from daw_plugin.cli import raw_main
from daw_plugin.remote.client import Worker
from daw_plugin.remote.protocol import RawJob, RawTake, event_line, parse_line
from models.clip import Clip
from models.errors import Cancelled, Problem, UserError
from models.generator import Settings

# --- the wire format -------------------------------------------------------------------------------------------


def test_events_round_trip_with_their_audio_exact():
    rng = np.random.default_rng(0)
    audio = rng.standard_normal((2, 300)).astype(np.float32)
    for event in (events.Step(2, 3, 10, 1.5), events.Failed("Too long; ask for less.", "seconds"), events.Cancelled(),
                  events.Loading("m"), events.Queued(1)):
        assert parse_line(event_line(event)) == event
    refused = events.Failed("x", "seconds", (Problem("seconds", "{seconds} must be above 0; ask for more.", value=0),))
    back = parse_line(event_line(refused))
    assert back == refused and back.worded({"seconds": "Length"}) == "Length must be above 0; ask for more."
    preview = parse_line(event_line(events.Preview(1, audio, 32000, 640)))
    assert (preview.take, preview.sample_rate, preview.offset_frames) == (1, 32000, 640)
    assert preview.audio.dtype == np.float32 and np.array_equal(preview.audio, audio)
    take = parse_line(event_line(RawTake(0, audio, 16000)))
    assert isinstance(take, RawTake) and np.array_equal(take.audio, audio) and take.sample_rate == 16000


def test_job_round_trips_and_bad_bodies_are_one_sentence():
    clip = Clip(np.linspace(-1, 1, 1000, dtype=np.float32).reshape(1, 1000), 16000)
    job = RawJob("m", "rain", 2.5, (7, 8), Settings(guidance=2.0, top_k=10), 0.25, prompt=clip)
    back = RawJob.from_json(json.loads(json.dumps(job.to_json())))
    assert (back.model, back.text, back.seconds, back.seeds, back.settings, back.preroll_seconds) == \
        ("m", "rain", 2.5, (7, 8), Settings(guidance=2.0, top_k=10), 0.25)
    assert back.melody is None and np.array_equal(back.prompt.samples, clip.samples)
    body = job.to_json()
    body["prompt"]["frames"] = 999  # the bytes no longer match the shape
    with pytest.raises(UserError, match="not one this worker reads"):
        RawJob.from_json(body)
    with pytest.raises(UserError, match="asks for no audio"):
        RawJob.from_json({**job.to_json(), "seconds": 0})


def test_thin_steps_keeps_the_first_the_last_and_every_other_event_in_order():
    from daw_plugin.remote.worker import ThinSteps

    now = [0.0]
    sent: list = []
    thin = ThinSteps(sent.append, every=0.05, clock=lambda: now[0])
    audio = np.zeros((1, 4), np.float32)
    preview = events.Preview(0, audio, 16000, 0)
    for done in range(1, 5):  # all within 50 ms: only the first goes
        thin(events.Step(1, done, 10, None))
    thin(preview)
    now[0] = 0.06
    thin(events.Step(1, 5, 10, None))  # 60 ms on: goes
    thin(events.Step(1, 6, 10, None))  # held, then sent before the take
    take = RawTake(0, audio, 16000)
    thin(take)
    thin(events.Step(1, 10, 10, None))  # done == total: at once
    assert [getattr(event, "done", event) for event in sent] == [1, preview, 5, 6, take, 10]


# --- a real worker -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def worker(converted, audioldm2_dir, tmp_path_factory):
    """`daw-plugin serve` on the tiny AudioGen and AudioLDM 2, one CPU replica; stopped with SIGINT at the end
    (checked)."""
    server = Server(tmp_path_factory.mktemp("worker") / "serve.log", "--models", f"{converted},{audioldm2_dir}",
                    "--max-body-mb", "1", "--max-takes", "4", "--max-seconds", "60")
    try:
        while not healthy(server.url):
            if server.process.poll() is not None:
                pytest.fail(f"the worker exited ({server.process.returncode}):\n{server.log.read_text()[-3000:]}")
            time.sleep(1)
        yield server.url
    finally:
        status = server.stop(signal.SIGINT)
    assert status == 0, server.log.read_text()[-3000:]


def _ended(url: str) -> dict:
    """The replica's counts once every job it started has ended (a cancelled one ends at its next step)."""
    deadline = time.monotonic() + 120
    while (counts := stats(url))["jobs"] != counts["finished"] + counts["cancelled"] + counts["failed"]:
        if time.monotonic() > deadline:
            pytest.fail(f"the replica's jobs never all ended: {counts}")
        time.sleep(0.2)
    return counts


def cli(capsys, *argv):
    status = raw_main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_a_take_through_the_worker_equals_the_local_one(worker, converted, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DAW_PLUGIN_TOKEN", TOKEN)
    args = ("generate", "rain on a tin roof", "--model", converted, "--seconds", 0.5, "--seed", 11, "--takes", 2,
            "--preset", "raw", "--threads", 1)
    status, local, err = cli(capsys, *args, "--out", tmp_path / "local")
    assert status == 0, err
    status, remote, err = cli(capsys, *args, "--out", tmp_path / "remote", "--worker", worker)
    assert status == 0, err
    for here, there in zip(local.split(), remote.split(), strict=True):
        assert np.array_equal(read_clip(here).samples, read_clip(there).samples)
        recipe = json.loads(next(Path(there).parent.glob("*.json")).read_text())
        assert recipe["worker"] == worker and recipe["seed"] in (11, 12)
        raw_here, raw_there = (next(Path(p).parent.glob("*.raw.*")) for p in (here, there))
        assert np.array_equal(read_clip(raw_here).samples, read_clip(raw_there).samples)


def test_takes_made_on_a_worker_are_scored_and_ranked_as_local_ones(worker, audioldm2_dir, tmp_path, capsys,
                                                                    monkeypatch):
    monkeypatch.setenv("DAW_PLUGIN_TOKEN", TOKEN)
    args = ("generate", "wind in the trees", "--model", audioldm2_dir, "--seconds", 0.3, "--steps", 2, "--takes", 2,
            "--seed", 3, "--preset", "raw", "--threads", 1)
    scores = {}
    for where, extra in (("local", ()), ("remote", ("--worker", worker))):
        status, out, err = cli(capsys, *args, "--out", tmp_path / where, *extra)
        assert status == 0, err
        recipes = [json.loads(next(Path(path).parent.glob("*.json")).read_text()) for path in out.split()]
        scores[where] = [(recipe["seed"], recipe["clap_score"]) for recipe in recipes]
    assert scores["remote"] == scores["local"]  # the same CLAP scores, so the same best take first
    assert scores["local"][0][1] >= scores["local"][1][1]


def test_a_silent_worker_is_one_sentence_not_a_wait_forever(monkeypatch):
    monkeypatch.setattr("daw_plugin.remote.client.ANSWER_SECONDS", 0.5)
    with socket.socket() as listener:  # takes the connection (the kernel's backlog), never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with pytest.raises(UserError, match=f"Cannot reach the worker at {url} .*timed out"):
            Worker(url, TOKEN).get("/health")


def test_a_worker_take_is_regenerated_on_its_worker_unless_a_device_is_named(worker, converted, tmp_path, capsys,
                                                                              monkeypatch):
    monkeypatch.setenv("DAW_PLUGIN_TOKEN", TOKEN)
    status, made, err = cli(capsys, "generate", "hum", "--model", converted, "--seconds", 0.3, "--seed", 5,
                            "--preset", "raw", "--threads", 1, "--out", tmp_path, "--worker", worker)
    assert status == 0, err
    take_id, original = Path(made.strip()).parent.name, read_clip(made.strip()).samples
    jobs = _ended(worker)["jobs"]
    status, again, err = cli(capsys, "takes", "regenerate", take_id, "--dir", tmp_path)
    assert status == 0, err
    assert _ended(worker)["jobs"] == jobs + 1  # made on the worker again
    assert json.loads(next(Path(again.strip()).parent.glob("*.json")).read_text())["worker"] == worker
    status, here, err = cli(capsys, "takes", "regenerate", take_id, "--dir", tmp_path, "--device", "cpu")
    assert status == 0, err
    assert _ended(worker)["jobs"] == jobs + 1  # made on this computer
    assert json.loads(next(Path(here.strip()).parent.glob("*.json")).read_text()).get("worker") is None
    for path in (again, here):
        assert np.array_equal(read_clip(path.strip()).samples, original)


def test_previews_arrive_before_the_take_is_done(worker, converted, tmp_path, monkeypatch):
    from daw_plugin.engine import Engine
    from daw_plugin.request import GenerationRequest

    monkeypatch.setenv("DAW_PLUGIN_TOKEN", TOKEN)
    with Engine(tmp_path) as engine:
        job = engine.submit(GenerationRequest("rain", model=str(converted), seconds=2.0, seed=3, preset="raw",
                                              worker=worker))
        job.result()
        seen = list(job.events())
    kinds = [type(event) for event in seen]
    first_preview, done = kinds.index(events.Preview), kinds.index(events.TakeDone)
    assert events.Step in kinds[:done] and first_preview < done
    steps = [event for event in seen if isinstance(event, events.Step)]
    assert steps[-1].done == steps[-1].total  # the replica thins Steps, but the progress still ends at the total
    previews = [e.audio for e in seen[:done] if isinstance(e, events.Preview)]
    raw = read_clip(next(seen[done].path.parent.glob("*.raw.*"))).samples
    assert np.array_equal(np.concatenate(previews, axis=1), raw)  # the take, heard while it was made


def _post(url: str, body: bytes, token: str | None) -> tuple[int, dict]:
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=60)
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
    connection.request("POST", "/jobs", body=body, headers=headers)
    response = connection.getresponse()
    answer = response.status, json.loads(response.read() or b"{}")
    connection.close()
    return answer


def test_without_the_right_token_nothing_runs(worker, converted):
    before = stats(worker)
    body = json.dumps(RawJob(str(converted), "rain", 0.5, (1,)).to_json()).encode()
    for token in (None, "wrong", TOKEN + "x"):
        status, answer = _post(worker, body, token)
        assert status == 401 and "DAW_PLUGIN_TOKEN" in answer["error"]
    with pytest.raises(UserError, match="refused the token"):
        Worker(worker, "wrong").get("/models")
    assert stats(worker) == before


def test_limits_are_checked_before_any_work(worker, converted):
    before = stats(worker)
    loud = Clip(np.zeros((1, 400_000), dtype=np.float32), 16000)  # 1.6 MB of samples: over the 1 MB limit
    status, answer = _post(worker, json.dumps(RawJob(str(converted), "x", 1.0, (1,), prompt=loud).to_json()).encode(),
                           TOKEN)
    assert status == 413 and "--max-body-mb" in answer["error"]
    for job, says in ((RawJob(str(converted), "x", 1.0, tuple(range(9))), "at most 4 takes"),
                      (RawJob(str(converted), "x", 600.0, (1,)), "at most 60 s")):
        status, answer = _post(worker, json.dumps(job.to_json()).encode(), TOKEN)
        assert status == 422 and says in answer["error"]
    assert stats(worker) == before


def test_closing_the_stream_stops_the_replicas_job(worker, converted, tmp_path, monkeypatch):
    from daw_plugin.engine import Engine
    from daw_plugin.request import GenerationRequest

    monkeypatch.setenv("DAW_PLUGIN_TOKEN", TOKEN)
    before = stats(worker)
    with Engine(tmp_path) as engine:
        job = engine.submit(GenerationRequest("rain", model=str(converted), seconds=50.0, seed=3, preset="raw",
                                              worker=worker),
                            on_event=lambda event: isinstance(event, events.Step) and job.cancel())
        with pytest.raises(Cancelled):
            job.result()
    after = _ended(worker)
    assert after["jobs"] == before["jobs"] + 1, after
    assert after["cancelled"] == before["cancelled"] + 1 and after["finished"] == before["finished"]
    assert not list(tmp_path.iterdir())  # nothing half-made kept


def test_a_worker_that_is_not_there_is_one_sentence(converted, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DAW_PLUGIN_TOKEN", TOKEN)
    status, out, err = cli(capsys, "generate", "rain", "--model", converted, "--seconds", 0.5, "--out", tmp_path,
                           "--worker", f"http://127.0.0.1:{free_port()}")
    assert status == 2 and "Cannot reach the worker" in err and err.count("\n") == 1
    assert not tmp_path.exists() or not list(tmp_path.iterdir())
