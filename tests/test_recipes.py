"""A take's recipe is one typed value, `Recipe`, with one mapping to and from the JSON kept beside the take:
what is written reads back to the same value, recipes written before today keep their JSON and their meaning,
and a recipe that cannot be used is one sentence naming the field."""

import json
from pathlib import Path

import pytest

from daw_plugin import Engine, events
from daw_plugin.cli import ExitStatus, raw_main
from daw_plugin.recipes import Batch, Recipe
from daw_plugin.request import GenerationRequest
from daw_plugin.takes import list_takes, load_recipe
from models.errors import UserError

# Recipes written by version 0.1.0 before takes recorded their batch (AudioGen take 2 of 2, a continuation,
# a MusicGen melody take, and an AudioLDM 2 take with its CLAP score and a tempo-fit finishing report).
WRITTEN_BEFORE_BATCHES = json.loads((Path(__file__).parent / "fixtures" / "recipes-0.1.0.json").read_text())

# The least an older recipe holds: no family, guidance named cfg_coef, no requested length, no batch.
OLDEST = {"program": {"name": "daw-plugin"}, "prompt": "rain", "model": "tiny", "seconds": 1.5, "seed": 9,
          "device": "cpu", "audio_format": "wav", "finishing": {"preset": "foley"},
          "parameters": {"cfg_coef": 3.0, "top_k": 250, "top_p": 0.0, "temperature": 1.0, "text_encoder": None}}


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    pass


def test_a_recipe_reads_back_to_the_json_it_was_written_as_and_records_its_batch(converted, tmp_path):
    assert raw_main(["generate", "rain", "--model", str(converted), "--seconds", "0.3", "--takes", "2", "--seed", "7",
                     "--out", str(tmp_path)]) == ExitStatus.OK
    for index, take in enumerate(("rain-seed7", "rain-seed8")):
        text = (tmp_path / take / f"{take}.json").read_text()
        recipe = Recipe.from_json(json.loads(text))
        assert recipe.batch == Batch(first_seed=7, takes=2, index=index) and recipe.seed == 7 + index
        assert json.dumps(recipe.to_json(), indent=2) == text  # every field, in its order
        assert load_recipe(tmp_path, take) == recipe and recipe.id == take


@pytest.mark.parametrize("written", WRITTEN_BEFORE_BATCHES, ids=lambda recipe: recipe["id"])
def test_a_recipe_written_before_batches_keeps_its_json_and_is_a_batch_of_one(written):
    recipe = Recipe.from_json(written)
    # Takes were made one after another then, each with its own seed: each is a batch of one, whatever of_takes says.
    assert recipe.batch == Batch(written["seed"], 1, 0)
    again = recipe.to_json()
    assert again.pop("batch") == {"first_seed": written["seed"], "takes": 1, "index": 0}
    assert json.dumps(again) == json.dumps(written)  # every field, in its order


def test_an_older_recipe_reads_with_the_old_meaning_of_what_it_lacks():
    recipe = Recipe.from_json(OLDEST)
    assert recipe.family is None and recipe.parameters.top_k == 250  # no family: a token model
    assert (recipe.requested_seconds, recipe.requested_bars) == (1.5, None)  # asked what it made
    assert recipe.parameters.guidance == 3.0 and recipe.finishing.beats_per_bar == 4
    assert recipe.batch == Batch(9, 1, 0) and recipe.source is None and recipe.raw_take is None
    written = recipe.to_json()
    assert written["parameters"] == {"guidance": 3.0, "top_k": 250, "top_p": 0.0, "temperature": 1.0,
                                     "text_encoder": None}  # one name for guidance
    assert "family" not in written and "raw_take" not in written  # what it lacked is not made up
    request = GenerationRequest.from_recipe(OLDEST)
    assert (request.seconds, request.seed, request.guidance, request.top_k, request.beats_per_bar) == (1.5, 9, 3.0,
                                                                                                       250, 4)


def test_an_older_audioldm2_recipe_drops_the_sampling_it_never_used():
    older = {**OLDEST, "family": "audioldm2",
             "parameters": {"cfg_coef": 3.5, "top_k": 250, "top_p": 0.0, "temperature": 1.0, "steps": 25,
                            "negative_prompt": None}}
    recipe = Recipe.from_json(older)
    assert (recipe.parameters.top_k, recipe.parameters.top_p, recipe.parameters.temperature) == (None, None, None)
    assert recipe.to_json()["parameters"] == {"guidance": 3.5, "steps": 25, "negative_prompt": None}


def test_takes_list_gives_each_recipe_through_the_mapping(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "old.json").write_text(json.dumps(OLDEST))
    (listed,) = list_takes(tmp_path)
    assert listed == {**Recipe.from_json(OLDEST).to_json(), "id": "old"}
    assert listed["batch"] == {"first_seed": 9, "takes": 1, "index": 0} and "cfg_coef" not in listed["parameters"]


def edited(**fields) -> dict:
    return {**json.loads(json.dumps(OLDEST)), **fields}


@pytest.mark.parametrize("recipe, problem", [
    ({key: value for key, value in OLDEST.items() if key != "seed"}, "has no 'seed'"),
    (edited(batch={"first_seed": 9, "takes": 2}), "has no 'batch.index'"),
    (edited(batch={"first_seed": 9, "takes": 2, "index": "0"}),
     "has 'batch.index' = \"0\", which should be an integer"),
    (edited(batch={"first_seed": 9, "takes": 2, "index": 2}), "has 'batch' = "),  # past the batch
    (edited(batch={"first_seed": 8, "takes": 2, "index": 0}), "has 'batch' = "),  # not this take's seed
    (edited(family=3), "has 'family' = 3, which should be text"),
    (edited(raw_take={"sample_rate": 16000}), "has no 'raw_take.channels'"),
    (edited(audio={"finished": 3}), "has 'audio.finished' = 3, which should be text"),
    (edited(finishing={"preset": "foley", "gain_db": float("nan")}),
     "has 'finishing.gain_db' = NaN, which should be a finite number"),
])
def test_a_recipe_that_cannot_be_used_is_one_sentence_naming_the_field(recipe, problem):
    with pytest.raises(UserError) as info:
        Recipe.from_json(recipe, "/takes/x/x.json")
    message = str(info.value)
    assert message.startswith(f"The recipe /takes/x/x.json {problem}"), message
    assert message.endswith("; correct it by hand, or move that take's folder away.") and "\n" not in message
    if "'batch' =" in problem:
        assert "first_seed + index = its seed (9)" in message


def test_the_take_done_event_carries_the_recipe_as_saved(converted, tmp_path):
    seen = []
    request = GenerationRequest(prompt="hum", model=str(converted), seconds=0.1, seed=3, takes=2, device="cpu")
    with Engine(tmp_path) as engine:
        engine.submit(request, on_event=seen.append).result()
    for index, done in enumerate(event for event in seen if isinstance(event, events.TakeDone)):
        saved = json.loads(done.path.with_suffix(".json").read_text())
        assert json.loads(json.dumps(done.to_json()))["recipe"] == done.recipe  # JSON all through
        assert done.recipe == {key: value for key, value in saved.items() if key not in ("id", "audio")}
        assert Recipe.from_json(done.recipe).batch == Batch(3, 2, index)
