"""daw_plugin.files on real files: new names are never taken over, replacements are all or nothing."""

import errno
import os
import stat
from itertools import islice

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
    tmp = files.new_temp_file(tmp_path, ".x-", ".txt")
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
