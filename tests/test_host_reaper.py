"""The REAPER adapter against a STAND-IN of reapy (REAPER cannot run here), plus the real reapy without REAPER.

The stand-in (`fixtures/reapy_standin.py`) mirrors the subset of reapy's API the adapter calls; takes
are real WAV files written through `daw_plugin.audio`, and their length is decoded with pedalboard.
"""

import inspect
import sys
import warnings

import numpy as np
import pytest
from fixtures.reapy_standin import (
    StandInItem,
    StandInProject,
    StandInReapy,
    StandInSource,
    StandInTake,
    StandInTimeSelection,
    StandInTrack,
)

from daw_plugin.audio import Clip, write_clip
from daw_plugin.hosts import Host, HostError, Placement, Selection, Track, open_host
from daw_plugin.hosts.reaper import NOT_INSTALLED, NOT_REACHABLE, ReaperHost


@pytest.fixture
def reapy():
    standin = StandInReapy(running=True)
    project = standin.project
    for name in ("Drums", "Bass"):
        project.add_track(index=project.n_tracks, name=name)
    return standin


@pytest.fixture
def host(reapy):
    return ReaperHost(reapy_module=reapy)


@pytest.fixture
def take(tmp_path):
    """1.5 s of stereo noise at 48 kHz: a real file REAPER would read."""
    samples = np.random.default_rng(0).uniform(-0.5, 0.5, (2, 72000)).astype(np.float32)
    return write_clip(Clip(samples, 48000), tmp_path / "rain on tin.wav")


def real_reapy():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # reapy warns at import when no REAPER answers
        return pytest.importorskip("reapy")


def one_sentence(error: Exception) -> str:
    text = str(error)
    assert "\n" not in text and "Traceback" not in text and text.endswith(".")
    return text


def test_open_host_gives_the_reaper_adapter_without_touching_reaper():
    host = open_host("reaper")
    assert isinstance(host, ReaperHost) and isinstance(host, Host) and host.name == "reaper"


def test_check_passes_while_reaper_answers(host, reapy):
    host.check()
    assert reapy.holds == 0  # the hold on REAPER is released after each conversation


def test_tracks_lists_names_and_indices_including_reapers_default_names(host, reapy):
    reapy.project.add_track(index=2)  # never named: REAPER calls it "Track 3"
    assert host.tracks() == [Track("Drums", 0), Track("Bass", 1), Track("Track 3", 2)]


def test_selection_is_the_time_selection_on_the_selected_track(host, reapy):
    reapy.project.time_selection = 4.0, 6.5
    reapy.project.tracks[1].is_selected = True
    selection = host.selection()
    assert isinstance(selection, Selection)
    assert (selection.region.start_seconds, selection.region.end_seconds) == (4.0, 6.5)
    assert selection.track == Track("Bass", 1)
    assert selection.audio is None


def test_selection_without_a_selected_track_has_no_track(host, reapy):
    reapy.project.time_selection = 1.0, 2.0
    assert host.selection().track is None


def test_no_time_selection_is_none(host):
    assert host.selection() is None


def test_tempo_is_the_project_bpm(host, reapy):
    reapy.project.tempo_bpm = 92.5
    assert host.tempo_bpm() == 92.5


def test_sample_rate_only_when_the_project_sets_its_own(host, reapy):
    assert host.sample_rate() is None  # REAPER follows the audio device, which reapy cannot read
    reapy.project.info.update(PROJECT_SRATE=48000.0, PROJECT_SRATE_USE=1.0)
    assert host.sample_rate() == 48000


def test_insert_lands_a_take_on_the_named_track_at_the_time_with_the_files_length(host, reapy, take):
    placement = host.insert(take, "Bass", at_seconds=8.25)

    assert placement == Placement(Track("Bass", 1), 8.25, 8.25 + 1.5)
    bass = reapy.project.track_list[1]
    (item,) = bass.items
    (reaper_take,) = item.takes
    assert (item.position, item.length) == (8.25, 1.5)
    assert reaper_take.source.filename == str(take.resolve())
    assert reaper_take.source.length() == 1.5
    assert reaper_take.name == take.name
    assert reapy.project.track_list[0].items == []  # nothing strayed onto another track
    assert reapy.project.undo_history == [f"Insert take {take.name}"] and reapy.project.open_undo_blocks == 0


def test_insert_without_a_track_makes_one_named_after_the_file(host, reapy, take):
    placement = host.insert(take, None, at_seconds=0.0)
    assert placement == Placement(Track("rain on tin", 2), 0.0, 1.5)
    assert [t.name for t in reapy.project.tracks] == ["Drums", "Bass", "rain on tin"]
    assert reapy.project.track_list[2].items[0].takes[0].source.length() == 1.5


def test_insert_hands_reaper_an_absolute_path(host, reapy, take, monkeypatch):
    monkeypatch.chdir(take.parent)
    host.insert(take.name, "Drums", at_seconds=1.0)  # relative here, meaningless to REAPER
    assert reapy.project.track_list[0].items[0].takes[0].source.filename == str(take.resolve())


def test_a_track_name_reaper_lacks_makes_that_track(host, reapy, take):
    placement = host.insert(take, "Foley", at_seconds=2.0)
    assert placement == Placement(Track("Foley", 2), 2.0, 3.5)
    assert [t.name for t in reapy.project.tracks] == ["Drums", "Bass", "Foley"]
    assert reapy.project.track_list[2].items[0].takes[0].source.length() == 1.5
    assert host.insert(take, "Foley", at_seconds=4.0).track == Track("Foley", 2)  # made once, then reused
    assert reapy.project.n_tracks == 3
    assert reapy.project.undo_history == [f"Insert take {take.name}"] * 2


