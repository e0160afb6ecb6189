"""CLAP's audio features for one clip, as transformers' ``ClapFeatureExtractor`` makes them, minus its dice.

The extractor crops audio longer than its window at random, and even for a short clip draws which clip of
the batch counts as "longer", all with numpy's *global* generator. Ranking takes must neither change from
one run to the next nor reseed or use up the random numbers of whatever else shares the process (the
engine runs beside a UI), so the crops here come from a generator of our own. It is seeded as
``np.random.seed(0)`` seeded the global one before, so scores are the ones the plugin has always given.
The "longer" flag is left out: the pipeline's CLAP score never passes it to the model.
"""

from __future__ import annotations

import numpy as np
import torch

CROP_SEED = 0


def clap_features(extractor, waveform: np.ndarray, seed: int = CROP_SEED) -> torch.Tensor:
    """Mono ``waveform`` at ``extractor.sampling_rate`` -> ``input_features`` ``[1, channels, frames, mels]``."""
    waveform = np.asarray(waveform, dtype=np.float64)
    max_length = extractor.nb_max_samples
    if waveform.shape[0] > max_length:
        mel = _cropped(extractor, waveform, np.random.RandomState(seed))
    else:  # padded, never cropped: the extractor draws nothing here
        mel, _ = extractor._get_input_mel(waveform, max_length, extractor.truncation, extractor.padding)
    return torch.from_numpy(np.stack([mel]))


def _cropped(extractor, waveform: np.ndarray, rng: np.random.RandomState) -> np.ndarray:
    """``ClapFeatureExtractor._get_input_mel`` for a waveform longer than the window, drawing from ``rng``."""
    max_length = extractor.nb_max_samples
    if extractor.truncation == "rand_trunc":
        start = rng.randint(0, len(waveform) - max_length + 1)
        return extractor._np_extract_fbank_features(waveform[start:start + max_length],
                                                    extractor.mel_filters_slaney)[None, :]
    if extractor.truncation != "fusion":
        raise NotImplementedError(f"CLAP truncation {extractor.truncation!r}")
    mel = extractor._np_extract_fbank_features(waveform, extractor.mel_filters)
    chunk_frames = max_length // extractor.hop_length + 1  # as the extractor counts a spectrogram's frames
    if chunk_frames == mel.shape[0]:  # longer by less than a hop: the whole audio, as the extractor does
        return np.stack([mel, mel, mel, mel])
    return _mel_fusion(mel, chunk_frames, rng)


def _mel_fusion(mel: np.ndarray, chunk_frames: int, rng: np.random.RandomState) -> np.ndarray:
    """``ClapFeatureExtractor._random_mel_fusion``: the whole mel shrunk to one window, then a crop from each third."""
    ranges = np.array_split(list(range(0, mel.shape[0] - chunk_frames + 1)), 3)
    ranges = [ranges[0]] + [part if len(part) else np.array([0]) for part in ranges[1:]]  # too short: the first chunk
    starts = [rng.choice(part) for part in ranges]
    shrunk = torch.nn.functional.interpolate(torch.tensor(mel[None, None, :]), size=[chunk_frames, 64],
                                             mode="bilinear", align_corners=False)[0][0].numpy()
    return np.stack([shrunk] + [mel[start:start + chunk_frames, :] for start in starts])
