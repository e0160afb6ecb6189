"""A take's waveform thumbnail: its peaks read on a worker thread (`peaks`), drawn on the UI thread (`pixmap`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PyQt6.QtCore import QSize, Qt
from PyQt6.QtGui import QColor, QPainter, QPixmap

SIZE = QSize(64, 24)  # the icon's size in the takes list


def peaks(path: Path, columns: int = SIZE.width()) -> np.ndarray:
    """The loudest sample of each of ``columns`` stretches of the file (fewer for a very short one), 0 to 1.

    Reads the disk: call it on a worker thread. The file is read a stretch at a time, so a long take costs
    no more memory than one stretch of it.
    """
    from pedalboard.io import AudioFile

    found = []
    with AudioFile(str(path)) as audio:
        stretch = max(1, -(-audio.frames // columns))
        while audio.tell() < audio.frames:
            block = audio.read(stretch)
            if not block.size:  # the header promised more than the file holds (cut short, or still being written)
                break
            found.append(float(np.abs(block).max()))
    return np.clip(np.nan_to_num(np.asarray(found, np.float32)), 0.0, 1.0)


def pixmap(levels: np.ndarray, size: QSize = SIZE) -> QPixmap:
    """``levels`` (from `peaks`) as a waveform, one vertical line per level, centred. On the UI thread."""
    image = QPixmap(size)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setPen(QColor("#3a7bd5"))
    middle, width = size.height() / 2, max(len(levels), 1)
    for column, level in enumerate(levels):
        x = round(column * size.width() / width)
        half = max(level * middle, 0.5)  # silence still shows as a line: the take is there
        painter.drawLine(x, round(middle - half), x, round(middle + half))
    painter.end()
    return image
