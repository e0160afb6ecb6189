"""MusicGen (mono, stereo, melody) through our decode loop: transformers' maths, exact lengths, windows,
melody conditioning, continuation, cancel. Tiny random folders in transformers' format, 1 s windows."""

import numpy as np
import pytest
import torch
from fixtures.one_take import one_take
from fixtures.tiny_musicgen import CHROMA_LENGTH, SAMPLE_RATE, WINDOW_FRAMES

from models.errors import Cancelled, UserError
from models.lm import plan_windows
from models.sampling import Sampling

PROMPT = "dusty drum loop"
GREEDY = Sampling(top_k=1)
STRIDE_SECONDS = 0.6  # MusicGen's share of its window (18 s of 30 s), on the tiny 1 s window


@pytest.fixture(scope="session")
def folders(musicgen_dirs):
    return musicgen_dirs


def _load(folder):
    from models import musicgen

    return musicgen.load(folder, torch.device("cpu"), extend_stride_seconds=STRIDE_SECONDS)


@pytest.fixture(scope="session")
def mono(folders):
    return _load(folders["mono"])


@pytest.fixture(scope="session")
def stereo(folders):
    return _load(folders["stereo"])


@pytest.fixture(scope="session")
def melody_lm(folders):
    return _load(folders["melody"])


@pytest.fixture(scope="session")
def reference(folders):
    """transformers' own modules for each folder, loaded the standard way."""
    from transformers import AutoTokenizer, MusicgenForConditionalGeneration, MusicgenMelodyForConditionalGeneration

    classes = {"mono": MusicgenForConditionalGeneration, "stereo": MusicgenForConditionalGeneration,
               "melody": MusicgenMelodyForConditionalGeneration}
    return {kind: (classes[kind].from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder))
            for kind, folder in folders.items()}


def noise(channels: int, seconds: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.5, 0.5, (channels, round(seconds * SAMPLE_RATE))).astype(np.float32)


def tone(hz: float, seconds: float, channels: int = 1) -> np.ndarray:
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return np.repeat(0.4 * np.sin(2 * np.pi * hz * t)[None], channels, axis=0).astype(np.float32)


def random_codes(lm, frames: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, lm.special_token, (1, lm.num_codebooks, frames), generator=generator)
    codes[:, :, 0] = lm.special_token  # the pattern's first step is all special tokens
    return codes


def stepped_logits(lm, codes, *, memory=None, prefix=None) -> torch.Tensor:
    """Our logits at every position ``[1, K, T, V]``, one step at a time through the KV cache."""
    state = lm.decoder.start(memory, batch=1, max_len=codes.shape[-1], prefix=prefix)
    return torch.stack([lm.decoder.step(state, codes[..., t:t + 1]) for t in range(codes.shape[-1])], dim=2)


def capture_windows(lm):
    """Record the codes every window makes, leaving the generator as it was afterwards (use as a context)."""
    seen, original = [], lm._window

    class Capture:
        def __enter__(self):
            lm._window = lambda *a, **k: seen.append(original(*a, **k)) or seen[-1]
            return seen

        def __exit__(self, *exc):
            del lm._window

    return Capture()


# ---------------------------------------------------------------- transformers' maths


@pytest.mark.parametrize("text", [PROMPT, None], ids=["text", "no-text"])
@pytest.mark.parametrize("kind", ["mono", "stereo"])
def test_logits_match_transformers(request, reference, kind, text):
    lm = request.getfixturevalue(kind)
    model, tokenizer = reference[kind]
    codes = random_codes(lm, 12, seed=1)
    if text:
        inputs = dict(tokenizer([text], return_tensors="pt"))
    else:  # transformers' own null condition (`get_unconditional_inputs`)
        inputs = dict(encoder_outputs=(torch.zeros(1, 1, model.config.text_encoder.hidden_size),),
                      attention_mask=torch.zeros(1, 1, dtype=torch.long))
    with torch.no_grad():
        theirs = model(**inputs, decoder_input_ids=codes.reshape(-1, codes.shape[-1])).logits
    ours = stepped_logits(lm, codes, memory=lm._text_memory(text, guidance=1.0))
    assert (ours - theirs.view_as(ours)).abs().max().item() < 1e-4


