"""Milliseconds per decode step: our loop (`models.lm.CodecLM`) vs transformers' `generate()`.

Both run the same weights, batch 1 with classifier-free guidance (two rows), top-k 250 sampling; ours in each
precision this machine runs (`models.precision`), with the quality checks against float32 (`models.quality`)
and the floor set by reading the step's weights at one thread's memory bandwidth.
A step's cost is measured differentially, (T(n2) - T(n1)) / (n2 - n1), so the fixed costs of a
call (text encoding, audio decoding, set-up) cancel out; the table shows medians of interleaved
runs. Shapes: a tiny model, and a randomly initialised one with musicgen-small's decoder
(24 layers, 1024 wide, 16 heads, 4 x 2048 codes).

    OMP_NUM_THREADS=1 python bench/decode.py [--device cpu|cuda] [--repeats 3] [--quality-steps 500]

Then each precision's step at a short and a long cache position (``--positions``, default 25 and 1000: half a
second and 20 s of music at 50 Hz), the cache filled with random keys and values up to there rather than decoded:
a long take's step also reads its whole cache, which the short measure does not show.
It ends with guidance's layout: the two rows (conditional, unconditional) as one product against two one-row
products, per weight shape and precision, and the heads' batched ``matmul(W, x.T)`` against one ``linear``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
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

from models import linear as kernels  # noqa: E402
from models.decoder import CachedDecoder  # noqa: E402
from models.generator import Settings  # noqa: E402
from models.lm import CodecLM  # noqa: E402
from models.precision import bfloat16_cache, bfloat16_native, int8_available  # noqa: E402
from models.quality import compare  # noqa: E402

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


def measure(model, tokenizer, steps: tuple[int, int], repeats: int, device: str,
            precisions: list[str]) -> dict[str, float]:
    """ms per step of our loop in each precision and of generate() (float32), interleaved."""
    inputs = tokenizer([PROMPT], return_tensors="pt").to(device)
    ours = {p: CodecLM(model, tokenizer, window_seconds=30.0, extend_stride_seconds=10.0, precision=p)
            for p in precisions}
    delay = ours[precisions[0]].num_codebooks - 1
    settings = Settings(guidance=3.0, top_k=250)

    def theirs(n):  # generate() counts pattern steps; n steps hold n - delay frames
        with torch.inference_mode():
            model.generate(**inputs, max_new_tokens=n, do_sample=True, top_k=250, guidance_scale=3.0)

    runs = {"generate()": theirs}
    for precision, lm in ours.items():
        runs[precision] = partial(lambda n, lm: lm.generate(PROMPT, (n - delay) / lm.frame_rate, seeds=[0],
                                                            settings=settings), lm=lm)
    for run in runs.values():  # warm-up: first calls allocate and pick kernels
        run(steps[0])
    n1, n2 = steps
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):  # interleaved, so a busy moment on a shared machine hits every mode
        for name, run in runs.items():
            t1 = seconds_for(lambda run=run: run(n1), device)
            t2 = seconds_for(lambda run=run: run(n2), device)
            samples[name].append(1000 * (t2 - t1) / (n2 - n1))
    return {name: statistics.median(values) for name, values in samples.items()}


def at_positions(model, tokenizer, positions: list[int], steps: int, repeats: int,
                 precisions: list[str]) -> dict[tuple[int, str], float]:
    """ms per step of the cached decoder (two guidance rows; no sampling) from each cache position, per precision:
    the cache is filled with random values up to the position (attention's cost does not depend on them), so
    position 1000 costs ``steps`` steps, not a thousand. Interleaved; medians."""
    memory = CodecLM(model, tokenizer, window_seconds=30.0, extend_stride_seconds=10.0)._text_memory(PROMPT, 3.0)
    decoders = {p: CachedDecoder(model.decoder, p) for p in precisions}
    states = {p: decoder.start(memory, batch=2, max_len=max(positions) + steps) for p, decoder in decoders.items()}
    for state in states.values():
        for cache in state.cache:
            cache.normal_()
    config = model.decoder.config
    tokens = torch.randint(0, config.vocab_size, (2, config.num_codebooks, 1))  # any codes: only the time counts

    def run(precision: str, position: int) -> float:
        states[precision].length = position
        start = time.perf_counter()
        with torch.inference_mode():
            for _ in range(steps):
                decoders[precision].step(states[precision], tokens)
        return 1000 * (time.perf_counter() - start) / steps

    samples: dict[tuple[int, str], list[float]] = {(n, p): [] for n in positions for p in precisions}
    for key in samples:  # warm-up
        run(key[1], key[0])
    for _ in range(repeats):
        for position, precision in samples:
            samples[position, precision].append(run(precision, position))
    return {key: statistics.median(values) for key, values in samples.items()}


def step_bytes(model, precision: str) -> int:
    """Bytes of weights one step reads: every per-step product's weights at the precision's width (int8's
    per-row scales are negligible), plus the embeddings' rows and the norms (left out: a few KB)."""
    width = {"float32": 4, "float16": 2, "bfloat16": 2, "int8": 1}[precision]
    core = model.decoder.model.decoder
    names = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "encoder_attn.q_proj",
             "encoder_attn.out_proj", "fc1", "fc2")
    count = sum(layer.get_submodule(name).weight.numel() for layer in core.layers for name in names
                if hasattr(layer, name.split(".")[0]))
    return width * (count + sum(head.weight.numel() for head in model.decoder.lm_heads))


