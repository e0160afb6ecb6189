"""What a musician does with a take in the list: insert it into the host's track, show it in the file manager,
make it again, discard it to the library's trash; and where the engine puts a job's takes by itself.

Every action that reads the disk or talks to the host runs on a worker thread (`ui.bridge.Background`), and its
outcome, or its error, is one message in the panel. The track, "Insert automatically" and "Stay on top" are
kept in the panel's `QSettings` as soon as they change.
"""

from __future__ import annotations

from pathlib import Path

from PyQt6.QtCore import QObject, Qt, QTimer, QUrl
from PyQt6.QtGui import QDesktopServices
from PyQt6.QtWidgets import QCheckBox, QHBoxLayout, QLineEdit, QPushButton, QWidget

from daw_plugin import UserError
from ui import settings as saved
from ui import thumbnails

# What each button does, by its accessible name.
BUTTONS = {"Insert take": ("Insert", "Put the selected take on the track in the host (a continuation at its "
                                     "region's end, any other take at 0 s)."),
           "Show in folder": ("Show in folder", "Open the selected take's folder in the file manager."),
           "Regenerate take": ("Regenerate", "Make the selected take again: same recipe, same seed, same audio."),
           "Discard take": ("Discard", "Move the selected take to the library's trash (.trash); nothing is deleted."),
           "Empty trash": ("Empty trash", "Delete the takes in the library's trash for good.")}


# --- the work, on a worker thread ----------------------------------------------------------------------------

def insert_take(host_spec: str, path: Path, track: str | None):
    """Put the take at ``path`` on ``track`` of the host ``host_spec`` where it belongs; its `Placement`."""
    from daw_plugin.hosts import open_host
    from daw_plugin.takes import insert_seconds, load_recipe

    at = insert_seconds(load_recipe(path.parent.parent, path.parent.name))
    host = open_host(host_spec, create_session=True)  # a session folder not made yet becomes one, as with --host
    try:
        host.check()
        return host.insert(path, track, at)
    finally:
        close = getattr(host, "close", None)
        if close is not None:  # Audacity's script pipe
            close()


def regenerate_request(path: Path):
    """The request that makes the take at ``path`` again, as `daw-plugin takes regenerate` builds it."""
    from daw_plugin.request import GenerationRequest
    from daw_plugin.takes import check_recipe, load_recipe, recipe_fault, recipe_path

    folder, take_id = path.parent.parent, path.parent.name
    recipe = load_recipe(folder, take_id)
    try:
        return GenerationRequest.from_recipe(recipe, folder / take_id)
    except (KeyError, TypeError, ValueError, AttributeError, UserError) as error:  # a hand-edited recipe
        check_recipe(recipe_path(folder, take_id), recipe, recipe_fault(error))
        raise


def _peaks_of(paths: list[Path]) -> list[tuple[Path, object]]:
    found: list[tuple[Path, object]] = []
    for path in paths:
        try:
            found.append((path, thumbnails.peaks(path)))
        except (OSError, ValueError, RuntimeError):  # unreadable or gone: the take is listed without a picture
            pass
    return found


# --- the controls ----------------------------------------------------------------------------------------

