"""The "Melody clip" a melody model follows (a request's ``melody``): a path typed, or chosen in a file dialog
that returns at once (no nested event loop). The file itself is read by the job, not here."""

from __future__ import annotations

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QFileDialog, QHBoxLayout, QLineEdit, QPushButton, QWidget

from ui.region import AUDIO_FILES


class MelodyBox(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.path = QLineEdit()
        self.path.setAccessibleName("Melody clip")
        self.path.setPlaceholderText("none: the prompt alone")
        self.choose = QPushButton("Choose…")
        self.choose.setAccessibleName("Choose melody clip")
        self.choose.clicked.connect(self.open_dialog)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.path)
        layout.addWidget(self.choose)

    def open_dialog(self) -> None:
        dialog = QFileDialog(self, "Choose a melody clip", "", AUDIO_FILES)
        dialog.setAccessibleName("Melody clip dialog")
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.fileSelected.connect(self.path.setText)
        dialog.open()

    @property
    def melody(self) -> str | None:
        return self.path.text().strip() or None
