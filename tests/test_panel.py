"""The panel on its real widgets (offscreen), driven as a user would, on the tiny AudioGen model: controls are
found by their accessible names, keys and clicks go to them, and takes are found in the list and on disk."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from panel_helpers import INI, WAIT_MS, ask, set_text
from PyQt6.QtCore import QSettings, Qt, QTimer

from daw_plugin import Engine
from daw_plugin.cli import raw_main
from ui import settings as saved
from ui.worker_box import HERE, SERVER

CONTROLS = ("Prompt", "Model", "Seconds", "Takes", "Seed", "Lock seed", "Guidance", "Top-k", "Top-p", "Temperature",
            "Steps", "Negative prompt", "Preset", "Output folder", "Choose output folder", "Host", "Generate",
            "Cancel", "Unload model", "Progress", "Progress details", "Job queue", "Takes list", "Message")


def takes_on_disk(folder: Path) -> list[str]:
    return sorted(os.listdir(folder)) if folder.exists() else []


def test_a_prompt_and_ctrl_enter_make_a_take_listed_with_its_seed(qtbot, open_panel, tmp_path):
    panel = open_panel()
    qtbot.mouseClick(panel.control("Lock seed"), Qt.MouseButton.LeftButton)
    set_text(qtbot, panel.control("Seed"), "7")
    ask(qtbot, panel, "rain on a tin roof")
    assert not panel.ready  # queued at once; the click did not wait for the take
    qtbot.waitUntil(lambda: panel.ready, timeout=WAIT_MS)
    assert panel.takes_list.seeds() == [7]
    (path,) = panel.takes_list.paths()
    assert path.is_file() and path.name == "rain-on-a-tin-roof-seed7.wav"
    assert takes_on_disk(tmp_path / "takes") == [path.parent.name]
    assert "1 take made" in panel.control("Message").text()
    assert panel.control("Progress details").text() == "Ready"
    assert saved.history(panel.settings)[-1] == "rain on a tin roof"


def test_an_unlocked_seed_is_new_each_time_and_shown_for_each_take(qtbot, open_panel):
    panel = open_panel()
    set_text(qtbot, panel.control("Takes"), "2")
    ask(qtbot, panel, "hum")
    shown = int(panel.control("Seed").text())  # the random seed, written where the user can keep it
    qtbot.waitUntil(lambda: panel.ready, timeout=WAIT_MS)
    assert sorted(panel.takes_list.seeds()) == [shown, shown + 1]


def test_the_librarys_earlier_takes_are_listed_when_the_panel_opens(qtbot, open_panel):
    first = open_panel()
    ask(qtbot, first, "wind")
    qtbot.waitUntil(lambda: first.ready, timeout=WAIT_MS)
    made = first.takes_list.paths()
    first.close()
    again = open_panel()
    qtbot.waitUntil(lambda: again.takes_list.paths() == made, timeout=WAIT_MS)


def test_cancel_mid_take_leaves_the_panel_ready_and_no_take(qtbot, open_panel, tmp_path):
    panel = open_panel()
    ask(qtbot, panel, "a long drone", seconds="120")  # thousands of steps: the cancel lands mid-take
    qtbot.waitUntil(lambda: panel.control("Progress").value() > 0, timeout=WAIT_MS)  # a step is shown
    qtbot.keyClick(panel.control("Prompt"), Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: panel.ready, timeout=WAIT_MS)
    assert "cancelled" in panel.control("Message").text()
    assert panel.control("Progress details").text() == "Ready"
    assert panel.takes_list.paths() == [] and takes_on_disk(tmp_path / "takes") == []
    ask(qtbot, panel, " again", seconds="0.1")  # and it still generates
    qtbot.waitUntil(lambda: len(panel.takes_list.paths()) == 1, timeout=WAIT_MS)


def test_a_queued_job_can_be_cancelled_from_the_queue(qtbot, open_panel, tmp_path):
    panel = open_panel()
    ask(qtbot, panel, "first")
    qtbot.mouseClick(panel.control("Generate"), Qt.MouseButton.LeftButton)  # the same prompt, queued behind
    queue = panel.control("Job queue")
    assert queue.count() == 2
    queue.item(1).setSelected(True)
    qtbot.mouseClick(panel.control("Cancel"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.ready, timeout=WAIT_MS)
    assert len(panel.takes_list.paths()) == 1 and len(takes_on_disk(tmp_path / "takes")) == 1


def test_a_bad_value_is_marked_at_its_field_and_the_panel_still_generates(qtbot, open_panel):
    panel = open_panel()
    ask(qtbot, panel, "rain", seconds="0")
    seconds = panel.control("Seconds")
    assert seconds.accessibleDescription().startswith("Seconds must be from 0.02")
    assert panel.control("Message").text() == seconds.accessibleDescription()
    assert panel.ready  # nothing was queued
    set_text(qtbot, panel.control("Guidance"), "lots")
    qtbot.mouseClick(panel.control("Generate"), Qt.MouseButton.LeftButton)
    assert "2 problems" in panel.control("Message").text()
    assert panel.control("Guidance").accessibleDescription() == "Guidance must be a number, not 'lots'."
    set_text(qtbot, panel.control("Guidance"), "")
    set_text(qtbot, seconds, "0.2")
    qtbot.mouseClick(panel.control("Generate"), Qt.MouseButton.LeftButton)
    assert seconds.accessibleDescription() == ""  # the mark goes with the mistake
    qtbot.waitUntil(lambda: len(panel.takes_list.paths()) == 1, timeout=WAIT_MS)


def test_a_missing_model_is_said_in_the_panel_which_still_generates(qtbot, open_panel, converted):
    panel = open_panel()
    model = panel.control("Model")
    set_text(qtbot, model, "no-such-model")
    ask(qtbot, panel, "rain")
    qtbot.waitUntil(lambda: panel.ready, timeout=WAIT_MS)
    assert "no-such-model" in panel.control("Message").text() and panel.takes_list.paths() == []
    set_text(qtbot, model, str(converted))
    qtbot.mouseClick(panel.control("Generate"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(panel.takes_list.paths()) == 1, timeout=WAIT_MS)


def test_the_ui_thread_keeps_turning_while_a_take_is_made(qtbot, open_panel):
    panel = open_panel()
    beats = []
    heartbeat = QTimer()
    heartbeat.timeout.connect(lambda: beats.append(panel.ready))  # whether a job was running at each beat
    heartbeat.start(10)
    ask(qtbot, panel, "a heartbeat", seconds="6")
    steps = []
    panel.bridge.job_event.connect(lambda job, event: steps.append(len(beats)) if event.type == "step" else None)
    qtbot.waitUntil(lambda: panel.ready, timeout=WAIT_MS)
    heartbeat.stop()
    # A window that waited on the job would see no beat until it ended, and every step at once after it. The
    # bounds are low: on a busy machine the OS may give the UI thread few turns, but never none.
    assert beats.count(False) >= 10, beats  # it fired while the job ran
    assert len(set(steps)) >= 3, steps  # and between the steps, not only before and after them


def test_settings_survive_closing_and_reopening_the_panel(qtbot, open_panel, tmp_path, converted):
    first = open_panel(preset="music-stem")
    set_text(qtbot, first.control("Output folder"), str(tmp_path / "elsewhere"))
    qtbot.mouseClick(first.control("Lock seed"), Qt.MouseButton.LeftButton)
    set_text(qtbot, first.control("Seed"), "1234")
    set_text(qtbot, first.control("Host"), f"session:{tmp_path / 'song'}")
    first.resize(620, 700)  # inside the offscreen screen, which restoreGeometry keeps it to
    first.close()
    again = open_panel(model=None, out=None)  # what the command line did not choose comes from the last run
    assert again.model.model == str(converted)
    assert again.control("Preset").currentText() == "music-stem"
    assert again.control("Output folder").text() == str(tmp_path / "elsewhere")
    assert again.control("Lock seed").isChecked() and again.control("Seed").text() == "1234"
    assert again.control("Host").text() == f"session:{tmp_path / 'song'}"
    assert (again.width(), again.height()) == (620, 700)
    chosen = open_panel(preset="raw")  # what it did choose wins
    assert chosen.control("Preset").currentText() == "raw"


def test_up_and_down_walk_the_last_hundred_prompts(qtbot, open_panel, tmp_path):
    settings = QSettings(str(tmp_path / "panel.ini"), INI)
    for number in range(105):
        saved.remember_prompt(settings, f"prompt {number}")
    saved.remember_prompt(settings, "prompt 103")  # asked again: it moves to the newest
    settings.sync()
    assert len(saved.history(settings)) == 100 and saved.history(settings)[0] == "prompt 5"
    panel = open_panel()
    prompt = panel.control("Prompt")
    qtbot.keyClicks(prompt, "half typed")
    qtbot.keyClick(prompt, Qt.Key.Key_Up)
    assert prompt.toPlainText() == "prompt 103"
    qtbot.keyClick(prompt, Qt.Key.Key_Up)
    assert prompt.toPlainText() == "prompt 104"
    qtbot.keyClick(prompt, Qt.Key.Key_Down)
    qtbot.keyClick(prompt, Qt.Key.Key_Down)
    assert prompt.toPlainText() == "half typed"


def test_every_control_has_an_accessible_name_and_the_prompt_has_the_focus(qtbot, open_panel):
    panel = open_panel()
    for name in CONTROLS:
        assert panel.control(name) is not None
    qtbot.waitUntil(lambda: panel.focusWidget() is panel.control("Prompt"))


def test_the_models_own_settings_are_shown_only_for_families_that_take_them(qtbot, open_panel):
    panel = open_panel()
    qtbot.waitUntil(lambda: panel.model.count() > 1, timeout=WAIT_MS)  # the list, read on a worker thread

    def shown():
        return {name for name in ("Guidance", "Top-k", "Top-p", "Temperature", "Steps", "Negative prompt")
                if panel.control(name).isVisibleTo(panel)}

    assert shown() == {"Guidance", "Top-k", "Top-p", "Temperature"}  # the tiny AudioGen
    panel.model.choose("audioldm2")
    assert "AudioLDM 2" in panel.model.currentText() and shown() == {"Guidance", "Steps", "Negative prompt"}
    assert "on disk" in panel.model.currentText() or "not downloaded" in panel.model.currentText()


class RecordingEngine(Engine):
    """The real engine, recording the families the panel asks it to import ahead."""

    def __init__(self, out):
        super().__init__(out)
        self.asked: list = []

    def import_ahead(self, family):
        self.asked.append(family)
        super().import_ahead(family)


def test_the_chosen_models_modules_are_imported_ahead_unless_a_gpu_server_makes_the_takes(qtbot, open_panel,
                                                                                         tmp_path):
    engine = RecordingEngine(tmp_path / "takes")
    try:
        panel = open_panel(engine=engine)
        qtbot.waitUntil(lambda: "audiogen" in engine.asked, timeout=WAIT_MS)  # the tiny AudioGen, once listed
        panel.control("Generate on").setCurrentText(SERVER)
        panel.model.choose("audioldm2")
        assert "audioldm2" not in engine.asked  # the server imports its own
        panel.control("Generate on").setCurrentText(HERE)
        assert engine.asked[-1] == "audioldm2"  # back on this computer: the chosen model's, at once
        panel.model.choose("musicgen-small")
        assert engine.asked[-1] == "musicgen"
        qtbot.waitUntil(lambda: not engine.importing, timeout=WAIT_MS)  # no import left running past the test
    finally:
        engine.close()


def test_unload_frees_the_warm_model_and_the_next_take_loads_it_again(qtbot, open_panel):
    panel = open_panel()
    ask(qtbot, panel, "rain")
    qtbot.waitUntil(lambda: panel.ready, timeout=WAIT_MS)
    assert panel.engine.loads == 1
    qtbot.mouseClick(panel.control("Unload model"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "unloaded" in panel.control("Message").text(), timeout=WAIT_MS)
    qtbot.mouseClick(panel.control("Generate"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.ready, timeout=WAIT_MS)
    assert panel.engine.loads == 2 and len(panel.takes_list.paths()) == 2


# Run in its own process: the command runs the application's event loop and quits it, after which this process's
# Qt would no longer deliver the next tests' queued events.
PANEL_COMMAND = """
import gc, json, sys
from PyQt6.QtCore import QTimer
from PyQt6.QtWidgets import QApplication
from daw_plugin.cli import raw_main
from ui.panel import Panel

