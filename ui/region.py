"""The clip under work and the region of it to continue: from the DAW's selection, a file opened or one dropped
onto the panel. Audio is read, and the DAW asked, on a worker thread (`Background`); Continue queues a request
through the panel's own path (`Panel.ask`), so a continuation is checked, queued and watched like any take.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf
from PyQt6.QtCore import QEvent, QObject, Qt
from PyQt6.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QPushButton, QScrollBar, QVBoxLayout, QWidget

from daw_plugin import UserError, events
from daw_plugin.audio import Clip, read_clip
from ui.waveform import Waveform, mono

if TYPE_CHECKING:
    from ui.panel import Panel

AUDIO_FILES = "Audio (*.wav *.flac *.aif *.aiff *.ogg *.mp3);;All files (*)"
NO_CLIP = "No clip: open one, drop one on the panel, or use the DAW selection."
MS = 1000  # the scroll bar counts milliseconds


@dataclass(frozen=True)
class Source:
    """Where the clip came from: what a request's ``clip`` takes (a path, or a `Clip` in memory) and its name."""

    audio: str | Clip
    name: str
    host_seconds: float = 0.0  # where the clip starts in the host: a DAW selection starts at its region's start


def read_file(path: str) -> tuple[Source, object, int]:
    """The file's `Source` and its audio for drawing (mono, rate). Reads the disk: on a worker thread."""
    from daw_plugin.audio import read_clip

    clip = read_clip(path)
    return Source(path, Path(path).stem), mono(clip.samples), clip.sample_rate


def read_selection(spec: str) -> tuple[Source, object, int]:
    """The host's selected audio as a `Source` placed where it lies. Asks the DAW: on a worker thread."""
    from daw_plugin.hosts import HostError, open_host

    selection = open_host(spec).selection()
    if selection is None:
        raise HostError(f"Nothing is selected in {spec}; select a region there, then Use DAW selection again.")
    if selection.audio is None:
        raise HostError(f"{spec} did not give the selected audio; select a region of an audio track and try again.")
    name = selection.track.name if selection.track is not None else "selection"
    clip = selection.audio
    return Source(clip, name, selection.region.start_seconds), mono(clip.samples), clip.sample_rate


def seam_seconds(preset: str) -> float:
    """The cross-faded seam the engine puts before a continuation, for ``preset`` (a user preset's small JSON)."""
    from daw_plugin.presets import load_preset

    try:
        return load_preset(preset).seam_crossfade_ms / 1000
    except UserError:
        return 0.0  # the job refuses the preset itself, in its own words


