"""The region on the panel's real widgets (offscreen), on the tiny AudioGen model and a real session host: a clip
opened, dropped or read from the DAW's selection, a region dragged on its waveform, Continue, and the continuation
found in the session at the region's end, its take growing on the waveform while it is made."""

import io
import json

import numpy as np
import pytest
import soundfile as sf
from panel_helpers import WAIT_MS, set_text
from PyQt6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PyQt6.QtGui import QDragEnterEvent, QDropEvent, QWheelEvent
from PyQt6.QtMultimedia import QMediaPlayer
from PyQt6.QtWidgets import QApplication, QLineEdit

from daw_plugin.audio import Clip, Region, read_clip, write_clip
from daw_plugin.hosts.session import SessionHost
from daw_plugin.hosts.session_manifest import load_session
from daw_plugin.presets import PRESETS
from ui.waveform import column_peaks

RATE = 16000  # the tiny model's rate: the session's too, so nothing is resampled
SEAM = PRESETS["foley"].seam_crossfade_ms / 1000  # the panel's default preset


def write_tone(path, seconds=2.0, rate=RATE):
    t = np.arange(round(seconds * rate)) / rate
    return write_clip(Clip((0.5 * np.sin(2 * np.pi * 220 * t) * (1 + t)).astype(np.float32)[None] / 3, rate), path)


def session(tmp_path):
    return SessionHost.create(tmp_path / "song", sample_rate=RATE)


def placed(folder):
    """(track, start seconds, file) of every clip in the session."""
    return [(track.name, clip.start_seconds, clip.file) for track in load_session(folder).tracks
            for clip in track.clips]


def drag(qtbot, waveform, start: float, end: float) -> None:
    """Press at ``start`` seconds, move and release at ``end``, as a user drags."""
    y = waveform.height() // 2
    points = [QPoint(round(waveform.x_of(s)), y) for s in (start, (start + end) / 2, end)]
    qtbot.mousePress(waveform, Qt.MouseButton.LeftButton, pos=points[0])
    qtbot.mouseMove(waveform, points[1])
    qtbot.mouseRelease(waveform, Qt.MouseButton.LeftButton, pos=points[2])


def choose_in_dialog(qtbot, panel, path) -> None:
    """Answer the open file dialog as a user does: type the path into its file name field, then Enter."""
    dialog = panel.control("Open clip dialog")
    qtbot.waitUntil(dialog.isVisible)
    name = dialog.findChild(QLineEdit, "fileNameEdit")
    name.setText(str(path))
    qtbot.keyClick(name, Qt.Key.Key_Return)


