"""Discarding a take moves it, whole, into the library's trash; only emptying the trash deletes it."""

import numpy as np
import pytest
from test_takes_library import RECIPE

from daw_plugin.audio import Clip, read_clip
from daw_plugin.recipes import Recipe
from daw_plugin.takes import (
    TRASH,
    discard_take,
    empty_trash,
    insert_seconds,
    list_takes,
    restore_take,
    save_take,
    trashed_takes,
)
from models.errors import UserError

CLIP = Clip(np.linspace(-0.5, 0.5, 800, dtype=np.float32)[None], 16000)


def a_take(folder, stem="rain"):
    return save_take(folder, {"finished": CLIP, "raw": CLIP}, RECIPE, stem)


def test_a_discarded_take_leaves_the_list_and_is_whole_in_the_trash(tmp_path):
    kept, gone = a_take(tmp_path, "kept"), a_take(tmp_path, "gone")
    trashed = discard_take(tmp_path, gone.parent.name)
    assert trashed == tmp_path / TRASH / gone.parent.name
    assert [r["id"] for r in list_takes(tmp_path)] == [kept.parent.name]
    assert sorted(p.name for p in trashed.iterdir()) == ["gone.json", "gone.raw.wav", "gone.wav"]
    assert np.array_equal(read_clip(trashed / gone.name).samples, CLIP.samples)
    assert trashed_takes(tmp_path) == ["gone"]


def test_a_second_take_of_the_same_id_in_the_trash_gets_the_next_name(tmp_path):
    discard_take(tmp_path, a_take(tmp_path).parent.name)
    again = a_take(tmp_path)  # the id is free in the library again
    assert again.parent.name == "rain"
    assert discard_take(tmp_path, "rain") == tmp_path / TRASH / "rain-2"
    assert trashed_takes(tmp_path) == ["rain", "rain-2"]


def test_restore_brings_a_take_back_under_its_own_id_and_never_over_another(tmp_path):
    discard_take(tmp_path, a_take(tmp_path).parent.name)
    a_take(tmp_path)  # "rain" is taken meanwhile
    discard_take(tmp_path, "rain")  # trashed as "rain-2"
    a_take(tmp_path)  # and again
    with pytest.raises(UserError, match="discard it first"):
        restore_take(tmp_path, "rain-2")
    assert trashed_takes(tmp_path) == ["rain", "rain-2"]
    discard_take(tmp_path, "rain")
    assert restore_take(tmp_path, "rain-2") == tmp_path / "rain"
    assert [r["id"] for r in list_takes(tmp_path)] == ["rain"] and trashed_takes(tmp_path) == ["rain", "rain-3"]


def test_empty_trash_deletes_only_the_trash(tmp_path):
    kept = a_take(tmp_path, "kept")
    for stem in ("a", "b"):
        discard_take(tmp_path, a_take(tmp_path, stem).parent.name)
    (tmp_path / TRASH / ".b.emptying").mkdir()  # what an interrupted emptying left
    assert empty_trash(tmp_path) == 2
    assert list((tmp_path / TRASH).iterdir()) == [] and kept.is_file()
    assert empty_trash(tmp_path) == 0


@pytest.mark.parametrize("take_id", ["nope", "", ".trash", "../x"])
def test_discarding_what_is_not_a_take_is_one_sentence(tmp_path, take_id):
    a_take(tmp_path)
    with pytest.raises(UserError, match="There is no take"):
        discard_take(tmp_path, take_id)


def test_a_continuation_is_inserted_at_its_region_end_less_its_seam(tmp_path):
    generated = Recipe.from_json(RECIPE)
    assert insert_seconds(generated) == 0.0
    continued = Recipe.from_json({**RECIPE, "source": {"clip": None, "start_seconds": 1.0, "end_seconds": 3.0},
                                  "finishing": {"preset": "foley", "seam_crossfade_ms": 20.0}})
    assert insert_seconds(continued) == pytest.approx(2.98)


def test_takes_list_never_shows_the_trash(tmp_path, capsys):
    from daw_plugin.cli import raw_main

    a_take(tmp_path, "kept")
    discard_take(tmp_path, a_take(tmp_path, "gone").parent.name)
    assert raw_main(["takes", "list", "--out", str(tmp_path)]) == 0
    shown = capsys.readouterr().out
    assert "kept" in shown and "gone" not in shown
