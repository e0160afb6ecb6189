"""Shared fixtures: a tiny AudioGen checkpoint built with audiocraft's own builders, saved in Meta's
export format, and converted through our real code. Nothing is fetched from a hub."""

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
# Never the user's Hugging Face cache: huggingface_hub reads this once, at import.
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="daw-plugin-tests-hf-")
atexit.register(shutil.rmtree, os.environ["HF_HOME"], True)
sys.path.insert(0, str(Path(__file__).parent))  # `fixtures`; a site-packages `tests` package shadows ours

# huggingface_hub gives its logger a handler on whatever sys.stderr is when it is first imported. Imported
# inside a test that captures output, that is the test's own stream, closed when the test ends, and a later
# download warning then prints a "Logging error" traceback. Imported here, it is the session's stream.
import huggingface_hub.utils.logging  # noqa: E402, F401
from fixtures.tiny_audiocraft import save_tiny_audiogen, save_tiny_t5  # noqa: E402
from PyQt6.QtCore import qInstallMessageHandler  # noqa: E402


def _qt_message(kind, context, message) -> None:
    print(message, file=sys.__stderr__)


# pytest-qt swaps its capturing handler in and out around each test and restores the one it found. With none
# installed it restores None, and a Qt thread logging at that instant (the FFmpeg audio thread's "no audio
# device") called None: an intermittent "'NoneType' object is not callable" at a player test's teardown. With
# this one always underneath, every swap is between two real handlers.
qInstallMessageHandler(_qt_message)


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Conversions land in a throwaway cache, never in the user's."""
    os.environ["DAW_PLUGIN_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    os.environ["DAW_PLUGIN_CONFIG"] = str(tmp_path_factory.mktemp("config"))


@pytest.fixture(scope="session")
def t5_dir(tmp_path_factory) -> Path:
    return save_tiny_t5(tmp_path_factory.mktemp("t5"))


@pytest.fixture(scope="session")
def tiny(tmp_path_factory, t5_dir):
    """audiocraft's own LM and codec (the reference), saved as an audiocraft checkpoint folder."""
    return save_tiny_audiogen(tmp_path_factory.mktemp("audiogen-tiny"), t5_dir)


@pytest.fixture(scope="session")
def converted(tmp_path_factory, tiny, t5_dir) -> Path:
    from models.audiocraft_conversion import convert

    return convert(tiny.folder, tmp_path_factory.mktemp("converted") / "audiogen-tiny", str(t5_dir))


@pytest.fixture(scope="session")
def generator(converted):
    from models.registry import load_generator

    return load_generator(str(converted), "cpu")


@pytest.fixture(scope="session")
def musicgen_dirs(tmp_path_factory) -> dict:
    """Tiny transformers MusicGen folders: mono, stereo and melody, with 1 s windows."""
    from fixtures.tiny_musicgen import save_tiny_musicgen

    root = tmp_path_factory.mktemp("musicgen")
    return {kind: save_tiny_musicgen(root / f"musicgen-{kind}", stereo=kind == "stereo", melody=kind == "melody")
            for kind in ("mono", "stereo", "melody")}


@pytest.fixture(scope="session")
def audioldm2_dir(tmp_path_factory) -> Path:
    """A tiny diffusers AudioLDM 2 folder, built the way diffusers' own tests build theirs."""
    from fixtures.tiny_audioldm2 import save_tiny_audioldm2

    return save_tiny_audioldm2(tmp_path_factory.mktemp("audioldm2-tiny"))


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy 2-core machine OpenMP's spinning threads
    make each call up to 100x slower; restored for the modules after."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def qsettings_in_tmp(tmp_path, one_thread):
    """Whatever QSettings a panel makes for itself lands in the test's folder, never in the user's own."""
    from PyQt6.QtCore import QSettings

    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "qsettings"))


@pytest.fixture
def open_panel(qtbot, tmp_path, converted, qsettings_in_tmp):
    """Makes a shown panel on the tiny AudioGen model (options as `Panel` takes them override), with its settings
    in one ini file shared by every panel of the test; all are closed at the end. Import `panel_helpers` first."""
    from PyQt6.QtCore import QSettings

    from ui.panel import Panel

    panels = []

    def make(**options):
        options = {"model": str(converted), "out": tmp_path / "takes"} | options
        panel = Panel(settings=QSettings(str(tmp_path / "panel.ini"), QSettings.Format.IniFormat), **options)
        qtbot.addWidget(panel)
        panel.show()
        panels.append(panel)
        return panel

    yield make
    for panel in panels:
        panel.close()
