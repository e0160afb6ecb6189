"""daw_plugin.files on real files: new names are never taken over, replacements are all or nothing."""

import errno
import os
import signal
import stat
import subprocess
import sys
from contextlib import contextmanager
from itertools import islice
from pathlib import Path

import pytest

from daw_plugin import files
from models.errors import UserError


def no_hard_links(monkeypatch):
    def refuse(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(files.os, "link", refuse)


def test_numbered_names():
    assert list(islice(files.numbered("rain", ".wav"), 3)) == ["rain.wav", "rain-2.wav", "rain-3.wav"]


def test_write_new_never_replaces(tmp_path):
    (tmp_path / "a.txt").write_text("old")
    with pytest.raises(FileExistsError):
        files.write_new(tmp_path / "a.txt", lambda tmp: tmp.write_text("new"))
    assert (tmp_path / "a.txt").read_text() == "old" and os.listdir(tmp_path) == ["a.txt"]


def test_write_new_can_take_the_next_free_number(tmp_path):
    (tmp_path / "a.txt").write_text("old")
    out = files.write_new(tmp_path / "a.txt", lambda tmp: tmp.write_text("new"), numbered_if_taken=True)
    assert out == tmp_path / "a-2.txt" and out.read_text() == "new"
    assert sorted(os.listdir(tmp_path)) == ["a-2.txt", "a.txt"]


def test_without_hard_links_a_free_name_is_renamed_into_place(tmp_path, monkeypatch):
    no_hard_links(monkeypatch)
    (tmp_path / "a.txt").write_text("old")
    out = files.write_new(tmp_path / "a.txt", lambda tmp: tmp.write_text("new"), numbered_if_taken=True)
    assert out.read_text() == "new" and (tmp_path / "a.txt").read_text() == "old"


def test_keep_tmp_refuses_the_rename_fallback(tmp_path, monkeypatch):
    no_hard_links(monkeypatch)
    with files.staging_file(tmp_path, "x", ".txt") as tmp:
        with pytest.raises(PermissionError):
            files.link_new(tmp, tmp_path / "x.txt", keep_tmp=True)
        assert tmp.exists() and not (tmp_path / "x.txt").exists()


def test_write_output_is_one_user_error(tmp_path):
    (tmp_path / "a.txt").write_text("old")
    with pytest.raises(UserError, match="already exists"):
        files.refuse_existing(tmp_path / "a.txt")
    with pytest.raises(UserError, match="already exists"):
        files.write_output(tmp_path / "a.txt", lambda tmp: tmp.write_text("new"))
    with pytest.raises(UserError, match="folder that exists"):
        files.write_output(tmp_path / "missing" / "a.txt", lambda tmp: tmp.write_text("new"))


def test_write_file_options_are_the_named_writers(tmp_path):
    """`write_file` is the one mechanism: new-only by default, replacing when asked, user errors when user-named."""
    path = tmp_path / "a.txt"
    assert files.write_file(path, lambda tmp: tmp.write_text("one")) == path
    with pytest.raises(FileExistsError):
        files.write_file(path, lambda tmp: tmp.write_text("two"))
    assert files.write_file(path, lambda tmp: tmp.write_text("two"), replace=True).read_text() == "two"
    with pytest.raises(UserError, match="already exists"):
        files.write_file(path, lambda tmp: tmp.write_text("three"), user_named=True)
    with pytest.raises(UserError, match="is a folder"):
        files.write_file(tmp_path, lambda tmp: tmp.write_text("three"), replace=True, user_named=True)
    assert path.read_text() == "two" and os.listdir(tmp_path) == ["a.txt"]


def test_replace_file_keeps_the_mode_only_when_asked(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")
    path.chmod(0o600)
    files.replace_file(path, lambda tmp: tmp.write_text("new"), keep_mode=True)
    assert path.read_text() == "new" and stat.S_IMODE(path.stat().st_mode) == 0o600
    (tmp_path / "plain.txt").write_text("made the ordinary way")
    files.replace_file(path, lambda tmp: tmp.write_text("newer"))
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)


def test_a_failed_replacement_leaves_the_old_file(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")

    def fail(tmp):
        tmp.write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError):
        files.replace_file(path, fail)
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["a.txt"]


# Staging that a killed writer left: a real child process holds staging made by our functions, then dies.

REPO = Path(__file__).resolve().parents[1]
HOLD_FILE = """
import sys
from pathlib import Path
from daw_plugin import files

def hold(tmp):
    tmp.write_bytes(b"half a take")
    print(tmp.name, flush=True)
    sys.stdin.read()  # until the test kills us

files.write_new(Path(sys.argv[1]) / "rain.wav", hold)
"""
HOLD_TAKE = """
import sys
from pathlib import Path
from daw_plugin import files

with files.staging_dir(Path(sys.argv[1])) as staging:
    (staging / "finished.wav").write_bytes(b"half a take")
    print(staging.name, flush=True)
    sys.stdin.read()  # until the test kills us
"""


@contextmanager
def writer_holding(folder, code):
    """A live writer in another process, and the staging it holds in ``folder``."""
    child = subprocess.Popen([sys.executable, "-c", code, str(folder)], cwd=REPO, text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        name = child.stdout.readline().strip()
        assert name, "the writer ended before it made its staging"
        yield child, folder / name
    finally:
        child.kill()
        child.wait()


@pytest.mark.parametrize("code", [HOLD_FILE, HOLD_TAKE], ids=["file", "take-folder"])
def test_a_killed_writers_staging_goes_on_the_next_write_and_a_live_ones_stays(tmp_path, code):
    with writer_holding(tmp_path, code) as (writer, staging):
        assert staging.name.startswith((".rain.daw-plugin-staging-", ".daw-plugin-take-"))
        files.clean_stale_staging(tmp_path)
        files.write_new(tmp_path / "snow.wav", lambda tmp: tmp.write_text("another writer"))
        assert staging.exists()  # its writer is alive: not ours to remove
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        assert staging.exists()  # killed mid-write, it left its staging behind...
        files.write_new(tmp_path / "hail.wav", lambda tmp: tmp.write_text("the next run"))
        assert not staging.exists()  # ...which the next write into that folder removed
    assert sorted(os.listdir(tmp_path)) == ["hail.wav", "snow.wav"]


def test_staging_held_in_this_process_is_not_stale(tmp_path):
    """The panel may save and insert from two threads: a lock per open file, not per process, tells them apart."""
    with files.staging_file(tmp_path, "rain", ".wav") as tmp, files.staging_dir(tmp_path) as staging:
        files.clean_stale_staging(tmp_path)
        assert tmp.exists() and staging.is_dir()
    assert os.listdir(tmp_path) == []


def test_only_our_staging_names_are_ever_removed(tmp_path):
    outside = tmp_path / "outside.wav"
    outside.write_text("the user's")
    ours = [tmp_path / ".rain.daw-plugin-staging-ab12cd_9.wav", tmp_path / ".daw-plugin-take-ab12cd_9",
            tmp_path / ".x.y.daw-plugin-staging-abcdefgh"]
    ours[0].write_text("left by a killed writer")
    ours[1].mkdir()
    (ours[1] / "finished.wav").write_text("left by a killed writer")
    ours[2].write_text("left by a killed writer")
    theirs = [".rain.wav", ".DS_Store", ".take-notes", ".rain.staging-abc.wav", ".rain.staging-ABCDEFGH.wav",
              "rain.staging-abcdefgh.wav", ".take-20240101", ".backup.staging-20240101", ".notes.staging-2024_jan.md",
              ".rain.daw-plugin-staging-ABCDEFGH.wav", "rain.daw-plugin-staging-abcdefgh.wav"]
    for name in theirs:
        (tmp_path / name).write_text("the user's own")
    folders = [".mix.staging-20240101", ".take-20240102", ".old.daw-plugin-staging-abcdefgh"]  # the user's
    for name in folders:  # the last has our file shape, but a folder is never a staging file
        (tmp_path / name).mkdir()
        (tmp_path / name / "keep.txt").write_text("the user's own")
    (tmp_path / ".link.daw-plugin-staging-abcdefgh.wav").symlink_to(outside)
    os.mkfifo(tmp_path / ".pipe.daw-plugin-staging-abcdefgh.wav")  # must not hang the cleaner
    files.clean_stale_staging(tmp_path)
    assert not any(path.exists() for path in ours)
    assert all((tmp_path / name).read_text() == "the user's own" for name in theirs)
    assert all((tmp_path / name / "keep.txt").read_text() == "the user's own" for name in folders)
    assert outside.read_text() == "the user's" and (tmp_path / ".link.daw-plugin-staging-abcdefgh.wav").is_symlink()
    files.clean_stale_staging(tmp_path / "missing")  # nothing to clean is no error
