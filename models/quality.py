"""Is a reduced precision good enough? Measured against float32 on the same weights (`compare`).

Both decoders are fed the same teacher-forced sequence: float32's own greedy tokens, from the text's guided
logits (guidance as a take uses it: its extrapolation magnifies any error in the two rows). At every step:

- the guided logits' error, max and mean, in units of the float32 logits' standard deviation (raw logits scale with
  the weights; a token's rank depends on its distance to the others, which the deviation measures);
- greedy agreement: how often the reduced decoder's top token equals float32's;
- the spectral distance of the codec's audio of the reduced decoder's greedy tokens against float32's
  (log-magnitude STFT, RMS in dB over bins above a -60 dB floor), and the same as a share of the distance to the
  audio of unrelated random codes (a codec with random weights sounds alike whatever its codes, so dB alone
  says little; the share says how far towards "a different take" the reduced decoder went).

The thresholds (`THRESHOLDS`) and why are in docs/PERFORMANCE.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from models.decoder import CachedDecoder

if TYPE_CHECKING:
    from models.lm import CodecLM


@dataclass(frozen=True)
class Quality:
    logits_max: float  # max |reduced - float32| over every step and token, in float32 logits' standard deviations
    logits_mean: float  # mean of the same
    agreement: float  # share of steps x codebooks where the greedy tokens agree
    spectral_db: float  # log-spectral distance of the two greedy sequences' audio
    spectral_share: float  # that distance over float32's audio's distance to unrelated random codes' audio
    steps: int

    def passes(self, thresholds: Quality | None = None) -> bool:
        limit = thresholds or THRESHOLDS
        return (self.logits_max <= limit.logits_max and self.logits_mean <= limit.logits_mean
                and self.agreement >= limit.agreement and self.spectral_share <= limit.spectral_share)


THRESHOLDS = Quality(logits_max=0.5, logits_mean=0.05, agreement=0.9, spectral_db=math.inf, spectral_share=0.5,
                     steps=500)


@torch.inference_mode()
def compare(lm: CodecLM, precision: str, text: str = "dusty boom-bap drum loop 90 bpm", steps: int = 500,
            guidance: float = 3.0) -> Quality:
    """``lm`` (loaded in float32 on the CPU) against its own weights held in ``precision``."""
    if lm.precision != "float32":  # a reduced generator has freed its modules' float32 weights
        raise ValueError(f"compare needs a generator loaded in float32, not {lm.precision}")
    reference, reduced = CachedDecoder(lm.model.decoder, "float32"), CachedDecoder(lm.model.decoder, precision)
    memory = lm._text_memory(text, guidance)
    states = [decoder.start(memory, batch=2, max_len=steps + 1) for decoder in (reference, reduced)]
    tokens = torch.full((1, lm.num_codebooks, 1), lm.special_token, dtype=torch.long, device=lm.device)
    ours, theirs, errors, scales = [], [], [], []
    for _ in range(steps):
        pair = torch.cat([tokens, tokens])
        expected, got = (_guided(decoder.step(state, pair), guidance) for decoder, state in
                         zip((reference, reduced), states, strict=True))
        errors.append((got - expected).abs())
        scales.append(expected.std())
        tokens = expected.argmax(-1)[..., None]  # [1, K, 1]: float32's greedy token, fed to both
        ours.append(tokens[..., 0])
        theirs.append(got.argmax(-1))
    error = torch.stack(errors) / torch.stack(scales).mean()
    expected_codes, got_codes = torch.stack(ours, -1), torch.stack(theirs, -1)  # [1, K, steps]
    unrelated = torch.randint(0, lm.special_token, expected_codes.shape, generator=torch.Generator().manual_seed(0))
    audio = lm._decode(expected_codes)
    distance = spectral_distance_db(audio, lm._decode(got_codes))
    return Quality(logits_max=error.max().item(), logits_mean=error.mean().item(),
                   agreement=(expected_codes == got_codes).float().mean().item(), spectral_db=distance,
                   spectral_share=distance / max(spectral_distance_db(audio, lm._decode(unrelated.to(lm.device))),
                                                 1e-9),
                   steps=steps)


def _guided(logits: torch.Tensor, guidance: float) -> torch.Tensor:
    return torch.lerp(logits[1:], logits[:1], guidance)


def spectral_distance_db(reference, other, n_fft: int = 512, floor_db: float = -60.0) -> float:
    """RMS over time-frequency bins of the difference of two signals' log magnitudes (dB), each bin floored at
    ``floor_db`` under the reference's peak (silence's noise is not heard). Arrays ``[channels, samples]``."""
    spectra = [torch.stft(torch.as_tensor(audio, dtype=torch.float32).reshape(-1, audio.shape[-1]), n_fft,
                          window=torch.hann_window(n_fft), return_complex=True).abs() for audio in (reference, other)]
    floor = spectra[0].max().clamp_min(1e-12) * 10 ** (floor_db / 20)
    decibels = [20 * torch.log10(spectrum.clamp_min(floor)) for spectrum in spectra]
    return (decibels[0] - decibels[1]).pow(2).mean().sqrt().item()
