"""Errors a user can cause name the field, not the flag, and a request reports all its problems together.

The request words a problem with the field's own name; the CLI with its flag (`cli.FLAGS`); a panel with its
labels. Single problems keep the CLI's wording (tests/test_cli.py's BAD_INPUTS holds it).
"""

import numpy as np
import pytest

from daw_plugin.audio import Clip, Region
from daw_plugin.cli import FLAGS, ExitStatus, build_parser, raw_main, worded
from daw_plugin.model_options import check_model_options
from daw_plugin.presets import load_preset
from daw_plugin.request import GenerationRequest
from models.errors import InvalidRequest, Problem, UserError
from models.formats import Format

THREE_BAD = dict(seconds=0.0, guidance=99.0, top_p=2.0)
# What a panel might call the same fields: no flag in sight.
PANEL = {"seconds": "Length", "guidance": "Guidance", "top_p": "Top-p", "track": "Track", "takes": "Takes"}


def request(**changes):
    return GenerationRequest(**{"prompt": "rain", "model": "m", "seconds": 1.0, "seed": 0, **changes})


def test_three_bad_values_are_one_error_naming_each_field():
    with pytest.raises(InvalidRequest) as info:
        request(**THREE_BAD)
    error = info.value
    assert isinstance(error, UserError) and error.fields == ("seconds", "guidance", "top_p")
    assert error.field == "seconds"  # the first, for a front end that points at one
    assert [problem.field for problem in error.problems] == ["seconds", "guidance", "top_p"]
    assert str(error) == ("3 problems: seconds must be from 0.02 (one frame of a token model) to 300, not 0. "
                          "guidance must be from 0 to 30 (1 turns guidance off), not 99. "
                          "top_p must be between 0 (off) and 1, not 2.")
    assert "--" not in str(error)


def test_the_error_crosses_a_process_whole():
    """A worker process (or a remote one) may pickle the error: its problems, not only its text, arrive."""
    import pickle

    with pytest.raises(InvalidRequest) as info:
        request(**THREE_BAD)
    again = pickle.loads(pickle.dumps(info.value))
    assert again.fields == info.value.fields and worded(again) == worded(info.value)
    plain = pickle.loads(pickle.dumps(UserError("no such preset", field="preset")))
    assert (str(plain), plain.field) == ("no such preset", "preset")


def test_the_cli_words_the_same_problems_with_its_flags(capsys, tmp_path):
    argv = ["generate", "rain", "--seconds", "0", "--cfg", "99", "--top-p", "2", "--out", str(tmp_path / "out")]
    status = raw_main(argv)
    out, err = capsys.readouterr()
    assert status == ExitStatus.BAD_INPUT and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("daw-plugin: error: 3 problems: --seconds must be from 0.02")
    assert "--guidance must be from 0 to 30" in err and "--top-p must be between 0 (off) and 1, not 2." in err
    assert "top_p" not in err  # the field, where the flag is --top-p
    assert not (tmp_path / "out").exists()


def test_a_panel_words_them_with_its_labels():
    with pytest.raises(InvalidRequest) as info:
        request(**THREE_BAD)
    text = info.value.worded(PANEL)
    assert text.startswith("3 problems: Length must be from 0.02")
    assert "Guidance must be from 0 to 30" in text and "Top-p must be between 0 (off) and 1" in text
    assert "--" not in text and "top_p" not in text
    # each problem alone, for a panel that shows it beside its control
    assert [problem.worded(PANEL).split(" must")[0] for problem in info.value.problems] == [
        "Length", "Guidance", "Top-p"]


def test_a_sentence_naming_two_fields_labels_both():
    with pytest.raises(InvalidRequest) as info:
        request(track="drums", takes=2, host="session:song")
    (problem,) = info.value.problems
    assert problem.field == "track" and problem.fields == ("track", "takes")
    assert worded(info.value) == ("--track puts one take on a track; with --takes above 1 each take gets a new "
                                  "track, so drop --track.")
    assert problem.worded(PANEL).startswith("Track puts one take on a track; with Takes above 1")