def bandwidth_bytes_per_second(repeats: int = 5) -> float:
    """What one thread reads from memory per second: a sum over 512 MiB (far past the caches), median."""
    big = torch.ones(128 * 2**20)
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        big.sum()
        timings.append(time.perf_counter() - start)
    return big.numel() * 4 / statistics.median(timings)


def layouts(model, repeats: int, precisions: list[str]) -> list[str]:
    """Guidance's two rows as one product vs two one-row products, per weight shape and precision; and the heads'
    batched ``matmul(W, x.T)`` vs one ``linear`` over all codebooks (float32). Table rows, µs medians."""
    decoder = model.decoder
    config = decoder.config
    d, ffn = config.hidden_size, config.ffn_dim
    torch.manual_seed(0)
    shapes = {"qkv": (3 * d, d), "out": (d, d), "fc1": (ffn, d), "fc2": (d, ffn),
              "heads": (config.num_codebooks * config.vocab_size, d)}
    rows = []
    for name, (out, inner) in shapes.items():
        weight = torch.randn(out, inner) / inner ** 0.5
        two, one = torch.randn(2, inner), torch.randn(1, inner)
        for precision in precisions:
            product = kernels.linear(weight, precision)
            both = _microseconds(partial(product, two), repeats)
            apart = _microseconds(lambda product=product, one=one: (product(one), product(one)), repeats)
            rows.append(f"| {name} {out}x{inner} | {precision} | {both:.0f} | {apart:.0f} | {apart / both:.2f}x |")
    heads = decoder.lm_heads
    stacked = torch.stack([head.weight.detach() for head in heads])  # [K, V, D]
    flat = stacked.flatten(0, 1)
    two = torch.randn(2, d)
    batched = _microseconds(lambda: torch.matmul(stacked, two.T).permute(2, 0, 1), repeats)
    linear = _microseconds(lambda: F.linear(two, flat).view(2, len(heads), -1), repeats)
    rows.append(f"| heads: matmul(W, x.T) vs linear | float32 | {batched:.0f} | {linear:.0f} | "
                f"{linear / batched:.2f}x |")
    return rows


