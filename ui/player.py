"""Hearing a take: Play and Stop over one `QMediaPlayer` playing through the system's audio output.

QtMultimedia reads and decodes the file on its own threads (loading is asynchronous), so the UI thread never
waits on the disk or the sound server. What goes wrong (no output device, a file that is gone or is not audio)
comes back as one sentence on `said`, for the panel's message line; nothing here raises.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PyQt6.QtCore import QBuffer, QByteArray, QEvent, QIODevice, QObject, Qt, QUrl, pyqtSignal
from PyQt6.QtGui import QKeyEvent
from PyQt6.QtMultimedia import QAudioOutput, QMediaDevices, QMediaPlayer
from PyQt6.QtWidgets import QHBoxLayout, QPushButton, QWidget

PLAYING = QMediaPlayer.PlaybackState.PlayingState


class Player(QWidget):
    """Play (the take ``chosen()`` names) and Stop buttons; ``toggle()`` is what Space does."""

    said = pyqtSignal(str, bool)  # (one sentence, whether it is an error)

    def __init__(self, chosen: Callable[[], Path | None], parent: QWidget | None = None):
        super().__init__(parent)
        self._chosen = chosen
        self._path = Path()  # what plays, for messages
        self._buffer: QBuffer | None = None  # audio in memory while it plays (a region, a take being made)
        self.media = QMediaPlayer(self)
        self.output = QAudioOutput(self)
        self.media.setAudioOutput(self.output)
        self.media.errorOccurred.connect(self._failed)
        self.media.playbackStateChanged.connect(self._state_changed)
        self.play_button = _button("Play", "Play the selected take (Space)", self.play)
        self.stop_button = _button("Stop", "Stop playing (Space)", self.stop)
        self.stop_button.setEnabled(False)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.play_button)
        layout.addWidget(self.stop_button)
        layout.addStretch(1)

    @property
    def playing(self) -> bool:
        return self.media.playbackState() == PLAYING

    def play(self, path: Path | None = None) -> None:
        """Play ``path`` (by default the chosen take) from its start."""
        path = path or self._chosen()
        if path is None:
            self.said.emit("No take to play: make one, or select one in the takes list.", True)
            return
        self._start(Path(path), lambda: self.media.setSource(QUrl.fromLocalFile(str(path))))

    def play_wav(self, wav: bytes, name: str) -> None:
        """Play audio held in memory, a whole WAV file's bytes; ``name`` is what messages call it."""
        old, self._buffer = self._buffer, QBuffer(self)
        self._buffer.setData(QByteArray(wav))
        self._buffer.open(QIODevice.OpenModeFlag.ReadOnly)
        buffer = self._buffer
        # The URL only names the format for the decoder; the audio comes from the buffer.
        self._start(Path(name), lambda: self.media.setSourceDevice(buffer, QUrl(f"memory:{name}.wav")))
        if old is not None:
            old.deleteLater()  # the player let go of it when the new source was set

    def _start(self, path: Path, set_source: Callable[[], None]) -> None:
        if not QMediaDevices.audioOutputs():
            # It still plays (silently, on Qt's clock), so Stop and the position behave as they would.
            self.said.emit("No audio output device, so the take cannot be heard; start the sound server "
                           "(PulseAudio or PipeWire) or connect an output, then play it again.", True)
        self.output.setDevice(QMediaDevices.defaultAudioOutput())  # the default now, not when the panel opened
        self._path = path
        self.media.stop()
        set_source()
        self.media.play()

    def stop(self) -> None:
        self.media.stop()

    def toggle(self) -> None:
        self.stop() if self.playing else self.play()

    def take_space_from(self, widget: QWidget) -> None:
        """Space on ``widget`` plays or stops, instead of what the widget would do with it."""
        widget.installEventFilter(self)

    def eventFilter(self, watched: QObject | None, event: QEvent | None) -> bool:
        if (isinstance(event, QKeyEvent) and event.type() == QEvent.Type.KeyPress
                and event.key() == Qt.Key.Key_Space and not event.modifiers()):
            self.toggle()
            return True
        return super().eventFilter(watched, event)

    def _state_changed(self, state: QMediaPlayer.PlaybackState) -> None:
        self.stop_button.setEnabled(state == PLAYING)
        if state == PLAYING:
            self.said.emit(f"Playing {self._path.name}.", False)

    def _failed(self, error: QMediaPlayer.Error, text: str) -> None:
        if error != QMediaPlayer.Error.NoError:
            self.said.emit(f"Cannot play {self._path.name}: {text.rstrip('.') or error.name} (the file is gone or "
                           "is not audio Qt can read); choose another take.", True)


def _button(text: str, tip: str, clicked: Callable[[], None]) -> QPushButton:
    button = QPushButton(text)
    button.setAccessibleName(text)  # what a screen reader says, and how the tests find it
    button.setObjectName(text)
    button.setToolTip(tip)
    button.clicked.connect(lambda: clicked())  # not the `checked` argument as the path
    return button
