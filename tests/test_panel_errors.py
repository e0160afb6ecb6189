"""Errors found inside a job, on the panel's real widgets (offscreen) and the tiny AudioGen model: every problem
of a request the engine refused marks its own controls, in the panel's words, and a model that is missing or will
not load marks the model picker; the panel still generates afterwards."""

import shutil

import numpy as np
import pytest
from panel_helpers import WAIT_MS, set_text
from PyQt6.QtCore import Qt

from daw_plugin import events
from daw_plugin.audio import Clip, write_clip


@pytest.fixture
def panel(qtbot, open_panel):
    """A shown panel on the tiny model, with 0.2 s and a prompt typed."""
    shown = open_panel()
    set_text(qtbot, shown.control("Seconds"), "0.2")
    qtbot.keyClicks(shown.control("Prompt"), "rain")
    return shown


def failure(job) -> events.Failed:
    final = list(job.events(timeout=WAIT_MS / 1000))[-1]
    assert isinstance(final, events.Failed)
    return final


def generates_again(qtbot, panel) -> None:
    """A good request after the failure: the marks go, and a take is made."""
    qtbot.keyClick(panel.control("Prompt"), Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert all(panel.control(name).accessibleDescription() == "" for name in ("Model", "Steps", "Negative prompt"))
    qtbot.waitUntil(lambda: len(panel.takes_list.paths()) == 1, timeout=WAIT_MS)


def test_each_problem_the_engine_finds_marks_its_controls_in_the_panels_words(qtbot, panel, tmp_path):
    """AudioGen has no melody, steps or negative prompt: found by the job (the model's configs), not the request."""
    melody = write_clip(Clip(np.full((1, 1600), 0.1, np.float32), 16000), tmp_path / "hum.wav")
    job = panel.ask(melody=str(melody), steps=5, negative_prompt="noise")  # as a melody control or a stale family
    qtbot.waitUntil(lambda: panel.ready, timeout=WAIT_MS)
    failed = failure(job)
    assert [problem.field for problem in failed.problems] == ["melody", "steps"]
    message = panel.control("Message").text()
    assert message.startswith("2 problems: ") and "--" not in message  # not the CLI's flags
    assert "has no Steps or Negative prompt" in message  # the panel's labels
    assert "leave out Melody clip." in message  # the melody control's label
    steps, negative = panel.control("Steps"), panel.control("Negative prompt")
    assert steps.accessibleDescription() == negative.accessibleDescription() == steps.toolTip()
    assert "has no Steps or Negative prompt; leave them out" in steps.accessibleDescription()
    assert steps.accessibleDescription() in message and panel.takes_list.paths() == []
    generates_again(qtbot, panel)


def damaged_copy(folder, into):
    """The model with half of its weights: found on disk and complete by name, but it will not load."""
    copy = shutil.copytree(folder, into)
    for weights in copy.glob("*.safetensors"):
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return str(copy)


@pytest.mark.parametrize("model", ["unknown name", "missing folder", "will not load"])
def test_a_model_that_is_missing_or_will_not_load_marks_the_model_picker(qtbot, panel, converted, tmp_path, model):
    name = {"unknown name": lambda: "no-such-model", "missing folder": lambda: str(tmp_path / "gone" / "model"),
            "will not load": lambda: damaged_copy(converted, tmp_path / "damaged")}[model]()
    picker = panel.control("Model")
    set_text(qtbot, picker, name)
    job = panel.ask()
    qtbot.waitUntil(lambda: panel.ready, timeout=WAIT_MS)
    assert failure(job).field == "model"
    said = panel.control("Message").text()
    assert said and picker.accessibleDescription() == said == picker.toolTip()
    assert panel.takes_list.paths() == []
    set_text(qtbot, picker, str(converted))
    generates_again(qtbot, panel)
