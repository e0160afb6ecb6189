"""What a musician does with a take in the panel's list, on the real widgets (offscreen) and the tiny AudioGen
model: insert it into a session host's track, drag it out, show it, make it again, discard it to the trash."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from panel_helpers import WAIT_MS, ask, set_text
from PyQt6.QtCore import QObject, Qt, QUrl, pyqtSlot
from PyQt6.QtGui import QDesktopServices

from daw_plugin import Region, Request, read_clip, write_clip
from daw_plugin.audio import Clip
from daw_plugin.takes import TRASH, list_takes
from ui import thumbnails


def session_clips(folder: Path) -> dict[str, list[dict]]:
    """Each track's clips in the session's manifest."""
    raw = json.loads((folder / "session.json").read_text())
    return {track["name"]: track.get("clips", []) for track in raw["tracks"]}


def click(qtbot, panel, name: str) -> None:
    qtbot.mouseClick(panel.control(name), Qt.MouseButton.LeftButton)


def pick(qtbot, panel, row: int = 0):
    """Click the take in ``row`` of the list, as a user picks it; its item."""
    listed = panel.takes_list
    item = listed.topLevelItem(row)
    qtbot.mouseClick(listed.viewport(), Qt.MouseButton.LeftButton, pos=listed.visualItemRect(item).center())
    assert listed.chosen() == Path(item.data(0, Qt.ItemDataRole.UserRole))
    return item


def a_take(qtbot, panel, prompt: str = "rain") -> Path:
    ask(qtbot, panel, prompt)
    qtbot.waitUntil(lambda: panel.ready, timeout=WAIT_MS)
    (path,) = panel.takes_list.paths()
    return path


def said(panel) -> str:
    return panel.control("Message").text()


def manual_insert(qtbot, panel, host: str, track: str) -> None:
    """Host and track chosen, "Insert automatically" off: takes wait in the list."""
    set_text(qtbot, panel.control("Host"), host)
    set_text(qtbot, panel.control("Track"), track)
    if panel.control("Insert automatically").isChecked():
        click(qtbot, panel, "Insert automatically")


def test_a_take_inserted_from_the_list_lands_on_the_chosen_track_at_0(qtbot, open_panel, tmp_path):
    panel = open_panel()
    song = tmp_path / "song"
    manual_insert(qtbot, panel, f"session:{song}", "Foley")
    path = a_take(qtbot, panel)
    assert not song.exists()  # the job left it in the list
    pick(qtbot, panel)
    click(qtbot, panel, "Insert take")
    qtbot.waitUntil(lambda: "is on track 'Foley'" in said(panel), timeout=WAIT_MS)
    (placed,) = session_clips(song)["Foley"]
    assert placed["start_seconds"] == 0.0
    assert np.array_equal(read_clip(song / placed["file"]).samples, read_clip(path).samples)


def test_a_continuation_inserted_from_the_list_lands_at_its_region_end(qtbot, open_panel, tmp_path, converted):
    panel = open_panel()
    song = tmp_path / "song"
    manual_insert(qtbot, panel, f"session:{song}", "Drums")
    noise = np.random.default_rng(0).uniform(-0.3, 0.3, (1, 16000)).astype(np.float32)
    loop = write_clip(Clip(noise, 16000), tmp_path / "loop.wav")
    job = panel.engine.submit(Request("", model=str(converted), seconds=0.2, clip=loop, region=Region(0.2, 0.7)),
                              panel.out_folder)
    panel.bridge.watch(job)
    qtbot.waitUntil(lambda: len(panel.takes_list.paths()) == 1, timeout=WAIT_MS)
    pick(qtbot, panel)
    click(qtbot, panel, "Insert take")
    qtbot.waitUntil(lambda: "is on track 'Drums'" in said(panel), timeout=WAIT_MS)
    (placed,) = session_clips(song)["Drums"]
    assert placed["start_seconds"] == pytest.approx(0.7 - 0.02)  # the region's end, less the cross-faded seam


def test_insert_automatically_puts_the_jobs_take_on_the_track_without_a_click(qtbot, open_panel, tmp_path):
    panel = open_panel()
    song = tmp_path / "song"
    set_text(qtbot, panel.control("Host"), f"session:{song}")
    set_text(qtbot, panel.control("Track"), "Rain")
    assert panel.control("Insert automatically").isChecked()  # on unless turned off: as --host does
    a_take(qtbot, panel)
    (placed,) = session_clips(song)["Rain"]
    assert placed["start_seconds"] == 0.0


def test_a_discarded_take_goes_to_the_trash_whole_until_it_is_emptied(qtbot, open_panel, tmp_path):
    panel = open_panel()
    library = tmp_path / "takes"
    path = a_take(qtbot, panel)
    files = sorted(os.listdir(path.parent))
    pick(qtbot, panel)
    click(qtbot, panel, "Discard take")
    qtbot.waitUntil(lambda: panel.takes_list.paths() == [], timeout=WAIT_MS)
    assert "in the trash" in said(panel)
    trashed = library / TRASH / path.parent.name
    assert not path.parent.exists() and sorted(os.listdir(trashed)) == files
    assert list_takes(library) == []
    panel.read_library()  # a fresh listing does not bring it back
    qtbot.waitUntil(lambda: not panel.background.busy, timeout=WAIT_MS)
    assert panel.takes_list.paths() == []
    click(qtbot, panel, "Empty trash")
    qtbot.waitUntil(lambda: "1 take deleted" in said(panel), timeout=WAIT_MS)
    assert os.listdir(library / TRASH) == []


def test_regenerate_from_the_list_makes_a_new_take_with_the_same_raw_audio(qtbot, open_panel):
    panel = open_panel()
    first = a_take(qtbot, panel)
    pick(qtbot, panel)
    click(qtbot, panel, "Regenerate take")
    qtbot.waitUntil(lambda: len(panel.takes_list.paths()) == 2 and panel.ready, timeout=WAIT_MS)
    again = panel.takes_list.paths()[0]
    assert again.parent != first.parent

    def raw(path: Path):
        return read_clip(path.parent / f"{path.parent.name}.raw.wav").samples

    assert np.array_equal(raw(again), raw(first))


def test_a_take_dragged_from_the_list_carries_its_file_url_and_is_only_copied(qtbot, open_panel):
    panel = open_panel()
    path = a_take(qtbot, panel)
    listed = panel.takes_list
    item = pick(qtbot, panel)
    mime = listed.mimeData([item])  # what Qt's own drag asks the list for
    assert mime.urls() == [QUrl.fromLocalFile(str(path.resolve()))]
    assert listed.model().supportedDragActions() == Qt.DropAction.CopyAction  # a DAW's "move" keeps the row
    path.unlink()
    assert listed.mimeData([item]) is None  # no drag of a file that is gone, and the panel says why
    assert "There is no take file" in said(panel)


def test_each_take_gets_a_waveform_thumbnail(qtbot, open_panel, tmp_path):
    panel = open_panel()
    a_take(qtbot, panel)
    item = panel.takes_list.topLevelItem(0)
    qtbot.waitUntil(lambda: not item.icon(0).isNull(), timeout=WAIT_MS)
    loud_then_quiet = np.concatenate([np.full(800, 0.8), np.full(800, 0.1)]).astype(np.float32)[None]
    levels = thumbnails.peaks(write_clip(Clip(loud_then_quiet, 16000), tmp_path / "x.wav"), columns=4)
    assert levels == pytest.approx([0.8, 0.8, 0.1, 0.1])


class Opened(QObject):
    def __init__(self):
        super().__init__()
        self.urls = []

    @pyqtSlot(QUrl)
    def open(self, url):
        self.urls.append(url)


def test_show_in_folder_opens_the_takes_folder(qtbot, open_panel):
    panel = open_panel()
    path = a_take(qtbot, panel)
    opened = Opened()
    QDesktopServices.setUrlHandler("file", opened, "open")  # what the desktop would be asked to open
    try:
        pick(qtbot, panel)
        click(qtbot, panel, "Show in folder")
    finally:
        QDesktopServices.unsetUrlHandler("file")
    assert opened.urls == [QUrl.fromLocalFile(str(path.parent))]


def test_an_action_without_a_take_or_host_says_what_is_missing(qtbot, open_panel):
    panel = open_panel()
    click(qtbot, panel, "Insert take")
    assert said(panel) == "Pick a take in the list first."
    a_take(qtbot, panel)
    set_text(qtbot, panel.control("Host"), "")
    pick(qtbot, panel)
    click(qtbot, panel, "Insert take")
    assert said(panel).startswith("Choose a host")
    set_text(qtbot, panel.control("Host"), "no-such-host")
    click(qtbot, panel, "Insert take")
    qtbot.waitUntil(lambda: "Unknown host 'no-such-host'" in said(panel), timeout=WAIT_MS)


def test_track_insert_automatically_and_stay_on_top_survive_a_restart(qtbot, open_panel):
    first = open_panel()
    set_text(qtbot, first.control("Track"), "Foley")
    click(qtbot, first, "Insert automatically")
    click(qtbot, first, "Stay on top")
    assert first.windowFlags() & Qt.WindowType.WindowStaysOnTopHint and first.isVisible()
    first.close()
    again = open_panel()
    assert again.control("Track").text() == "Foley"
    assert not again.control("Insert automatically").isChecked()
    assert again.control("Stay on top").isChecked()
    assert again.windowFlags() & Qt.WindowType.WindowStaysOnTopHint
