"""The decode loop: exact lengths, seeds, continuation, windows past the model's length, cancel."""

import threading

import numpy as np
import pytest
import torch
from fixtures.one_take import one_take
from fixtures.tiny_audiocraft import import_audiocraft

from models.errors import Cancelled, UserError
from models.lm import Window, plan_windows
from models.sampling import Sampling

PROMPT = "dog barking"


@pytest.mark.parametrize("seconds", [1.0, 0.73, 0.02])
def test_length_is_exact(generator, seconds):
    audio = one_take(generator, PROMPT, seconds, seed=0)
    assert audio.shape == (1, round(seconds * 16000))
    assert audio.dtype == np.float32 and np.isfinite(audio).all()


def test_frames_are_seconds_times_frame_rate(generator):
    steps = []
    one_take(generator, PROMPT, 1.0, seed=0, on_step=lambda done, total: steps.append((done, total)))
    frames, delay = 50, generator.num_codebooks - 1
    assert steps[-1] == (frames + delay, frames + delay)  # one step a frame, plus the pattern's tail


def test_seed_makes_a_take_reproducible(generator):
    first = one_take(generator, PROMPT, 0.5, seed=7)
    again = one_take(generator, PROMPT, 0.5, seed=7)
    other = one_take(generator, PROMPT, 0.5, seed=8)
    assert np.array_equal(first, again)
    assert not np.allclose(first, other)


def test_sampling_knobs_change_the_take(generator):
    base = one_take(generator, PROMPT, 0.5, seed=3)
    for sampling in (Sampling(top_p=0.5), Sampling(temperature=0.3), Sampling(guidance=1.0), Sampling(top_k=5)):
        assert not np.allclose(one_take(generator, PROMPT, 0.5, seed=3, sampling=sampling), base), sampling


def test_text_changes_the_take(generator):
    greedy = Sampling(top_k=1)
    assert not np.allclose(one_take(generator, "dog barking", 0.5, sampling=greedy),
                           one_take(generator, "rain on a tin roof", 0.5, sampling=greedy))


def test_continuation_matches_audiocraft(tiny, generator):
    """Greedy continuation of a 1 s prompt gives audiocraft's own `generate_continuation` tokens."""
    import_audiocraft()
    from audiocraft.models import AudioGen

    prompt = np.random.default_rng(5).uniform(-0.5, 0.5, (1, 16000)).astype(np.float32)
    reference = AudioGen("tiny", tiny.compression_model, tiny.lm, max_duration=10.0)
    reference.set_generation_params(duration=2.0, use_sampling=False, cfg_coef=3.0)  # prompt included
    with torch.no_grad():
        _, tokens = reference.generate_continuation(torch.from_numpy(prompt)[None], 16000, [PROMPT],
                                                    return_tokens=True)
    new_codes = []
    original = generator._window
    generator._window = lambda *a, **k: new_codes.append(original(*a, **k)) or new_codes[-1]
    try:
        audio = one_take(generator, PROMPT, 1.0, audio_prompt=prompt, sampling=Sampling(top_k=1))
    finally:
        del generator._window
    assert torch.equal(torch.cat(new_codes, -1), tokens[:, :, 50:])
    assert audio.shape == (1, 16000)  # only the new audio


def test_continuation_is_anchored_at_the_region_end(generator):
    """Only whole frames ending exactly at the region end are used, so the take starts there."""
    audio = np.random.default_rng(6).uniform(-0.5, 0.5, (1, 16160)).astype(np.float32)  # 50.5 frames
    greedy = Sampling(top_k=1)
    whole = one_take(generator, None, 0.4, audio_prompt=audio, sampling=greedy)
    tail = one_take(generator, None, 0.4, audio_prompt=audio[:, 160:], sampling=greedy)  # same last 50 frames
    head = one_take(generator, None, 0.4, audio_prompt=audio[:, :16000], sampling=greedy)  # ends 10 ms earlier
    assert np.array_equal(whole, tail)
    assert not np.allclose(whole, head)


def test_region_shorter_than_a_frame_is_refused(generator):
    with pytest.raises(UserError, match="shorter than one frame"):
        one_take(generator, None, 1.0, audio_prompt=np.zeros((1, 100), np.float32))


def test_windows_reprompt_with_the_tail():
    assert plan_windows(0, 1250, 500, 100) == [Window(0, 500)] + [Window(400, 100)] * 7 + [Window(400, 50)]
    assert plan_windows(120, 500, 500, 100) == [Window(120, 380), Window(400, 100), Window(400, 20)]
    sixty = plan_windows(0, 3000, 500, 100)
    assert sum(w.new for w in sixty) == 3000 and all(w.context + w.new <= 500 for w in sixty)


