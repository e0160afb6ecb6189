"""EnCodec decoding a chunk at a time: for previews while a take is made, and for its final audio.

A whole take decoded at once costs memory in proportion to its length (about 37 MiB per second with
musicgen-small's codec). Here each chunk of ``chunk_frames`` frames is decoded on its own, with
``left`` frames before it and `lookahead_frames` after it, and only its own samples are kept:

- After it: transformers' ``EncodecDecoder`` is convolutional and, unless built causal, its convolutions
  see a few samples ahead (3 frames for the first kernel of 7, under 2 more for the upsampling stack).
  `lookahead_frames` bounds this from the config, so the samples kept never depend on a missing frame.
- Before it: the decoder's LSTM has unbounded memory in principle, so a chunk whose LSTM starts cold
  differs from the whole decode by an error that decays with the frames of left context. Measured
  (random codes, chunks of 50 frames at three places, three seeds), max |chunk - whole| / peak:

  ========================================  ======  ======  ======  ======  ======
  left context (frames)                       16      24      32      48      64
  tiny test codec (4 filters, hidden 16)    7.9e-4  7.9e-5  1.4e-5  4.4e-7  4.5e-7
  musicgen-small's codec shape, random      1.7e-6  6.1e-7  5.3e-7  5.3e-7  4.6e-7
  ========================================  ======  ======  ======  ======  ======

  From 48 frames on both are at the codec's own float32 noise (a whole decode against itself shifted by a
  frame differs by ~4e-7 of peak). `LEFT_CONTEXT_FRAMES` is 64, a third more than needed, because trained
  weights (not available offline) may remember longer than random ones.

Tolerance: the chunked decode is within 1e-5 of the peak of the whole-sequence decode (-100 dB, under
the 16-bit quantisation step of 3e-5 of full scale), which tests/test_preview.py holds the tiny codecs to.
Chunk boundaries depend only on the take's length, never on when the frames arrived, so previews and the
final audio are the same chunks: concatenated previews equal the returned take exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from models.errors import Cancelled

LEFT_CONTEXT_FRAMES = 64  # see the table above
OnPreview = Callable[[np.ndarray], None]  # the take's next chunk, float32 [channels, samples]


def lookahead_frames(config) -> int:
    """Frames after a sample that can change it, from an ``EncodecConfig`` (0 for a causal decoder).

    Non-causal convolutions pad ``padding_total // 2`` on the right: ``kernel // 2`` samples at their rate
    (times the dilation for the residual blocks); a transposed convolution of kernel ``2 * ratio`` reaches at
    most one input sample ahead. Summed in output samples, rounded up to whole frames.
    """
    if config.use_causal_conv:
        return 0
    step = math.prod(config.upsampling_ratios)  # output samples per sample at the current rate
    ahead = (config.kernel_size // 2) * step
    dilations = [config.dilation_growth_rate ** j for j in range(config.num_residual_layers)]
    for ratio in config.upsampling_ratios:
        ahead += step  # the transposed convolution
        step //= ratio
        ahead += sum((config.residual_kernel_size // 2) * d for d in dilations) * step
    ahead += config.last_kernel_size // 2
    return math.ceil(ahead / math.prod(config.upsampling_ratios))


class ChunkedDecode:
    """Turn a take's codes into samples ``[first_sample, last_sample)`` chunk by chunk, in order.

    ``decode`` maps codes ``[1, K, n]`` to audio ``[channels, n * hop]``; ``total_frames`` is how many frames
    the take's codes will have when complete (the whole decode's right edge). Call `feed` with all complete
    frames so far, as often as convenient; it decodes every chunk whose frames (context included) are there.
    """

    def __init__(self, decode: Callable[[torch.Tensor], np.ndarray], *, hop: int, first_sample: int,
                 last_sample: int, total_frames: int, chunk_frames: int, lookahead: int,
                 left: int = LEFT_CONTEXT_FRAMES, on_chunk: OnPreview | None = None,
                 should_stop: Callable[[], bool] | None = None):
        self.decode, self.hop, self.total_frames = decode, hop, total_frames
        self.chunk_frames, self.lookahead, self.left = chunk_frames, lookahead, left
        self.last_sample = min(last_sample, total_frames * hop)
        self.next_sample = first_sample
        self.on_chunk, self.should_stop = on_chunk, should_stop
        self.chunks: list[np.ndarray] = []

    @property
    def done(self) -> bool:
        return self.next_sample >= self.last_sample

    def _span(self) -> tuple[int, int]:
        """Frames ``[a, b)`` of the next chunk: from the frame holding the next sample, at most chunk_frames."""
        a = self.next_sample // self.hop
        return a, min(a + self.chunk_frames, math.ceil(self.last_sample / self.hop))

    def needs(self) -> int:
        """Complete frames the next chunk waits for (its lookahead included)."""
        return min(self._span()[1] + self.lookahead, self.total_frames)

    def feed(self, codes: torch.Tensor) -> None:
        """Decode (and pass to ``on_chunk``) every chunk that the complete frames ``codes[..., :n]`` allow.

        ``should_stop`` is polled before each chunk: a long take's final decode can be cancelled too."""
        while not self.done and codes.shape[-1] >= self.needs():
            if self.should_stop is not None and self.should_stop():
                raise Cancelled("Generation was cancelled.")
            a, b = self._span()
            start = max(0, a - self.left)
            audio = self.decode(codes[..., start:self.needs()])
            keep_from, keep_to = self.next_sample, min(b * self.hop, self.last_sample)
            # A copy: a view would keep the context's samples alive, and a listener may change what it gets.
            chunk = audio[:, keep_from - start * self.hop: keep_to - start * self.hop].copy()
            self.next_sample = keep_to
            self.chunks.append(chunk)
            if self.on_chunk is not None:
                self.on_chunk(chunk.copy())

    def audio(self, channels: int) -> np.ndarray:
        """Everything decoded, float32 ``[channels, samples]``."""
        if not self.chunks:
            return np.zeros((channels, 0), np.float32)
        return np.concatenate(self.chunks, axis=1)
