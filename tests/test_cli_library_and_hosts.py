"""`daw-plugin` with finishing, the takes library and a host (our session folder), end to end on the tiny model."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pedalboard.io import AudioFile
from test_audio import FILE_SIZE_LIMIT
from test_cli import cli, read, write_wav
from test_files import writer_holding

from daw_plugin.cli import ExitStatus, raw_main
from daw_plugin.finishing import integrated_lufs
from daw_plugin.hosts.session import SessionHost


@pytest.fixture
def session(tmp_path):
    return SessionHost.create(tmp_path / "song", tempo_bpm=96, sample_rate=44100)


def test_generate_into_a_session_track(capsys, converted, tmp_path, session):
    assert cli(capsys, "session", "new", tmp_path / "other")[0] == ExitStatus.OK
    status, out, err = cli(capsys, "generate", "thunder", "--model", converted, "--seconds", 1.0, "--seed", 3,
                           "--out", tmp_path / "takes", "--host", f"session:{session.folder}", "--at", 2.5)
    assert status == ExitStatus.OK
    take = out.strip()
    assert "placed on track 'thunder-seed3' at 2.500 s" in err
    (track,) = SessionHost(session.folder).tracks()
    assert track.name == "thunder-seed3"
    manifest = json.loads((session.folder / "session.json").read_text())
    (clip,) = manifest["tracks"][0]["clips"]
    assert clip["start_seconds"] == 2.5
    inserted, sample_rate = read(session.folder / clip["file"])
    assert sample_rate == 44100  # finished for the host's rate
    np.testing.assert_array_equal(inserted, read(take)[0])
    assert read(take[:-4] + ".raw.wav")[1] == 16000  # the model's own output is kept beside it


def test_continuation_lands_at_the_region_end_less_the_seam(capsys, converted, tmp_path, session):
    clip = write_wav(tmp_path / "loop.wav", seconds=3.0)
    status, _, err = cli(capsys, "continue", clip, "--start", 1.0, "--end", 2.0, "--model", converted,
                         "--seconds", 0.5, "--out", tmp_path / "takes", "--host", f"session:{session.folder}")
    assert status == ExitStatus.OK and "at 1.980 s" in err


def test_presets_change_the_finished_take(capsys, converted, tmp_path):
    common = ("generate", "steps", "--model", converted, "--seconds", 1.0, "--seed", 9, "--out", tmp_path)
    raw = cli(capsys, *common, "--preset", "raw")[1].strip()
    foley = cli(capsys, *common, "--preset", "foley")[1].strip()
    raw_audio, foley_audio = read(raw)[0], read(foley)[0]
    np.testing.assert_array_equal(raw_audio, read(raw[:-4] + ".raw.wav")[0])  # raw: finished is the model's output
    from daw_plugin.audio import Clip

    assert integrated_lufs(Clip(foley_audio, 16000)) == pytest.approx(-20.0, abs=0.5)
    np.testing.assert_array_equal(read(foley[:-4] + ".raw.wav")[0], raw_audio)  # same seed, same raw take


def test_takes_list_and_regenerate(capsys, converted, tmp_path):
    first = cli(capsys, "generate", "door creak", "--model", converted, "--seconds", 0.5, "--seed", 21, "--takes", 2,
                "--out", tmp_path)[1].split()
    status, out, _ = cli(capsys, "takes", "list", "--dir", tmp_path)
    assert status == ExitStatus.OK
    header, *rows = [line.split("\t") for line in out.strip().splitlines()]
    assert header == ["ID", "SECONDS", "SEED", "MODEL", "PRESET", "PROMPT", "CLAP"]
    assert [row[0] for row in rows] == ["door-creak-seed21", "door-creak-seed22"]
    assert rows[0][1:] == ["0.50", "21", converted.name, "foley", "door creak", "-"]
    listed = json.loads(cli(capsys, "takes", "list", "--dir", tmp_path, "--json")[1])
    assert [r["seed"] for r in listed] == [21, 22]

    status, out, _ = cli(capsys, "takes", "regenerate", "door-creak-seed22", "--dir", tmp_path)
    assert status == ExitStatus.OK
    again = out.strip()
    assert os.path.basename(again) == "door-creak-seed22-2.wav"  # a new take; the original is untouched
    np.testing.assert_array_equal(read(again)[0], read(first[1])[0])
    np.testing.assert_array_equal(read(again[:-4] + ".raw.wav")[0], read(first[1][:-4] + ".raw.wav")[0])

    status, _, err = cli(capsys, "takes", "regenerate", "nope", "--dir", tmp_path)
    assert status == ExitStatus.BAD_INPUT and "no take 'nope'" in err


def test_session_render_and_export(capsys, converted, tmp_path, session):
    cli(capsys, "generate", "bell", "--model", converted, "--seconds", 0.5, "--out", tmp_path / "takes",
        "--host", f"session:{session.folder}", "--at", 1.0)
    status, out, _ = cli(capsys, "session", "render", session.folder, tmp_path / "mix.wav")
    assert status == ExitStatus.OK
    mix, sample_rate = read(out.strip())
    assert sample_rate == 44100 and mix.shape[1] == round(1.5 * 44100)
    assert np.abs(mix[:, :44100]).max() == 0 and np.abs(mix[:, 44100:]).max() > 0
    status, out, _ = cli(capsys, "session", "export", session.folder, tmp_path / "song.dawproject")
    assert status == ExitStatus.OK and os.path.getsize(out.strip()) > 0


def test_hosts_check_says_why_not(capsys, tmp_path, session):
    status, out, _ = cli(capsys, "hosts", "check", f"session:{session.folder}", f"session:{tmp_path / 'none'}",
                         "reaper", "cubase")
    lines = out.strip().splitlines()
    assert status == ExitStatus.BAD_INPUT and lines[0] == f"session:{session.folder}: reachable"  # for scripts
    assert lines[1].startswith(f"session:{tmp_path / 'none'}: not reachable: ")
    assert lines[2].startswith("reaper: not reachable: ")
    assert lines[3].startswith("cubase: not reachable: Unknown host")
    assert not (tmp_path / "none").exists()  # checking a session never creates it
    assert cli(capsys, "hosts", "check", f"session:{session.folder}")[0] == ExitStatus.OK


def test_a_session_and_a_track_asked_for_by_name_are_created(capsys, converted, tmp_path):
    folder = tmp_path / "my-song"
    status, out, err = cli(capsys, "generate", "steps", "--model", converted, "--seconds", 0.3, "--seed", 2,
                           "--out", tmp_path / "takes", "--host", f"session:{folder}", "--track", "Foley")
    assert status == ExitStatus.OK, err
    notes = [line for line in err.splitlines() if line.startswith("daw-plugin: note: ")]
    assert len(notes) == 1 and f"Created a new session in {folder} at 120 BPM, 48000 Hz" in notes[0]
    assert "placed on track 'Foley' at 0.000 s" in err
    assert [t.name for t in SessionHost(folder).tracks()] == ["Foley"]
    assert read(out.strip())[1] == 48000  # finished for the new session's rate


@pytest.mark.parametrize("fault", ["corrupt manifest", "not a session", "read-only manifest", "huge sample rate"])
def test_host_faults_are_one_line_and_lose_nothing(capsys, converted, tmp_path, session, fault):
    folder = session.folder
    if fault == "corrupt manifest":
        (session.folder / "session.json").write_text("{not json")
    elif fault == "read-only manifest":
        (session.folder / "session.json").chmod(0o444)
    elif fault == "huge sample rate":
        manifest = json.loads((session.folder / "session.json").read_text())
        (session.folder / "session.json").write_text(json.dumps({**manifest, "sample_rate": 1e9}))
    elif fault == "not a session":
        folder = tmp_path / "letters"
        folder.mkdir()
        (folder / "letter.txt").write_text("keep me")
    before = sorted(os.listdir(folder))
    status, _, err = cli(capsys, "generate", "wind", "--model", converted, "--seconds", 0.3, "--seed", 4,
                         "--out", tmp_path / "takes", "--host", f"session:{folder}", "--track", "Drums")
    errors = [line for line in err.splitlines() if line.startswith("daw-plugin:")]
    assert status == ExitStatus.BAD_INPUT and len(errors) == 1 and "Traceback" not in err
    assert not (tmp_path / "takes").exists()  # found before the model even loaded
    assert sorted(os.listdir(folder)) == before
    if fault == "not a session":
        assert "`daw-plugin session new " in errors[0]


def test_session_render_force_and_headroom(capsys, tmp_path, session):
    loud = write_wav(tmp_path / "loud.wav", seconds=0.5, sample_rate=44100)
    for at in (0.0, 0.0, 0.0, 0.0):  # four sines of peak 0.3 and 0.6 in one place: +2 dBFS or so
        SessionHost(session.folder).insert(loud, None, at)
    out = tmp_path / "mix.flac"
    out.write_bytes(b"an earlier mix")
    status, _, err = cli(capsys, "session", "render", session.folder, out)
    assert status == ExitStatus.BAD_INPUT and "already exists" in err and out.read_bytes() == b"an earlier mix"
    status, printed, err = cli(capsys, "session", "render", session.folder, out, "--force")
    assert status == ExitStatus.OK and printed.strip() == str(out)
    assert "daw-plugin: note: The mix peaked at +" in err and "to peak at -1 dBFS" in err
    assert np.abs(read(out)[0]).max() == pytest.approx(10 ** (-1 / 20), rel=1e-3)


def test_track_and_at_need_a_host(capsys, converted, tmp_path):
    status, _, err = cli(capsys, "generate", "x", "--model", converted, "--track", "A", "--out", tmp_path)
    assert status == ExitStatus.BAD_INPUT and "--host" in err


def test_flac_takes_hold_24_bits(capsys, converted, tmp_path):
    out = cli(capsys, "generate", "hiss", "--model", converted, "--seconds", 0.2, "--format", "flac",
              "--out", tmp_path)[1].strip()
    with AudioFile(out) as f:
        assert f.file_dtype == "int24"


def test_a_plugin_that_will_not_load_fails_before_generating(capsys, converted, tmp_path):
    preset = tmp_path / "chain.json"
    preset.write_text(json.dumps({"target_lufs": -18, "plugins": [{"builtin": "Reverb"},
                                                                   {"path": str(tmp_path / "Gone.vst3")}]}))
    status, _, err = cli(capsys, "generate", "hum", "--model", converted, "--preset", preset, "--out", tmp_path / "t")
    assert status == ExitStatus.BAD_INPUT and "Gone.vst3 does not exist" in err
    assert "take" not in err  # no progress bar: nothing was generated
    assert not (tmp_path / "t").exists()


def test_a_preset_chain_of_builtin_effects_runs_on_every_take(capsys, converted, tmp_path):
    preset = tmp_path / "wet.json"
    preset.write_text(json.dumps({"plugins": [{"builtin": "Gain", "params": {"gain_db": -6.0}}]}))
    out = cli(capsys, "generate", "hum", "--model", converted, "--preset", preset, "--seconds", 0.5, "--takes", 2,
              "--seed", 1, "--out", tmp_path / "t")[1].split()
    for path in out:
        np.testing.assert_allclose(read(path)[0], read(path[:-4] + ".raw.wav")[0] * 10 ** (-6 / 20), atol=1e-6)


def recipe_of(path):
    return json.loads(open(path[:-4] + ".json").read())


@pytest.mark.parametrize(("bpm", "seconds", "bars"), [(96, 7.5, 3), (96, 10, 4), (90, 8, 3)])
def test_music_stems_are_the_nearest_whole_bars_and_list_what_was_made(capsys, converted, tmp_path, bpm, seconds,
                                                                        bars):
    """Issue 8: each of these lost a bar (7.5 s gave 5.0 s), and `takes list` showed the length asked for."""
    song = SessionHost.create(tmp_path / "song", tempo_bpm=bpm, sample_rate=44100)
    status, out, err = cli(capsys, "generate", "drum loop", "--model", converted, "--preset", "music-stem",
                           "--seconds", seconds, "--bpm", bpm, "--seed", 2, "--out", tmp_path / "takes",
                           "--host", f"session:{song.folder}")
    assert status == ExitStatus.OK, err
    made = bars * 4 * 60 / bpm
    audio, rate = read(out.strip())
    assert (rate, audio.shape) == (44100, (2, round(made * 44100)))
    recipe = recipe_of(out.strip())
    assert recipe["seconds"] == recipe["duration_seconds"] == pytest.approx(made)
    assert recipe["requested_seconds"] == seconds and recipe["finishing"]["bars"] == bars
    assert recipe["raw_take"]["duration_seconds"] > made  # the bars and the loop's cross-fade were made, not padded
    listed = cli(capsys, "takes", "list", "--dir", tmp_path / "takes")[1]
    assert f"\t{made:.2f}\t" in listed


def test_a_take_made_for_a_host_regenerates_alike_without_it(capsys, converted, tmp_path, session):
    """Issue 8: the host's rate and tempo were not in the recipe, so regenerate gave 32 kHz, 8 s, no tempo fit."""
    status, out, err = cli(capsys, "generate", "groove", "--model", converted, "--preset", "music-stem", "--seconds", 5,
                           "--seed", 7, "--out", tmp_path / "takes", "--host", f"session:{session.folder}")
    assert status == ExitStatus.OK, err
    first = out.strip()
    finishing = recipe_of(first)["finishing"]
    assert (finishing["sample_rate"], finishing["tempo_bpm"], finishing["beats_per_bar"]) == (44100, 96, 4)
    assert finishing["channels"] == 2 and finishing["source_bpm"] is None and "estimated_bpm" in finishing
    manifest = (session.folder / "session.json").read_text()

    status, out, err = cli(capsys, "takes", "regenerate", recipe_of(first)["id"], "--dir", tmp_path / "takes")
    assert status == ExitStatus.OK, err
    again, rate = read(out.strip())
    assert rate == 44100 and again.shape == (2, 2 * 110250)  # two bars at 96 BPM
    np.testing.assert_array_equal(again, read(first)[0])
    assert (session.folder / "session.json").read_text() == manifest  # no host needed, none touched


def test_bars_instead_of_seconds(capsys, converted, tmp_path, session):
    common = ("generate", "pad", "--model", converted, "--preset", "music-stem", "--seed", 1)
    status, out, err = cli(capsys, *common, "--bars", 2, "--bpm", 120, "--out", tmp_path / "a")
    assert status == ExitStatus.OK, err
    audio, rate = read(out.strip())
    assert audio.shape == (2, 4 * rate)  # two bars of 4/4 at 120 BPM, at the model's own rate
    recipe = recipe_of(out.strip())
    assert (recipe["requested_bars"], recipe["requested_seconds"], recipe["seconds"]) == (2, None, 4.0)
    status, out, err = cli(capsys, "takes", "regenerate", recipe["id"], "--dir", tmp_path / "a")
    assert status == ExitStatus.OK, err
    np.testing.assert_array_equal(read(out.strip())[0], audio)

    status, out, err = cli(capsys, *common, "--bars", 1, "--out", tmp_path / "b", "--host", f"session:{session.folder}")
    assert status == ExitStatus.OK, err
    assert read(out.strip())[0].shape == (2, 110250)  # one bar at the session's 96 BPM, 44.1 kHz

    status, out, err = cli(capsys, *common, "--bars", 2, "--bpm", 120, "--beats-per-bar", 3, "--out", tmp_path / "c")
    assert status == ExitStatus.OK, err
    assert read(out.strip())[0].shape == (2, 3 * rate)  # two bars of 3/4 at 120 BPM
    assert recipe_of(out.strip())["finishing"]["beats_per_bar"] == 3


