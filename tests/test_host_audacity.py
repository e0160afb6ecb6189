"""AudacityHost against a real Audacity under Xvfb, started and stopped by these tests.

Skipped with the reason when audacity, xvfb-run or xauth is missing (CI: ``apt-get install -y
audacity xvfb xauth``). One Audacity per user owns the script pipes: never run these in parallel.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from fixtures.audacity_instance import AudacityInstance, AudacityUnavailable, unavailable_reason
from pedalboard.io import AudioFile

from daw_plugin.hosts import open_host
from daw_plugin.hosts.audacity import AudacityHost
from daw_plugin.hosts.audacity_pipe import ScriptPipe
from daw_plugin.hosts.audacity_project import ProjectCopy
from daw_plugin.hosts.audacity_setup import config_path, module_date, seed_config
from daw_plugin.hosts.base import Host, HostError, Placement, Selection, Track

RATE = 44100
ONE_SAMPLE = 1 / RATE


@pytest.fixture(scope="session")
def audacity_instance(tmp_path_factory):
    reason = unavailable_reason()
    if reason:
        pytest.skip(f"needs a headless Audacity: {reason}")
    instance = AudacityInstance(tmp_path_factory.mktemp("audacity-home"))
    try:
        try:
            instance.start()
        except AudacityUnavailable as error:
            pytest.skip(f"needs a headless Audacity: {error}")
        yield instance
    finally:
        instance.close()


@pytest.fixture
def host(audacity_instance):
    """A connected host on an empty project (every track removed, nothing selected)."""
    audacity_instance.ensure_running()
    for command in ("SelectAll:", "RemoveTracks:", "Select: Start=0 End=0 Mode=Set"):
        ask(command)
    host = AudacityHost()
    yield host
    host.close()


def ask(command: str) -> str:
    """Send one command on a connection of its own (not the host's) and return the reply body."""
    pipe = ScriptPipe(timeout_s=10)
    try:
        reply = pipe.command(command)
    finally:
        pipe.close()
    assert reply.ok, f"{command} -> {reply.status} {reply.body}"
    return reply.body


def clips_on(track_index: int) -> list[tuple[float, float]]:
    clips = json.loads(ask("GetInfo: Type=Clips Format=JSON"))
    return sorted((c["start"], c["end"]) for c in clips if c["track"] == track_index)


def write_take(path: Path, seconds: float, rate: int = RATE, channels: int = 1, value: float | None = None) -> Path:
    """A take as the library writes it (32-bit float WAV): a sine, or a constant ``value`` to recognise it by."""
    frames = round(seconds * rate)
    if value is None:
        tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(frames) / rate)
    else:
        tone = np.full(frames, value)
    samples = np.repeat(tone[None].astype(np.float32), channels, axis=0)
    with AudioFile(str(path), "w", rate, channels, bit_depth=32) as f:
        f.write(samples)
    return path


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message and "Traceback" not in message
    return message


# -- with a running Audacity


def test_the_factory_gives_an_audacity_host_that_checks(host):
    adapter = open_host("audacity")
    assert isinstance(adapter, AudacityHost) and isinstance(adapter, Host) and adapter.name == "audacity"
    adapter.check()
    host.check()


def test_insert_into_a_new_track_lands_at_the_time(host, tmp_path):
    take = write_take(tmp_path / "rain take.wav", 0.75)
    placement = host.insert(take, None, 1.5)
    assert placement.track == Track("rain take", 0)
    assert placement.start_seconds == 1.5 and placement.end_seconds == pytest.approx(2.25)
    [(start, end)] = clips_on(0)
    assert abs(start - 1.5) <= ONE_SAMPLE
    assert abs((end - start) - 0.75) <= ONE_SAMPLE
    assert host.tracks() == [Track("rain take", 0)]


def test_insert_onto_an_existing_track_pastes_there_and_leaves_no_extra_track(host, tmp_path):
    bed = host.insert(write_take(tmp_path / "bed.wav", 2.0), None, 0.0)
    placement = host.insert(write_take(tmp_path / "hit.wav", 0.5, value=0.25), "bed", 3.0)
    assert placement == Placement(bed.track, 3.0, 3.5)
    assert host.tracks() == [Track("bed", 0)]
    assert [(s, e) for s, e in clips_on(0) if abs(s - 3.0) <= ONE_SAMPLE and abs(e - 3.5) <= ONE_SAMPLE]
    with ProjectCopy(host.save_copy(tmp_path / "check.aup3")) as project:
        [track] = project.info.tracks
        audio = project.audio(track, 3.0, 3.5)
    np.testing.assert_allclose(audio, 0.25)


def test_a_take_never_replaces_audio_already_on_the_track(host, tmp_path):
    host.insert(write_take(tmp_path / "bed.wav", 2.0, value=0.5), None, 0.0)
    with pytest.raises(HostError, match="already has audio between 1.5 and 2 s"):
        host.insert(write_take(tmp_path / "hit.wav", 0.5, value=0.25), "bed", 1.5)
    assert host.tracks() == [Track("bed", 0)]  # the imported take is not left behind either
    with ProjectCopy(host.save_copy(tmp_path / "check.aup3")) as project:
        [track] = project.info.tracks
        np.testing.assert_allclose(project.audio(track, 0.0, 2.0), 0.5)


