"""The panel's Device picker and device line, its BPM and Loop, and the melody clip of melody models, on the real
widgets (offscreen) and the tiny models: each control's value reaches the request, the take or its recipe."""

import json

import numpy as np
from panel_helpers import WAIT_MS, ask, set_text
from PyQt6.QtCore import Qt

from daw_plugin.audio import Clip, read_clip, write_clip
from daw_plugin.engine import DeviceUse
from ui.device_box import GIB, NO_MODEL, device_line, offered_devices


def items(combo) -> list[str]:
    return [combo.itemText(i) for i in range(combo.count())]


def made(qtbot, panel) -> tuple:
    """Wait for the panel to be ready again; the one take listed: (its audio, its recipe)."""
    qtbot.waitUntil(lambda: panel.ready, timeout=WAIT_MS)
    (path,) = panel.takes_list.paths()
    return read_clip(path), json.loads(path.with_suffix(".json").read_text())


def test_the_device_picker_offers_what_torch_offers_and_the_take_runs_there(qtbot, open_panel):
    panel = open_panel()
    picker = panel.control("Device")
    qtbot.waitUntil(lambda: items(picker) == offered_devices(), timeout=WAIT_MS)  # asked on a worker thread
    assert items(picker)[:2] == ["auto", "cpu"] and picker.currentText() == "auto"
    picker.setCurrentText("cpu")
    qtbot.keyClicks(panel.control("Prompt"), "rain")
    assert panel.ask().request.device == "cpu"
    _, recipe = made(qtbot, panel)
    assert recipe["device"] == "cpu"
    assert panel.queue.count() == 0


def test_the_device_line_names_the_warm_models_device_and_unload_clears_it(qtbot, open_panel):
    panel = open_panel()
    status = panel.control("Device status")
    assert status.text() == NO_MODEL
    ask(qtbot, panel, "rain")
    made(qtbot, panel)
    qtbot.waitUntil(lambda: status.text() == "Model on cpu", timeout=WAIT_MS)  # read on a worker thread
    qtbot.mouseClick(panel.control("Unload model"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: status.text() == NO_MODEL, timeout=WAIT_MS)


def test_on_cuda_the_line_gives_the_memory_in_use_from_a_stand_in_reading():
    stand_in_cuda_reading = DeviceUse("cuda:0", 1, used_bytes=round(3.2 * GIB), total_bytes=80 * GIB)
    assert device_line(stand_in_cuda_reading) == "Model on cuda:0 · 3.2 of 80.0 GiB in use"
    two_warm_stand_in = DeviceUse("cuda:1", 2, used_bytes=GIB // 2, total_bytes=24 * GIB)
    assert device_line(two_warm_stand_in) == "2 models on cuda:1 · 0.5 of 24.0 GiB in use"
    assert device_line(None) == NO_MODEL


def test_loop_and_a_bpm_make_a_take_of_whole_bars_at_that_tempo(qtbot, open_panel):
    panel = open_panel()
    set_text(qtbot, panel.control("BPM"), "120")
    loop = panel.control("Loop")
    assert loop.checkState() == Qt.CheckState.PartiallyChecked  # as the preset says, until chosen
    qtbot.mouseClick(loop, Qt.MouseButton.LeftButton)
    assert loop.checkState() == Qt.CheckState.Checked
    ask(qtbot, panel, "drum loop", seconds="1")
    take, recipe = made(qtbot, panel)
    assert take.frames == take.sample_rate * 2  # one bar of 4 beats at 120 BPM, the nearest to 1 s
    assert recipe["finishing"]["loop"] is True and recipe["finishing"]["tempo_bpm"] == 120
    assert recipe["finishing"]["bars"] == 1


def test_three_beats_a_bar_make_bars_of_three_beats(qtbot, open_panel):
    panel = open_panel()
    set_text(qtbot, panel.control("BPM"), "120")
    panel.control("Beats per bar").setValue(3)
    qtbot.mouseClick(panel.control("Loop"), Qt.MouseButton.LeftButton)
    ask(qtbot, panel, "waltz", seconds="3")
    take, recipe = made(qtbot, panel)
    assert take.frames == take.sample_rate * 3  # two bars of 3/4 at 120 BPM, the nearest to 3 s (4/4: 2 s or 4 s)
    assert recipe["finishing"]["beats_per_bar"] == 3 and recipe["finishing"]["bars"] == 2


def test_a_bpm_that_is_no_number_is_marked_at_its_field(qtbot, open_panel):
    panel = open_panel()
    set_text(qtbot, panel.control("BPM"), "fast")
    ask(qtbot, panel, "drum loop")
    assert panel.ready  # nothing queued
    assert "BPM must be a number" in panel.control("Message").text()
    assert "BPM must be a number" in panel.control("BPM").accessibleDescription()  # marked at the field
    set_text(qtbot, panel.control("BPM"), "")  # empty: no tempo; with Loop on that is refused, at Loop and BPM
    loop = panel.control("Loop")
    qtbot.mouseClick(loop, Qt.MouseButton.LeftButton)
    ask(qtbot, panel, "")
    assert panel.ready
    assert "Loop cuts whole bars at a tempo" in loop.accessibleDescription()
    assert "give BPM" in panel.control("BPM").accessibleDescription()
    set_text(qtbot, panel.control("BPM"), "100")
    ask(qtbot, panel, "")
    assert not panel.ready and not loop.accessibleDescription()
    assert loop.toolTip().startswith("Checked: a seamless loop")  # its own tooltip back once the mark is cleared


def test_device_bpm_and_loop_survive_reopening_the_panel(qtbot, open_panel):
    first = open_panel()
    first.control("Device").setCurrentText("cpu")
    set_text(qtbot, first.control("BPM"), "96")
    first.control("Beats per bar").setValue(6)
    qtbot.mouseClick(first.control("Loop"), Qt.MouseButton.LeftButton)
    qtbot.mouseClick(first.control("Loop"), Qt.MouseButton.LeftButton)  # checked, then unchecked: loop off
    first.close()
    again = open_panel()
    assert again.control("Device").currentText() == "cpu"
    assert again.control("BPM").text() == "96" and again.control("Beats per bar").value() == 6
    assert again.control("Loop").checkState() == Qt.CheckState.Unchecked


def test_the_melody_clip_is_offered_only_for_a_melody_model_and_reaches_its_take(qtbot, open_panel,
                                                                                 musicgen_dirs, tmp_path):
    plain = open_panel(model=str(musicgen_dirs["mono"]))
    qtbot.waitUntil(lambda: plain.model.count() > 1, timeout=WAIT_MS)  # the model list, read on a worker thread
    assert plain.model.family == "musicgen" and not plain.control("Melody clip").isVisibleTo(plain)
    panel = open_panel(model=str(musicgen_dirs["melody"]))
    qtbot.waitUntil(lambda: panel.model.count() > 1, timeout=WAIT_MS)
    assert panel.control("Melody clip").isVisibleTo(panel)
    assert panel.control("Choose melody clip").isVisibleTo(panel)
    rate = 32000
    t = np.arange(rate) / rate
    melody = write_clip(Clip((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None], rate),
                        tmp_path / "hum.wav")
    set_text(qtbot, panel.control("Melody clip"), str(melody))
    ask(qtbot, panel, "a tune")
    _, recipe = made(qtbot, panel)
    assert recipe["melody"]["clip"] == str(melody.resolve())