@pytest.mark.parametrize("text", [PROMPT, None], ids=["text", "no-text"])
@pytest.mark.parametrize("with_melody", [True, False], ids=["melody", "no-melody"])
def test_melody_logits_match_transformers(melody_lm, reference, text, with_melody):
    """The prefix (chroma, then text) and positions counted over it match transformers' forward."""
    model, tokenizer = reference["melody"]
    chroma = melody_lm.melody_chroma(tone(440.0, 1.0)[0]) if with_melody else None
    inputs = dict(tokenizer([text], return_tensors="pt")) if text else {}
    if chroma is not None:
        inputs["input_features"] = chroma[None]
    elif not text:  # transformers adds its null chroma only beside text; give it explicitly
        inputs["input_features"] = torch.eye(12)[:1][None]
    codes = random_codes(melody_lm, 10, seed=2)
    with torch.no_grad():
        theirs = model(**inputs, decoder_input_ids=codes.reshape(-1, codes.shape[-1])).logits
    conditioning = melody_lm.conditioning(chroma, melody_lm._text_memory(text, 1.0), guided=False)
    ours = stepped_logits(melody_lm, codes, prefix=conditioning.prefix)
    theirs = theirs.view(1, melody_lm.num_codebooks, -1, theirs.shape[-1])[:, :, -codes.shape[-1]:]
    assert conditioning.prefix.shape[1] == CHROMA_LENGTH + (len(tokenizer(text).input_ids) if text else 0)
    assert (ours - theirs).abs().max().item() < 1e-4


@pytest.mark.parametrize("with_melody", [True, False], ids=["melody", "no-melody"])
def test_melody_guidance_rows_match_transformers_generate(melody_lm, reference, with_melody):
    """Conditional and null rows are the ones transformers' generate() builds for guidance."""
    from transformers import GenerationConfig

    model, tokenizer = reference["melody"]
    chroma = melody_lm.melody_chroma(tone(330.0, 1.0)[0]) if with_melody else None
    inputs = tokenizer([PROMPT], return_tensors="pt")
    kwargs = {"attention_mask": inputs["attention_mask"]}
    if chroma is not None:
        kwargs["input_features"] = chroma[None]
    with torch.no_grad():
        theirs = model._prepare_encoder_hidden_states_kwargs_for_generation(
            inputs["input_ids"], kwargs, "input_ids", GenerationConfig(guidance_scale=3.0))["encoder_hidden_states"]
    ours = melody_lm.conditioning(chroma, melody_lm._text_memory(PROMPT, 3.0), guided=True).prefix
    assert ours.shape == theirs.shape
    assert (ours - theirs).abs().max().item() < 1e-5


@pytest.mark.parametrize("kind", ["mono", "stereo", "melody"])
def test_greedy_take_matches_transformers_generate(request, reference, kind):
    """Delay pattern (pairs for stereo), guidance rows and the melody prefix, end to end: the same audio."""
    lm = request.getfixturevalue("melody_lm" if kind == "melody" else kind)
    model, tokenizer = reference[kind]
    inputs, melody = dict(tokenizer([PROMPT], return_tensors="pt")), None
    if kind == "melody":
        melody = tone(440.0, 1.0)
        inputs["input_features"] = lm.melody_chroma(melody[0])[None]
    steps = 40  # generate() counts pattern steps: 37 frames and the pattern's tail of 3
    with torch.no_grad():
        theirs = model.generate(**inputs, do_sample=False, guidance_scale=3.0, max_new_tokens=steps)[0].numpy()
    ours = one_take(lm, PROMPT, (steps - 3) / 50, melody=melody, sampling=Sampling(top_k=1, guidance=3.0))
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_stereo_codes_are_interleaved_per_channel(stereo, reference):
    """Encode: each channel alone through the mono codec, codebooks L0, R0, L1, R1, ...; decode: the reverse."""
    codec = reference["stereo"][0].audio_encoder
    audio = noise(2, 0.4, seed=3)
    codes = stereo._encode_prompt(audio)
    bandwidth = codec.config.target_bandwidths[0]
    with torch.no_grad():
        for channel in (0, 1):
            alone = codec.encode(torch.from_numpy(audio[None, channel:channel + 1]), bandwidth=bandwidth)
            assert torch.equal(codes[:, channel::2], alone.audio_codes[0])
            decoded = codec.decode(codes[None, :, channel::2], [None]).audio_values[0, 0].numpy()
            np.testing.assert_allclose(stereo._decode(codes)[channel], decoded, atol=1e-5)


