"""Telling damaged weights by what they make.

Weights of random bytes behind a valid safetensors header load without a complaint, and the take they give is
NaN, infinite or silent throughout. Such a take must never be kept as a success.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.errors import UserError

SILENCE_PEAK = 2.0**-24  # under one step of 24-bit audio: nothing a listener, or a DAW, could hear


def check_take(audio: np.ndarray, folder: Path) -> None:
    """Raise `UserError` naming ``folder`` when the model's raw ``audio`` is not audio at all."""
    if audio.size == 0:
        return  # nothing to judge by
    if not np.isfinite(audio).all():
        problem = "NaN or infinite samples"
    elif np.abs(audio).max() < SILENCE_PEAK:
        problem = "nothing but silence"
    else:
        return
    raise UserError(f"The model in {folder} made {problem}, which means damaged weights; download or copy it "
                    "again.", field="model")