@pytest.mark.parametrize(("args", "message"), [
    (["--bars", "2"], "--bars needs a tempo"),
    (["--bars", "0", "--bpm", "100"], "--bars must be a whole number from 1"),
    (["--bars", "200", "--bpm", "60"], "ask for fewer bars"),
    (["--bars", "2", "--seconds", "4"], "not allowed with argument"),
    (["--bars", "2", "--bpm", "90", "--beats-per-bar", "0"], "--beats-per-bar must be from 1 to 64"),
    (["--sample-rate", "100"], "--sample-rate must be a whole number of Hz from 1000"),
    (["--sample-rate", "48000", "--host", "session:{song}"], "differs from session:{song}'s 44100 Hz"),
])
def test_bars_and_sample_rate_mistakes_are_one_line_before_the_model(capsys, converted, tmp_path, session, args,
                                                                      message):
    argv = [a.format(song=session.folder) for a in args]
    try:
        status, _, err = cli(capsys, "generate", "x", "--model", converted, "--out", tmp_path / "t", *argv)
    except SystemExit as exit_info:  # argparse's own refusals
        status, err = exit_info.code, capsys.readouterr().err
    assert status == ExitStatus.BAD_INPUT and message.format(song=session.folder) in err
    assert len(err.strip().splitlines()) == 1 and "take 1" not in err
    assert not (tmp_path / "t").exists()


