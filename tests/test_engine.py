"""The engine on the tiny real models: one inference thread, a FIFO queue, warm models, events, cancel at every
stage. Stand-ins appear only where the real thing cannot run here (a CUDA out-of-memory error) and say so."""

import json
import os
import threading
import weakref

import huggingface_hub
import numpy as np
import pytest
from fixtures.fake_hub import FakeHub

import models.registry
from daw_plugin import Engine, Request, events, jobs, read_clip, takes
from daw_plugin.request import GenerationRequest
from models.errors import Cancelled, UserError


def our_threads() -> list[threading.Thread]:
    """The live threads, less tqdm's one monitor (started with its first bar, kept for the process)."""
    from tqdm import TMonitor

    return [thread for thread in threading.enumerate() if not isinstance(thread, TMonitor)]


@pytest.fixture(autouse=True)
def _threads(one_thread):
    """Every test ends with the threads it started with: the engine's own is joined by close()."""
    before = our_threads()
    yield
    assert our_threads() == before


@pytest.fixture
def counted_loads(monkeypatch):
    """The real `load_generator`, wrapped to count its calls (it still loads the real tiny model)."""
    calls = []
    real = models.registry.load_generator

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(models.registry, "load_generator", counting)
    return calls


def write_tone(path):
    from daw_plugin import Clip, write_clip

    return write_clip(Clip(np.full((1, 4800), 0.1, np.float32), 48000), path)


def request(model, prompt="hum", **options) -> GenerationRequest:
    return GenerationRequest(prompt=prompt, model=str(model), **{"seconds": 0.1, "seed": 0, "device": "cpu"} | options)


def library(out) -> list[str]:
    """Everything in the takes library, hidden staging folders included."""
    return sorted(os.listdir(out)) if out.exists() else []


def test_three_jobs_load_the_model_once(converted, tmp_path, counted_loads):
    with Engine(tmp_path) as engine:
        submitted = [engine.submit(request(converted, seed=seed)) for seed in range(3)]
        results = [job.result() for job in submitted]
        assert len(counted_loads) == 1 and engine.loads == 1
    assert [take.path.name for (take,) in results] == [f"hum-seed{seed}.wav" for seed in range(3)]
    first = [event.type for event in submitted[0].events()]
    assert first[:2] == ["queued", "loading"] and first[-2:] == ["take_done", "finished"] and "step" in first
    later = [event.type for event in submitted[2].events()]
    assert "loading" not in later and later[-1] == "finished"  # warm: no load at all
    assert [e.position for e in submitted[2].events() if isinstance(e, events.Queued)][0] in (1, 2)


def test_another_model_is_loaded_beside_or_instead_of_the_warm_one(converted, musicgen_dirs, tmp_path,
                                                                   counted_loads):
    with Engine(tmp_path) as engine:
        engine.submit(request(converted)).result()
        engine.submit(request(musicgen_dirs["mono"])).result()
        engine.submit(request(converted)).result()  # still warm: the tiny models fit beside each other
        assert len(counted_loads) == 2 and len(engine._warm) == 2
        engine.submit(request(musicgen_dirs["stereo"])).result()  # a third: MAX_WARM is 2, so the others go
        assert len(counted_loads) == 3 and len(engine._warm) == 1


def test_unload_frees_the_generator(converted, tmp_path):
    with Engine(tmp_path) as engine:
        engine.submit(request(converted)).result()
        loaded = weakref.ref(engine._warm[0].generator)
        engine.unload()
        assert loaded() is None  # nothing else (a job, an event, an error) held on to it


def test_events_stream_to_subscribers_and_scripts_and_are_json(converted, tmp_path):
    seen = []
    with Engine(tmp_path) as engine:
        job = engine.submit(request(converted, takes=2), on_event=seen.append)
        listed = list(job.events())  # ends with the job
        late = []
        job.subscribe(late.append)  # a late subscriber is told what it missed
    assert seen == listed == late
    assert sum(isinstance(e, events.TakeDone) for e in seen) == 2 and isinstance(seen[-1], events.Finished)
    steps = [e for e in seen if isinstance(e, events.Step)]
    assert steps[-1].done == steps[-1].total and steps[-1].seconds_left == 0
    done = next(e for e in seen if isinstance(e, events.TakeDone))
    assert done.recipe["seed"] == 0 and done.path.exists()
    for event in seen:
        assert json.loads(json.dumps(event.to_json()))["type"] == event.type
    preview = events.Preview(0, np.zeros((2, 5), np.float32), 32000, 10)
    assert json.dumps(preview.to_json()) and preview.to_json()["frames"] == 5