def test_missing_file_is_refused_before_reaper_is_asked(host, reapy, tmp_path):
    reapy.quit_reaper()  # proves REAPER is never asked
    with pytest.raises(HostError, match="There is no audio file at"):
        host.insert(tmp_path / "gone.wav", "Drums", at_seconds=0.0)


def test_negative_time_is_refused(host, take):
    with pytest.raises(HostError, match="at or after 0 s"):
        host.insert(take, "Drums", at_seconds=-1.0)


def test_a_file_reaper_cannot_decode_leaves_no_track_or_item(host, reapy, tmp_path):
    junk = tmp_path / "notes.wav"
    junk.write_text("not audio")
    with pytest.raises(HostError, match="could not read notes.wav as audio") as caught:
        host.insert(junk, None, at_seconds=0.0)
    one_sentence(caught.value)
    assert reapy.project.n_tracks == 2 and all(track.items == [] for track in reapy.project.track_list)
    sources = [obj for obj in reapy.reaper.objects.values() if hasattr(obj, "seconds")]
    assert sources and all(source.deleted for source in sources)


def test_reaper_not_running_is_one_sentence_naming_the_fix():
    reapy = StandInReapy(running=False)
    host = ReaperHost(reapy_module=reapy)
    for call in (host.check, host.tracks, host.selection, host.tempo_bpm, host.sample_rate):
        with pytest.raises(HostError) as caught:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # reapy's DisabledDistAPIWarning must not reach the user
                call()
        assert one_sentence(caught.value) == NOT_REACHABLE
        assert "reapy.configure_reaper()" in NOT_REACHABLE


def test_reaper_started_after_import_is_found_by_reconnecting():
    reapy = StandInReapy(running=False)
    host = ReaperHost(reapy_module=reapy)
    with pytest.raises(HostError):
        host.check()
    reapy.start_reaper()
    host.check()
    assert host.tracks() == []


def test_reaper_quitting_mid_session_is_one_sentence(host, reapy, take):
    host.check()
    reapy.quit_reaper()  # reapy's socket now raises ConnectionAbortedError on every request
    with pytest.raises(HostError, match="REAPER stopped answering while inserting rain on tin.wav") as caught:
        host.insert(take, "Drums", at_seconds=0.0)
    one_sentence(caught.value)
    assert isinstance(caught.value.__cause__, ConnectionAbortedError)


def test_an_error_inside_reaper_reports_its_cause_not_its_traceback(host, reapy):
    reapy.fail_inside_reaper('Traceback (most recent call last):\n  File "x.py", line 1\nValueError: bad track')
    with pytest.raises(HostError) as caught:
        host.tracks()
    text = one_sentence(caught.value)
    assert "(ValueError: bad track)" in text and "File " not in text


def test_reapy_not_installed_is_one_sentence(monkeypatch):
    monkeypatch.setitem(sys.modules, "reapy", None)  # the way Python reports a package that is not there
    with pytest.raises(HostError) as caught:
        ReaperHost().check()
    assert one_sentence(caught.value) == NOT_INSTALLED
    assert "pip install python-reapy" in NOT_INSTALLED


def test_the_real_reapy_without_reaper_says_how_to_enable_it():
    """No stand-in: the installed reapy, whose import finds no REAPER on this machine."""
    reapy = real_reapy()
    if reapy.dist_api_is_enabled():
        pytest.skip("a real REAPER with reapy's distant API is running here")
    with pytest.raises(HostError) as caught:
        ReaperHost().tracks()
    assert one_sentence(caught.value) == NOT_REACHABLE


# What the adapter touches: (reapy's name for it, its stand-in, the names used), read from reapy/core/*.
MIRRORED = [
    (
        "reapy",
        StandInReapy(),
        "Project Source reconnect dist_api_is_enabled is_inside_reaper inside_reaper update_arrange",
    ),
    ("Project", StandInProject, "tracks n_tracks add_track selected_tracks time_selection bpm get_info_value"),
    ("Project", StandInProject, "begin_undo_block end_undo_block"),
    ("TimeSelection", StandInTimeSelection, "start end"),
    ("Track", StandInTrack, "name index add_item"),
    ("Item", StandInItem, "add_take position length"),
    ("Take", StandInTake, "name"),
    ("Source", StandInSource, "length delete"),
]


def parameters(function) -> list[tuple[str, object]]:
    return [(p.name, p.default) for p in inspect.signature(function).parameters.values() if p.name != "self"]


@pytest.mark.parametrize(("kind", "stand_in", "names"), MIRRORED, ids=[row[0] for row in MIRRORED])
def test_the_standin_mirrors_the_installed_reapys_names_and_signatures(kind, stand_in, names):
    """Keeps the stand-in honest: every name the adapter uses exists in reapy, as a property or with the same
    parameters and defaults. (ReaScript functions are bound by REAPER at connect time, so they cannot be checked.)"""
    reapy = real_reapy()
    real = reapy if kind == "reapy" else getattr(reapy, kind)
    for name in names.split():
        ours, theirs = inspect.getattr_static(stand_in, name), inspect.getattr_static(real, name)
        if isinstance(theirs, property):
            assert isinstance(ours, property), f"{kind}.{name} is a property in reapy"
        else:
            assert parameters(getattr(stand_in, name)) == parameters(getattr(real, name)), f"{kind}.{name}"


def test_the_standin_raises_reapys_error_types_by_name():
    reapy = real_reapy()
    for name in vars(StandInReapy.errors):
        assert isinstance(getattr(reapy.errors, name), type)