def test_sample_rate_without_a_host(capsys, converted, tmp_path, session):
    out = cli(capsys, "generate", "hum", "--model", converted, "--seconds", 0.5, "--sample-rate", 22050,
              "--out", tmp_path)[1].strip()
    audio, rate = read(out)
    assert rate == 22050 and audio.shape == (1, 11025)
    assert recipe_of(out)["finishing"]["sample_rate"] == 22050
    same = cli(capsys, "generate", "hum", "--model", converted, "--seconds", 0.5, "--sample-rate", 44100,
               "--host", f"session:{session.folder}", "--out", tmp_path)
    assert same[0] == ExitStatus.OK  # the host's own rate is no conflict


def test_a_take_finished_by_a_preset_file_regenerates_from_anywhere(capsys, converted, tmp_path, monkeypatch):
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "soft.json").write_text(json.dumps({"target_lufs": -30, "ceiling_dbtp": -6}))
    monkeypatch.chdir(tmp_path / "presets")
    out = cli(capsys, "generate", "hiss", "--model", converted, "--preset", "soft.json", "--seconds", 0.5,
              "--out", tmp_path / "takes")[1].strip()
    recipe = recipe_of(out)
    assert recipe["finishing"]["preset"] == str(tmp_path / "presets" / "soft.json")  # not "soft", a name nobody has
    monkeypatch.chdir(tmp_path)
    status, again, err = cli(capsys, "takes", "regenerate", recipe["id"], "--dir", tmp_path / "takes")
    assert status == ExitStatus.OK, err
    np.testing.assert_array_equal(read(again.strip())[0], read(out)[0])