def test_25_seconds_on_a_10_second_model(generator):
    assert generator.window_seconds == 10.0
    totals, windows = set(), []
    original = generator._window
    generator._window = lambda context, new, *a: windows.append((context.shape[-1], new)) or original(context, new, *a)
    try:
        audio = one_take(generator, PROMPT, 25.0, seed=1, on_step=lambda done, total: totals.add(total))
    finally:
        del generator._window
    assert audio.shape == (1, 25 * 16000)
    assert windows == [(0, 500)] + [(400, 100)] * 7 + [(400, 50)]
    assert totals == {1250 + 9 * 3}  # one honest total over all windows


def test_a_minute_in_one_take(generator):
    audio = one_take(generator, PROMPT, 60.0, seed=2)
    assert audio.shape == (1, 60 * 16000) and np.isfinite(audio).all()


def test_cancel_from_another_thread_stops_within_one_step(generator):
    stop, lock = threading.Event(), threading.Lock()
    steps, at_stop, result = [], [], {}

    def on_step(done, total):
        with lock:
            steps.append(done)
            if done == 20 and not stop.is_set():
                threading.Thread(target=lambda: (lock.acquire(), at_stop.append(len(steps)),
                                                 stop.set(), lock.release())).start()

    def work():
        try:
            one_take(generator, PROMPT, 5.0, on_step=on_step, should_stop=stop.is_set)
        except Cancelled as error:
            result["error"] = error

    worker = threading.Thread(target=work)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive()
    assert isinstance(result.get("error"), Cancelled)
    assert len(steps) - at_stop[0] <= 1
    assert len(steps) < 250 + 3


def test_sampling_follows_the_distribution():
    """Draws match the softmax (top-k renormalised) within sampling error, and top-p keeps the nucleus only."""
    from models.sampling import sample

    logits = torch.tensor([[[2.0, 1.0, 0.0, -1.0]]]).expand(1, 20000, 4)  # one take, 20000 codebooks
    generator = [torch.Generator().manual_seed(0)]
    counts = torch.bincount(sample(logits, Sampling(top_k=0), generator).flatten(), minlength=4) / 20000
    assert torch.allclose(counts, logits[0, 0].softmax(-1), atol=0.015)
    top2 = torch.bincount(sample(logits, Sampling(top_k=2), generator).flatten(), minlength=4) / 20000
    assert torch.allclose(top2, torch.tensor([0.731, 0.269, 0.0, 0.0]), atol=0.015)
    nucleus = sample(logits, Sampling(top_p=0.5), generator)  # the first token alone holds 64%
    assert (nucleus == 0).all()


def test_float16_decoder_follows_float32(converted):
    """The dtype plumbing CUDA uses (float16 LM, float32 text encoder and codec), exercised on the CPU.

    CUDA itself cannot run here; this covers the casts around the LM: memory, positions, logits.
    """
    from transformers import AutoTokenizer, MusicgenForConditionalGeneration

    from models.lm import CodecLM

    def load(half: bool) -> CodecLM:
        model = MusicgenForConditionalGeneration.from_pretrained(converted).eval()
        if half:
            model.decoder.half()
        return CodecLM(model, AutoTokenizer.from_pretrained(converted), window_seconds=10, extend_stride_seconds=2)

    full, half = load(False), load(True)
    codes = torch.randint(0, 64, (2, 4, 6), generator=torch.Generator().manual_seed(3))
    logits = []
    for lm in (full, half):
        state = lm.decoder.start(lm._text_memory(PROMPT, 3.0), batch=2, max_len=6)
        logits.append(lm.decoder.step(state, codes))
    assert logits[1].dtype == torch.float16
    assert (logits[1].float() - logits[0]).abs().max() < 0.05 * logits[0].abs().max()
    audio = one_take(half, PROMPT, 0.5, seed=0)
    assert audio.dtype == np.float32 and audio.shape == (1, 8000) and np.isfinite(audio).all()


def test_preroll_renders_the_prompt_end_before_the_new_audio(generator):
    prompt = np.random.default_rng(8).uniform(-0.5, 0.5, (1, 16000)).astype(np.float32)
    plain = one_take(generator, None, 0.5, audio_prompt=prompt, seed=4)
    with_preroll = one_take(generator, None, 0.5, audio_prompt=prompt, preroll_seconds=0.02, seed=4)
    assert with_preroll.shape == (1, 320 + 8000)
    np.testing.assert_array_equal(with_preroll[:, 320:], plain)
