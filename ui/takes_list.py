"""The takes list: every take with its seed (to make it again), its CLAP score where the model gives one,
and its file. The library's earlier takes come from `daw_plugin.takes.list_takes`, read on a worker thread."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from PyQt6.QtCore import QMimeData, Qt, pyqtSignal
from PyQt6.QtGui import QIcon, QPixmap
from PyQt6.QtWidgets import QAbstractItemView, QTreeWidget, QTreeWidgetItem

from daw_plugin import UserError
from ui import thumbnails
from ui.dragdrop import take_mime_data

COLUMNS = ("Take", "Prompt", "Seed", "CLAP", "File")
PATH_ROLE = Qt.ItemDataRole.UserRole


def library_rows(folder: Path) -> list[tuple[str, str, int, float | None, Path]]:
    """(id, prompt, seed, CLAP score, finished file) of each take in ``folder``, oldest first. Reads the disk."""
    from daw_plugin.takes import list_takes

    rows = []
    for recipe in list_takes(folder):
        audio = recipe.get("audio")
        name = audio.get("finished") if isinstance(audio, dict) else None
        path = folder / recipe["id"] / (name if isinstance(name, str) else f"{recipe['id']}.{recipe['audio_format']}")
        rows.append((recipe["id"], recipe["prompt"], recipe["seed"], recipe.get("clap_score"), path))
    return rows


class TakesList(QTreeWidget):
    """Takes, the newest at the top. A take dragged out is its file (a copy: the list keeps it).

    ``added(path)`` for each take listed (its thumbnail is wanted); ``failed(message)`` when a drag cannot start.
    """

    added = pyqtSignal(object)
    failed = pyqtSignal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setHeaderLabels(COLUMNS)
        self.setRootIsDecorated(False)
        self.setAlternatingRowColors(True)
        self.setIconSize(thumbnails.SIZE)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setDefaultDropAction(Qt.DropAction.CopyAction)

    def show_library(self, rows) -> None:
        """The library's takes, the newest at the top."""
        self.clear()
        for row in rows:
            self.add_take(*row)

    def add_take(self, take_id: str, prompt: str, seed: int, score: float | None, path: Path) -> None:
        item = QTreeWidgetItem([take_id, prompt, str(seed), "-" if score is None else f"{score:.2f}", str(path)])
        item.setData(0, PATH_ROLE, str(path))
        item.setToolTip(4, str(path))
        self.insertTopLevelItem(0, item)
        self.added.emit(path)

    def paths(self) -> list[Path]:
        """Every take's file, newest first."""
        return [Path(item.data(0, PATH_ROLE)) for item in self._rows()]

    def selected_path(self) -> Path | None:
        """The selected take's file, or None."""
        item = self.currentItem()
        return Path(item.data(0, PATH_ROLE)) if item is not None and item.isSelected() else None

    def seeds(self) -> list[int]:
        return [int(item.text(2)) for item in self._rows()]

    def chosen(self) -> Path | None:
        """The selected take's file, or None."""
        item = self.currentItem()
        return Path(item.data(0, PATH_ROLE)) if item is not None and item.isSelected() else None

    def remove(self, path: Path) -> None:
        for item in self._items(path):
            self.takeTopLevelItem(self.indexOfTopLevelItem(item))

    def set_thumbnail(self, path: Path, image: QPixmap) -> None:
        for item in self._items(path):
            item.setIcon(0, QIcon(image))

    def _items(self, path: Path) -> list[QTreeWidgetItem]:
        return [item for item in self._rows() if item.data(0, PATH_ROLE) == str(path)]

    def _rows(self) -> Iterator[QTreeWidgetItem]:
        """Every take's item, newest first (Qt types topLevelItem() as Optional for an index out of range)."""
        return (item for i in range(self.topLevelItemCount()) if (item := self.topLevelItem(i)) is not None)

    # Qt's own drag calls these: the payload is the takes' file URLs, and a drop may only copy them, so a
    # DAW or file manager that "moves" a dropped file never takes the row out of the list.
    def mimeData(self, items) -> QMimeData | None:  # noqa: N802  (Qt's name)
        try:
            urls = [url for item in items for url in take_mime_data(Path(item.data(0, PATH_ROLE))).urls()]
        except UserError as error:
            self.failed.emit(str(error))
            return None  # no drag
        mime = QMimeData()
        mime.setUrls(urls)
        return mime

    def supportedDropActions(self) -> Qt.DropAction:  # noqa: N802
        return Qt.DropAction.CopyAction
