"""What the job runner needs from a loaded model, whatever its family.

Two kinds stand behind it: `models.lm.CodecLM` (AudioGen and MusicGen, token by token) and
`models.audioldm2.AudioLDM2Generator` (latent diffusion). Both return float32 ``[channels, samples]``
at ``sample_rate``: exactly ``round(seconds * sample_rate)`` new samples, preceded by up to
``preroll_seconds`` of the model's own rendering of the prompt's end when continuing.

Previews: ``on_preview``, when given, is called on the generating thread with the take's next chunk of
audio, float32 ``[channels, n]`` at ``sample_rate``, in order, starting at the same sample as the return
value (so a preroll comes first); concatenated along the samples, the chunks equal the return value exactly.
A generator with ``supports_preview`` sends them while it works (the token models: about one a second of
audio, each decoding only its new frames); one without sends the finished take as a single chunk.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch

OnStep = Callable[[int, int], None]  # (steps done, steps in total)
ShouldStop = Callable[[], bool]  # polled before every step; yes raises `Cancelled`
OnPreview = Callable[[np.ndarray], None]  # the take's next chunk, float32 [channels, samples]


class Generator(Protocol):
    family: str  # "audiogen", "musicgen" or "audioldm2"
    sample_rate: int
    channels: int
    device: torch.device
    default_guidance: float  # classifier-free guidance when the user gives none
    supports_preview: bool  # on_preview hears the take while it is made, not only once it is done

    @property
    def dtype(self) -> torch.dtype: ...

    def generate(self, text: str | None, seconds: float, *, audio_prompt: np.ndarray | None = None,
                 preroll_seconds: float = 0.0, seed: int = 0, on_step: OnStep | None = None,
                 should_stop: ShouldStop | None = None, on_preview: OnPreview | None = None,
                 **options) -> np.ndarray: ...
