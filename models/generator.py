"""What the job runner needs from a loaded model, whatever its family.

Two kinds stand behind it: `models.lm.CodecLM` (AudioGen and MusicGen, token by token) and
`models.audioldm2.AudioLDM2Generator` (latent diffusion). Both return float32 ``[channels, samples]``
at ``sample_rate``: exactly ``round(seconds * sample_rate)`` new samples, preceded by up to
``preroll_seconds`` of the model's own rendering of the prompt's end when continuing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch

OnStep = Callable[[int, int], None]  # (steps done, steps in total)
ShouldStop = Callable[[], bool]  # polled before every step; yes raises `Cancelled`


class Generator(Protocol):
    family: str  # "audiogen", "musicgen" or "audioldm2"
    sample_rate: int
    channels: int
    device: torch.device
    default_guidance: float  # classifier-free guidance when the user gives none

    @property
    def dtype(self) -> torch.dtype: ...

    def generate(self, text: str | None, seconds: float, *, audio_prompt: np.ndarray | None = None,
                 preroll_seconds: float = 0.0, seed: int = 0, on_step: OnStep | None = None,
                 should_stop: ShouldStop | None = None, **options) -> np.ndarray: ...
