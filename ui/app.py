"""``daw-plugin panel``: the application around the panel window."""

from __future__ import annotations

import gc
import os
import sys

from models.errors import UserError


def open_panel(model: str | None = None, host: str | None = None, out=None, preset: str | None = None):
    """The panel window, shown, with what the command line chose over what was remembered."""
    from ui.panel import Panel

    panel = Panel(model=model, host=host, out=out, preset=preset)
    panel.show()
    return panel


# The QApplication, kept until the interpreter ends: destroyed when run_panel returned, it crashed the process if a
# worker thread (a Test of an unreachable GPU server, say) handed back its result after the window had closed.
_KEPT: list = []


def run_panel(model: str | None = None, host: str | None = None, out=None, preset: str | None = None) -> int:
    """Open the panel and run until it is closed; the exit status of Qt's event loop."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                                                 or os.environ.get("QT_QPA_PLATFORM")):
        # Qt would abort the process with a paragraph about platform plugins.
        raise UserError("The panel needs a display and there is none; run it in a desktop session, or under "
                        "xvfb-run.")
    from PyQt6.QtWidgets import QApplication

    from ui.settings import APPLICATION, ORGANIZATION

    app = QApplication.instance() or QApplication(sys.argv[:1])
    _KEPT.append(app)  # outlives this call: see _KEPT
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    # packaging/linux/daw-plugin.desktop: the panel's name and icon in the taskbar. Static, so called on the class:
    # instance() above is typed as a mere QCoreApplication, which lacks it.
    QApplication.setDesktopFileName("daw-plugin")
    panel = open_panel(model, host, out, preset)  # noqa: F841  (kept alive while the loop runs)
    # The collector's full pass walks every object start-up made (torch, Qt...) holding the interpreter lock:
    # 190-300 ms of frozen window mid-take (bench/ui_latency.py). Frozen, they are never walked again.
    gc.freeze()
    return app.exec()