def test_a_take_inserted_into_a_host_is_an_event(converted, tmp_path):
    with Engine(tmp_path / "takes") as engine:
        job = engine.submit(request(converted, host=f"session:{tmp_path / 'song'}", track="fx"))
        (take,) = job.result()
    inserted = [e for e in job.events() if isinstance(e, events.Inserted)]
    assert inserted == [events.Inserted(0, f"session:{tmp_path / 'song'}", "fx", 0.0, take.placement.end_seconds)]


def test_a_take_aimed_at_a_host_but_not_inserted_is_finished_for_it_and_placed_nowhere(converted, tmp_path):
    """insert=False (the panel's "Insert automatically" off): the host's rate shapes the take; its tracks stay as
    they were, to be inserted later."""
    from daw_plugin.hosts import open_host

    song = tmp_path / "song"
    open_host(f"session:{song}", create_session=True).insert(write_tone(tmp_path / "bed.wav"), "bed", 0.0)
    with Engine(tmp_path / "takes") as engine:
        (take,) = engine.submit(request(converted, host=f"session:{song}", insert=False)).result()
    assert take.placement is None and read_clip(take.path).sample_rate == 48000  # the session's, not the model's
    assert [track.name for track in open_host(f"session:{song}").tracks()] == ["bed"]


def test_a_subscriber_that_raises_ends_neither_its_job_nor_the_engine(converted, tmp_path, caplog):
    """A front end's bug in a callback is logged; the take is still made and the next job still runs."""

    def broken(event):
        raise RuntimeError("the panel's bug")

    with Engine(tmp_path) as engine:
        (take,) = engine.submit(request(converted), on_event=broken).result(timeout=120)
        assert take.path.exists()
        assert engine.submit(request(converted, seed=1)).result(timeout=120)[0].path.exists()
    assert "an event subscriber of job 1 failed" in caplog.text


def test_a_failed_job_says_why_and_the_next_one_runs(converted, tmp_path):
    with Engine(tmp_path) as engine:
        bad = engine.submit(request(converted, preset="no-such-preset"))
        with pytest.raises(UserError) as raised:
            bad.result()
        assert list(bad.events())[-1] == events.Failed(str(raised.value), getattr(raised.value, "field", None))
        assert engine.submit(request(converted)).result()


# --- cancel at every stage --------------------------------------------------------------------------------


def blocked_engine(out, model):
    """An engine whose first job holds the inference thread at its first step until ``release`` is set."""
    release, reached = threading.Event(), threading.Event()

    def hold(event):
        if isinstance(event, events.Step) and not release.is_set():
            reached.set()
            release.wait()

    engine = Engine(out)
    first = engine.submit(request(model), on_event=hold)
    assert reached.wait(60)
    return engine, first, release


def test_a_queued_job_cancelled_before_it_starts(converted, tmp_path):
    engine, first, release = blocked_engine(tmp_path / "first", converted)
    with engine:
        queued = engine.submit(request(converted), tmp_path / "queued")
        queued.cancel()
        with pytest.raises(Cancelled):
            queued.result(timeout=60)  # ends now, while the first job still holds the thread
        assert not first.done
        assert [e.type for e in queued.events()] == ["queued", "cancelled"]
        release.set()
        assert first.result()
    assert library(tmp_path / "queued") == []


def test_close_cancels_the_queued_and_the_running_jobs(converted, tmp_path):
    engine, first, release = blocked_engine(tmp_path / "first", converted)
    queued = engine.submit(request(converted), tmp_path / "queued")
    closing = threading.Thread(target=engine.close)
    closing.start()
    with pytest.raises(Cancelled):
        queued.result(timeout=60)
    release.set()
    closing.join()
    with pytest.raises(Cancelled):
        first.result(timeout=0)
    assert library(tmp_path / "first") == library(tmp_path / "queued") == []


def cancel_on(job, kind) -> None:
    """Cancel ``job`` at its first event of ``kind`` (seen here at once if it was sent already)."""
    job.subscribe(lambda event: job.cancel() if isinstance(event, kind) else None)


@pytest.mark.parametrize("stage", ["loading", "generating", "finishing", "saving"])
def test_a_cancel_at_each_stage_leaves_no_take_and_no_staging(stage, converted, tmp_path, monkeypatch):
    box = []

    def cancel():
        box[0].cancel()

    if stage == "finishing":  # inside the finishing chain, after the take was made
        real_finish = jobs.finish
        monkeypatch.setattr(jobs, "finish", lambda *a, **k: (cancel(), real_finish(*a, **k))[1])
    if stage == "saving":  # while the take's files are written into its staging folder
        real_write = takes.write_new_file
        monkeypatch.setattr(takes, "write_new_file", lambda *a, **k: (cancel(), real_write(*a, **k))[1])
    out = tmp_path / "takes"
    with Engine(out) as engine:
        job = engine.submit(request(converted, seconds=0.5))
        box.append(job)
        if stage in ("loading", "generating"):
            cancel_on(job, events.Loading if stage == "loading" else events.Step)
        with pytest.raises(Cancelled):
            job.result()
        kinds = [e.type for e in job.events()]
        assert kinds[-1] == "cancelled" and "take_done" not in kinds
        if stage == "generating":  # stopped within the take, not at its end
            steps = [e for e in job.events() if isinstance(e, events.Step)]
            assert steps[-1].done < steps[-1].total
        assert engine.submit(request(converted), tmp_path / "next").result()  # the engine goes on
    assert library(out) == []


