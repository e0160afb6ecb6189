"""The converted model is audiocraft's model: same logits, same codes, same audio, same greedy tokens."""

import numpy as np
import pytest
import torch
from fixtures.one_take import one_take
from fixtures.tiny_audiocraft import audiocraft_greedy_tokens, audiocraft_logits

PROMPT = "rain on a tin roof"


def our_logits(generator, codes: torch.Tensor, text: str | None) -> torch.Tensor:
    """Logits at every position ``[1, K, S, card]``, fed one step at a time through the KV cache."""
    memory = generator._text_memory(text, guidance=1.0)  # the conditional row alone
    state = generator.decoder.start(memory, batch=1, max_len=codes.shape[-1])
    return torch.stack([generator.decoder.step(state, codes[..., t:t + 1]) for t in range(codes.shape[-1])], dim=2)


@pytest.mark.parametrize("text", [PROMPT, None], ids=["text", "null-condition"])
def test_logits_match_audiocraft(tiny, generator, text):
    codes = torch.randint(0, generator.special_token, (1, generator.num_codebooks, 16),
                          generator=torch.Generator().manual_seed(1))
    codes[:, :, 0] = generator.special_token  # the pattern's first step is all special tokens
    reference = audiocraft_logits(tiny, codes, [text] if text else None)
    ours = our_logits(generator, codes, text)
    assert ours.shape == reference.shape
    assert (ours - reference).abs().max().item() <= 1e-4


def test_prompt_prefill_matches_stepping(generator):
    """Feeding a prompt at once (the continuation path) gives the logits of feeding it step by step."""
    codes = torch.randint(0, generator.special_token, (1, generator.num_codebooks, 9),
                          generator=torch.Generator().manual_seed(2))
    stepped = our_logits(generator, codes, PROMPT)[:, :, -1]
    state = generator.decoder.start(generator._text_memory(PROMPT, 1.0), batch=1, max_len=9)
    assert (generator.decoder.step(state, codes) - stepped).abs().max().item() <= 1e-5


def test_codec_matches_audiocraft(tiny, generator):
    wav = torch.from_numpy(np.random.default_rng(0).uniform(-0.5, 0.5, (1, 1, 16000)).astype(np.float32))
    with torch.no_grad():
        reference_codes, _ = tiny.compression_model.encode(wav)
        reference_audio = tiny.compression_model.decode(reference_codes)
    ours_codes = generator._encode_prompt(wav[0].numpy())
    assert torch.equal(ours_codes, reference_codes)
    ours_audio = generator._decode(reference_codes)
    assert ours_audio.shape == tuple(reference_audio.shape[1:])
    assert np.abs(ours_audio - reference_audio[0].numpy()).max() <= 1e-4


def test_greedy_tokens_match_audiocraft_generate(tiny, generator):
    from models.sampling import Sampling

    reference = audiocraft_greedy_tokens(tiny, PROMPT, duration=1.0)  # [1, K, 50]
    seen = []
    original = generator._window

    def capture(*args, **kwargs):
        seen.append(original(*args, **kwargs))
        return seen[-1]

    generator._window = capture
    try:
        one_take(generator, PROMPT, 1.0, sampling=Sampling(top_k=1), seed=0)
    finally:
        del generator._window
    assert torch.equal(torch.cat(seen, dim=-1), reference)