def test_a_stereo_take_onto_a_mono_track_is_mixed_down(host, tmp_path):
    host.insert(write_take(tmp_path / "mono.wav", 1.0), None, 0.0)
    host.insert(write_take(tmp_path / "wide.wav", 0.5, rate=48000, channels=2), "mono", 2.0)
    assert host.tracks() == [Track("mono", 0)]
    assert any(abs(s - 2.0) <= ONE_SAMPLE and e >= 2.5 - ONE_SAMPLE for s, e in clips_on(0))


def test_a_track_name_the_project_lacks_makes_that_track(host, tmp_path):
    host.insert(write_take(tmp_path / "drums.wav", 0.5), None, 0.0)
    placement = host.insert(write_take(tmp_path / "bass.wav", 0.5), "Bass", 1.0)
    assert placement == Placement(Track("Bass", 1), 1.0, 1.5)
    assert host.tracks() == [Track("drums", 0), Track("Bass", 1)]
    assert any(abs(s - 1.0) <= ONE_SAMPLE and e >= 1.5 - ONE_SAMPLE for s, e in clips_on(1))
    host.insert(write_take(tmp_path / "more.wav", 0.5), "Bass", 2.0)  # now it exists: pasted onto it
    assert len(host.tracks()) == 2


def test_a_label_track_of_that_name_is_refused_before_the_model_loads(host, tmp_path, capsys, converted):
    from test_cli import cli

    from daw_plugin.cli import ExitStatus

    ask("NewLabelTrack:")
    ask('SetTrackStatus: Track=0 Name="Notes"')
    assert host.tracks() == [Track("Notes", 0, "label")]
    with pytest.raises(HostError) as caught:
        host.insert(write_take(tmp_path / "bass.wav", 0.5), "Notes", 1.0)
    assert "label track" in one_line(caught)
    status, _, err = cli(capsys, "generate", "hum", "--model", converted, "--seconds", 0.2, "--out",
                         tmp_path / "takes", "--host", "audacity", "--track", "Notes")
    assert status == ExitStatus.BAD_INPUT and "'Notes' in audacity is a label track" in err
    assert not (tmp_path / "takes").exists() and len(host.tracks()) == 1


def test_tracks_lists_what_was_inserted(host, tmp_path):
    host.insert(write_take(tmp_path / "kick.wav", 0.5), None, 0.0)
    host.insert(write_take(tmp_path / "snare.wav", 0.5, channels=2), None, 0.5)
    assert host.tracks() == [Track("kick", 0), Track("snare", 1)]


