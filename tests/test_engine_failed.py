"""What a failed job's `Failed` event carries: a refused request's problems, for each front end to word (the CLI
with its flags, the panel with its labels, a remote client from JSON), and the field a model's or a device's
error concerns."""

import json

import numpy as np
import pytest
from test_cli import cli

from daw_plugin import Engine, events
from daw_plugin.audio import Clip, write_clip
from daw_plugin.cli import FLAGS, ExitStatus
from daw_plugin.request import GenerationRequest
from models.errors import InvalidRequest, Problem, UserError

LABELS = {"steps": "Steps", "negative_prompt": "Negative prompt", "melody": "Melody"}


@pytest.fixture(autouse=True)
def _threads(one_thread):
    pass


@pytest.fixture
def hum(tmp_path):
    return write_clip(Clip(np.full((1, 1600), 0.1, np.float32), 16000), tmp_path / "hum.wav")


def failed(model, out, **options) -> tuple[UserError, events.Failed]:
    """The error a job raised, and its final event."""
    request = GenerationRequest(prompt="rain", model=str(model), **{"seconds": 0.1, "device": "cpu"} | options)
    with Engine(out) as engine:
        job = engine.submit(request)
        with pytest.raises(UserError) as raised:
            job.result(timeout=120)
        final = list(job.events())[-1]
    assert isinstance(final, events.Failed)
    return raised.value, final


def test_a_refused_requests_problems_come_with_its_failed_event(converted, hum, tmp_path):
    error, event = failed(converted, tmp_path, melody=str(hum), steps=5, negative_prompt="noise")
    assert isinstance(error, InvalidRequest) and event.problems == error.problems and len(event.problems) == 2
    assert event.message == str(error) and event.field == "melody"  # as before, for consumers of the message
    assert event.problems[1].fields == ("steps", "negative_prompt")
    assert event.worded(LABELS) == error.worded(LABELS) and "has no Steps or Negative prompt" in event.worded(LABELS)
    assert event.worded(FLAGS) == error.worded(FLAGS) and "has no --steps or --negative-prompt" in event.worded(FLAGS)


def test_a_failed_events_problems_survive_json(converted, hum, tmp_path):
    _, event = failed(converted, tmp_path, melody=str(hum), steps=5, negative_prompt="noise")
    sent = json.loads(json.dumps(event.to_json()))
    assert sent["type"] == "failed" and sent["message"] == event.message and sent["field"] == "melody"
    assert [problem["fields"] for problem in sent["problems"]] == [["melody"], ["steps", "negative_prompt"]]
    again = events.Failed(sent["message"], sent["field"], tuple(map(Problem.from_json, sent["problems"])))
    assert again == event and again.worded(LABELS) == event.worded(LABELS)


def test_a_problems_value_json_has_no_type_for_is_sent_as_its_repr():
    problem = Problem("prompt", "{prompt} must be text, not {value!r}.", value=b"\xff")
    assert json.dumps(problem.to_json()) and problem.to_json()["values"] == {"value": "b'\\xff'"}
    assert events.Failed("x").to_json()["problems"] == []


def test_the_cli_words_the_same_failure_with_its_flags(capsys, converted, hum, tmp_path):
    status, _, err = cli(capsys, "generate", "rain", "--model", converted, "--melody", hum, "--steps", 5,
                         "--negative-prompt", "noise", "--seconds", 0.1, "--out", tmp_path / "takes")
    assert status == ExitStatus.BAD_INPUT and len(err.strip().splitlines()) == 1
    assert "2 problems:" in err and "has no --steps or --negative-prompt" in err and "leave out --melody" in err


def test_a_missing_model_names_the_model_field(tmp_path):
    error, event = failed("no-such-model", tmp_path)
    assert error.field == event.field == "model" and "no-such-model" in event.message and event.problems == ()


def test_a_load_error_about_the_precision_keeps_its_own_field(converted, tmp_path):
    error, event = failed(converted, tmp_path, precision="float16")  # on the CPU: refused when the model loads
    assert event.field == "precision" and "--precision" in event.message