class RegionBox(QWidget):
    """The waveform with its scroll bar, and Use DAW selection, Open clip and Continue. ``panel``: the `Panel`."""

    def __init__(self, panel: Panel) -> None:
        super().__init__(panel)
        self.panel = panel
        self.source: Source | None = None
        self._asked = 0  # the latest read asked for: an older one that ends later is dropped
        self._continuing: dict[int, float] = {}  # job number -> where its take starts on the waveform
        self.waveform = panel._named(Waveform(), "Waveform")
        self.waveform.view_changed.connect(self._show_view)
        self.waveform.region_changed.connect(self._show_region)
        # Not `scroll`: that is QWidget.scroll(dx, dy), which this would hide.
        self.scroll_bar = panel._named(QScrollBar(Qt.Orientation.Horizontal), "Waveform scroll")
        self.scroll_bar.valueChanged.connect(self._scrolled)
        self.label = panel._named(QLabel(NO_CLIP), "Region")
        self.label.setWordWrap(True)  # the panel stays as narrow as the controls above it allow
        buttons = [panel._named(QPushButton(text), name) for text, name in (
            ("Use DAW selection", "Use DAW selection"), ("Open clip…", "Open clip"), ("Continue", "Continue"))]
        for button, slot in zip(buttons, (self.use_selection, self.choose_file, self.continue_region), strict=True):
            button.clicked.connect(slot)
        buttons[2].setToolTip("Continue the selected region (or the clip's end) with the prompt and settings above")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        row = QHBoxLayout()
        row.addWidget(self.label, 1)
        for button in buttons:
            row.addWidget(button)
        layout.addLayout(row)
        layout.addWidget(self.waveform, 1)
        layout.addWidget(self.scroll_bar)
        plays = [panel._named(QPushButton(text), text) for text in ("Play selection", "Play new audio")]
        plays[0].setToolTip("Play the selected region (the whole clip without one)")
        plays[1].setToolTip("Play the continuation drawn after the region, as far as it is made")
        plays[0].clicked.connect(self.play_selection)
        plays[1].clicked.connect(self.play_new_audio)
        layout.addLayout(_row(*plays))
        self._drops = _FileDrops(self.open_file)
        panel.setAcceptDrops(True)  # a file dropped anywhere on the panel (a control that takes text keeps it)
        panel.installEventFilter(self._drops)

    # --- the clip ---------------------------------------------------------------------------------------

    def choose_file(self) -> None:
        """A file dialog that returns at once (no nested event loop): the file it gives is read on a worker."""
        dialog = self.panel._named(QFileDialog(self, "Open a clip to continue", "", AUDIO_FILES), "Open clip dialog")
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.fileSelected.connect(self.open_file)
        dialog.open()

    def open_file(self, path: str) -> None:
        self._read(lambda: read_file(path), f"Reading {Path(path).name}…")

    def use_selection(self) -> None:
        spec = self.panel.host.text().strip()
        if not spec:
            self.panel.say("Set Host (session:DIR, audacity or reaper) to use its selection.", error=True)
            return
        self._read(lambda: read_selection(spec), f"Asking {spec} for its selection…")

    def _read(self, call, doing: str) -> None:
        self._asked += 1
        asked = self._asked
        self.label.setText(doing)
        self.panel.background.run(call, lambda result, error: self._got(asked, result, error))

    def _got(self, asked: int, result, error) -> None:
        if asked != self._asked:
            return  # a newer clip was asked for meanwhile
        if error is not None:
            self._show_region()
            self.panel.say(str(error) if isinstance(error, UserError) else f"Cannot read the clip: {error}",
                           error=True)
            return
        self.source, samples, rate = result
        self._continuing.clear()  # takes still being made continue the old clip: not drawn on this one
        self.waveform.set_clip(samples, rate)

    def _show_region(self) -> None:
        if self.source is None:
            self.label.setText(NO_CLIP)
            return
        region, at = self.waveform.region, self.source.host_seconds
        what = ("its end" if region is None else
                f"{at + region.start_seconds:.3f}-{at + region.end_seconds:.3f} s")
        self.label.setText(f"{self.source.name} ({self.waveform.clip_seconds:.3f} s): continue from {what}")

    # --- hearing it -------------------------------------------------------------------------------------

    def play_selection(self) -> None:
        """The region of the clip, in all its channels, read and encoded on a worker thread."""
        if self.source is None:
            self.panel.say(NO_CLIP, error=True)
            return
        audio, region, name = self.source.audio, self.waveform.region, f"{self.source.name} region"

        def encode() -> bytes:
            clip = audio if isinstance(audio, Clip) else read_clip(audio)
            return wav_bytes(clip.region(region) if region is not None else clip)

        self.panel.background.run(encode, lambda wav, error: self._play(wav, error, name))

    def play_new_audio(self) -> None:
        """The take drawn on the waveform, as much of it as the previews have brought so far."""
        take = self.waveform.take
        if not take.size:
            self.panel.say("No new audio yet: Continue (or Generate) first, then play it as it is made.", error=True)
            return
        clip = Clip(take[None].copy(), self.waveform.take_rate)  # a copy: previews keep growing the waveform's
        self.panel.background.run(lambda: wav_bytes(clip), lambda wav, error: self._play(wav, error, "new audio"))

    def _play(self, wav: bytes | None, error, name: str) -> None:
        if error is not None or wav is None:
            self.panel.say(str(error) if isinstance(error, UserError) else f"Cannot play the clip: {error}",
                           error=True)
            return
        self.panel.player.play_wav(wav, name)

    # --- scrolling ----------------------------------------------------------------------------------------

    def _show_view(self) -> None:
        start, end = self.waveform.view
        self.scroll_bar.blockSignals(True)  # the view already moved: its own echo must not move it again
        self.scroll_bar.setRange(0, round((self.waveform.total_seconds - (end - start)) * MS))
        self.scroll_bar.setPageStep(max(round((end - start) * MS), 1))
        self.scroll_bar.setValue(round(start * MS))
        self.scroll_bar.blockSignals(False)

    def _scrolled(self, value: int) -> None:
        start, end = self.waveform.view
        self.waveform.set_view(value / MS, value / MS + end - start)

    # --- continuing ---------------------------------------------------------------------------------------

    def continue_region(self) -> None:
        """Queue a continuation of the region (the clip's end without one), inserted at its end with a host."""
        if self.source is None:
            self.panel.say("Open a clip, drop one on the panel or use the DAW selection, then Continue.", error=True)
            return
        end = self.waveform.continuation_seconds
        at = None
        if self.source.host_seconds and self.panel.host.text().strip():
            # The clip is the selection alone: its end lies this far into the host, less the engine's seam.
            at = max(self.source.host_seconds + end - seam_seconds(self.panel.preset.currentText().strip()), 0.0)
        job = self.panel.ask(clip=self.source.audio, region=self.waveform.region, clip_name=self.source.name,
                             at_seconds=at)
        if job is not None:
            self._continuing[job.number] = end

    def preview(self, job, event: events.Preview) -> None:
        """Take 0 of a continuation grows after its continuation point; a take without a clip, from 0."""
        if event.take != 0:
            return
        start = self._continuing.get(job.number)
        if start is None and self.source is not None:
            return  # a Generate while a clip is shown: the clip stays as it is
        if event.offset_frames == 0:
            self.waveform.start_take(start or 0.0, event.sample_rate)
        self.waveform.append(event.audio)


def wav_bytes(clip: Clip) -> bytes:
    """``clip`` as a whole 16-bit WAV file in memory, which QtMultimedia plays from a buffer."""
    out = io.BytesIO()
    sf.write(out, np.clip(clip.samples.T, -1.0, 1.0), clip.sample_rate, subtype="PCM_16", format="WAV")
    return out.getvalue()


def _row(*widgets) -> QHBoxLayout:
    row = QHBoxLayout()
    for widget in widgets:
        row.addWidget(widget)
    row.addStretch(1)
    return row


class _FileDrops(QObject):
    """An event filter that takes a local audio file dropped onto the widget it watches."""

    def __init__(self, open_file):
        super().__init__()
        self.open_file = open_file

    def eventFilter(self, watched, event) -> bool:
        kind = event.type()
        if kind not in (QEvent.Type.DragEnter, QEvent.Type.DragMove, QEvent.Type.Drop):
            return False
        urls = [url for url in event.mimeData().urls() if url.isLocalFile()] if event.mimeData().hasUrls() else []
        if not urls:
            return False
        event.acceptProposedAction()
        if kind == QEvent.Type.Drop:
            self.open_file(urls[0].toLocalFile())
        return True
