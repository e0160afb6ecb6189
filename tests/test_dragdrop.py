"""Dragging a take into a DAW: the QMimeData, built in a real (offscreen) QApplication."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # no display here; must precede the first QApplication

import pytest  # noqa: E402
from PyQt6.QtCore import QUrl  # noqa: E402

from daw_plugin import UserError  # noqa: E402
from ui.dragdrop import take_mime_data  # noqa: E402


@pytest.fixture
def take(tmp_path):
    path = tmp_path / "takes" / "rain on tin #2.wav"  # spaces and '#' must survive URL encoding
    path.parent.mkdir()
    path.write_bytes(b"RIFF")
    return path


def test_mime_data_carries_the_takes_file_url(qapp, take):
    mime = take_mime_data(take)
    assert mime.hasUrls()
    assert "text/uri-list" in mime.formats()
    (url,) = mime.urls()
    assert url.isLocalFile() and url.scheme() == "file"
    assert url.toLocalFile() == str(take)


def test_the_uri_list_round_trips_through_its_encoded_bytes(qapp, take):
    """What a drop target reads is the encoded ``text/uri-list`` payload, not our QUrl object."""
    payload = bytes(take_mime_data(take).data("text/uri-list")).decode()
    (line,) = payload.split()
    assert "%20" in line and "%23" in line
    assert QUrl(line).toLocalFile() == str(take)


def test_a_relative_path_becomes_absolute(qapp, take, monkeypatch):
    monkeypatch.chdir(take.parent)
    (url,) = take_mime_data(take.name).urls()
    assert url.toLocalFile() == str(take.resolve())


def test_a_missing_take_is_refused_in_one_sentence(qapp, tmp_path):
    with pytest.raises(UserError) as caught:
        take_mime_data(tmp_path / "gone.wav")
    text = str(caught.value)
    assert "\n" not in text and text.startswith("There is no take file at") and text.endswith(".")