def test_a_preset_out_of_range_fails_before_generating(capsys, converted, tmp_path):
    """Issue 8: a high-pass at -10 Hz made pedalboard's filter unstable: a take peaking at 6.7e28."""
    preset = tmp_path / "bad.json"
    preset.write_text(json.dumps({"highpass_hz": -10}))
    status, _, err = cli(capsys, "generate", "hum", "--model", converted, "--preset", preset, "--out", tmp_path / "t")
    assert status == ExitStatus.BAD_INPUT and "highpass_hz must be between 0 and 1000 Hz, not -10" in err
    assert "take" not in err and not (tmp_path / "t").exists()


@pytest.fixture(scope="module")
def a_take(tmp_path_factory, converted) -> Path:
    """One real take, made once: tests copy it and edit the copy's recipe by hand."""
    library = tmp_path_factory.mktemp("library")
    assert raw_main(["generate", "door", "--model", str(converted), "--seconds", "0.3", "--seed", "5",
                     "--out", str(library)]) == ExitStatus.OK
    return library / "door-seed5"


def copy_take(take: Path, library: Path, edit) -> Path:
    """``take`` copied into ``library`` with its recipe changed by ``edit(recipe)``, or replaced by a str it returns."""
    copy = Path(shutil.copytree(take, library / take.name))
    path = copy / f"{take.name}.json"
    recipe = json.loads(path.read_text())
    text = edit(recipe)
    path.write_text(text if isinstance(text, str) else json.dumps(recipe))
    return path


def test_takes_list_escapes_what_a_recipe_could_do_to_a_terminal(capsys, a_take, tmp_path):
    def evil(recipe):
        recipe["prompt"] = "\x1b[2J\x1b]0;owned\x07rain\nfake-take\t99\u202eevil\\n"

    copy_take(a_take, tmp_path, evil)
    status, out, _ = cli(capsys, "takes", "list", "--dir", tmp_path)
    assert status == ExitStatus.OK
    header, row = out.splitlines()  # the newline in the prompt added no line
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert row.split("\t")[5] == r"\x1b[2J\x1b]0;owned\x07rain\nfake-take\t99\u202eevil\\n"
    listed = json.loads(cli(capsys, "takes", "list", "--dir", tmp_path, "--json")[1])
    assert listed[0]["prompt"].startswith("\x1b[2J")  # --json keeps the text as it is, JSON-escaped


BAD_RECIPES = {
    "not JSON": (lambda r: '{"prompt": "door",', "is not valid JSON (Expecting property name"),
    "not an object": (lambda r: "[1, 2]", "is not a JSON object"),
    "no parameters": (lambda r: r.pop("parameters"), "has no 'parameters'"),
    "seconds as text": (lambda r: r.update(seconds="8"), "has 'seconds' = \"8\", which should be a number"),
    "seed not whole": (lambda r: r.update(seed=1.5), "has 'seed' = 1.5, which should be an integer"),
    "parameters a list": (lambda r: r.update(parameters=[]), "has 'parameters' = [], which should be an object"),
    "source clip a number": (lambda r: r.update(source={"clip": 3, "start_seconds": 0, "end_seconds": 1}),
                             "has 'source.clip' = 3, which should be text"),
    "NaN by hand": (lambda r: json.dumps(r).replace('"seed": 5', '"seed": 5, "gain": NaN'),
                    "has 'gain' = NaN, which should be a finite number"),
    "a value the request refuses": (lambda r: r.update(requested_seconds=-1.0),
                                    "asks for what cannot be made (--seconds must be from 0.02"),
}


@pytest.mark.parametrize("fault", BAD_RECIPES)
def test_a_hand_edited_recipe_of_the_wrong_shape_is_one_line(capsys, a_take, tmp_path, fault):
    edit, problem = BAD_RECIPES[fault]
    shutil.copytree(a_take, tmp_path / "good")
    (tmp_path / "good" / "door-seed5.json").rename(tmp_path / "good" / "good.json")
    path = copy_take(a_take, tmp_path, edit)
    status, out, err = cli(capsys, "takes", "regenerate", "door-seed5", "--dir", tmp_path)
    assert status == ExitStatus.BAD_INPUT and "Traceback" not in err
    (line,) = err.splitlines()
    assert line.startswith(f"daw-plugin: error: The recipe {path} {problem}"), line
    assert sorted(os.listdir(tmp_path)) == ["door-seed5", "good"]  # nothing was generated

    status, out, err = cli(capsys, "takes", "list", "--dir", tmp_path)
    listed = [row.split("\t")[0] for row in out.splitlines()[1:]]
    if fault == "a value the request refuses":  # a valid shape: listed, and only regenerate refuses it
        assert status == ExitStatus.OK and listed == ["door-seed5", "good"]
    else:
        assert status == ExitStatus.OK and listed == ["good"] and "Traceback" not in err
        assert f"The recipe {path} {problem}" in err and "left out of the list" in err


def test_a_full_disk_is_exit_2_and_leaves_no_staging(converted, tmp_path):
    """pedalboard raises RuntimeError (not OSError) when a write fails; a file-size limit makes writes fail for real."""
    code = FILE_SIZE_LIMIT + "from daw_plugin.cli import main; main(sys.argv[3:])"
    run = subprocess.run([sys.executable, "-c", code, "-", "16000", "generate", "rain", "--model", str(converted),
                          "--seconds", "0.5", "--out", str(tmp_path / "takes")],
                         cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True)
    errors = [line for line in run.stderr.splitlines() if line.startswith("daw-plugin:")]
    assert run.returncode == ExitStatus.BAD_INPUT and "Traceback" not in run.stderr, run.stderr
    assert len(errors) == 1 and f"Cannot write takes to {tmp_path / 'takes'} (File too large)" in errors[0]
    assert run.stdout == "" and os.listdir(tmp_path / "takes") == []


HOLD_SESSION_AUDIO = """
import sys
from pathlib import Path
from daw_plugin import files

def hold(tmp):
    tmp.write_bytes(b"half a copy")
    print(tmp.name, flush=True)
    sys.stdin.read()  # until the test kills us

files.write_new(Path(sys.argv[1]) / "rain-seed1.wav", hold, numbered_if_taken=True)
"""


def test_a_killed_inserts_staging_is_gone_after_the_next_insert(capsys, converted, tmp_path, session):
    audio = session.folder / "audio"
    with writer_holding(audio, HOLD_SESSION_AUDIO) as (writer, staging):
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        assert staging.exists()
    status, _, _ = cli(capsys, "generate", "thunder", "--model", converted, "--seconds", 0.3, "--seed", 3,
                       "--out", tmp_path / "takes", "--host", f"session:{session.folder}")
    assert status == ExitStatus.OK
    assert os.listdir(audio) == ["thunder-seed3.wav"]
