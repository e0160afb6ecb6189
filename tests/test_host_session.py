"""The session host against real files: real WAVs through pedalboard, a real manifest on disk, no mocks."""

import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from daw_plugin.audio import Clip, Region, read_clip, write_clip
from daw_plugin.hosts import Host, HostError, Placement, Track, open_host
from daw_plugin.hosts.session import LOCK, SessionHost, render
from daw_plugin.hosts.session_manifest import MANIFEST
from models.errors import NOTICES

RATE = 48000


def constant(value, seconds, rate=RATE, channels=1):
    return Clip(np.full((channels, round(seconds * rate)), value, np.float32), rate)


def impulse(seconds, rate=RATE, channels=1):
    samples = np.zeros((channels, round(seconds * rate)), np.float32)
    samples[:, 0] = 1.0
    return Clip(samples, rate)


def noise(seconds, rate=RATE, channels=2, seed=0):
    samples = np.random.default_rng(seed).uniform(-0.5, 0.5, (channels, round(seconds * rate)))
    return Clip(samples.astype(np.float32), rate)


def take(folder: Path, name: str, clip: Clip) -> Path:
    folder.mkdir(exist_ok=True)
    return write_clip(clip, folder / name)


def manifest(folder: Path) -> dict:
    return json.loads((folder / MANIFEST).read_text())


def edit_manifest(folder: Path, change) -> None:
    raw = manifest(folder)
    change(raw)
    (folder / MANIFEST).write_text(json.dumps(raw, indent=2))


@pytest.fixture
def folder(tmp_path) -> Path:
    return SessionHost.create(tmp_path / "song", tempo_bpm=96, sample_rate=RATE).folder


@pytest.fixture
def takes(tmp_path) -> Path:
    return tmp_path / "takes"


@pytest.fixture
def notices() -> list[str]:
    """The notices (`models.errors.notify`) sent while the test runs, as the CLI would print them."""
    sent: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: sent.append(record.getMessage())
    logger = logging.getLogger(NOTICES)
    logger.addHandler(handler)
    yield sent
    logger.removeHandler(handler)


def test_create_writes_a_manifest_a_fresh_host_reads(folder):
    host = open_host(f"session:{folder}")
    assert isinstance(host, SessionHost) and isinstance(host, Host) and host.name == "session"
    host.check()
    assert (host.tempo_bpm(), host.sample_rate(), host.tracks(), host.selection()) == (96, RATE, [], None)
    assert (folder / "audio").is_dir()
    raw = manifest(folder)
    assert list(raw) == ["format_version", "name", "tempo_bpm", "sample_rate", "time_signature", "tracks"]
    assert raw["name"] == "song" and raw["time_signature"] == {"numerator": 4, "denominator": 4}
    assert (folder / MANIFEST).read_text().startswith('{\n  "format_version": 1,\n')  # pretty, for hand edits


def test_create_never_replaces_a_session(folder):
    before = (folder / MANIFEST).read_bytes()
    with pytest.raises(HostError, match="already holds a session"):
        SessionHost.create(folder, tempo_bpm=140)
    assert (folder / MANIFEST).read_bytes() == before
    assert sorted(os.listdir(folder)) == [LOCK, "audio", MANIFEST]  # the lock file writers take turns by


@pytest.mark.parametrize(("tempo", "rate"), [(0, RATE), (-90, RATE), (float("nan"), RATE), (1e6, RATE), (120, 0),
                                             (120, 44100.5), (120, 1e9), (120, 100)])
def test_create_refuses_impossible_tempo_or_rate(tmp_path, tempo, rate):
    with pytest.raises(HostError) as info:
        SessionHost.create(tmp_path / "song", tempo_bpm=tempo, sample_rate=rate)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "song" / MANIFEST).exists()


