"""The waveform of the clip under work: drag to select a region, wheel to zoom, shift+wheel to scroll.

The continuation point (the region's end, else the clip's end) is a line where the new audio will start, and the
take being made is drawn after it, growing as its preview chunks arrive. Painting only draws lines computed
before: each pixel column's min and max (`column_peaks`, numpy reductions) are cached until the view, the size,
the clip or the take changes.
"""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import QLineF, QPointF, QRectF, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QMouseEvent, QPainter, QPaintEvent, QPen, QWheelEvent
from PyQt6.QtWidgets import QWidget

from daw_plugin.audio import Region

CLIP_COLOUR, TAKE_COLOUR, POINT_COLOUR = QColor("#3a6ea5"), QColor("#c07020"), QColor("#d03030")
SELECTION_COLOUR = QColor(80, 140, 220, 60)
ZOOM_STEP = 1.25  # per wheel notch
MIN_SPAN_SECONDS = 0.01


def mono(audio: np.ndarray) -> np.ndarray:
    """float32 ``[channels, frames]`` mixed to one channel, for drawing."""
    return np.asarray(audio, dtype=np.float32).mean(axis=0, dtype=np.float32)


def column_peaks(samples: np.ndarray, first_frame: float, frames_per_column: float, width: int):
    """``(columns, low, high)``: for each pixel column the samples reach, their min and max.

    Column ``c`` covers frames ``first_frame + c * frames_per_column`` onwards (``first_frame`` may be negative:
    the samples start inside the view); zoomed in past one frame a column, it shows the frame it falls on.
    """
    n = len(samples)
    edges = np.floor(first_frame + frames_per_column * np.arange(width + 1)).astype(np.int64)
    starts = edges[:-1]
    columns = np.nonzero((starts < n) & (np.maximum(edges[1:], starts + 1) > 0))[0]
    if n == 0 or columns.size == 0:
        empty = np.zeros(0, np.float32)
        return columns, empty, empty
    starts = np.clip(starts[columns], 0, n - 1)
    part = samples[:min(max(edges[columns[-1] + 1], starts[-1] + 1), n)]
    return columns, np.minimum.reduceat(part, starts), np.maximum.reduceat(part, starts)