class TakeActions(QObject):
    """The take controls of ``panel``: ``placement`` (track, toggles) for its form, ``buttons`` under its list."""

    def __init__(self, panel):
        super().__init__(panel)
        self.panel, self.takes_list = panel, panel.takes_list
        self.track = _named(QLineEdit(), "Track")
        self.track.setPlaceholderText("a new track per take")
        self.auto_insert = _named(QCheckBox("Insert automatically"), "Insert automatically")
        self.auto_insert.setToolTip("On: each take goes onto the track as the job makes it. Off: insert a take "
                                    "from the list when you choose.")
        self.stay_on_top = _named(QCheckBox("Stay on top"), "Stay on top")
        self.placement = _row(self.track, self.auto_insert, self.stay_on_top)
        self.button = {}
        for name, (text, tip) in BUTTONS.items():
            self.button[name] = _named(QPushButton(text), name)
            self.button[name].setToolTip(tip)
        self.buttons = _row(*self.button.values())
        for name, action in (("Insert take", self.insert), ("Show in folder", self.show_in_folder),
                             ("Regenerate take", self.regenerate), ("Discard take", self.discard),
                             ("Empty trash", self.empty_trash)):
            self.button[name].clicked.connect(action)
        self.takes_list.added.connect(self._wants_thumbnail)
        self.takes_list.failed.connect(lambda text: self.panel.say(text, error=True))
        self._waiting: list[Path] = []  # takes listed whose thumbnails are not yet asked for
        self._restore()

    def placement_fields(self, host_text: str) -> dict:
        """The request's ``host``, ``track`` and ``insert``: takes are finished for the host (its rate and tempo)
        either way; the engine inserts them only when "Insert automatically" is on."""
        host = host_text.strip() or None
        if host is None:
            return {"host": None}
        return {"host": host, "track": self.track.text().strip() or None, "insert": self.auto_insert.isChecked()}

    # --- the actions -------------------------------------------------------------------------------------

    def insert(self) -> None:
        path, host = self._chosen(), self.panel.host.text().strip()
        if path is None:
            return
        if not host:
            self.panel.say("Choose a host to insert into: session:DIR, audacity or reaper.", error=True)
            return
        track = self.track.text().strip() or None
        self._work(lambda: insert_take(host, path, track), lambda where: self.panel.say(
            f"Take {path.parent.name} is on track {where.track.name!r} at {where.start_seconds:.3f} s."))

    def show_in_folder(self) -> None:
        path = self._chosen()
        if path is not None and not QDesktopServices.openUrl(QUrl.fromLocalFile(str(path.parent))):
            self.panel.say(f"No file manager opened {path.parent}; open that folder by hand.", error=True)

    def regenerate(self) -> None:
        path = self._chosen()
        if path is not None:
            self._work(lambda: regenerate_request(path), lambda request: self._submit(request, path))

    def _submit(self, request, path: Path) -> None:
        job = self.panel.engine.submit(request, path.parent.parent)
        self.panel.bridge.watch(job)
        self.panel.queue.add(job, request.prompt)
        seed = request.take_seed(request.keep_take or 0)
        self.panel.say(f"Job #{job.number} queued: take {path.parent.name} again, seed {seed}.")

    def discard(self) -> None:
        from daw_plugin.takes import discard_take

        path = self._chosen()
        if path is not None:
            self._work(lambda: discard_take(path.parent.parent, path.parent.name), lambda trashed: self._gone(
                path, f"Take {path.parent.name} is in the trash ({trashed}); Empty trash deletes it for good."))

    def _gone(self, path: Path, text: str) -> None:
        self.takes_list.remove(path)
        self.panel.say(text)

    def empty_trash(self) -> None:
        from daw_plugin.takes import empty_trash

        folder = self.panel.out_folder
        self._work(lambda: empty_trash(folder), lambda count: self.panel.say(
            f"The trash is empty: {count} take{'s' * (count != 1)} deleted." if count else "The trash was empty."))

    def _chosen(self) -> Path | None:
        path = self.takes_list.chosen()
        if path is None:
            self.panel.say("Pick a take in the list first.", error=True)
        return path

    def _work(self, call, then) -> None:
        """``call()`` on a worker thread, then ``then(result)`` here; an error is the panel's message."""
        def done(result, error) -> None:
            if error is None:
                then(result)
            else:
                self.panel.say(str(error) if isinstance(error, UserError) else f"That did not work: {error}",
                               error=True)

        self.panel.background.run(call, done)

    # --- thumbnails: the takes listed in one turn of the event loop are read in one worker call ----------

    def _wants_thumbnail(self, path: Path) -> None:
        self._waiting.append(path)
        if len(self._waiting) == 1:
            QTimer.singleShot(0, self._read_thumbnails)

    def _read_thumbnails(self) -> None:
        paths, self._waiting = self._waiting, []
        self.panel.background.run(lambda: _peaks_of(paths), self._got_thumbnails)

    def _got_thumbnails(self, found, error) -> None:
        for path, levels in found or []:
            self.takes_list.set_thumbnail(path, thumbnails.pixmap(levels))

    # --- remembered ---------------------------------------------------------------------------------------

    def _restore(self) -> None:
        s = self.panel.settings
        self.track.setText(saved.text(s, "track"))
        self.auto_insert.setChecked(saved.flag(s, "insert/automatic", True))  # as --host does on the command line
        self.stay_on_top.setChecked(saved.flag(s, "window/stay_on_top"))
        self._set_on_top(self.stay_on_top.isChecked())
        self.track.textChanged.connect(lambda text: s.setValue("track", text))
        self.auto_insert.toggled.connect(lambda on: s.setValue("insert/automatic", on))
        self.stay_on_top.toggled.connect(self._set_on_top)
        self.stay_on_top.toggled.connect(lambda on: s.setValue("window/stay_on_top", on))

    def _set_on_top(self, on: bool) -> None:
        shown = self.panel.isVisible()
        self.panel.setWindowFlag(Qt.WindowType.WindowStaysOnTopHint, on)
        if shown:  # changing a window flag hides the window
            self.panel.show()


def _named(widget: QWidget, name: str) -> QWidget:
    widget.setAccessibleName(name)
    widget.setObjectName(name)
    return widget


def _row(*widgets: QWidget) -> QWidget:
    layout = QHBoxLayout()
    layout.setContentsMargins(0, 0, 0, 0)
    for widget in widgets:
        layout.addWidget(widget)
    holder = QWidget()
    holder.setLayout(layout)
    return holder