def test_check_names_a_missing_folder_or_manifest(tmp_path):
    with pytest.raises(HostError, match="no session folder"):
        SessionHost(tmp_path / "nowhere").check()
    (tmp_path / "plain").mkdir()
    with pytest.raises(HostError, match="holds no session.json"):
        SessionHost(tmp_path / "plain").check()


def test_insert_on_new_and_existing_tracks_round_trips(folder, takes):
    rain, thunder = take(takes, "rain.wav", noise(0.5)), take(takes, "thunder.flac", noise(0.25, channels=1, seed=1))
    rain_bytes = rain.read_bytes()
    host = SessionHost(folder)
    assert host.insert(rain, None, 1.5) == Placement(Track("rain", 0), 1.5, 2.0)
    assert host.insert(thunder, None, 0) == Placement(Track("thunder", 1), 0.0, 0.25)
    assert host.insert(rain, "thunder", 3.25) == Placement(Track("thunder", 1), 3.25, 3.75)

    fresh = SessionHost(folder)
    assert fresh.tracks() == [Track("rain", 0), Track("thunder", 1)]
    tracks = manifest(folder)["tracks"]
    assert tracks == [
        {"name": "rain", "clips": [{"file": "audio/rain.wav", "start_seconds": 1.5}]},
        {"name": "thunder", "clips": [{"file": "audio/thunder.flac", "start_seconds": 0.0},
                                      {"file": "audio/rain-2.wav", "start_seconds": 3.25}]},
    ]
    assert rain.read_bytes() == rain_bytes  # the take is only read, never moved
    for clip in (c for t in tracks for c in t["clips"]):
        source = rain if "rain" in clip["file"] else thunder
        assert (folder / clip["file"]).read_bytes() == source.read_bytes()
    assert not [n for n in os.listdir(folder / "audio") if n.startswith(".")]  # no temporary files left


def test_a_new_track_gets_a_free_name(folder, takes):
    rain = take(takes, "rain.wav", noise(0.1))
    host = SessionHost(folder)
    host.insert(rain, None, 0)
    assert host.insert(rain, None, 1).track == Track("rain-2", 1)
    assert [t.name for t in SessionHost(folder).tracks()] == ["rain", "rain-2"]


def test_insert_never_overwrites_a_file_in_the_audio_folder(folder, takes):
    (folder / "audio" / "rain.wav").write_bytes(b"the user's own file")
    SessionHost(folder).insert(take(takes, "rain.wav", noise(0.1)), None, 0)
    assert (folder / "audio" / "rain.wav").read_bytes() == b"the user's own file"
    assert manifest(folder)["tracks"][0]["clips"][0]["file"] == "audio/rain-2.wav"
    assert read_clip(folder / "audio" / "rain-2.wav").frames == round(0.1 * RATE)


def test_a_track_name_the_session_lacks_makes_that_track(folder, takes):
    host = SessionHost(folder)
    host.insert(take(takes, "rain.wav", noise(0.1)), None, 0)
    assert host.insert(take(takes, "wind.wav", noise(0.1)), "Foley", 2.0) == Placement(Track("Foley", 1), 2.0, 2.1)
    assert host.insert(take(takes, "steps.wav", noise(0.1)), "Foley", 3.0).track == Track("Foley", 1)
    assert manifest(folder)["tracks"][1] == {"name": "Foley", "clips": [
        {"file": "audio/wind.wav", "start_seconds": 2.0}, {"file": "audio/steps.wav", "start_seconds": 3.0}]}


@pytest.mark.parametrize("at", [-1.0, float("inf"), 1e7])
def test_insert_refuses_an_impossible_time(folder, takes, at):
    with pytest.raises(HostError, match="0 s or later"):
        SessionHost(folder).insert(take(takes, "rain.wav", noise(0.1)), None, at)
    assert manifest(folder)["tracks"] == []