# ---------------------------------------------------------------- the decode loop


@pytest.mark.parametrize("seconds", [0.37, 1.0, 2.3])
def test_length_is_exact_within_and_past_the_window(mono, seconds):
    audio = one_take(mono, PROMPT, seconds, seed=0)
    assert audio.shape == (1, round(seconds * SAMPLE_RATE))
    assert audio.dtype == np.float32 and np.isfinite(audio).all()


def test_stereo_gives_two_different_channels(stereo):
    audio = one_take(stereo, PROMPT, 1.5, seed=0)
    assert audio.shape == (2, round(1.5 * SAMPLE_RATE))
    assert not np.allclose(audio[0], audio[1], atol=1e-3)


def test_stereo_pairs_are_delayed_together(stereo):
    assert stereo.channels == 2 and stereo.delays == [0, 0, 1, 1, 2, 2, 3, 3]


@pytest.mark.parametrize("kind", ["mono", "stereo", "melody_lm"])
def test_progress_counts_every_window(request, kind):
    lm = request.getfixturevalue(kind)
    steps = []
    with capture_windows(lm) as windows:
        one_take(lm, PROMPT, 2.3, seed=1, on_step=lambda done, total: steps.append((done, total)))
    plan = plan_windows(0, 115, WINDOW_FRAMES, 30)
    total = sum(w.new + 3 for w in plan)  # one step a frame, plus the pattern's tail of 3 in every window
    assert [w.shape[-1] for w in windows] == [w.new for w in plan] == [50, 30, 30, 5]
    assert steps == [(done, total) for done in range(1, total + 1)]


def test_seed_makes_a_take_reproducible(stereo):
    first, again = one_take(stereo, PROMPT, 0.5, seed=7), one_take(stereo, PROMPT, 0.5, seed=7)
    assert np.array_equal(first, again)
    assert not np.allclose(first, one_take(stereo, PROMPT, 0.5, seed=8))


def test_cancel_stops_within_one_step(melody_lm):
    steps = []
    with pytest.raises(Cancelled):
        one_take(melody_lm, PROMPT, 2.0, melody=tone(440.0, 1.0), on_step=lambda done, total: steps.append(done),
                           should_stop=lambda: len(steps) >= 5)
    assert steps == [1, 2, 3, 4, 5]


def test_defaults_come_from_the_folder(mono, stereo, melody_lm):
    for lm in (mono, stereo, melody_lm):
        assert lm.family == "musicgen" and lm.default_guidance == 3.0 and lm.sample_rate == SAMPLE_RATE
        assert lm.window_seconds == 1.0 and lm.dtype == torch.float32
    assert (mono.supports_melody, stereo.supports_melody, melody_lm.supports_melody) == (False, False, True)
    assert (melody_lm.chroma.n_fft, melody_lm.chroma.hop_length, melody_lm.chroma_length) == (2048, 512, CHROMA_LENGTH)
    assert mono.name == "musicgen-mono"


def test_hub_snapshots_are_named_by_their_repo(tmp_path):
    from models.musicgen import display_name

    snapshot = tmp_path / "hub" / "models--facebook--musicgen-stereo-small" / "snapshots" / "0123abcd"
    assert display_name(snapshot) == "facebook/musicgen-stereo-small"
    assert display_name(tmp_path / "my-musicgen") == "my-musicgen"


# ---------------------------------------------------------------- continuation


def test_continuation_starts_at_the_region_end(mono):
    """Only whole frames ending exactly at the region end are used, so the take starts there."""
    region = noise(1, 0.3 + 0.5 / 50, seed=6)  # 15.5 frames
    whole = one_take(mono, None, 0.4, audio_prompt=region, sampling=GREEDY)
    tail = one_take(mono, None, 0.4, audio_prompt=region[:, 320:], sampling=GREEDY)  # the same last 15 frames
    head = one_take(mono, None, 0.4, audio_prompt=region[:, :-320], sampling=GREEDY)  # ends half a frame earlier
    assert whole.shape == (1, round(0.4 * SAMPLE_RATE))
    assert np.array_equal(whole, tail)
    assert not np.allclose(whole, head)


