"""The takes list: every take with its seed (to make it again), its CLAP score where the model gives one,
and its file. The library's earlier takes come from `daw_plugin.takes.list_takes`, read on a worker thread."""

from __future__ import annotations

from pathlib import Path

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QTreeWidget, QTreeWidgetItem

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
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setHeaderLabels(COLUMNS)
        self.setRootIsDecorated(False)
        self.setAlternatingRowColors(True)

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

    def paths(self) -> list[Path]:
        """Every take's file, newest first."""
        return [Path(self.topLevelItem(i).data(0, PATH_ROLE)) for i in range(self.topLevelItemCount())]

    def selected_path(self) -> Path | None:
        """The selected take's file, or None."""
        item = self.currentItem()
        return Path(item.data(0, PATH_ROLE)) if item is not None and item.isSelected() else None

    def seeds(self) -> list[int]:
        return [int(self.topLevelItem(i).text(2)) for i in range(self.topLevelItemCount())]
