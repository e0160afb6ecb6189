"""MusicGen (mono, stereo and melody) from a transformers folder, run by our decode loop (`models.lm`).

A folder is what ``save_pretrained`` writes: ``MusicgenForConditionalGeneration`` (model_type
``musicgen``, also what our AudioGen conversion writes) or ``MusicgenMelodyForConditionalGeneration``
(``musicgen_melody``). The training window is ``generation_config.max_length`` frames (1500 at 50 Hz:
30 s); past it, generation goes on window by window with the stride the caller gives.

Melody models have no cross-attention. Their conditioning is a prefix of embeddings before the first
token, as in transformers: the melody's chroma (one-hot pitch class per frame, projected, repeated or cut
to ``chroma_length`` frames), then the projected text. The null condition for guidance is a one-hot on
the first pitch class (what the chroma of silence is) and all-zero text. No melody: the null chroma
conditions both rows; no text: the prefix has no text part.

Chroma follows time across windows, as audiocraft re-slices its melody per window: each window is
conditioned on the chroma of the audio under its own span of the take (a whole window's worth, however
few frames it adds, as in training). The melody starts with the take and loops sample by sample when
shorter, as audiocraft's extension does (transformers repeats whole chroma frames instead, which drifts
by under a frame per loop). Where a window reaches back into a continued region, the chroma of the
region's own audio is used: in training, the chroma always came from the audio being continued.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoTokenizer, MusicgenForConditionalGeneration, MusicgenMelodyForConditionalGeneration

from models.errors import UserError, brief
from models.formats import read_json
from models.generator import Generator
from models.lm import CodecLM, Conditioning, Conditions
from models.quiet import local_work

MODEL_CLASSES: dict[str, type[MusicgenForConditionalGeneration | MusicgenMelodyForConditionalGeneration]] = {
    "musicgen": MusicgenForConditionalGeneration,
    "musicgen_melody": MusicgenMelodyForConditionalGeneration,
}


EXTEND_STRIDE = 0.6  # of the window: audiocraft's MusicGen default, 18 s added to 12 s of context


def load(folder: Path, device: torch.device, *, extend_stride_seconds: float | None = None,
         precision: str = "float32") -> Generator:
    """A ready `CodecLM` (a `MelodyLM` for melody models) for the transformers folder ``folder``.

    ``extend_stride_seconds``: how far each window past the first moves on (default: MusicGen's share of the window).
    ``precision``: how the decoder holds its weights (`models.precision`, resolved by `models.loading`).
    """
    model, tokenizer = load_pretrained(folder, device, precision)
    window = window_seconds(model)
    stride = window * EXTEND_STRIDE if extend_stride_seconds is None else extend_stride_seconds
    name = display_name(folder)
    if model.config.model_type == "musicgen_melody":
        lm: CodecLM = MelodyLM(model, tokenizer, chroma=ChromaSettings.read(folder, model), window_seconds=window,
                               extend_stride_seconds=stride, name=name, precision=precision)
    else:
        lm = CodecLM(model, tokenizer, window_seconds=window, extend_stride_seconds=stride, name=name,
                     precision=precision)
    lm.decoder.drop_module_weights()  # this generator owns the model: its reduced decoder is all that runs
    return lm


def window_seconds(model) -> float:
    """The LM's training window: ``generation_config.max_length`` frames (1500 at 50 Hz for MusicGen: 30 s)."""
    return model.generation_config.max_length / model.config.audio_encoder.frame_rate


TOKENIZER_FILES = ("tokenizer.json", "spiece.model")  # T5's, fast or sentencepiece: either one is enough


def load_pretrained(folder: Path, device: torch.device, precision: str = "float16") -> tuple[Any, object]:
    """Load a folder; on a GPU the LM runs in ``precision`` (float16 unless asked otherwise), the text encoder and
    codec in float32. On the CPU everything loads in float32 (`CodecLM` packs the decoder's reduced weights).

    The model is Any: it is used for its submodules' attributes, and nn.Module types them as ``Tensor | Module``.
    """
    model_type = read_json(folder / "config.json").get("model_type", "musicgen")
    model_class = MODEL_CLASSES.get(model_type, MusicgenForConditionalGeneration)
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        # transformers would build an empty tokenizer, and every prompt would become <unk>.
        raise UserError(f"The model in {folder} has no tokenizer ({' or '.join(TOKENIZER_FILES)}); download or "
                        "copy it again.")
    try:
        with local_work():
            # float32 whatever the checkpoint holds: T5 overflows in float16, and only the LM is halved below.
            model = model_class.from_pretrained(folder, dtype=torch.float32)
            tokenizer = AutoTokenizer.from_pretrained(folder)
    except MemoryError:
        raise
    except Exception as error:  # missing, truncated (SafetensorError) or mismatched files: the same fix
        raise UserError(
            f"Could not load the model in {folder} ({brief(error)}); convert or download it again."
        ) from error
    model.eval().to(device)
    if device.type != "cpu" and precision in ("float16", "bfloat16"):
        # The codec is cheap; only the LM's many steps gain from halving.
        model.decoder.to(getattr(torch, precision))
    return model, tokenizer


def display_name(folder: Path) -> str:
    """``facebook/musicgen-small`` for a Hugging Face cache snapshot, else the folder's own name."""
    repo = folder.parent.parent.name
    if folder.parent.name == "snapshots" and repo.startswith("models--"):
        return repo.removeprefix("models--").replace("--", "/")
    return folder.name


@dataclass(frozen=True)
class ChromaSettings:
    """How audio becomes chroma: the folder's ``MusicgenMelodyFeatureExtractor`` settings, at the codec's rate."""

    n_fft: int = 16384
    hop_length: int = 4096
    n_chroma: int = 12

    @classmethod
    def read(cls, folder: Path, model) -> ChromaSettings:
        saved = read_json(folder / "preprocessor_config.json")
        # Melodies arrive at the codec's rate; keep the extractor's window and hop the same length in seconds.
        scale = model.config.audio_encoder.sampling_rate / saved.get("sampling_rate", 32000)
        return cls(n_fft=round(saved.get("n_fft", cls.n_fft) * scale),
                   hop_length=round(saved.get("hop_length", cls.hop_length) * scale),
                   n_chroma=model.config.num_chroma)


class MelodyLM(CodecLM):
    """MusicGen melody: the text and the chroma of a melody, prepended to the tokens (see the module notes)."""

    supports_melody = True

    def __init__(self, model, tokenizer, *, chroma: ChromaSettings, **options):
        super().__init__(model, tokenizer, **options)
        self.chroma = chroma
        self.chroma_length = model.config.chroma_length  # frames of chroma the LM was trained with
        self.project_chroma = getattr(model, "audio_enc_to_dec_proj", None)  # None when 12 == hidden size

    def _conditions(self, text: str | None, guidance: float, *, melody: np.ndarray | None,
                    audio_prompt: np.ndarray | None) -> Conditions:
        melody = None if melody is None else _mono(melody, "melody")
        text_memory = self._text_memory(text, guidance)  # [rows, Tm, D]; None without text
        guided = guidance != 1.0 and (bool(text) or melody is not None)
        if melody is None:
            conditioning = self.conditioning(None, text_memory, guided)
            return lambda first_frame: conditioning
        prompt = np.zeros(0, np.float32) if audio_prompt is None else _mono(audio_prompt, "region")
        span = self.window_frames * self.hop_length

        def at(first_frame: int) -> Conditioning:
            audio = _audio_under(melody, prompt, first_frame * self.hop_length, span)
            return self.conditioning(self.melody_chroma(audio), text_memory, guided)

        return at

    def melody_chroma(self, audio: np.ndarray) -> torch.Tensor:
        """One-hot chroma ``[frames, n_chroma]`` of mono ``audio`` at the model's rate."""
        from models.chroma import melody_chroma

        c = self.chroma
        return melody_chroma(audio, self.sample_rate, n_fft=c.n_fft, hop_length=c.hop_length, n_chroma=c.n_chroma)

    @torch.inference_mode()
    def conditioning(self, chroma: torch.Tensor | None, text_memory: torch.Tensor | None,
                     guided: bool) -> Conditioning:
        """The prefix ``[rows, chroma_length + Tm, D]``: projected chroma (the null one without a melody), then text.

        ``text_memory`` comes from ``_text_memory`` and already holds the null row when guided.
        """
        null = torch.zeros(1, 1, self.chroma.n_chroma)
        null[..., 0] = 1  # transformers' null chroma: argmax of an all-zero frame
        frames = null if chroma is None else chroma[None].float()
        if guided:
            frames = torch.cat([frames, null.expand_as(frames)])
        frames = frames.to(self.device)
        if self.project_chroma is not None:
            frames = self.project_chroma(frames.to(self.project_chroma.weight.dtype))
        # Repeat a short chroma, cut a long one, to the length the LM was trained with.
        repeats = -(-self.chroma_length // frames.shape[1])
        prefix = frames.repeat(1, repeats, 1)[:, :self.chroma_length]
        if text_memory is not None:
            prefix = torch.cat([prefix, text_memory.to(prefix.dtype)], dim=1)
        return Conditioning(rows=prefix.shape[0], prefix=prefix)


def _mono(audio: np.ndarray, what: str) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if audio.shape[-1] == 0:
        raise UserError(f"The {what} is empty; choose audio at least a moment long.")
    return audio.reshape(-1, audio.shape[-1]).mean(axis=0)


def _audio_under(melody: np.ndarray, prompt: np.ndarray, start: int, length: int) -> np.ndarray:
    """Mono samples ``[start, start + length)`` of the take: the prompt before 0, the melody (looped) from 0 on."""
    index = np.arange(start, start + length)
    before = index < 0
    audio = melody[index % melody.shape[0]]
    audio[before] = prompt[prompt.shape[0] + index[before]]  # windows reach back no further than the encoded prompt
    return audio
