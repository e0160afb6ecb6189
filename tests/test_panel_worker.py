"""The panel's "Generate on" box on its real widgets (offscreen) and the tiny AudioGen model: a GPU server's URL,
token and Test are shown only for a server, its URL reaches the request, the token is stored for the CLI too
(0600, never in the settings file), and Test asks the worker on a worker thread while the panel keeps turning.
The last test runs a real `daw-plugin serve` (Ray) on the tiny model: test_remote's module-scoped fixture."""

import json
import socket
import stat
import threading

import pytest
import test_remote
from panel_helpers import WAIT_MS, set_text
from PyQt6.QtCore import Qt, QTimer

from daw_plugin.remote.client import Worker
from daw_plugin.remote.token_file import token_path
from ui.worker_box import HERE, SERVER

worker = test_remote.worker  # one real Ray Serve worker for this module, started only by the test that asks for it


@pytest.fixture
def config(tmp_path, monkeypatch):
    """The user's config folder in the test's own, and no token in the environment."""
    monkeypatch.setenv("DAW_PLUGIN_CONFIG", str(tmp_path / "config"))
    monkeypatch.delenv("DAW_PLUGIN_TOKEN", raising=False)
    return tmp_path / "config"


def closed_port_url() -> str:
    """A local URL on which nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def on_server(qtbot, panel, url: str) -> None:
    panel.control("Generate on").setCurrentText(SERVER)
    set_text(qtbot, panel.control("Worker URL"), url)


def test_the_url_token_and_test_are_shown_only_for_a_gpu_server(qtbot, open_panel):
    panel = open_panel()
    server_controls = [panel.control(name) for name in ("Worker URL", "Worker token", "Test worker")]
    assert panel.control("Generate on").currentText() == HERE
    assert not any(control.isVisible() for control in server_controls)
    panel.control("Generate on").setCurrentText(SERVER)
    assert all(control.isVisible() for control in server_controls)
    assert panel.control("Worker token").echoMode() == panel.control("Worker token").EchoMode.Password
    panel.control("Generate on").setCurrentText(HERE)
    assert not any(control.isVisible() for control in server_controls)


def test_a_request_carries_the_worker_url_only_when_a_gpu_server_is_chosen(qtbot, open_panel, config):
    panel = open_panel()
    qtbot.keyClicks(panel.control("Prompt"), "rain")
    set_text(qtbot, panel.control("Seconds"), "0.2")
    here = panel.ask()
    assert here.request.worker is None
    qtbot.waitUntil(lambda: panel.ready, timeout=WAIT_MS)
    assert len(panel.takes_list.paths()) == 1  # made on this computer

    url = closed_port_url()
    on_server(qtbot, panel, url)
    remote = panel.ask()
    assert remote.request.worker == url
    qtbot.waitUntil(lambda: panel.ready, timeout=WAIT_MS)
    message = panel.control("Message").text()
    assert message.startswith(f"Cannot reach the worker at {url}") and message.count(". ") == 0
    assert panel.control("Worker URL").accessibleDescription() == message  # marked where it is fixed
    assert len(panel.takes_list.paths()) == 1  # nothing half-made is kept


def test_a_url_that_is_none_is_marked_at_its_field_and_nothing_is_queued(qtbot, open_panel):
    panel = open_panel()
    qtbot.keyClicks(panel.control("Prompt"), "rain")
    on_server(qtbot, panel, "gpu-box")
    assert panel.ask() is None and panel.ready
    message = panel.control("Message").text()
    assert message.startswith("Worker URL must be a URL such as http://gpu-box:8765, not 'gpu-box'")
    assert panel.control("Worker URL").accessibleDescription() == message


def test_the_choice_and_url_are_kept_between_runs_and_the_token_is_not(qtbot, open_panel, config, tmp_path):
    first = open_panel()
    on_server(qtbot, first, "http://gpu-box:8765")
    set_text(qtbot, first.control("Worker token"), "s3cret-token")
    first.close()
    again = open_panel()
    assert again.control("Generate on").currentText() == SERVER
    assert again.control("Worker URL").text() == "http://gpu-box:8765"
    assert again.control("Worker token").text() == ""
    assert "s3cret-token" not in (tmp_path / "panel.ini").read_text()


def test_a_typed_token_is_stored_for_the_owner_only_and_the_client_reads_it(qtbot, open_panel, config, monkeypatch):
    panel = open_panel()
    on_server(qtbot, panel, "http://gpu-box:8765")
    set_text(qtbot, panel.control("Worker token"), "s3cret-token")
    qtbot.keyClick(panel.control("Worker token"), Qt.Key.Key_Return)  # editing finished: stored on a worker thread
    qtbot.waitUntil(lambda: "stored in" in panel.control("Message").text(), timeout=WAIT_MS)
    path = token_path()
    assert path.parent == config and path.read_text().strip() == "s3cret-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Worker("http://gpu-box:8765").token == "s3cret-token"  # what the CLI's jobs send, too
    monkeypatch.setenv("DAW_PLUGIN_TOKEN", "from-the-environment")
    assert Worker("http://gpu-box:8765").token == "from-the-environment"  # the environment wins


def test_test_against_a_closed_port_says_so_in_one_sentence(qtbot, open_panel, config):
    panel = open_panel()
    url = closed_port_url()
    on_server(qtbot, panel, url)
    qtbot.mouseClick(panel.control("Test worker"), Qt.MouseButton.LeftButton)
    status = panel.control("Worker status")
    qtbot.waitUntil(lambda: not status.text().startswith("Testing"), timeout=WAIT_MS)
    assert status.text() == (f"Cannot reach the worker at {url} (Connection refused); check the URL and that "
                             "`daw-plugin serve` runs there.")


def test_the_panel_keeps_turning_while_test_waits_on_a_worker_that_does_not_answer(qtbot, open_panel, config):
    listener = socket.socket()  # takes the connection (the kernel's backlog), never answers
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    safety = threading.Timer(WAIT_MS / 1000, listener.close)  # a Test run on the UI thread would otherwise hang here
    safety.start()
    try:
        panel = open_panel()
        on_server(qtbot, panel, url)
        ticks = []
        timer = QTimer(panel)
        timer.timeout.connect(lambda: ticks.append(1))
        timer.start(5)
        qtbot.mouseClick(panel.control("Test worker"), Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: len(ticks) >= 5, timeout=WAIT_MS)  # the UI thread turns while Test waits
        status = panel.control("Worker status")
        assert status.text() == f"Testing {url}…" and panel.background.busy
        listener.close()  # the waiting connection is reset: Test ends, in one sentence
        qtbot.waitUntil(lambda: not status.text().startswith("Testing"), timeout=WAIT_MS)
        assert status.text().startswith(f"Cannot reach the worker at {url} (Connection reset by peer)")
    finally:
        safety.cancel()
        listener.close()


def test_test_names_what_a_real_worker_serves_and_a_take_made_there_is_listed(qtbot, open_panel, config, worker,
                                                                             converted, audioldm2_dir):
    panel = open_panel()
    on_server(qtbot, panel, worker)
    status = panel.control("Worker status")
    set_text(qtbot, panel.control("Worker token"), "wrong")
    qtbot.mouseClick(panel.control("Test worker"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not status.text().startswith("Testing"), timeout=WAIT_MS)
    assert status.text().startswith(f"The worker at {worker} refused the token")

    qtbot.keyClicks(panel.control("Prompt"), "rain")
    set_text(qtbot, panel.control("Seconds"), "0.2")
    set_text(qtbot, panel.control("Worker token"), test_remote.TOKEN)  # then Generate at once: the job sends it,
    assert panel.ask().request.worker == worker  # though the field never lost focus and the file may not be written
    qtbot.waitUntil(lambda: panel.ready, timeout=WAIT_MS)
    (path,) = panel.takes_list.paths()
    assert json.loads(path.with_suffix(".json").read_text())["worker"] == worker
    qtbot.waitUntil(lambda: token_path().is_file(), timeout=WAIT_MS)
    assert token_path().read_text().strip() == test_remote.TOKEN  # and stored for the CLI

    qtbot.mouseClick(panel.control("Test worker"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not status.text().startswith("Testing"), timeout=WAIT_MS)
    assert status.text() == f"Connected: serves {converted} (cpu), {audioldm2_dir} (cpu)."