def test_numbers_of_the_wrong_kind_are_reported_once_and_not_compared():
    """A recipe or a panel may hand in text: it is one problem per field, never a TypeError from comparing it."""
    with pytest.raises(InvalidRequest) as info:
        request(seconds="5", takes="2", seed=None, track="t", host="session:x", bars=None)
    assert info.value.fields == ("seconds", "takes", "seed")
    assert [str(p) for p in info.value.problems] == ["seconds must be a number, not '5'.",
                                                     "takes must be a whole number, not '2'.",
                                                     "seed must be a whole number, not None."]


def test_a_value_holding_braces_is_shown_as_it_is():
    with pytest.raises(InvalidRequest) as info:
        request(seconds="{guidance}")
    assert worded(info.value) == "--seconds must be a number, not '{guidance}'."


def test_a_problem_renders_without_labels_by_field_name():
    problem = Problem("at_seconds", "{field} must be from 0, not {value:g}; or leave out {track}.", value=-1.0)
    assert str(problem) == "at_seconds must be from 0, not -1; or leave out track."
    assert problem.worded(FLAGS) == "--at must be from 0, not -1; or leave out --track."
    assert problem.fields == ("at_seconds", "track")


def test_options_the_model_cannot_take_are_reported_together():
    token_model = Format("transformers", "musicgen")
    asked = request(steps=20, negative_prompt="hiss", text_encoder="t5")
    with pytest.raises(InvalidRequest) as info:
        check_model_options(asked, token_model)
    assert info.value.fields == ("steps", "text_encoder")  # each problem's first field
    assert info.value.problems[0].fields == ("steps", "negative_prompt")  # both marked in a panel
    text = worded(info.value)
    assert "has no --steps or --negative-prompt; leave them out, or use AudioLDM 2" in text
    assert "--text-encoder is only" in text
    diffusion = Format("diffusers", "audioldm2")
    with pytest.raises(InvalidRequest) as info:
        check_model_options(request(top_k=5, temperature=0.5), diffusion)
    assert info.value.field == "top_k" and info.value.problems[0].fields == ("top_k", "temperature")
    assert "has no --top-k or --temperature; leave them out" in worded(info.value)
    assert "has no Top-k or temperature" not in info.value.worded(PANEL)  # a label only where one is given


def test_single_errors_about_a_field_carry_it(tmp_path):
    with pytest.raises(UserError) as info:
        load_preset("no-such-preset")
    assert info.value.field == "preset"
    bad = tmp_path / "bad.json"
    bad.write_text('{"highpass_hz": -10}')
    with pytest.raises(UserError) as info:
        load_preset(str(bad))
    assert info.value.field == "preset"
    clip = Clip(np.zeros((1, 16000), np.float32), 16000)
    with pytest.raises(UserError) as info:
        clip.region(Region(0.5, 3.0))
    assert info.value.field == "region"
    with pytest.raises(UserError) as info:
        clip.region(Region(0.5, 3.0), "melody_region")
    assert info.value.field == "melody_region"
    assert UserError("plain").field is None and worded(UserError("plain")) == "plain"


def test_every_flag_the_cli_names_is_one_of_its_options():
    parser = build_parser()
    options = set()
    for command in ("generate", "continue"):
        sub = parser._subparsers._group_actions[0].choices[command]
        options |= {flag for action in sub._actions for flag in action.option_strings}
    named = {word for label in FLAGS.values() for word in label.split() if word.startswith("--")}
    assert named and named <= options


def test_a_command_group_alone_is_a_one_line_argument_error(capsys):
    with pytest.raises(SystemExit) as info:
        raw_main(["takes"])
    err = capsys.readouterr().err
    assert info.value.code == ExitStatus.BAD_INPUT
    assert err.strip() == "daw-plugin takes: error: say what to do: list, regenerate (see daw-plugin takes --help)"


def test_an_argument_of_the_wrong_type_is_one_line(capsys):
    with pytest.raises(SystemExit) as info:
        raw_main(["generate", "x", "--guidance", "loud"])
    err = capsys.readouterr().err
    assert info.value.code == ExitStatus.BAD_INPUT and len(err.strip().splitlines()) == 1
    assert "argument --guidance/--cfg: invalid float value: 'loud'" in err
