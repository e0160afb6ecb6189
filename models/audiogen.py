"""AudioGen (Meta's text-to-sound model) from its converted transformers folder, run by our decode loop (`models.lm`).

AudioGen ships as an audiocraft checkpoint; `models.audiocraft_conversion` turns it once into a MusicGen-shaped
transformers folder, marked as AudioGen (`models.conversion_cache` keeps it). It runs as a `CodecLM` with its
own ways: a 10 s training window, past which each new window adds 2 s to 8 s of context (audiocraft's
``extend_stride`` for AudioGen, where MusicGen adds 18 s to 12 s), and the guidance its checkpoint was trained
with (``cfg_coef``, kept as the folder's ``guidance_scale``) as its default.
"""

from __future__ import annotations

from pathlib import Path

import torch

from models.generator import Generator
from models.lm import CodecLM
from models.musicgen import display_name, load_pretrained, window_seconds

EXTEND_STRIDE = 0.2  # of the window: audiocraft's AudioGen default, 2 s added to 8 s of context


class AudioGenLM(CodecLM):
    family = "audiogen"


def load(folder: Path, device: torch.device, *, precision: str = "float32") -> Generator:
    """A ready `AudioGenLM` for the converted folder ``folder``, its decoder in ``precision`` (`models.precision`)."""
    model, tokenizer = load_pretrained(folder, device, precision)
    window = window_seconds(model)
    lm = AudioGenLM(model, tokenizer, window_seconds=window, extend_stride_seconds=window * EXTEND_STRIDE,
                    name=display_name(folder), precision=precision)
    lm.decoder.drop_module_weights()  # this generator owns the model: its reduced decoder is all that runs
    return lm
