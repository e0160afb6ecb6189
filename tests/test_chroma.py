"""models.chroma against the definition it reproduces, with no torchaudio installed.

References, from the closest to the most independent:

- transformers' own ``MusicgenMelodyFeatureExtractor``: its real ``__init__`` (filter bank, spectrogram parameters),
  ``__call__`` (channel mix, padding) and ``_torch_extract_fbank_features`` (normalisation, argmax), with only
  ``torchaudio.transforms.Spectrogram`` replaced by ``TorchaudioSpectrogramStandIn``, written from torchaudio's source;
- a float64 numpy STFT, which checks that stand-in and our own spectrogram stage;
- librosa's STFT and chroma filter bank, and audiocraft's ``ChromaExtractor`` (the code the model was trained with),
  neither of which shares torch.stft or transformers' filter-bank port with us.
"""

import importlib.util
import sys
import types
from pathlib import Path

import librosa
import numpy as np
import pytest
import scipy.signal
import torch
import transformers.models.musicgen_melody.feature_extraction_musicgen_melody as hf_extraction
from transformers.audio_utils import chroma_filter_bank

from models.chroma import _mono, _pad_to_window, _power_spectrogram, melody_chroma
from models.errors import UserError

SR, N_FFT, HOP = 32000, 16384, 4096  # facebook/musicgen-melody's preprocessor_config.json
C4, E4, G4, A4, C5 = 261.63, 329.63, 392.00, 440.00, 523.25
C, E, G, A = 0, 4, 7, 9  # chroma_filter_bank(start_at_c_chroma=True): C, C#, D, ..., A (9), A#, B


class TorchaudioSpectrogramStandIn(torch.nn.Module):
    """Stand-in for ``torchaudio.transforms.Spectrogram``, which has no build here.

    Same signature and defaults as torchaudio's class; ``forward`` follows ``torchaudio.functional.spectrogram``:
    optional constant pad, ``torch.stft`` on the packed batch, ``normalized=True`` meaning the "window" norm
    (divide the complex STFT by ``sqrt(sum(window**2))``), then ``abs() ** power``.
    """

    def __init__(self, n_fft=400, win_length=None, hop_length=None, pad=0, window_fn=torch.hann_window, power=2.0,
                 normalized=False, wkwargs=None, center=True, pad_mode="reflect", onesided=True):
        super().__init__()
        self.n_fft, self.win_length = n_fft, win_length if win_length is not None else n_fft
        self.hop_length = hop_length if hop_length is not None else self.win_length // 2
        self.register_buffer("window", window_fn(self.win_length, **(wkwargs or {})))
        self.pad, self.power, self.normalized = pad, power, normalized
        self.center, self.pad_mode, self.onesided = center, pad_mode, onesided

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        if self.pad > 0:
            waveform = torch.nn.functional.pad(waveform, (self.pad, self.pad), "constant")
        shape = waveform.size()
        spec = torch.stft(
            waveform.reshape(-1, shape[-1]), n_fft=self.n_fft, hop_length=self.hop_length,
            win_length=self.win_length, window=self.window, center=self.center, pad_mode=self.pad_mode,
            normalized=self.normalized == "frame_length", onesided=self.onesided, return_complex=True,
        )
        spec = spec.reshape(shape[:-1] + spec.shape[-2:])
        if self.normalized is True or self.normalized == "window":
            spec /= self.window.pow(2.0).sum().sqrt()
        self.last_output = spec if self.power is None else spec.abs().pow(self.power)  # for the tests to inspect
        return self.last_output


_TORCHAUDIO_STAND_IN = types.SimpleNamespace(transforms=types.SimpleNamespace(Spectrogram=TorchaudioSpectrogramStandIn))


@pytest.fixture
def extractor(monkeypatch):
    """transformers' extractor built by its own __init__, torchaudio's Spectrogram being the stand-in."""
    monkeypatch.setattr(hf_extraction, "torchaudio", _TORCHAUDIO_STAND_IN, raising=False)
    return hf_extraction.MusicgenMelodyFeatureExtractor()


# ---------------------------------------------------------------------------------------------------- signals