def drop(panel, path) -> None:
    """A file dragged in and dropped on the panel: Qt takes a drop only where a drag entered first."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    buttons, keys, copy = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, Qt.DropAction.CopyAction
    enter = QDragEnterEvent(QPoint(5, 5), copy, mime, buttons, keys)
    assert QApplication.sendEvent(panel, enter) and enter.isAccepted()
    QApplication.sendEvent(panel, QDropEvent(QPointF(5, 5), copy, mime, buttons, keys))


def test_a_region_dragged_on_an_opened_clip_continues_at_its_end_and_grows_while_made(qtbot, open_panel, tmp_path):
    song = session(tmp_path)
    clip = write_tone(tmp_path / "loop.wav")
    panel = open_panel(host=f"session:{song.folder}")
    waveform = panel.control("Waveform")
    qtbot.mouseClick(panel.control("Open clip"), Qt.MouseButton.LeftButton)
    choose_in_dialog(qtbot, panel, clip)
    qtbot.waitUntil(lambda: waveform.clip_seconds == 2.0, timeout=WAIT_MS)  # read on a worker thread
    drag(qtbot, waveform, 0.5, 1.5)
    region = waveform.region
    assert 0.45 < region.start_seconds < 0.55 and 1.45 < region.end_seconds < 1.55
    assert waveform.continuation_seconds == region.end_seconds
    assert "loop" in panel.control("Region").text() and f"{region.end_seconds:.3f} s" in panel.control("Region").text()
    seen = []  # the take's frames on the waveform at each preview, then at its TakeDone
    panel.bridge.job_event.connect(lambda job, event: seen.append((event.type, waveform.appended_frames))
                               if event.type in ("preview", "take_done") else None)  # after the panel's own slot
    set_text(qtbot, panel.control("Seconds"), "3")  # about one preview a second of audio
    qtbot.mouseClick(panel.control("Continue"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.ready, timeout=WAIT_MS)
    assert "1 take made" in panel.control("Message").text(), panel.control("Message").text()

    previews = [frames for kind, frames in seen if kind == "preview"]
    assert seen[-1][0] == "take_done" and len(previews) >= 2, seen
    assert previews == sorted(set(previews)) and previews[0] > 0  # it grew with each preview, before the take was done
    assert waveform.take_start == region.end_seconds and waveform.total_seconds > 2.0  # drawn after the point

    (take,) = panel.takes_list.paths()
    assert take.is_file()
    recipe = json.loads(take.with_suffix(".json").read_text())
    assert recipe["source"] == {"clip": str(clip.resolve()), "start_seconds": region.start_seconds,
                                "end_seconds": region.end_seconds}
    ((track, start, file),) = placed(song.folder)
    assert start == pytest.approx(region.end_seconds - SEAM)  # at the region's end, less the cross-faded seam
    assert read_clip(song.folder / file).frames == read_clip(take).frames


def played(panel) -> np.ndarray:
    """What the player was last given to play from memory, decoded: [channels, frames]."""
    assert panel.player.media.playbackState() == QMediaPlayer.PlaybackState.PlayingState
    samples, _ = sf.read(io.BytesIO(bytes(panel.player.media.sourceDevice().data())), dtype="float32", always_2d=True)
    return samples.T


def test_the_selection_and_the_new_audio_as_far_as_it_is_made_play_from_memory(qtbot, open_panel, tmp_path):
    panel = open_panel()
    waveform, message = panel.control("Waveform"), panel.control("Message")
    qtbot.mouseClick(panel.control("Play selection"), Qt.MouseButton.LeftButton)
    assert message.text().startswith("No clip")
    t = np.arange(2 * RATE) / RATE
    stereo = np.stack([np.sin(2 * np.pi * 220 * t), 0.5 * np.sin(2 * np.pi * 330 * t)]).astype(np.float32) / 2
    drop(panel, write_clip(Clip(stereo, RATE), tmp_path / "pad.wav"))
    qtbot.waitUntil(lambda: waveform.clip_seconds == 2.0, timeout=WAIT_MS)
    drag(qtbot, waveform, 0.5, 1.5)
    start, end = (round(s * RATE) for s in (waveform.region.start_seconds, waveform.region.end_seconds))
    qtbot.mouseClick(panel.control("Play selection"), Qt.MouseButton.LeftButton)  # read and encoded on a worker
    qtbot.waitUntil(lambda: panel.player.playing, timeout=WAIT_MS)
    np.testing.assert_allclose(played(panel), stereo[:, start:end], atol=1 / 16000)  # both channels, 16 bits

    qtbot.mouseClick(panel.control("Play new audio"), Qt.MouseButton.LeftButton)
    assert message.text().startswith("No new audio yet")
    set_text(qtbot, panel.control("Seconds"), "3")
    qtbot.mouseClick(panel.control("Continue"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: waveform.appended_frames > 0, timeout=WAIT_MS)  # the first preview is drawn
    panel.player.stop()
    so_far = waveform.take.copy()
    qtbot.mouseClick(panel.control("Play new audio"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.player.playing, timeout=WAIT_MS)
    heard = played(panel)[0]
    assert len(heard) == len(so_far) > 0
    np.testing.assert_allclose(heard, np.clip(so_far, -1, 1), atol=1 / 16000)
    qtbot.waitUntil(lambda: panel.ready, timeout=WAIT_MS)
    assert len(so_far) < waveform.take.size  # what was heard was the take's start, before the rest was made


def test_use_daw_selection_reads_it_on_a_worker_thread_and_continues_where_it_ends(qtbot, open_panel, tmp_path):
    song = session(tmp_path)
    song.insert(write_tone(tmp_path / "drums.wav"), "drums", 1.0)
    song.set_selection("drums", Region(1.5, 2.5))
    panel = open_panel(host=f"session:{song.folder}")
    waveform = panel.control("Waveform")
    qtbot.mouseClick(panel.control("Use DAW selection"), Qt.MouseButton.LeftButton)
    assert waveform.clip_seconds == 0 and "Asking" in panel.control("Region").text()  # the click did not wait
    qtbot.waitUntil(lambda: waveform.clip_seconds > 0, timeout=WAIT_MS)
    assert waveform.clip_seconds == pytest.approx(1.0)
    expected = read_clip(tmp_path / "drums.wav").samples[0, round(0.5 * RATE):round(1.5 * RATE)]
    np.testing.assert_allclose(waveform.clip, expected, atol=1e-6)  # the selected audio, mixed by the session
    assert panel.control("Region").text() == "drums (1.000 s): continue from its end"

    set_text(qtbot, panel.control("Seconds"), "0.3")
    qtbot.mouseClick(panel.control("Continue"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.ready, timeout=WAIT_MS)
    assert "1 take made" in panel.control("Message").text(), panel.control("Message").text()
    starts = sorted(start for _, start, _ in placed(song.folder))
    assert starts == [1.0, pytest.approx(2.5 - SEAM)]  # the drums, and the take where the selection ends


def test_a_dropped_file_is_opened_and_an_unreadable_one_is_said(qtbot, open_panel, tmp_path):
    panel = open_panel()
    waveform = panel.control("Waveform")
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio")
    drop(panel, broken)
    qtbot.waitUntil(lambda: "Could not read audio" in panel.control("Message").text(), timeout=WAIT_MS)
    assert waveform.clip_seconds == 0 and panel.control("Region").text().startswith("No clip")
    drop(panel, write_tone(tmp_path / "kick.wav", seconds=1.5))
    qtbot.waitUntil(lambda: waveform.clip_seconds == 1.5, timeout=WAIT_MS)
    assert panel.control("Region").text() == "kick (1.500 s): continue from its end"


def test_continue_without_a_clip_or_without_a_host_for_the_selection_says_what_to_do(qtbot, open_panel):
    panel = open_panel()
    qtbot.mouseClick(panel.control("Continue"), Qt.MouseButton.LeftButton)
    assert panel.control("Message").text().startswith("Open a clip") and panel.ready
    qtbot.mouseClick(panel.control("Use DAW selection"), Qt.MouseButton.LeftButton)
    assert panel.control("Message").text().startswith("Set Host")


def test_nothing_selected_in_the_daw_is_said(qtbot, open_panel, tmp_path):
    song = session(tmp_path)
    panel = open_panel(host=f"session:{song.folder}")
    qtbot.mouseClick(panel.control("Use DAW selection"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Nothing is selected" in panel.control("Message").text(), timeout=WAIT_MS)


def wheel(widget, notches: int, x: float, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    at = QPointF(x, widget.height() / 2)
    event = QWheelEvent(at, widget.mapToGlobal(at), QPoint(), QPoint(0, 120 * notches), Qt.MouseButton.NoButton,
                        modifiers, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


def test_the_wheel_zooms_around_the_pointer_and_the_scroll_bar_scrolls(qtbot, open_panel, tmp_path):
    panel = open_panel()
    waveform, scroll = panel.control("Waveform"), panel.control("Waveform scroll")
    drop(panel, write_tone(tmp_path / "pad.wav", seconds=4.0))
    qtbot.waitUntil(lambda: waveform.clip_seconds == 4.0, timeout=WAIT_MS)
    assert waveform.view == (0.0, 4.0) and scroll.maximum() == 0
    middle = waveform.seconds_at(waveform.width() / 2)
    wheel(waveform, 3, waveform.width() / 2)  # zoom in
    start, end = waveform.view
    assert end - start < 4.0 and start < middle < end and scroll.maximum() > 0
    assert waveform.seconds_at(waveform.width() / 2) == pytest.approx(middle, abs=1e-3)  # kept under the pointer
    scroll.setValue(scroll.maximum())
    assert waveform.view[1] == pytest.approx(4.0, abs=2e-3)  # scrolled to the end
    wheel(waveform, 1, 0, Qt.KeyboardModifier.ShiftModifier)  # shift+wheel scrolls back
    assert waveform.view[1] < 4.0 - 1e-3 and scroll.value() < scroll.maximum()
    wheel(waveform, -20, waveform.width() / 2)  # zoomed out: never past the audio
    assert waveform.view == (0.0, 4.0)


def test_column_peaks_are_each_columns_min_and_max():
    samples = np.sin(np.arange(1000) / 7).astype(np.float32)
    columns, low, high = column_peaks(samples, -25.0, 10.0, 120)  # starts inside the view, ends before its end
    assert columns.tolist() == list(range(2, 103))
    for column, lo, hi in zip(columns, low, high, strict=True):
        part = samples[max(column * 10 - 25, 0):column * 10 - 15]
        assert (lo, hi) == (part.min(), part.max())
    columns, low, high = column_peaks(samples, 500.0, 0.25, 8)  # zoomed in past a frame a column
    assert columns.tolist() == list(range(8)) and high.tolist() == samples[[500] * 4 + [501] * 4].tolist()
