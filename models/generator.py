"""The one interface every loaded model offers the core, whatever its family (checked by mypy in CI).

Two kinds stand behind it: `models.lm.CodecLM` (AudioGen and MusicGen, token by token) and
`models.audioldm2.AudioLDM2Generator` (latent diffusion). `models.loading.load_generator` returns either.

A call makes a batch of takes at once, one per seed, each exactly ``round(seconds * sample_rate)`` new
samples, float32 ``[channels, samples]`` at ``sample_rate``, preceded (when continuing) by up to
``preroll_seconds`` of the model's own rendering of the prompt's end. Audio comes in as `models.clip.Clip`,
at any rate and channel count: the generator conforms it to its own.

A take depends on its seed and on the batch it was made in: on a given device, the same batch (the same seeds in
the same order, the same settings) gives the same audio, bit for bit. A row of a batch is not promised to equal the
same seed alone (batched matrix products may round differently), so regenerating a take re-runs its batch.

Previews: ``on_preview(take, chunk)``, when given, is called on the generating thread with a take's next chunk of
audio, float32 ``[channels, n]`` at ``sample_rate``, in order, starting at the same sample as that take's result
(so a preroll comes first); a take's chunks, concatenated, equal its result exactly. A generator with
``supports_preview`` sends them while it works (the token models: about one a second of audio, each decoding
only its new frames); one without sends each finished take as a single chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    import torch

    from models.clip import Clip

OnStep = Callable[[int, int], None]  # (steps done, steps in total), for the whole batch
ShouldStop = Callable[[], bool]  # polled before every step; yes raises `Cancelled`
OnPreview = Callable[[int, np.ndarray], None]  # (take in the batch from 0, its next chunk [channels, samples])


@dataclass(frozen=True)
class Settings:
    """How a model is asked to generate, by one name per setting for every family; None is the model's default.

    A family takes only some of them (`models.families`): the token models sample (top-k, top-p, temperature),
    AudioLDM 2 denoises (steps, a negative prompt); both use classifier-free guidance.
    """

    guidance: float | None = None  # classifier-free guidance; 1 turns it off, higher follows the text more closely
    top_k: int | None = None  # sample among the k likeliest tokens (1: greedy)
    top_p: float | None = None  # nucleus sampling: the likeliest tokens holding this much probability (0: off)
    temperature: float | None = None  # below 1 plays it safer, above 1 wilder
    steps: int | None = None  # denoising steps
    negative_prompt: str | None = None  # what to steer away from, in place of the empty unconditional text


MODEL_DEFAULTS = Settings()  # every setting left to the model


class Generator(Protocol):
    family: str  # "audiogen", "musicgen" or "audioldm2": its entry in `models.families.FAMILIES`
    name: str  # how messages name the model
    sample_rate: int
    channels: int
    supports_preview: bool  # on_preview hears the takes while they are made, not only once they are done
    threads: int | None  # torch's CPU threads chosen at load (None: torch's default)

    @property
    def device(self) -> torch.device: ...

    @property
    def dtype(self) -> torch.dtype: ...

    @property
    def precision(self) -> str:
        """How the model's weights are held where it runs (`models.precision`: float32, bfloat16, int8, float16):
        part of what makes a take reproducible, and what regenerating asks for again."""
        ...

    def settings(self, given: Settings) -> Settings:
        """``given`` with this model's defaults filled in for what its family takes, and None for the rest:
        what a take is made with, and what its recipe records."""
        ...

    def generate(self, text: str | None, seconds: float, *, seeds: Sequence[int], settings: Settings = MODEL_DEFAULTS,
                 prompt: Clip | None = None, melody: Clip | None = None, preroll_seconds: float = 0.0,
                 on_step: OnStep | None = None, should_stop: ShouldStop | None = None,
                 on_preview: OnPreview | None = None) -> list[np.ndarray]:
        """One take per seed (see the module notes). ``prompt``: audio to continue, the takes starting where it
        ends; ``melody``: audio to follow (melody models only)."""
        ...