def _microseconds(call, repeats: int, inner: int = 20) -> float:
    for _ in range(3):
        call()
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            call()
        timings.append(1e6 * (time.perf_counter() - start) / inner)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quality-steps", type=int, default=500, help="teacher-forced steps of the quality check")
    parser.add_argument("--positions", default="25,1000", help="cache positions of the step-at-a-position measure")
    parser.add_argument("--position-steps", type=int, default=5, help="steps timed from each position")
    parser.add_argument("--shapes", default="tiny,musicgen-small", help="which shapes, by the start of their name")
    args = parser.parse_args()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    cpu = args.device == "cpu"
    precisions = ["float32", *(p for p in ("bfloat16", "int8") if cpu and _runs(p))] if cpu else ["float16"]
    print(f"# decode step, batch 1 with CFG, top-k 250: {machine(args.device)}, torch {torch.__version__}")
    bandwidth = bandwidth_bytes_per_second() if cpu else None
    if bandwidth:
        print(f"# one thread reads {bandwidth / 1e9:.1f} GB/s (sum over 512 MiB); floor = weights read per step / that")
    print("| model | precision | ours ms/step | floor ms | float32 / this | generate() / this | logits max | mean | "
          "greedy agree | spectral dB | share | passes |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    chosen = [name for name in SHAPES if any(name.startswith(s) for s in args.shapes.split(","))]
    layout_rows, position_rows = [], []
    positions = [int(n) for n in args.positions.split(",")]
    with tempfile.TemporaryDirectory() as workdir:
        for name in chosen:
            decoder, text_width, steps = SHAPES[name]
            model, tokenizer = build(decoder, text_width, Path(workdir), args.device)
            timings = measure(model, tokenizer, steps, args.repeats, args.device, precisions)
            reference = CodecLM(model, tokenizer, window_seconds=30.0, extend_stride_seconds=10.0,
                                precision="float32") if cpu else None
            for precision in precisions:
                ms = timings[precision]
                floor = f"{1000 * step_bytes(model, precision) / bandwidth:.3g}" if bandwidth else "-"
                checks = "| - | - | - | - | - | - |"
                if reference is not None and precision != "float32":
                    q = compare(reference, precision, steps=args.quality_steps)
                    checks = (f"| {q.logits_max:.3f} | {q.logits_mean:.4f} | {q.agreement:.3f} | {q.spectral_db:.2f} | "
                              f"{q.spectral_share:.2f} | {'yes' if q.passes() else 'no'} |")
                print(f"| {name} | {precision} | {ms:.2f} | {floor} | {timings[precisions[0]] / ms:.2f}x | "
                      f"{timings['generate()'] / ms:.2f}x {checks}", flush=True)
            print(f"| {name} | generate(), float32 | {timings['generate()']:.2f} | | | | | | | | | |", flush=True)
            if cpu:
                position_rows += _position_rows(name, at_positions(model, tokenizer, positions, args.position_steps,
                                                                   args.repeats, precisions))
            layout_rows += [f"| {name} " + row for row in layouts(model, args.repeats, precisions)]
            del model, reference
    if position_rows:
        print("\n# a step at a short and a long cache position (random cache; decoder only, two rows; ms, medians)")
        print("| model | position | precision | KV cache | ms/step | float32 / this |")
        print("|---|---:|---|---|---:|---:|")
        print("\n".join(position_rows))
    print("\n# guidance's two rows: one product vs two one-row products (µs, medians)")
    print("| model | product | precision | two rows at once | two one-row products | one-row / two-row |")
    print("|---|---|---|---:|---:|---:|")
    print("\n".join(layout_rows))


def _position_rows(name: str, timings: dict[tuple[int, str], float]) -> list[str]:
    rows = []
    for position, precision in timings:
        cache = "bfloat16" if bfloat16_cache(precision, "cpu") else "float32"
        ratio = timings[position, "float32"] / timings[position, precision]
        rows.append(f"| {name} | {position} | {precision} | {cache} | {timings[position, precision]:.2f} | "
                    f"{ratio:.2f}x |")
    return rows


def _runs(precision: str) -> bool:
    return {"bfloat16": bfloat16_native, "int8": int8_available}[precision]()


if __name__ == "__main__":
    main()
