"""Hearing takes in the panel: Play, Stop and Space drive QtMultimedia's own player, a take made by the panel is
found in a recording of the sound server's output, and what cannot be played is a message, never a crash.

The recording test needs a PulseAudio server (`.ci/run` starts one with a null sink, whose monitor is recorded);
without one it skips and says so. The rest runs anywhere: with no output device Qt still plays on its own clock.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from panel_helpers import WAIT_MS, ask, set_text
from PyQt6.QtCore import Qt
from PyQt6.QtMultimedia import QMediaPlayer

PLAYING, STOPPED = QMediaPlayer.PlaybackState.PlayingState, QMediaPlayer.PlaybackState.StoppedState
RATE = 16000
# A take found in the recording: in the band below BAND x its sample rate, the best-aligned stretch of the recording
# correlates with the take's own samples at least this well (the round trip resamples twice and quantises to 16
# bits; silence gives 0)...
BAND = 0.35
MIN_CORRELATION = 0.9
LEVEL_DB = 1.0  # ...and its level is the take's within this (the output's volume is 100 %)
MONO_ON_STEREO_DB = 10 * np.log10(2)


def sine(path: Path, seconds: float) -> Path:
    t = np.arange(int(seconds * RATE)) / RATE
    soundfile.write(path, (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), RATE, subtype="FLOAT")
    return path


@pytest.fixture
def listed(qtbot, tmp_path):
    """Put long sines in a panel's takes list, as a finished take is put there; the last is the newest."""

    def put(panel, *names: str) -> list[Path]:
        qtbot.waitUntil(lambda: not panel.background.busy, timeout=WAIT_MS)  # the library's listing is shown
        paths = [sine(tmp_path / f"{name}.wav", 60.0) for name in names]  # long: they play until stopped
        for number, path in enumerate(paths):
            panel.takes_list.add_take(path.stem, "a sine", number, None, path)
        return paths

    return put


def click_row(qtbot, panel, row: int) -> None:
    takes = panel.takes_list
    qtbot.mouseClick(takes.viewport(), Qt.MouseButton.LeftButton,
                     pos=takes.visualItemRect(takes.topLevelItem(row)).center())


def playing(panel, path: Path) -> bool:
    media = panel.player.media
    return media.playbackState() == PLAYING and media.source().toLocalFile() == str(path)