app, seen = QApplication(sys.argv[:1]), {}

def look_and_close():
    try:
        (panel,) = [w for w in QApplication.topLevelWidgets() if isinstance(w, Panel) and w.isVisible()]
        seen.update(model=panel.model.model, out=panel.control("Output folder").text(),
                    preset=panel.control("Preset").currentText(), frozen=gc.get_freeze_count() > 0)
        panel.close()
    finally:
        app.quit()  # the command's event loop ends whatever was found

QTimer.singleShot(0, look_and_close)
status = raw_main(["panel", "--model", sys.argv[1], "--out", sys.argv[2], "--preset", "raw"])
print(json.dumps({"status": status, **seen}))
"""


def test_the_panel_command_opens_the_panel_with_what_it_names(tmp_path, converted):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path / "config")}
    done = subprocess.run([sys.executable, "-c", PANEL_COMMAND, str(converted), str(tmp_path / "lib")], env=env,
                          cwd=Path(__file__).parents[1], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    # frozen: start-up's objects are out of the collector's full pass, which stalled the window (ui/app.py)
    assert seen == {"status": 0, "model": str(converted), "out": str(tmp_path / "lib"), "preset": "raw", "frozen": True}


def test_the_cli_starts_without_qt():
    code = "import sys, daw_plugin.cli; sys.exit('PyQt6' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[1]).returncode == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="only Linux runs without a display server")
def test_without_a_display_the_panel_command_says_so_in_one_line(capsys, monkeypatch):
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    assert raw_main(["panel"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("daw-plugin: error: The panel needs a display") and len(err.strip().splitlines()) == 1


def test_the_job_bridge_takes_qt_events_as_any_object_does(qtbot):
    # Its signal was once named `event`, hiding QObject.event: the first event Qt gave it (a child QObject added,
    # a deleteLater) called the signal instead and aborted the process.
    from PyQt6.QtCore import QEvent

    from ui.bridge import JobBridge

    assert JobBridge().event(QEvent(QEvent.Type.User)) is True