class Waveform(QWidget):
    """The clip (at its own rate) and the take growing after the continuation point (at the take's rate)."""

    region_changed = pyqtSignal()
    view_changed = pyqtSignal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumHeight(44)  # the panel fits a small screen; it grows with the window
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.clip, self.rate = np.zeros(0, np.float32), 1
        self.region: Region | None = None  # None: continue from the clip's end
        self.take, self.take_rate, self.take_start = np.zeros(0, np.float32), 1, 0.0
        self.view = (0.0, 1.0)  # the seconds shown, left to right
        self._anchor: float | None = None  # where a drag began, in seconds
        self._lines: tuple[list[QLineF], list[QLineF]] | None = None  # the cached columns: clip, take

    # --- what is shown ------------------------------------------------------------------------------

    def set_clip(self, samples: np.ndarray, rate: int) -> None:
        """A new clip (mono, see `mono`): no region, no take, all of it in view."""
        self.clip, self.rate, self.region = samples, rate, None
        self.take = np.zeros(0, np.float32)
        self.set_view(0.0, self.total_seconds)
        self.region_changed.emit()

    def start_take(self, start_seconds: float, rate: int) -> None:
        self.take, self.take_rate, self.take_start = np.zeros(0, np.float32), rate, start_seconds
        self._changed()

    def append(self, chunk: np.ndarray) -> None:
        """The take's next preview chunk (float32 ``[channels, frames]``); a view that showed the end follows it."""
        following = self.view[1] >= self.total_seconds - 1e-9
        self.take = np.concatenate([self.take, mono(chunk)])
        if following:
            self.set_view(self.view[0], self.total_seconds)
        else:
            self._changed()

    @property
    def appended_frames(self) -> int:
        """How much of the take has arrived."""
        return len(self.take)

    @property
    def clip_seconds(self) -> float:
        return len(self.clip) / self.rate

    @property
    def total_seconds(self) -> float:
        return max(self.clip_seconds, self.take_start + len(self.take) / self.take_rate if len(self.take) else 0.0,
                   MIN_SPAN_SECONDS)

    @property
    def continuation_seconds(self) -> float:
        """Where the new audio starts: the region's end, else the clip's."""
        return self.region.end_seconds if self.region is not None else self.clip_seconds

    def set_region(self, region: Region | None) -> None:
        self.region = region
        self.region_changed.emit()
        self.update()

    def set_view(self, start: float, end: float) -> None:
        """Show ``start`` to ``end`` seconds, kept inside the audio and at least `MIN_SPAN_SECONDS` wide."""
        total = self.total_seconds
        span = min(max(end - start, MIN_SPAN_SECONDS), total)
        start = min(max(start, 0.0), total - span)
        self.view = (start, start + span)
        self._changed()
        self.view_changed.emit()

    # --- seconds and pixels ---------------------------------------------------------------------------

    def seconds_at(self, x: float) -> float:
        start, end = self.view
        return min(max(start + x / max(self.width(), 1) * (end - start), 0.0), self.clip_seconds)

    def x_of(self, seconds: float) -> float:
        start, end = self.view
        return (seconds - start) / (end - start) * self.width()

    # --- the mouse ------------------------------------------------------------------------------------

    def mousePressEvent(self, event: QMouseEvent | None) -> None:
        assert event is not None  # Qt always hands its handlers the event
        if event.button() == Qt.MouseButton.LeftButton and len(self.clip):
            self._anchor = self.seconds_at(event.position().x())

    def mouseMoveEvent(self, event: QMouseEvent | None) -> None:
        assert event is not None  # Qt always hands its handlers the event
        if self._anchor is not None:
            self._drag_to(event.position().x(), final=False)

    def mouseReleaseEvent(self, event: QMouseEvent | None) -> None:
        assert event is not None  # Qt always hands its handlers the event
        if self._anchor is not None and event.button() == Qt.MouseButton.LeftButton:
            self._drag_to(event.position().x(), final=True)

    def _drag_to(self, x: float, final: bool) -> None:
        anchor, here = self._anchor, self.seconds_at(x)
        assert anchor is not None
        low, high = min(anchor, here), max(anchor, here)
        if final:
            self._anchor = None
            # A click (no drag) clears the region: the take continues from the clip's end again.
            self.set_region(Region(low, high) if high - low >= 1 / self.rate else None)
        else:
            self.region = Region(low, high)
            self.update()

    def wheelEvent(self, event: QWheelEvent | None) -> None:
        assert event is not None  # Qt always hands its handlers the event
        """Wheel: zoom around the pointer. Shift+wheel or a sideways wheel: scroll."""
        delta = event.angleDelta()
        start, end = self.view
        if delta.x() or event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            notches = (delta.x() or delta.y()) / 120
            shift = -notches * (end - start) / 10
            self.set_view(start + shift, end + shift)
        elif delta.y():
            at = start + event.position().x() / max(self.width(), 1) * (end - start)
            factor = ZOOM_STEP ** (-delta.y() / 120)
            self.set_view(at - (at - start) * factor, at + (end - at) * factor)
        event.accept()

    # --- painting -------------------------------------------------------------------------------------

    def resizeEvent(self, event) -> None:
        self._lines = None
        super().resizeEvent(event)

    def _changed(self) -> None:
        self._lines = None
        self.update()

    def _columns(self, samples: np.ndarray, rate: int, at_seconds: float) -> list[QLineF]:
        """Each pixel column's vertical line from min to max, for samples that start at ``at_seconds``."""
        start, end = self.view
        width, middle = self.width(), self.height() / 2
        per_column = (end - start) / max(width, 1) * rate
        columns, low, high = column_peaks(samples, (start - at_seconds) * rate, per_column, width)
        top = (middle - np.clip(high, -1, 1) * middle * 0.95).tolist()
        bottom = (middle - np.clip(low, -1, 1) * middle * 0.95 + 1).tolist()
        return [QLineF(x + 0.5, y0, x + 0.5, y1) for x, y0, y1 in zip(columns.tolist(), top, bottom, strict=True)]

    def paintEvent(self, event: QPaintEvent | None) -> None:
        if self._lines is None:
            self._lines = (self._columns(self.clip, self.rate, 0.0),
                           self._columns(self.take, self.take_rate, self.take_start))
        painter = QPainter(self)
        painter.fillRect(self.rect(), self.palette().base())
        if self.region is not None:
            left, right = self.x_of(self.region.start_seconds), self.x_of(self.region.end_seconds)
            painter.fillRect(QRectF(left, 0, max(right - left, 1), self.height()), SELECTION_COLOUR)
        for lines, colour in zip(self._lines, (CLIP_COLOUR, TAKE_COLOUR), strict=True):
            if lines:
                painter.setPen(QPen(colour, 1))
                painter.drawLines(*lines)  # one argument a line: PyQt6's stubs type a list only as a sip.array
        if len(self.clip):
            x = self.x_of(self.continuation_seconds)
            painter.setPen(QPen(POINT_COLOUR, 2))
            painter.drawLine(QPointF(x, 0), QPointF(x, self.height()))
        painter.end()