def test_a_cancel_after_the_first_take_is_saved_keeps_it(converted, tmp_path):
    """The takes are made as one batch, then saved one by one: a cancel once take 1 of 3 is saved keeps it whole."""
    with Engine(tmp_path) as engine:
        job = engine.submit(request(converted, seconds=0.5, takes=3))
        job.subscribe(lambda e: job.cancel() if isinstance(e, events.TakeDone) and e.take == 0 else None)
        with pytest.raises(Cancelled):
            job.result()
    assert library(tmp_path) == ["hum-seed0"]


# --- downloading ------------------------------------------------------------------------------------------


@pytest.fixture
def hub(musicgen_dirs, tmp_path, monkeypatch):
    """A STAND-IN for huggingface.co (tests/fixtures/fake_hub.py) serving the tiny MusicGen as musicgen-small."""
    from test_models_pull import _go_online

    folder = musicgen_dirs["mono"]
    files = {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}
    monkeypatch.setenv("DAW_PLUGIN_CONFIG", str(tmp_path / "config"))
    with FakeHub({"facebook/musicgen-small": files}) as server:
        _go_online(monkeypatch, server.endpoint, tmp_path / "hf")
        yield server
    huggingface_hub.close_session()


def test_a_download_sends_its_bytes_and_can_be_cancelled(hub, tmp_path):
    with Engine(tmp_path / "takes") as engine:
        job = engine.submit(Request("rain", model="musicgen-small", seconds=0.1, device="cpu"))
        job.subscribe(lambda e: job.cancel() if isinstance(e, events.Downloading) and e.done_bytes > 0 else None)
        with pytest.raises(Cancelled):
            job.result()
        assert [e.type for e in job.events()][-1] == "cancelled"
        again = engine.submit(Request("rain", model="musicgen-small", seconds=0.1, device="cpu"))
        assert again.result()
    downloads = [e for e in again.events() if isinstance(e, events.Downloading)]
    assert downloads and downloads[-1].done_bytes == downloads[-1].total_bytes > 0
    assert library(tmp_path / "takes") == ["rain-seed" + str(again.request.seed)]


# --- CUDA out of memory, simulated --------------------------------------------------------------------------


class OutOfMemoryStandIn:
    """A STAND-IN for a generator on a GPU that runs out of memory (there is no CUDA here): the real tiny
    generator's attributes, but ``generate`` raises torch.OutOfMemoryError as CUDA's allocator does."""

    def __init__(self, real):
        self.real = real

    def __getattr__(self, name):
        return getattr(self.real, name)

    def generate(self, *args, **kwargs):
        import torch

        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 8.00 GiB total)")


def test_out_of_memory_is_one_clear_error_and_the_next_job_runs(converted, tmp_path, monkeypatch):
    real = models.registry.load_generator
    loaded = []

    def first_runs_out(*args, **kwargs):
        generator = real(*args, **kwargs)
        loaded.append(generator)
        return OutOfMemoryStandIn(generator) if len(loaded) == 1 else generator

    monkeypatch.setattr(models.registry, "load_generator", first_runs_out)
    with Engine(tmp_path) as engine:
        job = engine.submit(request(converted))
        with pytest.raises(UserError) as raised:
            job.result()
        message = str(raised.value)
        assert str(converted) in message and "2.00 GiB" in message and "--device cpu" in message
        assert "fewer takes" in message and len(message.splitlines()) == 1
        assert list(job.events())[-1] == events.Failed(message, getattr(raised.value, "field", None))
        assert engine._warm == []  # the generator that ran out was dropped
        assert engine.submit(request(converted)).result()
        assert engine.loads == 2
    assert library(tmp_path) == ["hum-seed0"]


# --- previews -------------------------------------------------------------------------------------------------


