"""Melody chroma for MusicGen-melody, computed without torchaudio.

MusicGen-melody conditions on a one-hot chroma of the melody clip. transformers' ``MusicgenMelodyFeatureExtractor``
computes it with ``torchaudio.transforms.Spectrogram``; torchaudio has no working build here and is not a dependency,
so this module computes the same thing with ``torch.stft``. The definition (the extractor's defaults, which are also
what facebook/musicgen-melody's preprocessor_config.json holds, and audiocraft's ``ChromaExtractor`` with
``radix2_exp=14, argmax=True`` that the model was trained with):

1. mono: the mean over channels, as the extractor's ``__call__`` does for stereo clips;
2. a clip shorter than ``n_fft`` is zero-padded to ``n_fft`` (half each side, the odd sample on the right);
3. power spectrogram: periodic Hann window of ``n_fft`` samples, hop ``hop_length``, ``center=True`` with reflect
   padding, one-sided, the complex STFT divided by ``sqrt(sum(window**2))`` (torchaudio's ``normalized=True``),
   then ``abs() ** 2``;
4. chroma = ``transformers.audio_utils.chroma_filter_bank(sampling_rate, n_fft, tuning=0, num_chroma) @ power``;
5. each frame divided by its max (inf-norm, eps 1e-6);
6. one-hot of each frame's argmax. A silent frame has all-zero chroma and so goes to class 0 (C).

The window scaling in step 3 and step 5 cannot change an argmax; they are kept so the intermediate values match too.

What this module leaves to the caller, unlike the extractor's ``__call__``:

- Resampling: pass audio at the extractor's rate (32 kHz for the real model). transformers resamples with
  ``torchaudio.functional.resample(rolloff=0.945, lowpass_filter_width=24)``; another resampler shifts the
  spectrum slightly, which only matters for frames whose top two chroma classes are nearly tied.
- The 30 s cut: ``__call__`` truncates to ``chunk_length * sampling_rate`` (960000 samples) first. The model keeps
  only the first ``chroma_length`` (235) frames anyway and tiles shorter chroma up to that length, so for a longer
  clip only the last two kept frames can differ (their windows reach past 30 s); cut to 960000 samples to match.
- Demucs stems: audiocraft trained on the "vocals" + "other" stems of htdemucs (drums and bass removed, as they
  dominate the chroma), and the extractor only picks stems when handed demucs output. We take the clip as it is:
  demucs and its weights are a large extra download and dependency, and a DAW melody clip is normally already the
  melodic part alone. A full mix with loud drums or bass gives a less melodic chroma.
"""

import functools

import numpy as np
import torch
from transformers.audio_utils import chroma_filter_bank

from models.errors import UserError

_NORM_EPS = 1e-6  # the extractor's eps for the inf-norm


def melody_chroma(
    audio: np.ndarray, sample_rate: int, *, n_fft: int = 16384, hop_length: int = 4096, n_chroma: int = 12
) -> torch.Tensor:
    """One-hot chroma of a melody clip: float32 ``[frames, n_chroma]``, ``frames = max(samples, n_fft) // hop + 1``.

    ``audio`` is float ``[channels, samples]`` or ``[samples]`` at ``sample_rate``. The result equals
    ``MusicgenMelodyFeatureExtractor._torch_extract_fbank_features`` on the mono clip (see the module docstring).
    """
    wave = _pad_to_window(_mono(audio)[None], n_fft)  # a batch of one, as the extractor sees it
    power = _power_spectrogram(wave, n_fft, hop_length)
    raw = torch.einsum("cf, ...ft->...ct", _filters(sample_rate, n_fft, n_chroma), power)
    norm = torch.nn.functional.normalize(raw, p=float("inf"), dim=-2, eps=_NORM_EPS)
    classes = norm[0].argmax(dim=0)  # first index on ties, like the extractor's argmax
    return torch.nn.functional.one_hot(classes, n_chroma).to(torch.float32)


def _mono(audio: np.ndarray) -> torch.Tensor:
    """float32 ``[samples]``: cast first, then average channels, in the extractor's order."""
    wave = torch.as_tensor(np.asarray(audio), dtype=torch.float32)
    if wave.numel() == 0:
        raise UserError("The melody clip is empty; choose a clip that contains audio.")
    if wave.ndim == 2:
        if wave.shape[0] > wave.shape[1]:
            raise ValueError(f"audio must be [channels, samples], got shape {tuple(wave.shape)}")
        wave = wave.mean(dim=0)
    elif wave.ndim != 1:
        raise ValueError(f"audio must be [channels, samples] or [samples], got shape {tuple(wave.shape)}")
    if not torch.isfinite(wave).all():
        raise UserError("The melody clip contains invalid (NaN or infinite) samples; re-render or re-import it.")
    return wave


def _pad_to_window(wave: torch.Tensor, n_fft: int) -> torch.Tensor:
    """Zero-pad a clip shorter than one window to exactly ``n_fft``, as the extractor does.

    This is also what makes any non-empty clip valid: reflect padding needs more than ``n_fft // 2`` samples.
    """
    missing = n_fft - wave.shape[-1]
    if missing <= 0:
        return wave
    return torch.nn.functional.pad(wave, (missing // 2, missing - missing // 2), "constant", 0)


def _power_spectrogram(wave: torch.Tensor, n_fft: int, hop_length: int) -> torch.Tensor:
    """torchaudio ``Spectrogram(n_fft, win_length=n_fft, hop_length, power=2, center=True, normalized=True)``."""
    window = torch.hann_window(n_fft)  # periodic: torchaudio's default window_fn
    spec = torch.stft(
        wave,
        n_fft=n_fft,
        hop_length=hop_length,
        win_length=n_fft,
        window=window,
        center=True,
        pad_mode="reflect",
        normalized=False,  # torchaudio's normalized=True is the "window" norm below, not torch's frame-length norm
        onesided=True,
        return_complex=True,
    )
    spec /= window.pow(2.0).sum().sqrt()
    return spec.abs().pow(2)


@functools.lru_cache(maxsize=4)
def _filters(sample_rate: int, n_fft: int, n_chroma: int) -> torch.Tensor:
    """The extractor's filter bank, ``[n_chroma, n_fft // 2 + 1]``, class 0 = C. Read-only: it is shared."""
    bank = chroma_filter_bank(sampling_rate=sample_rate, num_frequency_bins=n_fft, tuning=0, num_chroma=n_chroma)
    return torch.from_numpy(bank).float()
