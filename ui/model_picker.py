"""The model picker: every model `daw-plugin models list` knows, with its family, size, licence and whether it
is on disk. The list is read on a worker thread (it looks into the Hugging Face cache); a name or a folder can
also be typed."""

from __future__ import annotations

from pathlib import Path

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import QComboBox

from models.families import FAMILIES


def model_rows(chosen: str) -> list[tuple[str, str | None, str, bool]]:
    """(name, family, what the picker shows, whether it follows a melody) for every listed model, and for
    ``chosen`` when it is not one of them (a folder's family read from its configs). Slow: run it on a worker
    thread."""
    from models.formats import detect
    from models.registry import entries

    rows: list[tuple[str, str | None, str, bool]] = [
        (e.name, e.family, _shown(e.name, e.family, e.size, e.license, e.on_disk), e.melody) for e in entries()]
    if chosen and chosen not in {row[0] for row in rows}:
        found = detect(Path(chosen).expanduser()) if Path(chosen).expanduser().is_dir() else None
        family = found.family if found else None
        rows.append((chosen, family, _shown(chosen, family, "-", "-", found is not None) if found else chosen,
                     bool(found and found.melody)))
    return rows


def _shown(name: str, family: str | None, size: str, licence: str, on_disk: bool) -> str:
    title = FAMILIES[family].title if family in FAMILIES else family or "?"
    return f"{name} — {title}, {size}, {licence}, {'on disk' if on_disk else 'not downloaded'}"


class ModelPicker(QComboBox):
    family_changed = pyqtSignal(object)  # the chosen model's family name, or None when it is not known

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setEditable(True)  # a hub repo or a folder can be typed
        self.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.setMinimumContentsLength(30)
        self.currentTextChanged.connect(lambda _text: self.family_changed.emit(self.family))

    def set_rows(self, rows: list[tuple[str, str | None, str, bool]], chosen: str) -> None:
        self.blockSignals(True)
        self.clear()
        for name, family, shown, melody in rows:
            self.addItem(shown, (name, family, melody))
        self.blockSignals(False)
        self.choose(chosen)

    def choose(self, name: str) -> None:
        index = next((i for i in range(self.count()) if self.itemData(i)[0] == name), -1)
        if index >= 0:
            self.setCurrentIndex(index)
        self.setEditText(self.itemText(index) if index >= 0 else name)
        edit = self.lineEdit()
        assert edit is not None  # the picker is made editable in __init__, and an editable combo box has one
        edit.setCursorPosition(0)  # the name, not the end of the details, in view
        self.family_changed.emit(self.family)

    def _item(self):
        index = self.findText(self.currentText())
        return self.itemData(index) if index >= 0 else None

    # Hides QComboBox.model() (the item model), which nothing here calls: the panel, its settings and its tests
    # read the chosen name as `picker.model`.
    @property
    def model(self) -> str:  # type: ignore[override]
        """The model's name as a request gives it: a listed id, or whatever was typed."""
        item = self._item()
        return item[0] if item else self.currentText().strip()

    @property
    def family(self) -> str | None:
        item = self._item()
        return item[1] if item else None

    @property
    def melody(self) -> bool:
        """Whether the chosen model follows a melody clip (MusicGen melody)."""
        item = self._item()
        return bool(item and item[2])
