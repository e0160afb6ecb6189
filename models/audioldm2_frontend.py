"""The log-mel front end AudioLDM 2's VAE was trained on, derived from the checkpoint's own configs.

The pipeline only ever goes latents -> mel -> waveform; continuing a region needs the way back. AudioLDM's
training code (``TacotronSTFT``) computes a centred Hann STFT, its magnitude, Slaney mel filters from 0 Hz to
Nyquist, and ``log(clamp(mel, 1e-5))``. Its numbers (16 kHz, hop 160, 1024-point FFT, 64 bins for
``cvssp/audioldm2``) are read from the vocoder, which was trained on the same mels:
``sampling_rate``, ``prod(upsample_rates)`` (one mel frame becomes that many samples) and ``model_in_dim``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

LOG_FLOOR = 1e-5  # AudioLDM's dynamic_range_compression clamps magnitudes here before the log


@dataclass(frozen=True)
class MelFrontEnd:
    sample_rate: int
    hop: int  # samples per mel frame
    mel_bins: int
    n_fft: int  # also the window length

    @classmethod
    def from_vocoder(cls, config) -> MelFrontEnd:
        """The front end matching a ``SpeechT5HifiGan`` config; the FFT spans about four hops (1024 for hop 160)."""
        hop = math.prod(config.upsample_rates)
        return cls(sample_rate=config.sampling_rate, hop=hop, mel_bins=config.model_in_dim,
                   n_fft=2 ** math.ceil(math.log2(4 * hop)))

    def filters(self) -> torch.Tensor:
        """Slaney-scale, Slaney-normalised mel filters ``[mel_bins, n_fft // 2 + 1]``, as librosa makes them."""
        import librosa  # heavy, and only continuation needs it

        basis = librosa.filters.mel(sr=self.sample_rate, n_fft=self.n_fft, n_mels=self.mel_bins,
                                    fmin=0.0, fmax=self.sample_rate / 2)
        return torch.from_numpy(basis)

    def log_mel(self, audio: np.ndarray) -> torch.Tensor:
        """Mono float audio ``[samples]`` -> log-mel ``[1, 1, samples // hop, mel_bins]`` (time before frequency).

        Frame ``i`` is centred on sample ``i * hop``, so the frames tile the audio exactly as the vocoder's
        output does; the centred STFT's one extra frame at the end is dropped.
        """
        frames = len(audio) // self.hop
        wav = torch.from_numpy(np.ascontiguousarray(audio[: frames * self.hop], dtype=np.float32))
        pad_mode = "reflect" if len(wav) > self.n_fft // 2 else "constant"  # reflect needs that much audio
        spectrum = torch.stft(wav, self.n_fft, hop_length=self.hop, win_length=self.n_fft,
                              window=torch.hann_window(self.n_fft), center=True, pad_mode=pad_mode,
                              return_complex=True)
        mel = self.filters() @ spectrum.abs()  # [mel_bins, frames + 1]
        return torch.log(torch.clamp(mel[:, :frames], min=LOG_FLOOR)).T[None, None].contiguous()