def test_stereo_continuation_past_the_window(stereo):
    region = noise(2, 0.5, seed=7)
    with capture_windows(stereo) as windows:
        audio = one_take(stereo, PROMPT, 1.2, audio_prompt=region, preroll_seconds=0.05, sampling=GREEDY)
    assert audio.shape == (2, round(1.25 * SAMPLE_RATE))
    assert [w.shape[-1] for w in windows] == [30, 30]  # 20 frames of region context, then windows of 30 new
    again = one_take(stereo, PROMPT, 1.2, audio_prompt=region, preroll_seconds=0.05, sampling=GREEDY)
    assert np.array_equal(audio, again)


# ---------------------------------------------------------------- melody


def test_melody_conditions_the_take(melody_lm):
    a, b = tone(261.6, 0.8), tone(370.0, 0.8)  # C and F sharp: different chroma
    first = one_take(melody_lm, PROMPT, 1.0, melody=a, seed=3)
    assert np.array_equal(first, one_take(melody_lm, PROMPT, 1.0, melody=a, seed=3))
    assert not np.allclose(first, one_take(melody_lm, PROMPT, 1.0, melody=b, seed=3))
    assert not np.allclose(first, one_take(melody_lm, PROMPT, 1.0, seed=3))


def test_melody_without_text(melody_lm):
    audio = one_take(melody_lm, None, 0.5, melody=tone(440.0, 0.5, channels=1), seed=0)
    assert audio.shape == (1, SAMPLE_RATE // 2) and np.isfinite(audio).all()


def test_melody_follows_time_across_windows(melody_lm, monkeypatch):
    """Each window gets the chroma of its own span of the take: the region before 0, the melody (looped) after."""
    melody = (np.arange(SAMPLE_RATE * 3 // 4, dtype=np.float32) / SAMPLE_RATE)[None]  # 0.75 s ramp, loops
    region = -np.ones((1, SAMPLE_RATE // 2), np.float32)
    seen = []
    original = melody_lm.melody_chroma
    monkeypatch.setattr(melody_lm, "melody_chroma", lambda audio: seen.append(audio) or original(audio))
    one_take(melody_lm, PROMPT, 1.5, audio_prompt=region, melody=melody, seed=0)
    hop, span = melody_lm.hop_length, WINDOW_FRAMES * melody_lm.hop_length
    starts = [-20, 10, 40]  # frames: 20 of region context, then windows re-prompted with their last 20
    assert len(seen) == len(starts)
    for audio, start in zip(seen, starts, strict=True):
        index = np.arange(start * hop, start * hop + span)
        expected = np.where(index < 0, -1.0, melody[0][index % melody.shape[1]])
        np.testing.assert_array_equal(audio, expected)


def test_melody_on_a_model_without_it_is_refused(mono):
    with pytest.raises(UserError, match="musicgen-mono has no melody conditioning; use a melody model"):
        one_take(mono, PROMPT, 0.5, melody=tone(440.0, 0.5))


def test_empty_melody_is_refused(melody_lm):
    with pytest.raises(UserError, match="melody is empty"):
        one_take(melody_lm, PROMPT, 0.5, melody=np.zeros((1, 0), np.float32))


def test_float16_melody_decoder_follows_float32(folders, melody_lm):
    """CUDA's dtypes (float16 LM, float32 text encoder, codec and projections) on the CPU: the prefix is cast."""
    from models.musicgen import MelodyLM, load_pretrained

    model, tokenizer = load_pretrained(folders["melody"], torch.device("cpu"))
    model.decoder.half()
    half = MelodyLM(model, tokenizer, chroma=melody_lm.chroma, window_seconds=1.0, extend_stride_seconds=STRIDE_SECONDS)
    chroma = melody_lm.melody_chroma(tone(440.0, 1.0)[0])
    codes = random_codes(melody_lm, 6, seed=4)
    logits = [stepped_logits(lm, codes, prefix=lm.conditioning(chroma, lm._text_memory(PROMPT, 1.0), False).prefix)
              for lm in (melody_lm, half)]
    assert half.dtype == torch.float16 and logits[1].dtype == torch.float16
    assert (logits[1].float() - logits[0]).abs().max() < 0.05 * logits[0].abs().max()
    audio = one_take(half, PROMPT, 0.5, melody=tone(440.0, 0.5), seed=0)
    assert audio.dtype == np.float32 and audio.shape == (1, SAMPLE_RATE // 2) and np.isfinite(audio).all()