def test_insert_refuses_a_file_that_is_not_audio(folder, takes):
    takes.mkdir()
    (takes / "notes.wav").write_text("not audio")
    with pytest.raises(HostError, match="notes.wav"):
        SessionHost(folder).insert(takes / "notes.wav", None, 0)
    assert manifest(folder)["tracks"] == [] and os.listdir(folder / "audio") == []


def test_rewrite_keeps_unknown_keys_and_their_order(folder, takes):
    rain = take(takes, "rain.wav", noise(0.1))
    SessionHost(folder).insert(rain, None, 0)

    def annotate(raw):
        raw["tracks"][0]["clips"][0]["gain_db"] = -3
        raw["tracks"][0]["color"] = "#3366ff"
        raw["notes"] = "mixed on the train"

    edit_manifest(folder, annotate)
    SessionHost(folder).insert(rain, "rain", 2)
    raw = manifest(folder)
    assert list(raw)[-1] == "notes" and raw["notes"] == "mixed on the train"
    assert list(raw["tracks"][0]) == ["name", "clips", "color"]
    assert raw["tracks"][0]["clips"][0] == {"file": "audio/rain.wav", "start_seconds": 0.0, "gain_db": -3}
    assert len(raw["tracks"][0]["clips"]) == 2


def _text(content):
    return lambda folder: (folder / MANIFEST).write_bytes(content)


def _edit(change):
    return lambda folder: edit_manifest(folder, change)


def _set(key, value):
    return _edit(lambda raw: raw.__setitem__(key, value))


def _add_clip(file):
    return _edit(lambda raw: raw["tracks"].append({"name": "x", "clips": [{"file": file, "start_seconds": 0}]}))


def _clip_field(key, value):
    """A real clip with one field set to ``value``."""
    def corrupt(folder):
        write_clip(noise(0.1), folder / "audio" / "x.wav")
        _add_clip("audio/x.wav")(folder)
        edit_manifest(folder, lambda raw: raw["tracks"][-1]["clips"][0].__setitem__(key, value))
    return corrupt


@pytest.mark.parametrize(
    ("corrupt", "says"),
    [
        (_text(b'{"format_version": 1,\n  "tempo_bpm": 120,,\n}'), "not valid JSON (Expecting property name"),
        (_text(b"[]"), "must hold a JSON object, not a list"),
        (_text(b"\xff\xfe{}"), "not UTF-8"),
        (_set("tempo_bpm", 0), "tempo_bpm 0, which must be a number above 0"),
        (_set("tempo_bpm", 1e6), "at most 999 BPM"),
        (_set("tempo_bpm", "fast"), "tempo_bpm 'fast', which must be a number"),
        (_set("sample_rate", -48000), "sample_rate -48000"),
        (_set("sample_rate", 1e9), "sample_rate 1000000000.0, which must be a whole number of Hz from 8000 to 384000"),
        (_set("sample_rate", 44100.5), "whole number of Hz"),
        (_clip_field("start_seconds", 1e7), "start_seconds 10000000.0, which must be at least 0 and at most 14400 s"),
        (_clip_field("offset_seconds", -1), "offset_seconds -1"),
        (_clip_field("duration_seconds", 1e9), "at most 14400 s"),
        (_set("selection", {"start_seconds": 0, "end_seconds": 1e12}), "selection end_seconds"),
        (_edit(lambda raw: raw.pop("sample_rate")), 'missing "sample_rate"'),
        (_set("format_version", 7), "newer daw-plugin"),
        (_set("time_signature", "4/4"), "time_signature"),
        (_add_clip("audio/gone.wav"), "audio/gone.wav, which does not exist"),
        (_add_clip("../elsewhere.wav"), "outside the session folder"),
        (_add_clip("/etc/passwd"), "outside the session folder"),
        (_set("tracks", [{"name": "a"}, {"name": "a"}]), "two tracks named 'a'"),
        (_set("tracks", [{"clips": []}]), 'track 1 needs a non-empty "name"'),
        (_set("selection", {"track": "ghost", "start_seconds": 0, "end_seconds": 1}), "track 'ghost'"),
        (_set("selection", {"start_seconds": 2, "end_seconds": 1}), "ends before it starts"),
    ],
    ids=["json", "array", "encoding", "tempo-0", "tempo-huge", "tempo-text", "rate-negative", "rate-huge",
         "rate-fraction", "start-huge", "offset-negative", "duration-huge", "selection-huge", "rate-missing", "newer",
         "time-signature", "clip-missing", "clip-escapes", "clip-absolute", "duplicate-track", "unnamed-track",
         "selection-track", "selection-backwards"],
)
def test_a_bad_manifest_is_one_line_naming_the_file(folder, corrupt, says):
    corrupt(folder)
    for call in (SessionHost.check, SessionHost.tracks, SessionHost.tempo_bpm, SessionHost.selection):
        with pytest.raises(HostError) as info:
            call(SessionHost(folder))
        message = str(info.value)
        assert says in message and str(folder / MANIFEST) in message and "\n" not in message