def test_selection_round_trip_reads_the_region_track_and_audio(host, tmp_path):
    ramp = np.linspace(-0.5, 0.5, 2 * RATE, dtype=np.float32)[None]
    take = tmp_path / "ramp.wav"
    with AudioFile(str(take), "w", RATE, 1, bit_depth=32) as f:
        f.write(ramp)
    host.insert(write_take(tmp_path / "other.wav", 0.5), None, 0.0)
    host.insert(take, None, 1.0)
    ask("Select: Start=1.25 End=1.75 Track=1 TrackCount=1 Mode=Set")
    selection = host.selection()
    assert isinstance(selection, Selection)
    assert selection.region.start_seconds == 1.25 and selection.region.end_seconds == 1.75
    assert selection.track == Track("ramp", 1)
    assert selection.audio.sample_rate == RATE
    np.testing.assert_array_equal(selection.audio.samples, ramp[:, RATE // 4 : 3 * RATE // 4])
    ask("Select: Start=1.5 End=1.5 Track=1 TrackCount=1 Mode=Set")
    assert host.selection() is None  # a cursor is no region


def test_project_rate_and_tempo(host):
    assert host.sample_rate() == RATE  # the default rate of a new project
    assert host.tempo_bpm() is None  # Audacity 3.2 keeps no tempo


def test_save_copy_holds_the_clip(host, tmp_path):
    host.insert(write_take(tmp_path / "foley.wav", 0.75), None, 1.5)
    saved = host.save_copy(tmp_path / "session copy.aup3")
    db = sqlite3.connect(f"file:{saved}?mode=ro", uri=True)
    try:
        blocks, sample_bytes = db.execute("SELECT count(*), sum(length(samples)) FROM sampleblocks").fetchone()
        document = b"".join(db.execute("SELECT dict, doc FROM project").fetchone())
    finally:
        db.close()
    assert blocks >= 1 and sample_bytes >= round(0.75 * RATE) * 4  # float32 samples
    assert "foley".encode("utf-32-le") in document  # wxChar is UTF-32 on Linux
    with ProjectCopy(saved) as project:
        [track] = project.info.tracks
        [[clip]] = track.channels
    assert (track.name, clip.offset_seconds, clip.frames) == ("foley", 1.5, round(0.75 * RATE))
    with pytest.raises(HostError) as caught:  # Audacity would stop at an error dialog: refused before
        host.save_copy(saved)
    assert "already exists" in one_line(caught)
    host.check()


def test_a_missing_file_is_refused_before_audacity_sees_it(host, tmp_path):
    with pytest.raises(HostError) as caught:
        host.insert(tmp_path / "gone.wav", None, 0.0)
    assert "There is no audio file" in one_line(caught)
    host.check()  # an Import2 of a missing file would have left a dialog that never answers
    assert host.tracks() == []


def test_audacity_gone_mid_insert_says_where_the_take_is(audacity_instance, host, tmp_path):
    take = tmp_path / "long take.wav"
    noise = (np.random.default_rng(0).standard_normal((2, 300 * RATE)) * 0.1).astype(np.float32)
    with AudioFile(str(take), "w", RATE, 2, bit_depth=16) as f:  # big enough to take a while to import
        f.write(noise)
    host.check()
    [pid] = audacity_instance.audacity_pids()
    done = threading.Event()
    killer = threading.Thread(target=kill_while_reading, args=(pid, take, done))
    killer.start()
    try:
        with pytest.raises(HostError) as caught:
            host.insert(take, None, 0.0)
    finally:
        done.set()
        killer.join()
    message = one_line(caught)
    assert "stopped answering while inserting" in message and str(take) in message


def test_a_host_outlives_an_audacity_restart(audacity_instance, host, tmp_path):
    host.insert(write_take(tmp_path / "before.wav", 0.2), None, 0.0)
    audacity_instance.stop()
    with pytest.raises(HostError) as caught:
        host.tracks()
    assert "not running" in one_line(caught)
    audacity_instance.start()
    assert host.tracks() == []  # the same host, reconnected to the new Audacity's empty project


def kill_while_reading(pid: int, path: Path, done: threading.Event) -> None:
    """SIGKILL Audacity once it has the file open, that is, in the middle of Import2."""
    while not done.is_set():
        try:
            opened = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        except OSError:
            opened = set()  # a descriptor closed while we listed them
        if str(path) in opened:
            os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.001)


# -- without Audacity


def test_no_audacity_is_a_one_line_error(tmp_path):
    host = AudacityHost(pipe_dir=tmp_path)
    take = write_take(tmp_path / "take.wav", 0.1)
    for call in (host.check, host.tracks, host.selection, lambda: host.insert(take, None, 0.0)):
        with pytest.raises(HostError) as caught:
            call()
        assert "Audacity is not running with mod-script-pipe enabled" in one_line(caught)


def test_stale_pipes_of_a_killed_audacity_are_not_an_audacity(tmp_path):
    uid = os.getuid()
    for name in (f"audacity_script_pipe.to.{uid}", f"audacity_script_pipe.from.{uid}"):
        os.mkfifo(tmp_path / name)
    with pytest.raises(HostError) as caught:
        AudacityHost(pipe_dir=tmp_path).check()  # nobody reads the FIFO: refused at once, no hang
    assert "not running" in one_line(caught)


def test_bad_insert_arguments_are_refused_before_anything_is_sent(tmp_path):
    host = AudacityHost(pipe_dir=tmp_path)  # no Audacity: any attempt to talk would say so
    take = write_take(tmp_path / "take.wav", 0.1)
    quoted = write_take(tmp_path / 'say "hi".wav', 0.1)
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("not audio")
    cases = [(take, -1.0, "0 s or later"), (not_audio, 0.0, "Could not read audio"), (quoted, 0.0, "double quote")]
    for path, at, expected in cases:
        with pytest.raises(HostError) as caught:
            host.insert(path, None, at)
        assert expected in one_line(caught)
    with pytest.raises(HostError) as caught:
        host.save_copy(tmp_path / "copy.wav")
    assert ".aup3" in one_line(caught)


def test_seed_config_enables_the_module_with_its_exact_date_and_is_idempotent(tmp_path):
    module = tmp_path / "mod-script-pipe.so"
    module.write_bytes(b"")
    os.utime(module, (1675285011, 1675285011))
    first = seed_config(tmp_path / "home", module=module).read_text()
    assert seed_config(tmp_path / "home", module=module).read_text() == first
    for line in ("mod-script-pipe=1", f"mod-script-pipe={module}", f"mod-script-pipe={module_date(module)}",
                 "ShowSplashScreen=0", "Major=3", "Minor=2", "Micro=4", f"TempDir={tmp_path / 'home'}"):
        assert line in first
    assert module_date(module) == time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(1675285011))


def test_seed_config_keeps_what_audacity_wrote(tmp_path):
    module = tmp_path / "mod-script-pipe.so"
    module.write_bytes(b"")
    path = config_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("PrefsVersion=1.1.1r1\n[Module]\nmod-script-pipe=4\n[AudioIO]\nPlaybackDevice=pulse\n")
    text = seed_config(tmp_path, module=module, enable_module=False).read_text()
    assert text.startswith("PrefsVersion=1.1.1r1\n") and "PlaybackDevice=pulse" in text
    assert "mod-script-pipe=0" in text and "mod-script-pipe=4" not in text
