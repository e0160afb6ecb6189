"""The request's Loop over the finishing preset's own: a seamless loop of whole bars at the tempo, recorded in the
take's recipe so regenerate makes the same loop; older recipes, which do not say, keep their preset's."""

import json

import pytest

from daw_plugin.audio import read_clip
from daw_plugin.cli import ExitStatus, raw_main
from daw_plugin.finishing import with_loop
from daw_plugin.presets import PRESETS
from daw_plugin.recipes import Recipe
from daw_plugin.request import GenerationRequest
from models.errors import InvalidRequest


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    pass


def test_loop_on_is_whole_bars_with_a_seam_and_off_keeps_the_presets_tempo_fit():
    foley, stem = PRESETS["foley"], PRESETS["music-stem"]
    assert with_loop(foley, None) is foley and with_loop(stem, None) is stem  # None: the preset's own
    assert (with_loop(foley, True).loop, with_loop(foley, True).tempo_fit) == (True, True)
    assert (with_loop(stem, False).loop, with_loop(stem, False).tempo_fit) == (False, True)


def test_loop_without_any_tempo_is_refused_naming_the_tempo():
    with pytest.raises(InvalidRequest) as info:
        GenerationRequest(prompt="drums", model="tiny", seconds=2.0, loop=True)
    assert info.value.problems[0].fields == ("loop", "tempo_bpm", "host")
    assert GenerationRequest(prompt="drums", model="tiny", seconds=2.0, loop=True, tempo_bpm=100.0).loop is True
    continued = GenerationRequest(prompt="", model="tiny", seconds=2.0, loop=True, clip="clip.wav")
    assert continued.loop is True  # a continuation keeps its region's timing: Loop asks no tempo of it


def make(converted, out, *flags) -> tuple:
    """The one take `generate` makes with ``flags``: (its audio, its recipe as JSON)."""
    assert raw_main(["generate", "drums", "--model", str(converted), "--seconds", "1", "--seed", "5",
                     "--device", "cpu", "--out", str(out), *flags]) == ExitStatus.OK
    (folder,) = [path for path in out.iterdir() if path.is_dir()]
    return read_clip(folder / f"{folder.name}.wav"), json.loads((folder / f"{folder.name}.json").read_text())


def test_loop_on_and_off_finish_as_the_flag_says_and_the_recipe_keeps_it(converted, tmp_path):
    # music-stem loops by itself: --no-loop keeps its whole bars but fades them in and out instead of the seam.
    looped, looped_recipe = make(converted, tmp_path / "on", "--preset", "music-stem", "--bpm", "120", "--loop")
    plain, plain_recipe = make(converted, tmp_path / "off", "--preset", "music-stem", "--bpm", "120", "--no-loop")
    bar = looped.sample_rate * 2  # 4 beats at 120 BPM
    assert looped.frames == plain.frames == bar  # the nearest whole bar to 1 s
    assert (plain.samples[:, 0] == 0).all()  # faded in from silence
    assert (looped.samples[:, 0] != 0).any()  # no fade: the end is cross-faded into the start
    assert (looped_recipe["finishing"]["loop"], plain_recipe["finishing"]["loop"]) == (True, False)
    assert GenerationRequest.from_recipe(looped_recipe).loop is True  # regenerate makes the same loop


def test_loop_turns_tempo_fit_on_for_a_preset_without_it(converted, tmp_path):
    take, recipe = make(converted, tmp_path, "--preset", "foley", "--bpm", "90", "--loop")
    assert take.frames == round(take.sample_rate * 60 / 90 * 4)  # one bar at 90 BPM
    assert recipe["finishing"]["bars"] == 1 and recipe["finishing"]["loop"] is True


def test_an_older_recipe_without_loop_reads_as_the_presets_own():
    older = {"prompt": "rain", "model": "tiny", "seconds": 1.5, "seed": 9, "device": "cpu", "audio_format": "wav",
             "finishing": {"preset": "music-stem"}, "parameters": {"guidance": 3.0}}
    recipe = Recipe.from_json(older)
    assert recipe.finishing.loop is None and "loop" not in recipe.to_json()["finishing"]
    assert GenerationRequest.from_recipe(older).loop is None
