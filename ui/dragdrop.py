"""Drag a take out of the panel and drop it into a DAW: the drag carries the take's file URL.

A ``text/uri-list`` of ``file://`` URLs is what every DAW's arrange view accepts from a file
manager; Qt turns it into each platform's own file-drop format (CF_HDROP on Windows, file URLs on the
macOS pasteboard), so one QMimeData serves every host.
"""

from __future__ import annotations

from pathlib import Path

from PyQt6.QtCore import QMimeData, QUrl

from daw_plugin import UserError


def take_mime_data(path: Path) -> QMimeData:
    """The drag payload for the take at ``path``; raises `UserError` if the file is gone."""
    # The DAW resolves the URL in its own process, so it must be absolute.
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise UserError(f"There is no take file at {path}; it was moved or deleted, so pick another take.")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    return mime
