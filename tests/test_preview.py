"""Hearing a take while it is made: previews in order that add up to the take, and the chunked decode
(the same chunks, for previews and the final audio) against a whole-sequence decode."""

import numpy as np
import pytest
import torch
from fixtures.one_take import one_take

from models.chunked_decode import ChunkedDecode, lookahead_frames
from models.sampling import Sampling

PROMPT = "dusty drum loop"
TOLERANCE = 1e-5  # of the whole decode's peak: models/chunked_decode.py says why


def _load(folder):
    from models import musicgen

    return musicgen.load(folder, torch.device("cpu"), extend_stride_seconds=0.6)  # tiny 1 s windows


@pytest.fixture(scope="module")
def lms(musicgen_dirs, generator, one_thread):
    """AudioGen (16 kHz, 10 s window) and MusicGen mono and stereo (32 kHz, 1 s window)."""
    return {"audiogen": generator, "mono": _load(musicgen_dirs["mono"]), "stereo": _load(musicgen_dirs["stereo"])}


def generate_with_previews(lm, seconds, **options):
    """The take, its previews, and the steps done when each preview arrived."""
    previews, steps_at, done = [], [], [0]

    def on_step(d, total):
        done[0] = d

    def on_preview(chunk):
        previews.append(chunk)
        steps_at.append(done[0])

    audio = one_take(lm, PROMPT, seconds, on_step=on_step, on_preview=on_preview, **options)
    return audio, previews, steps_at, done[0]


@pytest.mark.parametrize("kind, seconds", [("audiogen", 3.3), ("mono", 0.8), ("mono", 3.3), ("stereo", 2.5)])
def test_previews_concatenate_to_the_take(lms, kind, seconds):
    """Mono and stereo, within the window and past it (the tiny MusicGen's window is 1 s): the previews come
    while the take is made, about a second each, and add up to exactly the take."""
    lm = lms[kind]
    assert lm.supports_preview
    audio, previews, steps_at, total_steps = generate_with_previews(lm, seconds, seed=4)
    assert audio.shape == (lm.channels, round(seconds * lm.sample_rate))
    assert np.array_equal(np.concatenate(previews, axis=1), audio)
    assert all(p.dtype == np.float32 and p.shape[0] == lm.channels for p in previews)
    assert all(p.shape[1] <= lm.sample_rate for p in previews)  # one second at most
    assert len(previews) == np.ceil(seconds)
    if seconds > 2:
        assert steps_at[0] < total_steps / 2  # heard early, not all at the end
    assert np.array_equal(one_take(lm, PROMPT, seconds, seed=4), audio)  # previews change nothing


def test_previews_of_a_continuation_start_with_the_preroll(lms):
    lm = lms["mono"]
    region = np.random.default_rng(1).uniform(-0.5, 0.5, (1, lm.sample_rate)).astype(np.float32)
    audio, previews, _, _ = generate_with_previews(lm, 1.5, audio_prompt=region, preroll_seconds=0.25,
                                                   sampling=Sampling(top_k=1))
    assert audio.shape == (1, round(1.75 * lm.sample_rate))
    assert np.array_equal(np.concatenate(previews, axis=1), audio)
    assert previews[0].shape[1] >= round(0.25 * lm.sample_rate)  # the preroll comes first, in the first chunk


def test_chunks_decode_only_new_frames_and_their_context(lms):
    """Memory stays flat: every codec call gets at most a chunk plus its context, however long the take."""
    lm = lms["mono"]
    sizes = []
    original = lm._decode
    lm._decode = lambda codes: sizes.append(codes.shape[-1]) or original(codes)
    try:
        one_take(lm, PROMPT, 4.0, seed=1, on_preview=lambda chunk: None)
    finally:
        del lm._decode
    assert max(sizes) <= lm.chunk_frames + 64 + lookahead_frames(lm.codec.config)
    assert sum(sizes) < 4 * 4.0 * lm.frame_rate  # not the prefix again at each preview (that would be ~10x)


def chunked(lm, codes, **options) -> np.ndarray:
    stream = ChunkedDecode(lm._decode, hop=lm.hop_length, first_sample=0, last_sample=codes.shape[-1] * lm.hop_length,
                           total_frames=codes.shape[-1], chunk_frames=lm.chunk_frames,
                           lookahead=lookahead_frames(lm.codec.config), **options)
    stream.feed(codes)
    return stream.audio(lm.channels)


@pytest.mark.parametrize("kind", ["audiogen", "mono", "stereo"])
def test_chunked_decode_matches_the_whole_decode(lms, kind):
    lm = lms[kind]
    shape = (1, lm.num_codebooks, 6 * lm.frame_rate + 7)
    codes = torch.randint(0, lm.codec.config.codebook_size, shape, generator=torch.Generator().manual_seed(0))
    whole = lm._decode(codes)
    peak = np.abs(whole).max()
    assert np.abs(chunked(lm, codes) - whole).max() <= TOLERANCE * peak
    # The context matters: without it (a cold LSTM, no lookahead) the seams are audibly wrong.
    assert np.abs(chunked(lm, codes, left=0) - whole).max() > 100 * TOLERANCE * peak


def test_lookahead_of_musicgen_smalls_codec():
    """3 frames for the first kernel of 7, under 2 more for the upsampling stack; none when causal."""
    from transformers import EncodecConfig

    config = EncodecConfig(sampling_rate=32000, upsampling_ratios=[8, 5, 4, 4], use_causal_conv=False)
    assert lookahead_frames(config) == 5
    config.use_causal_conv = True
    assert lookahead_frames(config) == 0


def test_the_final_decode_can_be_cancelled_between_chunks(lms):
    """Stop asked after the last step: the decode that follows stops before its next chunk."""
    from models.errors import Cancelled

    lm, finished, decoded = lms["mono"], [False], []
    original = lm._decode
    lm._decode = lambda codes: decoded.append(codes.shape[-1]) or original(codes)
    try:
        with pytest.raises(Cancelled):
            one_take(lm, PROMPT, 3.0, seed=1, on_step=lambda done, total: finished.__setitem__(0, done == total),
                        should_stop=lambda: finished[0])
    finally:
        del lm._decode
    assert decoded == []
