"""Where the takes are made: "Generate on: this computer / a GPU server" and, for a server, its URL, its token and
a Test button. A request made with a server chosen carries ``worker=URL`` (`daw_plugin.remote`); the raw takes come
from there, and finishing, the takes library and the DAW stay here.

The token is never kept in the panel's settings file: it goes to the user's config folder, readable by the user
only (`daw_plugin.remote.token_file`), where the CLI finds it too. Test, and storing the token, run on a worker
thread: the UI thread never waits on the network or the disk.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from PyQt6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from daw_plugin.remote.token_file import TOKEN_VARIABLE, env_token, pend_token, store_token
from models.errors import InvalidRequest, Problem
from ui.settings import text

HERE, SERVER = "this computer", "a GPU server"


def worker_line(url: str, token: str | None) -> str:
    """What a Test says of the worker at ``url``: what it serves, and on which device. Slow (the network): run it
    on a worker thread. A problem is a `UserError` in one sentence."""
    from daw_plugin.remote.client import Worker

    worker = Worker(url, token)
    worker.get("/health")
    served = worker.get("/models")["models"]
    names = ", ".join(f"{entry['name']} ({entry['device']})" for entry in served)
    return f"Connected: serves {names}." if served else "Connected, but the worker serves no model."


class WorkerBox(QWidget):
    """The "Generate on" choice, and the "Worker URL", "Worker token", "Test worker" and "Worker status" controls
    shown only for a GPU server; ``panel`` gives `_named`, `say` and its `Background`."""

    def __init__(self, panel):
        super().__init__()
        self.panel = panel
        self.choice = panel._named(QComboBox(), "Generate on")
        self.choice.addItems([HERE, SERVER])
        self.choice.setToolTip("A GPU server runs `daw-plugin serve`; takes made there are kept here")
        self.url = panel._named(QLineEdit(), "Worker URL")
        self.url.setPlaceholderText("http://gpu-box:8765")
        self.token = panel._named(QLineEdit(), "Worker token")
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.token.setPlaceholderText(f"the server's token (else ${TOKEN_VARIABLE} or the one stored)")
        self.token.editingFinished.connect(self.store_token)
        self.test = panel._named(QPushButton("Test"), "Test worker")
        self.test.clicked.connect(self.run_test)
        self.status = panel._named(QLabel(), "Worker status")
        self.status.setWordWrap(True)
        self.server = QWidget()  # what only a GPU server needs
        row = QHBoxLayout()
        for widget in (self.url, self.token, self.test):
            row.addWidget(widget)
        column = QVBoxLayout(self.server)
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(row)
        column.addWidget(self.status)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.choice)
        layout.addWidget(self.server)
        self.choice.currentTextChanged.connect(lambda _: self.server.setVisible(self.on_server))
        self.server.setVisible(False)
        self._tests = 0  # the newest Test asked for: an older one answering late is dropped
        self._stored = ""  # the token last stored, so that leaving the field again does not write it again

    @property
    def on_server(self) -> bool:
        return self.choice.currentText() == SERVER

    @property
    def worker(self) -> str | None:
        """A request's ``worker``: the URL when a GPU server is chosen, else None; `InvalidRequest` for a URL that
        is none (raised where the panel builds its request, so it is marked at the URL field)."""
        if not self.on_server:
            return None
        url = self.url.text().strip()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidRequest([Problem("worker", "{field} must be a URL such as http://gpu-box:8765, not {url!r}; "
                                                    "type the server's, or generate on this computer.", url=url)])
        return url

    def restore(self, settings) -> None:
        self.url.setText(text(settings, "worker/url"))
        self.choice.setCurrentText(SERVER if text(settings, "worker/on") == "server" else HERE)

    def save(self, settings) -> None:
        settings.setValue("worker/on", "server" if self.on_server else "here")
        settings.setValue("worker/url", self.url.text().strip())

    def run_test(self) -> None:
        """GET /health and /models on a worker thread; the status line says what came back, in one line."""
        url, token = self.url.text().strip(), self.token.text().strip() or None
        self._tests += 1
        number = self._tests
        self.status.setText(f"Testing {url or 'the worker'}…")
        self.panel.background.run(lambda: worker_line(url, token), lambda line, error: self._tested(number, line,
                                                                                                        error))

    def _tested(self, number: int, line, error) -> None:
        if number != self._tests:
            return  # a newer Test is on its way
        self.status.setText(line if error is None else str(error))
        self.status.setStyleSheet("" if error is None else "color: #b02020;")

    def store_token(self) -> None:
        """The typed token to the config folder (mode 0600), on a worker thread; the panel says where. A job asked
        for before the write is done already sends it (`pend_token`)."""
        token = self.token.text().strip()
        if not token or token == self._stored:
            return
        self._stored = token
        pend_token(token)
        self.panel.background.run(lambda: store_token(token), self._token_stored)

    def _token_stored(self, path, error) -> None:
        if error is not None:
            self._stored = ""
            self.panel.say(str(error), error=True)
            return
        wins = f"; ${TOKEN_VARIABLE} is set, and wins over it" if env_token() else ""
        self.panel.say(f"The worker token is stored in {path}, readable by you only{wins}.")