def test_a_locked_manifest_is_never_rewritten(folder, takes):
    """A manifest without write bits was protected on purpose; honoured even for root, which ignores modes."""
    (folder / MANIFEST).chmod(0o444)
    before = (folder / MANIFEST).read_bytes()
    with pytest.raises(HostError) as info:
        SessionHost(folder).insert(take(takes, "rain.wav", noise(0.1)), None, 0)
    assert "read-only" in str(info.value) and "still in the library" in str(info.value)
    assert (folder / MANIFEST).read_bytes() == before and os.listdir(folder / "audio") == []


def test_a_read_only_folder_is_reported_in_one_line(folder, takes):
    rain = take(takes, "rain.wav", noise(0.1))
    before = (folder / MANIFEST).read_bytes()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("this user (root) ignores folder permissions; the locked-manifest test covers the check")
        with pytest.raises(HostError) as info:
            SessionHost(folder).insert(rain, None, 0)
    finally:
        folder.chmod(0o755)
    assert "read-only" in str(info.value) and "\n" not in str(info.value)
    assert (folder / MANIFEST).read_bytes() == before


def test_rewrite_keeps_the_manifest_permissions(folder, takes):
    (folder / MANIFEST).chmod(0o640)
    SessionHost(folder).insert(take(takes, "rain.wav", noise(0.1)), None, 0)
    assert stat.S_IMODE((folder / MANIFEST).stat().st_mode) == 0o640


def test_each_operation_reads_the_manifest_once(folder, takes, tmp_path, monkeypatch):
    """One read per call: a second one costs a parse and may see another version of the file than the first."""
    from daw_plugin.hosts import session_manifest

    reads = []
    real = session_manifest._read_json
    monkeypatch.setattr(session_manifest, "_read_json", lambda manifest: reads.append(manifest) or real(manifest))
    host, rain = SessionHost(folder), take(takes, "rain.wav", noise(0.1))
    operations = {
        "check": host.check, "tracks": host.tracks, "tempo_bpm": host.tempo_bpm, "sample_rate": host.sample_rate,
        "insert": lambda: host.insert(rain, None, 0), "set_selection": lambda: host.set_selection("rain", Region(0, 1)),
        "selection": host.selection, "render": lambda: render(folder, tmp_path / "mix.wav"),
        "insert into a new session": lambda: SessionHost(tmp_path / "new", create_missing=True).insert(rain, None, 0),
    }
    for name, operation in operations.items():
        reads.clear()
        operation()
        assert len(reads) == 1, name


