"""scripts/screenshot.py run as a user runs it (under Xvfb, in a subprocess): the PNG it writes is the window, at
the size asked for, mid-generation: the clip's waveform, the selected region over it and the take growing after
the continuation point are all in the picture, and the progress it reports is part-way."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PyQt6.QtGui import QColor, QImage

from ui.waveform import CLIP_COLOUR, SELECTION_COLOUR, TAKE_COLOUR

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "screenshot.py"
CEILING_S = 600  # for a busy machine, not a measure


def display_command() -> list[str]:
    """A private Xvfb where there is one (no window pops up on a desktop), else the display there is."""
    if shutil.which("xvfb-run"):
        return ["xvfb-run", "-a"]
    if os.environ.get("DISPLAY"):
        return []
    pytest.skip("needs an X display: neither xvfb-run nor DISPLAY is here")


def pixels(path: Path) -> np.ndarray:
    """``[height, width]`` of 0xRRGGBB."""
    image = QImage(str(path)).convertToFormat(QImage.Format.Format_RGB32)
    bits = image.constBits()
    bits.setsize(image.sizeInBytes())
    rows = np.frombuffer(bits, np.uint32).reshape(image.height(), image.bytesPerLine() // 4)
    return rows[:, :image.width()] & 0xFFFFFF


def over_white(colour: QColor) -> int:
    """``colour`` painted over the white base of the waveform, as 0xRRGGBB."""
    alpha = colour.alpha() / 255
    red, green, blue = (round(c * alpha + 255 * (1 - alpha)) for c in (colour.red(), colour.green(), colour.blue()))
    return red << 16 | green << 8 | blue


def columns_of(image: np.ndarray, rgb: int, tolerance: int = 0) -> np.ndarray:
    """The x of every pixel within ``tolerance`` of ``rgb`` in each channel."""
    channels = [(image >> shift) & 0xFF for shift in (16, 8, 0)]
    wanted = [(rgb >> shift) & 0xFF for shift in (16, 8, 0)]
    near = np.logical_and.reduce([np.abs(c.astype(int) - w) <= tolerance for c, w in zip(channels, wanted,
                                                                                      strict=True)])
    return np.nonzero(near)[1]


def test_the_screenshot_is_the_window_mid_generation_with_a_waveform_and_a_region(tmp_path):
    command = display_command()
    out = tmp_path / "panel.png"
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"} | {"OMP_NUM_THREADS": "1"}
    # faulthandler: a crash (rare, after the picture is written) says where
    done = subprocess.run([*command, sys.executable, "-X", "faulthandler", str(SCRIPT), "--out", str(out),
                           "--size", "880x1000"],
                          capture_output=True, text=True, env=env, timeout=CEILING_S)
    assert done.returncode == 0, done.stdout + done.stderr
    step = re.search(r"step (\d+) of (\d+)", done.stdout)
    assert step and 0 < int(step[1]) < int(step[2]), done.stdout  # caught part-way

    image = pixels(out)
    assert image.shape == (1000, 880)
    assert len(np.unique(image)) > 200  # text, controls and waveforms: not a blank or one-colour window
    clip, take = columns_of(image, CLIP_COLOUR.rgb() & 0xFFFFFF), columns_of(image, TAKE_COLOUR.rgb() & 0xFFFFFF)
    region = columns_of(image, over_white(SELECTION_COLOUR), tolerance=3)
    assert clip.size > 2000 and take.size > 2000 and region.size > 2000, (clip.size, take.size, region.size)
    assert clip.max() < take.min()  # the take grows after the continuation point, where the clip ends
    assert clip.min() < region.min() and region.max() < take.min()  # a region inside the clip, before the take


def test_without_a_display_it_says_in_one_line_to_run_it_under_xvfb(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    done = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "panel.png")], capture_output=True,
                          text=True, env=env, timeout=CEILING_S)
    assert done.returncode == 1 and "xvfb-run -a python scripts/screenshot.py" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "panel.png").exists()