def test_play_plays_the_selected_take_and_stop_stops_it(qtbot, open_panel, listed):
    panel = open_panel()
    older, newest = listed(panel, "older", "newest")
    stop = panel.control("Stop")
    assert not stop.isEnabled()
    qtbot.mouseClick(panel.control("Play"), Qt.MouseButton.LeftButton)  # nothing selected: the newest
    qtbot.waitUntil(lambda: playing(panel, newest), timeout=WAIT_MS)
    assert stop.isEnabled() and panel.control("Message").text() == "Playing newest.wav."
    click_row(qtbot, panel, 1)
    assert panel.takes_list.selected_path() == older
    qtbot.mouseClick(panel.control("Play"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: playing(panel, older), timeout=WAIT_MS)
    qtbot.mouseClick(stop, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.player.media.playbackState() == STOPPED, timeout=WAIT_MS)
    assert not stop.isEnabled()


def test_space_in_the_takes_list_plays_and_stops_but_types_in_the_prompt(qtbot, open_panel, listed):
    panel = open_panel()
    (take,) = listed(panel, "take")
    prompt, takes = panel.control("Prompt"), panel.control("Takes list")
    qtbot.keyClicks(prompt, "rain on")
    qtbot.keyClick(prompt, Qt.Key.Key_Space)
    qtbot.keyClicks(prompt, "tin")
    assert prompt.toPlainText() == "rain on tin"
    assert panel.player.media.source().isEmpty()  # Space typed: no take was even chosen
    takes.setFocus()
    qtbot.keyClick(takes, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: playing(panel, take), timeout=WAIT_MS)
    qtbot.keyClick(takes, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: panel.player.media.playbackState() == STOPPED, timeout=WAIT_MS)
    qtbot.keyClick(panel, Qt.Key.Key_Space)  # a Space no control took: the window's own
    qtbot.waitUntil(lambda: playing(panel, take), timeout=WAIT_MS)


def test_an_unreadable_or_missing_take_is_a_message_and_the_panel_still_plays(qtbot, open_panel, listed, tmp_path):
    panel = open_panel()
    (good,) = listed(panel, "good")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF not really a wave file" * 10)
    message = panel.control("Message")
    for path in (junk, tmp_path / "gone.wav"):
        panel.takes_list.add_take(path.stem, "broken", 0, None, path)
        qtbot.mouseClick(panel.control("Play"), Qt.MouseButton.LeftButton)  # the newest: the broken one
        qtbot.waitUntil(lambda path=path: message.text().startswith(f"Cannot play {path.name}: "), timeout=WAIT_MS)
        assert "choose another take" in message.text() and panel.player.media.playbackState() == STOPPED
    click_row(qtbot, panel, 2)
    qtbot.mouseClick(panel.control("Play"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: playing(panel, good), timeout=WAIT_MS)


NO_DEVICE = """
import sys
from PyQt6.QtCore import QSettings
from PyQt6.QtMultimedia import QMediaDevices
from PyQt6.QtWidgets import QApplication
from ui.panel import Panel
app = QApplication([])
if QMediaDevices.audioOutputs():
    sys.exit(3)  # an output is still reachable (another sound server): nothing to show
panel = Panel(settings=QSettings(sys.argv[2], QSettings.Format.IniFormat), out=sys.argv[3])
panel.takes_list.add_take("take", "a sine", 0, None, sys.argv[1])
panel.control("Play").click()
print(panel.control("Message").text())
panel.close()
"""


def test_without_an_output_device_play_says_so(tmp_path):
    env = os.environ | {"QT_QPA_PLATFORM": "offscreen", "PULSE_SERVER": f"unix:{tmp_path / 'no-server'}",
                        "XDG_RUNTIME_DIR": str(tmp_path)}
    run = subprocess.run([sys.executable, "-c", NO_DEVICE, str(sine(tmp_path / "take.wav", 1.0)),
                          str(tmp_path / "panel.ini"), str(tmp_path / "takes")],
                         cwd=Path(__file__).parents[1], env=env, capture_output=True, text=True)
    if run.returncode == 3:
        pytest.skip("an audio output is reachable without PulseAudio here (PipeWire?), so there is no 'none' case")
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("No audio output device, so the take cannot be heard; start the sound server")


def pulse_output() -> tuple[str, int, int] | None:
    """The default sink's monitor, channels and rate, on a reachable PulseAudio (or PipeWire-pulse) server."""
    if not (shutil.which("pactl") and shutil.which("parec")):
        return None
    try:
        sink = subprocess.run(["pactl", "get-default-sink"], capture_output=True, text=True, timeout=30).stdout.strip()
        sinks = subprocess.run(["pactl", "list", "short", "sinks"], capture_output=True, text=True, timeout=30).stdout
    except subprocess.TimeoutExpired:
        return None
    spec = re.search(rf"^\d+\t{re.escape(sink)}\t.*?(\d+)ch (\d+)Hz", sinks, re.MULTILINE) if sink else None
    return (f"{sink}.monitor", int(spec[1]), int(spec[2])) if spec else None


def found(recording: np.ndarray, take: np.ndarray) -> tuple[float, int]:
    """The best normalised correlation of ``take`` with any stretch of ``recording``, and where that stretch
    starts."""
    from scipy.signal import correlate

    n = len(take)
    products = correlate(recording, take, mode="valid", method="fft")  # [len(recording) - n + 1]
    energy = np.concatenate([[0.0], np.cumsum(recording.astype(np.float64) ** 2)])
    window_norms = np.sqrt(np.maximum(energy[n:] - energy[:-n], 1e-12))
    correlation = products / (window_norms * np.linalg.norm(take))
    best = int(np.argmax(correlation))
    return float(correlation[best]), best


def db(audio: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(audio.astype(np.float64) ** 2) + 1e-20))


NO_SERVER = "no PulseAudio server to play through and record (pactl, parec); .ci/run starts one with a null output"


@pytest.mark.skipif(pulse_output() is None and not os.environ.get("DAW_PLUGIN_TEST_PLAYBACK"), reason=NO_SERVER)
def test_a_take_made_in_the_panel_is_heard_on_the_system_output(qtbot, open_panel, tmp_path):
    from scipy.signal import butter, resample_poly, sosfiltfilt

    output = pulse_output()
    assert output is not None, NO_SERVER + " (DAW_PLUGIN_TEST_PLAYBACK is set: CI must play for real)"
    monitor, channels, rate = output
    panel = open_panel()
    qtbot.mouseClick(panel.control("Lock seed"), Qt.MouseButton.LeftButton)
    set_text(qtbot, panel.control("Seed"), "7")  # the same take every run
    ask(qtbot, panel, "rain on a tin roof", seconds="1")
    qtbot.waitUntil(lambda: len(panel.takes_list.paths()) == 1, timeout=WAIT_MS)
    (path,) = panel.takes_list.paths()
    take, take_rate = soundfile.read(path, dtype="float32", always_2d=True)
    raw = tmp_path / "monitor.f32"
    with raw.open("wb") as sink:  # at the output's own rate: the server does not resample what it records
        recorder = subprocess.Popen(["parec", "-d", monitor, f"--rate={rate}", f"--channels={channels}",
                                     "--format=float32le", "--raw"], stdout=sink)
    try:
        qtbot.waitUntil(lambda: raw.stat().st_size > 0, timeout=WAIT_MS)  # the recorder is running
        qtbot.mouseClick(panel.control("Play"), Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: panel.player.media.mediaStatus() == QMediaPlayer.MediaStatus.EndOfMedia,
                        timeout=WAIT_MS)
        ended = raw.stat().st_size // (4 * channels)
        # And 2 s more of the output (counted in recorded frames, not in time) for what the server still held.
        qtbot.waitUntil(lambda: raw.stat().st_size // (4 * channels) >= ended + 2 * rate, timeout=WAIT_MS)
    finally:
        recorder.terminate()
        recorder.wait()
    recording = np.fromfile(raw, dtype="<f4")[: (ended + 2 * rate) * channels].reshape(-1, channels).mean(axis=1)
    # Compared at the output's rate, where the take's samples can sit between the recording's by half a sample at
    # most. The tiny model's takes hold much of their energy just under their Nyquist, which the resamplers on the
    # way (FFmpeg's to the output's rate, ours) treat differently: compare the band they all pass unchanged.
    heard = sosfiltfilt(butter(8, BAND * take_rate, fs=rate, output="sos"), recording)
    made = resample_poly(sosfiltfilt(butter(8, BAND * take_rate, fs=take_rate, output="sos"), take.mean(axis=1)),
                         rate, take_rate)
    correlation, at = found(heard, made)
    assert correlation >= MIN_CORRELATION, correlation
    # Qt (FFmpeg) plays a mono take on both channels of a stereo output at -3.01 dB each (constant power).
    expected_db = db(made) - (MONO_ON_STEREO_DB if take.shape[1] == 1 and channels == 2 else 0.0)
    assert abs(db(heard[at:at + len(made)]) - expected_db) <= LEVEL_DB, (db(heard[at:at + len(made)]), expected_db)
    rest = np.concatenate([heard[:at], heard[at + len(made):]])
    assert db(rest) < db(made) - 40  # and nothing else: it played once, then the output was silent