def test_a_snapshot_answers_from_one_read_and_an_insert_still_reads_afresh(folder, takes):
    host, other = SessionHost(folder), SessionHost(folder)  # ``other``: another process writing the same session
    rain = take(takes, "rain.wav", noise(0.1))
    with host.snapshot():
        assert host.tracks() == []
        other.insert(rain, "theirs", 0)
        assert host.tracks() == []  # the job's questions see one version of the manifest
        assert host.insert(rain, "mine", 1).track == Track("mine", 1)  # the writer re-read under the lock
        assert [t.name for t in host.tracks()] == ["theirs", "mine"]  # and dropped the snapshot it outdated
    other.insert(rain, "later", 2)
    assert [t.name for t in host.tracks()] == ["theirs", "mine", "later"]  # outside the block: read afresh


def test_one_job_reads_the_manifest_once_before_its_insert(converted, tmp_path, monkeypatch):
    """A real job asks check, tracks, sample rate and tempo (for --bars): one read for all of them, then the
    insert's own read under the lock. Before, each question re-read and re-parsed session.json: four reads."""
    from daw_plugin import jobs
    from daw_plugin.hosts import session_manifest
    from daw_plugin.request import GenerationRequest

    folder = SessionHost.create(tmp_path / "song", tempo_bpm=240, sample_rate=16000).folder
    seen = []
    read, insert = session_manifest._read_json, SessionHost.insert
    monkeypatch.setattr(session_manifest, "_read_json", lambda manifest: seen.append("read") or read(manifest))
    monkeypatch.setattr(SessionHost, "insert", lambda self, *args: seen.append("insert") or insert(self, *args))
    request = GenerationRequest(prompt="hum", model=str(converted), seconds=None, bars=1, beats_per_bar=1, seed=0,
                                device="cpu", host=f"session:{folder}", track="fx")
    (take,) = jobs.run(request, tmp_path / "takes")
    assert seen == ["read", "insert", "read"]
    assert take.placement == Placement(Track("fx", 0), 0.0, 0.25)  # one bar of one beat at the session's 240 BPM
    assert SessionHost(folder).tracks() == [Track("fx", 0)]