def _tone(freq: float, seconds: float, harmonics: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return sum(0.5 / k * np.sin(2 * np.pi * k * freq * t) for k in range(1, harmonics + 1)).astype(np.float32)


def _notes(freqs, seconds: float, harmonics: int = 1) -> np.ndarray:
    return np.concatenate([_tone(f, seconds, harmonics) for f in freqs])


def _melody_mix(seed: int = 0) -> np.ndarray:
    """A harmonic melody over a quiet noise floor, 2.5 s: not a whole number of hops."""
    melody = _notes([C4, E4, G4, A4, C5], 0.5, harmonics=4)
    return (melody + 0.02 * np.random.default_rng(seed).standard_normal(melody.size)).astype(np.float32)


def _c_only_in_the_mix() -> np.ndarray:
    """Left A + C, right E + C: each channel alone is A or E, their mean is C (shared, so it does not halve).

    A sum would also give C: scaling cannot move an argmax, so mean versus sum is invisible in the one-hot.
    """
    shared = 1.4 * _tone(C4, 1.0)  # amplitude 0.7 against 1.0 for A and E: below them alone, above half of them
    return np.stack([2 * _tone(A4, 1.0) + shared, 2 * _tone(E4, 1.0) + shared])


def _numpy_power_spectrogram(wave: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """float64 ``[freq, frames]`` from the textbook definition: reflect-pad n_fft // 2, periodic Hann, rfft."""
    padded = np.pad(wave.astype(np.float64), n_fft // 2, mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    return (np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2 / np.sum(window**2)).T


def _stft_tolerance(expected: np.ndarray) -> dict:
    """float32 STFTs of this size land within ~1e-7 of the peak; a symmetric Hann is ~1e-3 off on the peaks."""
    return {"rtol": 1e-4, "atol": 1e-6 * expected.max()}


def _assert_same_classes(ours: torch.Tensor, scores: np.ndarray, margin: float = 1e-3) -> None:
    """``ours`` one-hot ``[frames, 12]`` against reference scores ``[12, frames]``.

    Frames whose top two classes are within ``margin`` (relative) are near-ties that float32 versus float64
    rounding may break either way; every other frame must agree, and they must be most frames.
    """
    top_two = np.sort(scores, axis=0)[-2:]
    clear = top_two[1] - top_two[0] > margin * top_two[1]
    assert ours.shape == (scores.shape[1], 12)
    assert clear.mean() > 0.9
    np.testing.assert_array_equal(ours.argmax(dim=1).numpy()[clear], scores.argmax(axis=0)[clear])


# ------------------------------------------------------------------------------ transformers' own extractor

PARITY_CLIPS = {
    "melody": lambda: _melody_mix(),
    "noise": lambda: np.random.default_rng(1).standard_normal(2 * SR).astype(np.float32),
    "whole hops": lambda: _notes([G4, E4], 4 * HOP / SR, harmonics=3),
    "shorter than a window": lambda: _tone(A4, 1000 / SR),
    "shorter than a window, odd padding": lambda: _tone(E4, (N_FFT - 1001) / SR),
    "float64": lambda: _melody_mix(2).astype(np.float64),
    "silence": lambda: np.zeros(SR, dtype=np.float32),
}


@pytest.mark.parametrize("name", PARITY_CLIPS)
def test_mono_clip_equals_transformers_extractor(extractor, name):
    clip = PARITY_CLIPS[name]()
    expected = extractor(clip, sampling_rate=SR, return_tensors="pt")["input_features"]
    assert expected.shape[0] == 1
    assert torch.equal(melody_chroma(clip, SR), expected[0])
    _assert_same_power_spectrogram(clip, extractor)


def _assert_same_power_spectrogram(clip: np.ndarray, extractor) -> None:
    """The one-hot hides small drifts (a one-sample shift in the short-clip padding, say); the spectrogram does not.

    Ours, from our mixdown and padding, must equal bit for bit what the extractor's path fed the stand-in.
    """
    ours = _power_spectrogram(_pad_to_window(_mono(clip)[None], N_FFT), N_FFT, HOP)
    assert torch.equal(ours, extractor.spectrogram.last_output)


def test_stereo_clip_equals_transformers_extractor(extractor):
    """The extractor mixes a [channels, samples] clip (given inside a batch list) down with a mean."""
    stereo = _c_only_in_the_mix()
    expected = extractor([stereo], sampling_rate=SR, return_tensors="pt")["input_features"]
    assert torch.equal(melody_chroma(stereo, SR), expected[0])
    _assert_same_power_spectrogram(stereo, extractor)


def test_defaults_are_the_extractors_and_the_checkpoints(extractor):
    """The values facebook/musicgen-melody's preprocessor_config.json stores equal the extractor's defaults."""
    spectrogram = extractor.spectrogram
    assert (extractor.sampling_rate, extractor.n_fft, extractor.hop_length) == (SR, N_FFT, HOP)
    assert (extractor.feature_size, extractor.chunk_length, extractor.n_samples) == (12, 30, 960000)
    assert (spectrogram.n_fft, spectrogram.win_length, spectrogram.hop_length) == (N_FFT, N_FFT, HOP)
    assert (spectrogram.power, spectrogram.normalized, spectrogram.center, spectrogram.pad) == (2, True, True, 0)
    assert (spectrogram.pad_mode, spectrogram.onesided) == ("reflect", True)
    assert torch.equal(spectrogram.window, torch.hann_window(N_FFT, periodic=True))


# -------------------------------------------------------------------------------------- spectrogram stage


def test_spectrograms_match_a_numpy_stft(extractor):
    """Both the stand-in and our stage equal the float64 textbook STFT (window norm, power 2, reflect edges)."""
    wave = _melody_mix(3)[: SR + 123]
    expected = _numpy_power_spectrogram(wave, N_FFT, HOP)
    tolerance = _stft_tolerance(expected)
    ours = _power_spectrogram(torch.from_numpy(wave)[None], N_FFT, HOP)[0].double().numpy()
    stand_in = extractor.spectrogram(torch.from_numpy(wave)[None])[0].double().numpy()
    np.testing.assert_allclose(ours, expected, **tolerance)
    np.testing.assert_allclose(stand_in, expected, **tolerance)


def test_numpy_stft_tells_periodic_from_symmetric_hann():
    """The tolerance above is tight enough to notice torch.hann_window(periodic=False)."""
    wave = _melody_mix(3)[: SR + 123]
    expected = _numpy_power_spectrogram(wave, N_FFT, HOP)
    window = torch.hann_window(N_FFT, periodic=False)
    spec = torch.stft(torch.from_numpy(wave), N_FFT, HOP, window=window, center=True, pad_mode="reflect",
                      return_complex=True)
    symmetric = (spec.abs().pow(2) / window.pow(2).sum()).double().numpy()
    assert not np.allclose(symmetric, expected, **_stft_tolerance(expected))


# ---------------------------------------------------------------------------- independent implementations


def test_transformers_filter_bank_equals_librosas():
    """transformers ports librosa.filters.chroma, which audiocraft's ChromaExtractor calls."""
    ours = chroma_filter_bank(sampling_rate=SR, num_frequency_bins=N_FFT, tuning=0, num_chroma=12)
    theirs = librosa.filters.chroma(sr=SR, n_fft=N_FFT, tuning=0.0, n_chroma=12, dtype=np.float64)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)


def test_matches_librosa_pipeline():
    """librosa's STFT (its "hann" is scipy's periodic window) and filter bank, the extractor's steps in numpy."""
    wave = _melody_mix(4)
    stft = librosa.stft(wave.astype(np.float64), n_fft=N_FFT, hop_length=HOP, win_length=N_FFT, window="hann",
                        center=True, pad_mode="reflect")
    window = scipy.signal.get_window("hann", N_FFT, fftbins=True)
    power = np.abs(stft) ** 2 / np.sum(window**2)
    chroma = librosa.filters.chroma(sr=SR, n_fft=N_FFT, tuning=0.0, n_chroma=12, dtype=np.float64) @ power
    chroma /= np.maximum(chroma.max(axis=0), 1e-6)
    _assert_same_classes(melody_chroma(wave, SR), chroma)


def _audiocraft_chroma_module(monkeypatch) -> types.ModuleType:
    """audiocraft/modules/chroma.py loaded on its own, its ``import torchaudio`` seeing the stand-in."""
    pytest.importorskip("einops")
    spec = importlib.util.find_spec("audiocraft")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("audiocraft is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "modules" / "chroma.py"
    monkeypatch.setitem(sys.modules, "torchaudio", _TORCHAUDIO_STAND_IN)
    module_spec = importlib.util.spec_from_file_location("_audiocraft_chroma_reference", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def test_matches_audiocrafts_training_chroma(monkeypatch):
    """audiocraft's ChromaExtractor as config/conditioner/chroma2music.yaml builds it (radix2_exp=14, argmax=True);
    argmax=False here to get the scores the one-hot is taken from."""
    chroma_extractor = _audiocraft_chroma_module(monkeypatch).ChromaExtractor(
        sample_rate=SR, n_chroma=12, radix2_exp=14, argmax=False
    )
    assert (chroma_extractor.nfft, chroma_extractor.winlen, chroma_extractor.winhop) == (N_FFT, N_FFT, HOP)
    wave = _melody_mix(5)
    scores = chroma_extractor(torch.from_numpy(wave)[None, None])[0].T.double().numpy()
    _assert_same_classes(melody_chroma(wave, SR), scores)


# ------------------------------------------------------------------------------------------ musical sanity


def test_a440_is_class_a_in_every_frame():
    chroma = melody_chroma(_tone(A4, 3.0), SR)
    assert chroma.argmax(dim=1).tolist() == [A] * chroma.shape[0]


def test_c_major_arpeggio_walks_c_e_g_c():
    seconds = 1.0
    chroma = melody_chroma(_notes([C4, E4, G4, C5], seconds, harmonics=3), SR)
    classes = chroma.argmax(dim=1).tolist()
    assert [c for i, c in enumerate(classes) if i == 0 or c != classes[i - 1]] == [C, E, G, C]
    note = int(seconds * SR)
    spans = [((t * HOP - N_FFT // 2) // note, (t * HOP + N_FFT // 2 - 1) // note) for t in range(len(classes))]
    inside = [t for t, (first, last) in enumerate(spans) if first == last]  # the whole window lies in one note
    assert len(inside) >= 8
    assert all(classes[t] == [C, E, G, C][t * HOP // note] for t in inside)


def test_stereo_is_the_mean_of_its_channels():
    stereo = _c_only_in_the_mix()
    chroma = melody_chroma(stereo, SR)
    assert torch.equal(chroma, melody_chroma(stereo.mean(axis=0, dtype=np.float32), SR))
    assert chroma.argmax(dim=1).tolist() == [C] * chroma.shape[0]
    assert melody_chroma(stereo[0], SR).argmax(dim=1).tolist() == [A] * chroma.shape[0]
    assert melody_chroma(stereo[1], SR).argmax(dim=1).tolist() == [E] * chroma.shape[0]


# ------------------------------------------------------------------------------------- shapes and errors


@pytest.mark.parametrize("samples", [1, 1000, N_FFT // 2, N_FFT - 1, N_FFT, N_FFT + 1, 3 * SR, 3 * SR + HOP - 1])
def test_frame_count_and_one_hot(samples):
    wave = np.random.default_rng(samples).standard_normal(samples).astype(np.float32)
    chroma = melody_chroma(wave, SR)
    assert chroma.dtype == torch.float32
    assert chroma.shape == (max(samples, N_FFT) // HOP + 1, 12)  # center=True; short clips are padded to N_FFT
    assert torch.equal(chroma.sum(dim=1), torch.ones(chroma.shape[0]))


def test_other_parameters_follow_the_same_formula():
    chroma = melody_chroma(_tone(A4, 0.5), 16000, n_fft=2048, hop_length=512)  # SR // 2 samples: 1 s at 16 kHz
    assert chroma.shape == (SR // 2 // 512 + 1, 12)


@pytest.mark.parametrize("clip", [np.zeros(0), np.zeros((2, 0)), np.zeros((1, 0))])
def test_empty_clip_is_a_user_error(clip):
    with pytest.raises(UserError, match="empty"):
        melody_chroma(clip, SR)


def test_non_finite_samples_are_a_user_error():
    clip = _tone(A4, 1.0)
    clip[100] = np.nan
    with pytest.raises(UserError, match="NaN"):
        melody_chroma(clip, SR)


@pytest.mark.parametrize("shape", [(SR, 2), (1, 2, SR)])
def test_wrong_layout_is_a_programming_error(shape):
    with pytest.raises(ValueError, match="channels, samples"):
        melody_chroma(np.zeros(shape, dtype=np.float32), SR)
