"""Loading a token model in int8 or bfloat16: quantising and packing its decoder's weights, one after another
(`models.linear.linear` in a loop, as loading did) against side by side (`models.linear.linears`, as it does now);
and the memory a loaded generator holds with the modules' float32 products dropped (as loading does now) or kept.

The weights are those a `CachedDecoder` builds kernels for (fused q/k/v, out, fc1, fc2, cross-attention q and
out per layer, and the heads), from a randomly initialised decoder of musicgen-small's shape (24 layers, 1024
wide, 4 x 2048 codes); the runs alternate, and the table gives medians and the ratio. torch keeps one thread,
as the product chooses for this model on a busy machine; the side-by-side workers are the usable cores left.

For memory, the decoder is saved as a MusicGen folder (random weights, a tiny codec and text encoder) and loaded by
`models.registry.load_generator` in a fresh interpreter per precision and per way; the figures are the process's
resident memory, split into anonymous memory (what only swapping can take back) and pages of the mapped safetensors
file (which the kernel drops under pressure and reads again if touched).

    OMP_NUM_THREADS=1 python bench/packing.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import MusicgenDecoderConfig, MusicgenForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from machine import machine  # noqa: E402  (bench/ is on sys.path when a script here runs)

from models import linear as kernels  # noqa: E402
from models.decoder import _Layer  # noqa: E402
from models.precision import bfloat16_native, int8_available  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# Loads a folder in a precision, keeping the modules' float32 products or not; prints its memory in GB as JSON.
MEMORY = """
import gc, json, sys
import models.decoder
from models.registry import load_generator, resolve
folder, precision, way = sys.argv[1:4]
if way == "kept":
    models.decoder.CachedDecoder.drop_module_weights = lambda self: None
generator = load_generator(resolve(folder), "cpu", None, 1, precision=precision)
gc.collect()
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(json.dumps({key: int(status[key].split()[0]) / 1e6 for key in ("VmRSS", "RssAnon", "RssFile")}))
"""


def decoder_weights() -> list[torch.Tensor]:
    torch.manual_seed(0)
    config = MusicgenDecoderConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, ffn_dim=4096,
                                   vocab_size=2048, num_codebooks=4, pad_token_id=2048, bos_token_id=2048)
    decoder = MusicgenForCausalLM(config).eval()
    weights = [weight for layer in decoder.model.decoder.layers for weight in _Layer.products(layer)]
    return weights + [torch.cat([head.weight.detach() for head in decoder.lm_heads])]


def memory_rows(precisions: list[str]) -> list[str]:
    """Table rows: resident, anonymous and file-backed GB after loading, per precision, dropped against kept."""
    sys.path.insert(0, str(ROOT / "bench"))
    from decode import SHAPES, build  # noqa: E402
    from transformers import EncodecFeatureExtractor, MusicgenProcessor

    decoder, text_width, _ = SHAPES["musicgen-small shape (24 x 1024)"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="daw-plugin-packing-") as scratch:
        folder = Path(scratch) / "musicgen-small-shape"
        model, tokenizer = build(decoder, text_width, Path(scratch), "cpu")
        model.save_pretrained(folder)
        MusicgenProcessor(feature_extractor=EncodecFeatureExtractor(feature_size=1, sampling_rate=16000),
                          tokenizer=tokenizer).save_pretrained(folder)
        del model
        env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
        for precision in ["float32", *precisions]:
            seen = {}
            for way in ("dropped", "kept"):
                done = subprocess.run([sys.executable, "-c", MEMORY, str(folder), precision, way], cwd=ROOT,
                                      env=env, capture_output=True, text=True, check=True)
                seen[way] = json.loads(done.stdout.strip().splitlines()[-1])
            drop, keep = seen["dropped"], seen["kept"]
            rows.append(f"| {precision} | {drop['VmRSS']:.2f} | {drop['RssAnon']:.2f} | {drop['RssFile']:.2f} | "
                        f"{keep['VmRSS']:.2f} | {keep['RssAnon']:.2f} | {keep['RssAnon'] / drop['RssAnon']:.2f}x |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()
    torch.set_num_threads(1)
    weights = decoder_weights()
    count = sum(weight.numel() for weight in weights)
    precisions = [p for p, runs in (("int8", int8_available), ("bfloat16", bfloat16_native)) if runs()]
    print(f"Machine: {machine('cpu')}; torch {torch.__version__}; {len(weights)} weights, {count / 1e6:.0f} M "
          f"values; workers side by side: {min(len(weights), kernels.usable_core_count())}\n")
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
    print("\n| precision | dropped: resident GB | anonymous | file pages | kept: resident GB | anonymous | "
          "anonymous kept / dropped |\n|---|---:|---:|---:|---:|---:|---:|")
    print("\n".join(memory_rows(precisions)))


if __name__ == "__main__":
    main()