def test_selection_audio_is_the_clip_over_the_region(folder, takes):
    source = noise(1.0)
    host = SessionHost(folder)
    host.insert(take(takes, "rain.wav", source), None, 1.0)
    host.insert(take(takes, "other.wav", noise(2.0, seed=3)), None, 0)  # another track: not in the selection
    host.set_selection("rain", Region(1.25, 1.75))

    selection = SessionHost(folder).selection()
    assert selection.track == Track("rain", 0) and selection.region == Region(1.25, 1.75)
    assert selection.audio.sample_rate == RATE
    np.testing.assert_array_equal(selection.audio.samples, source.samples[:, RATE // 4 : 3 * RATE // 4])


def test_selection_past_the_clip_edges_is_silence_there(folder, takes):
    source = noise(1.0)
    host = SessionHost(folder)
    host.insert(take(takes, "rain.wav", source), None, 1.0)
    host.set_selection("rain", Region(0.5, 1.5))
    audio = host.selection().audio.samples
    assert audio.shape == (2, RATE)
    assert not audio[:, : RATE // 2].any()
    np.testing.assert_array_equal(audio[:, RATE // 2 :], source.samples[:, : RATE // 2])


def test_selection_can_be_cleared_and_refuses_unknown_tracks(folder, takes):
    host = SessionHost(folder)
    host.insert(take(takes, "rain.wav", noise(0.5)), None, 0)
    with pytest.raises(HostError, match="'ghost'"):
        host.set_selection("ghost", Region(0, 1))
    with pytest.raises(HostError, match="end after it"):
        host.set_selection("rain", Region(1, 0.5))
    host.set_selection(None, Region(0, 0.25))
    assert host.selection().track is None and host.selection().audio.frames == RATE // 4
    host.set_selection(None, None)
    assert host.selection() is None and "selection" not in manifest(folder)


def test_render_places_an_impulse_at_its_start_sample(folder, takes, tmp_path):
    SessionHost(folder).insert(take(takes, "click.wav", impulse(0.5)), None, 1.5)
    out = render(folder, tmp_path / "mix.wav")
    mix = read_clip(out)
    assert (mix.sample_rate, mix.channels, mix.frames) == (RATE, 2, 2 * RATE)
    assert np.flatnonzero(mix.samples[0]).tolist() == [round(1.5 * RATE)]
    np.testing.assert_array_equal(mix.samples[0], mix.samples[1])  # mono placed on both sides


def test_render_sums_overlapping_clips_and_honours_offset_and_duration(folder, takes, tmp_path):
    host = SessionHost(folder)
    host.insert(take(takes, "low.wav", constant(0.25, 1.0)), None, 0)
    host.insert(take(takes, "high.wav", constant(0.5, 1.0, channels=2)), None, 0.5)
    ramp = Clip(np.arange(RATE, dtype=np.float32)[None] / RATE, RATE)
    host.insert(take(takes, "ramp.wav", ramp), None, 2.0)
    edit_manifest(folder, lambda raw: raw["tracks"][2]["clips"][0].update(offset_seconds=0.5, duration_seconds=0.25))

    mix = read_clip(render(folder, tmp_path / "mix.wav")).samples
    half = RATE // 2
    assert mix.shape == (2, 2 * RATE + RATE // 4)
    np.testing.assert_array_equal(mix[:, :half], 0.25)
    np.testing.assert_array_equal(mix[:, half : 2 * half], 0.75)  # both clips sound here
    np.testing.assert_array_equal(mix[:, 2 * half : 3 * half], 0.5)
    np.testing.assert_array_equal(mix[:, 3 * half : 2 * RATE], 0.0)
    np.testing.assert_array_equal(mix[0, 2 * RATE :], ramp.samples[0, half : half + RATE // 4])


def test_render_conforms_other_rates_to_the_session_rate(folder, takes, tmp_path):
    SessionHost(folder).insert(take(takes, "click.wav", impulse(0.5, rate=16000)), None, 1.0)
    mix = read_clip(render(folder, tmp_path / "mix.flac"))
    assert mix.sample_rate == RATE and mix.frames == round(1.5 * RATE)
    assert abs(int(np.argmax(np.abs(mix.samples[0]))) - RATE) <= 2  # resampling smears, but does not move it


def test_render_never_replaces_a_file_and_names_bad_requests(folder, takes, tmp_path):
    with pytest.raises(HostError, match="no clips yet"):
        render(folder, tmp_path / "mix.wav")
    SessionHost(folder).insert(take(takes, "click.wav", impulse(0.1)), None, 0)
    (tmp_path / "mix.wav").write_bytes(b"an earlier mix")
    with pytest.raises(HostError, match="already exists"):
        render(folder, tmp_path / "mix.wav")
    assert (tmp_path / "mix.wav").read_bytes() == b"an earlier mix"
    with pytest.raises(HostError, match=r"\.wav or \.flac"):
        render(folder, tmp_path / "mix.mp3")
    with pytest.raises(HostError, match="folder that exists"):
        render(folder, tmp_path / "missing" / "mix.wav")
    assert sorted(os.listdir(tmp_path)) == ["mix.wav", "song", "takes"]


def test_render_turns_a_clipping_mix_down_and_says_by_how_much(folder, takes, tmp_path, notices):
    """Two overlapping clips at 0.75 sum to 1.5 (+3.5 dBFS): written as is, a FLAC would clip flat."""
    host = SessionHost(folder)
    host.insert(take(takes, "a.wav", constant(0.75, 1.0)), None, 0)
    host.insert(take(takes, "b.wav", constant(0.75, 1.0)), None, 0.5)
    for name in ("mix.flac", "mix.wav"):
        mix = read_clip(render(folder, tmp_path / name)).samples
        peak = 10 ** (-1 / 20)
        np.testing.assert_allclose(np.abs(mix).max(), peak, rtol=1e-4)  # -1 dBFS, not a clipped 0 dBFS
        np.testing.assert_allclose(mix[:, : RATE // 2], 0.75 * peak / 1.5, rtol=1e-4)  # one gain: the balance stays
    assert len(notices) == 2 and "peaked at +3.5 dBFS" in notices[0] and "turned down 4.5 dB" in notices[0]


def test_render_with_force_replaces_an_existing_file_atomically(folder, takes, tmp_path):
    SessionHost(folder).insert(take(takes, "click.wav", impulse(0.1)), None, 0)
    out = tmp_path / "mix.wav"
    out.write_bytes(b"an earlier mix")
    out.chmod(0o640)
    assert render(folder, out, force=True) == out
    assert read_clip(out).frames == round(0.1 * RATE)
    assert sorted(os.listdir(tmp_path)) == ["mix.wav", "song", "takes"]  # no temporary file left beside it
    (tmp_path / "folder.wav").mkdir()
    with pytest.raises(HostError, match="is a folder"):
        render(folder, tmp_path / "folder.wav", force=True)


# -- a session asked for by name (--host session:DIR) is created on its first insert


def test_a_missing_session_is_created_with_the_defaults_on_first_insert(tmp_path, takes, notices):
    folder = tmp_path / "new" / "song"
    host = open_host(f"session:{folder}", create_session=True)
    host.check()
    assert (host.tracks(), host.tempo_bpm(), host.sample_rate(), host.selection()) == ([], 120, 48000, None)
    assert not (tmp_path / "new").exists() and notices == []  # checks alone create nothing
    placement = host.insert(take(takes, "rain.wav", noise(0.1)), "Foley", 1.0)
    assert placement == Placement(Track("Foley", 0), 1.0, 1.1)
    raw = manifest(folder)
    assert (raw["tempo_bpm"], raw["sample_rate"], raw["time_signature"]) == (120, 48000,
                                                                               {"numerator": 4, "denominator": 4})
    assert raw["tracks"] == [{"name": "Foley", "clips": [{"file": "audio/rain.wav", "start_seconds": 1.0}]}]
    (notice,) = notices
    assert str(folder) in notice and "120 BPM, 48000 Hz" in notice and "daw-plugin session new" in notice
    host.insert(take(takes, "wind.wav", noise(0.1)), None, 0)
    assert len(notices) == 1  # created once


@pytest.mark.parametrize("inside", [[], [".DS_Store"], ["audio/"]])
def test_an_empty_folder_becomes_a_session(tmp_path, takes, inside):
    folder = tmp_path / "song"
    folder.mkdir()
    for name in inside:
        (folder / name.rstrip("/")).mkdir() if name.endswith("/") else (folder / name).write_text("x")
    SessionHost(folder, create_missing=True).insert(take(takes, "rain.wav", noise(0.1)), None, 0)
    assert [t.name for t in SessionHost(folder).tracks()] == ["rain"]


def test_a_folder_of_other_files_is_never_made_a_session(tmp_path, takes):
    folder = tmp_path / "documents"
    folder.mkdir()
    (folder / "letter.txt").write_text("keep me")
    for host in (SessionHost(folder, create_missing=True), SessionHost(folder)):
        with pytest.raises(HostError, match=r"holds no session\.json.*`daw-plugin session new "):
            host.insert(take(takes, "rain.wav", noise(0.1)), None, 0)
    assert os.listdir(folder) == ["letter.txt"]


def test_only_a_session_asked_for_by_name_is_created(tmp_path):
    with pytest.raises(HostError, match="`daw-plugin session new "):
        open_host(f"session:{tmp_path / 'nowhere'}").check()  # `hosts check` and the Python API: no surprises
    assert not (tmp_path / "nowhere").exists()


def test_a_new_session_where_nothing_can_be_written_is_refused_by_check(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(HostError, match="not a folder you can write to"):
        SessionHost(tmp_path / "file" / "song", create_missing=True).check()


def test_a_read_only_session_is_refused_by_check(folder):
    """`check` runs before the model loads: a session that cannot take the take must fail there."""
    (folder / MANIFEST).chmod(0o444)
    with pytest.raises(HostError, match="read-only"):
        SessionHost(folder).check()


# -- links out of the session


def test_a_link_to_a_file_outside_the_session_is_refused(folder, takes, tmp_path):
    from daw_plugin.hosts.dawproject import export

    secret = take(takes, "secret.wav", noise(0.1))
    (folder / "audio" / "inside.wav").symlink_to(secret)
    edit_manifest(folder, lambda raw: raw["tracks"].append(
        {"name": "x", "clips": [{"file": "audio/inside.wav", "start_seconds": 0}]}))
    for call in (lambda: SessionHost(folder).check(), lambda: export(folder, tmp_path / "song.dawproject"),
                 lambda: render(folder, tmp_path / "mix.wav")):
        with pytest.raises(HostError) as info:
            call()
        assert f"is a link to {secret}, outside the session folder" in str(info.value)
    assert not (tmp_path / "song.dawproject").exists() and not (tmp_path / "mix.wav").exists()


def test_a_linked_audio_folder_outside_the_session_is_refused(folder, takes):
    SessionHost(folder).insert(take(takes, "rain.wav", noise(0.1)), None, 0)
    (folder / "audio").rename(takes / "moved")
    (folder / "audio").symlink_to(takes / "moved")
    with pytest.raises(HostError, match="outside the session folder"):
        SessionHost(folder).tracks()


def test_a_link_that_stays_inside_the_session_is_fine(folder, takes):
    SessionHost(folder).insert(take(takes, "rain.wav", noise(0.1)), None, 0)
    (folder / "audio" / "again.wav").symlink_to(folder / "audio" / "rain.wav")
    edit_manifest(folder, lambda raw: raw["tracks"][0]["clips"].append({"file": "audio/again.wav",
                                                                         "start_seconds": 1}))
    assert len(SessionHost(folder).tracks()) == 1


# -- two processes writing one session

_INSERTER = """
import sys, time
from pathlib import Path
from daw_plugin.hosts.session import SessionHost
folder, audio, count, go = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
while not go.exists():  # both processes start inserting together
    time.sleep(0.01)
host = SessionHost(folder, create_missing=True)
for n in range(count):
    host.insert(audio, "shared" if n % 2 else None, n * 0.5)
"""


@pytest.mark.parametrize("exists", [True, False], ids=["session", "missing-session"])
def test_two_processes_inserting_into_one_session_lose_nothing(tmp_path, takes, exists):
    """Before the lock each process rewrote the manifest it had read, and about half the clips were lost."""
    folder, go, count = tmp_path / "song", tmp_path / "go", 40
    if exists:
        SessionHost.create(folder)  # else both processes race to create it as well
    repo = Path(__file__).resolve().parents[1]
    sources = [take(takes, f"{name}.wav", noise(0.05, seed=n)) for n, name in enumerate(("left", "right"))]
    procs = [subprocess.Popen([sys.executable, "-c", _INSERTER, str(folder), str(audio), str(count), str(go)],
                              cwd=repo, stderr=subprocess.PIPE, text=True) for audio in sources]
    go.touch()
    for proc in procs:
        assert proc.wait() == 0, proc.stderr.read()
        proc.stderr.close()
    tracks = manifest(folder)["tracks"]
    files = [clip["file"] for track in tracks for clip in track["clips"]]
    assert len(files) == 2 * count and len(set(files)) == 2 * count  # every clip, each its own copy
    assert sorted(os.listdir(folder / "audio")) == sorted(Path(f).name for f in files)  # nothing unreferenced
    assert len([t for t in tracks if t["name"] == "shared"]) == 1  # one track, however the inserts interleaved
    assert len(SessionHost(folder).tracks()) == len(tracks)  # and the manifest still validates
