"""The takes library's promise: a take is there whole or not at all, even when the writer is killed."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from test_audio import FILE_SIZE_LIMIT

from daw_plugin.audio import Clip, read_clip
from daw_plugin.takes import list_takes, save_take
from models.errors import UserError

# The least a recipe holds for `takes list` and `takes regenerate` to use it.
RECIPE = {"program": {"name": "daw-plugin"}, "prompt": "rain", "model": "tiny", "seconds": 1.0, "seed": 1,
          "device": "cpu", "audio_format": "wav", "finishing": {"preset": "foley"},
          "parameters": {"guidance": None, "top_k": 250, "top_p": 0.0, "temperature": 1.0, "text_encoder": None}}
OURS = {"program": {"name": "daw-plugin"}}

WRITER = textwrap.dedent(f"""
    import sys, numpy as np
    from pathlib import Path
    from daw_plugin.audio import Clip
    from daw_plugin.takes import save_take
    clip = Clip(np.random.default_rng(0).uniform(-1, 1, (2, 48000 * 30)).astype(np.float32), 48000)
    for n in range(1000):
        save_take(Path(sys.argv[1]), {{"finished": clip, "raw": clip}}, {{**{RECIPE!r}, "n": n}}, "big")
""")


def test_a_writer_killed_midway_leaves_no_partial_take(tmp_path):
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], cwd=os.getcwd())
    try:
        deadline = time.monotonic() + 60
        while not any(name.startswith(".daw-plugin-take-") for name in os.listdir(tmp_path)):  # a take is being written
            assert time.monotonic() < deadline and writer.poll() is None
            time.sleep(0.001)
        writer.send_signal(signal.SIGKILL)
    finally:
        writer.kill()
        writer.wait()
    assert any(name.startswith(".daw-plugin-take-") for name in os.listdir(tmp_path))  # killed mid-write
    visible = [name for name in os.listdir(tmp_path) if not name.startswith(".")]
    assert len(list_takes(tmp_path)) == len(visible)  # every visible take is a whole one
    assert not any(name.startswith(".") for name in os.listdir(tmp_path))  # and the next run removed the staging
    for name in visible:
        recipe = json.loads((tmp_path / name / f"{name}.json").read_text())
        for file in recipe["audio"].values():
            assert read_clip(tmp_path / name / file).frames == 48000 * 30


def test_a_taken_id_is_never_replaced(tmp_path):
    clip = Clip(np.zeros((1, 100), np.float32), 16000)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "mine.txt").write_text("the user's own file")
    (tmp_path / "x-2").write_text("a file, not a folder")
    path = save_take(tmp_path, {"finished": clip}, {"program": {"name": "daw-plugin"}}, "x")
    assert path == tmp_path / "x-3" / "x-3.wav"
    assert (tmp_path / "x" / "mine.txt").read_text() == "the user's own file"
    assert (tmp_path / "x-2").read_text() == "a file, not a folder"
    assert sorted(os.listdir(tmp_path / "x-3")) == ["x-3.json", "x-3.wav"]


def test_hidden_folders_are_not_takes(tmp_path):
    clip = Clip(np.zeros((1, 100), np.float32), 16000)
    save_take(tmp_path, {"finished": clip}, RECIPE, "visible")
    save_take(tmp_path / ".trash", {"finished": clip}, RECIPE, "old")  # the user's own hidden folder, with a take
    (tmp_path / ".old").mkdir()
    (tmp_path / ".old" / ".old.json").write_text(json.dumps(RECIPE))
    assert [recipe["id"] for recipe in list_takes(tmp_path)] == ["visible"]
    assert (tmp_path / ".trash" / "old").is_dir() and (tmp_path / ".old").is_dir()  # not ours to clean


def test_a_recipe_holds_no_nan(tmp_path):
    clip = Clip(np.zeros((1, 100), np.float32), 16000)
    with pytest.raises(UserError, match="'parameters.guidance' is nan, not a finite number"):
        save_take(tmp_path, {"finished": clip}, {**OURS, "parameters": {"guidance": float("nan")}}, "x")
    with pytest.raises(UserError, match="'finishing.bars.1' is -inf"):
        save_take(tmp_path, {"finished": clip}, {**OURS, "finishing": {"bars": [1, float("-inf")]}}, "x")
    assert os.listdir(tmp_path) == []


FULL_DISK_WRITER = FILE_SIZE_LIMIT + textwrap.dedent("""
    import sys, numpy as np
    from pathlib import Path
    from daw_plugin.audio import Clip
    from daw_plugin.takes import save_take
    from models.errors import UserError
    for frames in (48000, 3000):  # many blocks, and one that only fails as the file is closed
        clip = Clip(np.ones((1, frames), np.float32), 16000)
        try:
            save_take(Path(sys.argv[1]), {"finished": clip, "raw": clip}, {"program": {"name": "daw-plugin"}}, "x")
            print("saved")
        except UserError as error:
            print(error)
""")


def test_a_full_disk_is_one_clear_error_and_leaves_nothing(tmp_path):
    done = subprocess.run([sys.executable, "-c", FULL_DISK_WRITER, str(tmp_path), "8000"], cwd=os.getcwd(),
                          capture_output=True, text=True, check=True)
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith(f"Cannot write takes to {tmp_path} (File too large)")
                                   for line in lines), done.stdout + done.stderr
    assert os.listdir(tmp_path) == []  # no take, no staging