def test_audioldm2_previews_each_finished_take_once(audioldm2_dir, tmp_path):
    """Diffusion settles every frame at once: its preview is the whole raw take, before it is finished and saved."""
    with Engine(tmp_path) as engine:
        job = engine.submit(request(audioldm2_dir, seconds=0.3, preset="raw", takes=2, steps=2))
        seen = list(job.events())
    previews = [event for event in seen if isinstance(event, events.Preview)]
    assert sorted(p.take for p in previews) == [0, 1] and all(p.offset_frames == 0 for p in previews)
    kinds = [type(event).__name__ for event in seen]
    assert kinds.index("Preview") < kinds.index("TakeDone")
    for done in (event for event in seen if isinstance(event, events.TakeDone)):
        raw = read_clip(str(done.path).replace(".wav", ".raw.wav")).samples
        np.testing.assert_array_equal(next(p.audio for p in previews if p.take == done.take), raw)


def test_a_token_take_is_heard_while_made_and_its_previews_are_the_take(musicgen_dirs, tmp_path):
    """The real decode loop's previews (`CodecLM.supports_preview`), through the engine: they arrive before the
    take is done, in order, and together they are the raw take, sample for sample (float WAV keeps them exact)."""
    with Engine(tmp_path) as engine:
        job = engine.submit(request(musicgen_dirs["mono"], seconds=2.5, preset="raw"))
        seen = list(job.events())
    (take,) = job.result()
    kinds = [type(event).__name__ for event in seen]
    previews = [event for event in seen if isinstance(event, events.Preview)]
    assert len(previews) >= 3 and kinds.index("Preview") < kinds.index("TakeDone")
    assert kinds.index("Preview") < len(kinds) - 1 - kinds[::-1].index("Step")  # heard while steps still come
    offsets = np.cumsum([0] + [p.audio.shape[1] for p in previews[:-1]])
    assert [p.offset_frames for p in previews] == offsets.tolist()
    raw = read_clip(str(take.path).replace(".wav", ".raw.wav")).samples
    np.testing.assert_array_equal(np.concatenate([p.audio for p in previews], axis=1), raw)


# --- the Python API, and memory over many jobs ---------------------------------------------------------------


def test_the_readme_python_api_runs_as_written(hub, tmp_path, monkeypatch):
    """The README's Python block, exactly, with musicgen-small from the stand-in hub (the tiny model)."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    (block,) = re.findall(r"```python\n(.*?)```", readme, re.S)
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(block, scope)
    scope["engine"].close()
    (take,) = scope["takes"]
    assert take.path.parts[0] == "takes" and (tmp_path / take.path).is_file()
    assert read_clip(str(tmp_path / take.path)).duration_seconds == pytest.approx(8, abs=0.01)


def test_memory_stays_flat_over_many_jobs_and_cancels(converted, tmp_path):
    import psutil

    process = psutil.Process()
    with Engine(tmp_path) as engine:
        engine.submit(request(converted, seconds=0.02)).result()  # warm
        start = process.memory_info().rss
        for index in range(50):
            engine.submit(request(converted, seconds=0.02, seed=index), tmp_path / "many").result()
        after_jobs = process.memory_info().rss
        for index in range(100):
            job = engine.submit(request(converted, seconds=0.5, seed=index), tmp_path / "cancelled")
            if index % 2:
                job.cancel()  # queued, or just started
            else:
                cancel_on(job, events.Step)
            with pytest.raises(Cancelled):
                job.result()
        after_cancels = process.memory_info().rss
    mib = 2**20
    print(f"\nRSS: {start / mib:.1f} MiB warm, {after_jobs / mib:.1f} MiB after 50 jobs "
          f"({(after_jobs - start) / mib:+.1f}), {after_cancels / mib:.1f} MiB after 100 cancels "
          f"({(after_cancels - after_jobs) / mib:+.1f})")
    assert len(library(tmp_path / "many")) == 50 and library(tmp_path / "cancelled") == []


def test_ctrl_c_in_the_cli_cancels_the_job_and_exits_130(converted, tmp_path, monkeypatch, capsys):
    """KeyboardInterrupt reaches the main thread while it waits for the take (as Ctrl-C does mid-generation)."""
    from daw_plugin.cli import ExitStatus, raw_main
    from daw_plugin.engine import Job

    real_result = Job.result
    interrupted = []

    def interrupted_once(job, timeout=None):
        if not interrupted:
            interrupted.append(job)
            next(e for e in job.events() if isinstance(e, events.Step))  # generating
            raise KeyboardInterrupt
        return real_result(job, timeout)

    monkeypatch.setattr(Job, "result", interrupted_once)
    status = raw_main(["generate", "hum", "--model", str(converted), "--seconds", "2", "--device", "cpu",
                       "--out", str(tmp_path)])
    assert status == ExitStatus.CANCELLED and "no partial take" in capsys.readouterr().err
    assert [e.type for e in interrupted[0].events()][-1] == "cancelled" and library(tmp_path) == []
