"""The takes library's promise: a take is there whole or not at all, even when the writer is killed."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np

from daw_plugin.audio import Clip, read_clip
from daw_plugin.takes import list_takes, save_take

WRITER = textwrap.dedent("""
    import sys, numpy as np
    from pathlib import Path
    from daw_plugin.audio import Clip
    from daw_plugin.takes import save_take
    clip = Clip(np.random.default_rng(0).uniform(-1, 1, (2, 48000 * 30)).astype(np.float32), 48000)
    for n in range(1000):
        save_take(Path(sys.argv[1]), {"finished": clip, "raw": clip}, {"program": {"name": "daw-plugin"}, "n": n},
                  "big")
""")


def test_a_writer_killed_midway_leaves_no_partial_take(tmp_path):
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], cwd=os.getcwd())
    try:
        deadline = time.monotonic() + 60
        while not any(name.startswith(".take-") for name in os.listdir(tmp_path)):  # a take is being written
            assert time.monotonic() < deadline and writer.poll() is None
            time.sleep(0.001)
        writer.send_signal(signal.SIGKILL)
    finally:
        writer.kill()
        writer.wait()
    assert any(name.startswith(".take-") for name in os.listdir(tmp_path))  # killed mid-write
    visible = [name for name in os.listdir(tmp_path) if not name.startswith(".")]
    assert len(list_takes(tmp_path)) == len(visible)  # every visible take is a whole one
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
