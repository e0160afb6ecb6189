"""Milliseconds per decode step: our loop (`models.lm.CodecLM`) vs transformers' `generate()`.

Both run the same weights, batch 1 with classifier-free guidance (two rows), top-k 250 sampling.
A step's cost is measured differentially, (T(n2) - T(n1)) / (n2 - n1), so the fixed costs of a
call (text encoding, audio decoding, set-up) cancel out; the table shows medians of interleaved
runs. Shapes: a tiny model, and a randomly initialised one with musicgen-small's decoder
(24 layers, 1024 wide, 16 heads, 4 x 2048 codes).

    python bench/decode.py [--device cpu|cuda] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch
from transformers import (
    AutoTokenizer,
    EncodecConfig,
    EncodecModel,
    GenerationConfig,
    MusicgenDecoderConfig,
    MusicgenForCausalLM,
    MusicgenForConditionalGeneration,
    T5EncoderModel,
)
from transformers import logging as transformers_logging

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fixtures.tiny_audiocraft import save_tiny_t5  # noqa: E402  (a locally built T5 + tokenizer)
from machine import machine, seconds_for  # bench/ is on sys.path when a script here runs

from models.lm import CodecLM  # noqa: E402
from models.sampling import Sampling  # noqa: E402

PROMPT = "dusty boom-bap drum loop 90 bpm"
SHAPES = {  # name: (decoder config, text width, steps n1, n2 on cpu)
    "tiny (2 x 32)": (dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, ffn_dim=128, vocab_size=64),
                      512, (50, 450)),
    "musicgen-small shape (24 x 1024)": (dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                                              ffn_dim=4096, vocab_size=2048), 768, (8, 28)),
}


def build(decoder: dict, text_width: int, workdir: Path, device: str):
    """A MusicGen model with random weights; the codec is tiny because only the LM's step is timed."""
    torch.manual_seed(0)
    t5_dir = save_tiny_t5(workdir / f"t5-{text_width}", d_model=text_width)
    card = decoder["vocab_size"]
    codec = EncodecConfig(target_bandwidths=[4 * 50 * (card - 1).bit_length() / 1000], sampling_rate=16000,
                          hidden_size=16, num_filters=4, upsampling_ratios=[8, 5, 4, 2], codebook_size=card,
                          use_causal_conv=False, pad_mode="constant", use_conv_shortcut=False)
    model = MusicgenForConditionalGeneration(
        text_encoder=T5EncoderModel.from_pretrained(t5_dir),
        audio_encoder=EncodecModel(codec),
        decoder=MusicgenForCausalLM(MusicgenDecoderConfig(**decoder, num_codebooks=4, pad_token_id=card,
                                                          bos_token_id=card, dropout=0.0)),
    ).eval().to(device)
    for layer in model.audio_encoder.quantizer.layers:  # transformers leaves codebooks zero: every code sounds alike
        layer.codebook.embed.normal_()
    if device == "cuda":
        model.decoder.half()
    model.generation_config = GenerationConfig(do_sample=True, top_k=250, guidance_scale=3.0, max_length=1500,
                                               decoder_start_token_id=card, pad_token_id=card, bos_token_id=card)
    return model, AutoTokenizer.from_pretrained(t5_dir)


def measure(model, tokenizer, steps: tuple[int, int], repeats: int, device: str) -> tuple[float, float]:
    inputs = tokenizer([PROMPT], return_tensors="pt").to(device)
    ours = CodecLM(model, tokenizer, window_seconds=30.0, extend_stride_seconds=10.0)
    delay = ours.num_codebooks - 1

    def theirs(n):  # generate() counts pattern steps; n steps hold n - delay frames
        with torch.inference_mode():
            model.generate(**inputs, max_new_tokens=n, do_sample=True, top_k=250, guidance_scale=3.0)

    def ours_(n):
        ours.generate(PROMPT, (n - delay) / ours.frame_rate, sampling=Sampling(guidance=3.0, top_k=250), seed=0)

    theirs(steps[0]), ours_(steps[0])  # warm-up: first calls allocate and pick kernels
    n1, n2 = steps
    samples = {ours_: [], theirs: []}
    for _ in range(repeats):  # interleaved, so a busy moment on a shared machine hits both
        for run, per_step in samples.items():
            t1 = seconds_for(lambda run=run: run(n1), device)
            t2 = seconds_for(lambda run=run: run(n2), device)
            per_step.append(1000 * (t2 - t1) / (n2 - n1))
    return statistics.median(samples[ours_]), statistics.median(samples[theirs])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    dtype = "float16" if args.device == "cuda" else "float32"
    print(f"# decode step, batch 1 with CFG, top-k 250: {machine(args.device)}, torch {torch.__version__}, {dtype}")
    print("| model | ours ms/step | generate() ms/step | generate() / ours |")
    print("|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as workdir:
        for name, (decoder, text_width, steps) in SHAPES.items():
            model, tokenizer = build(decoder, text_width, Path(workdir), args.device)
            ours, theirs = measure(model, tokenizer, steps, args.repeats, args.device)
            print(f"| {name} | {ours:.2f} | {theirs:.2f} | {theirs / ours:.1f}x |", flush=True)
            del model


if __name__ == "__main__":
    main()
