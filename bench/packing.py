"""Loading a token model in int8 or bfloat16: quantising and packing its decoder's weights, one after another
(`models.linear.linear` in a loop, as loading did) against side by side (`models.linear.linears`, as it does now).

The weights are those a `CachedDecoder` builds kernels for (fused q/k/v, out, fc1, fc2, cross-attention q and
out per layer, and the heads), from a randomly initialised decoder of musicgen-small's shape (24 layers, 1024
wide, 4 x 2048 codes); the runs alternate, and the table gives medians and the ratio. torch keeps one thread,
as the product chooses for this model on a busy machine; the side-by-side workers are the usable cores left.

    OMP_NUM_THREADS=1 python bench/packing.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from transformers import MusicgenDecoderConfig, MusicgenForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from machine import machine  # noqa: E402  (bench/ is on sys.path when a script here runs)

from models import linear as kernels  # noqa: E402
from models.decoder import _Layer  # noqa: E402
from models.precision import bfloat16_native, int8_available  # noqa: E402


def decoder_weights() -> list[torch.Tensor]:
    torch.manual_seed(0)
    config = MusicgenDecoderConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, ffn_dim=4096,
                                   vocab_size=2048, num_codebooks=4, pad_token_id=2048, bos_token_id=2048)
    decoder = MusicgenForCausalLM(config).eval()
    weights = [weight for layer in decoder.model.decoder.layers for weight in _Layer.products(layer)]
    return weights + [torch.cat([head.weight.detach() for head in decoder.lm_heads])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()
    torch.set_num_threads(1)
    weights = decoder_weights()
    count = sum(weight.numel() for weight in weights)
    precisions = [p for p, runs in (("int8", int8_available), ("bfloat16", bfloat16_native)) if runs()]
    print(f"Machine: {machine('cpu')}; torch {torch.__version__}; {len(weights)} weights, {count / 1e6:.0f} M "
          f"values; workers side by side: {min(len(weights), kernels._usable_cores())}\n")
    print("| precision | one after another s | side by side s | ratio |\n|---|---:|---:|---:|")
    for precision in precisions:
        serial, side = [], []
        for _ in range(options.repeats):
            start = time.perf_counter()
            [kernels.linear(weight, precision) for weight in weights]
            serial.append(time.perf_counter() - start)
            start = time.perf_counter()
            kernels.linears(weights, precision)
            side.append(time.perf_counter() - start)
        one, both = statistics.median(serial), statistics.median(side)
        print(f"| {precision} | {one:.2f} | {both:.2f} | {one / both:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
