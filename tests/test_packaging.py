"""The Linux desktop entry opens the panel, names an icon that ships beside it, and validates."""

import configparser
import shlex
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from daw_plugin.cli import build_parser

LINUX = Path(__file__).resolve().parents[1] / "packaging" / "linux"
ENTRY = LINUX / "daw-plugin.desktop"


def desktop_entry() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # keys are case-sensitive in a desktop entry
    parser.read_string(ENTRY.read_text(encoding="utf-8"))
    return parser["Desktop Entry"]


def test_the_entry_runs_the_panel_command_and_names_its_icon():
    entry = desktop_entry()
    assert entry["Type"] == "Application" and entry["Terminal"] == "false"
    argv = shlex.split(entry["Exec"])
    assert argv[0] == "daw-plugin"
    assert build_parser().parse_args(argv[1:]).handler.__name__ == "panel"
    icon = LINUX / f"{entry['Icon']}.svg"  # a theme name: the file installs as <name>.svg
    assert ET.parse(icon).getroot().tag == "{http://www.w3.org/2000/svg}svg"
    assert "Audio" in entry["Categories"].split(";")


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None, reason="desktop-file-utils is not installed")
def test_the_entry_passes_desktop_file_validate():
    done = subprocess.run(["desktop-file-validate", str(ENTRY)], capture_output=True, text=True)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout
