"""The engine as a front end drives it (`daw_plugin.Engine`, `Request`, its events), in one run on the CPU
(``--device cuda``: the engine's CUDA path, its LM in float16; the decode table stays on the CPU):

1. time to the first `Preview` event against time to the whole take (`TakeDone`: generated, finished with the
   default preset, saved), the model warm (a warm-up job runs first): on the tests' tiny MusicGen and on a
   MusicGen of musicgen-small's shape (24 x 1024 decoder, t5-base's width, the 32 kHz EnCodec; random weights,
   saved as a transformers folder and named by its path, so nothing is downloaded). On this 2-core CPU a step of
   that shape costs 140-250 ms (docs/PERFORMANCE.md; more when the box is busy), so its take is
   ``--small-seconds`` long (10 s: about 2 minutes); the tiny model's is ``--seconds``;
2. the codec's work for a preview a second, incremental (ours) against re-decoding the whole prefix at each
   preview, for a ``--seconds`` take: `bench/preview.py`'s measure, on the tiny codec and, with ``--small-codec``,
   on musicgen-small's codec shape (decode only; about 3 more minutes here, figures in docs/PERFORMANCE.md);
3. 4 takes as one request (``takes=4``) against 4 requests of one take each, queued together on the same warm
   engine (it runs them one after another), same seeds (take N of a request uses its seed + N - 1), on both
   models: 10 s takes on the tiny one, medians of 5 interleaved runs; ``--batch-seconds`` takes (0.5 s) on
   musicgen-small's shape, one run each (some 50 s).

    python bench/engine.py [--threads 1] [--seconds 30] [--small-seconds 10] [--batch-seconds 0.5] [--small-codec]
                            [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from machine import machine  # bench/ is on sys.path when a script here runs
from preview import decode_row, small_codec, timed

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from daw_plugin import Engine, Request, events  # noqa: E402

SMALL_DECODER = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, ffn_dim=4096, vocab_size=2048)
PROMPT = "dusty boom-bap drum loop 90 bpm"


def tiny_musicgen(workdir: Path) -> Path:
    from fixtures.tiny_musicgen import save_tiny_musicgen

    return save_tiny_musicgen(workdir / "musicgen-tiny")


def small_shape_musicgen(workdir: Path) -> Path:
    """A transformers folder with musicgen-small's decoder and codec shapes and a 30 s window, random weights;
    the text encoder is a one-layer T5 of t5-base's width (its cost is once per take)."""
    from fixtures.tiny_audiocraft import save_tiny_t5
    from transformers import (
        AutoTokenizer,
        EncodecFeatureExtractor,
        GenerationConfig,
        MusicgenDecoderConfig,
        MusicgenForCausalLM,
        MusicgenForConditionalGeneration,
        MusicgenProcessor,
        T5EncoderModel,
    )

    folder, t5_dir = workdir / "musicgen-small-shape", save_tiny_t5(workdir / "t5-768", d_model=768)
    card = SMALL_DECODER["vocab_size"]
    torch.manual_seed(0)
    model = MusicgenForConditionalGeneration(
        text_encoder=T5EncoderModel.from_pretrained(t5_dir), audio_encoder=small_codec(),
        decoder=MusicgenForCausalLM(MusicgenDecoderConfig(**SMALL_DECODER, num_codebooks=4, pad_token_id=card,
                                                          bos_token_id=card, dropout=0.0)))
    model.generation_config = GenerationConfig(do_sample=True, top_k=250, guidance_scale=3.0, max_length=1500,
                                               decoder_start_token_id=card, pad_token_id=card, bos_token_id=card)
    model.save_pretrained(folder)
    MusicgenProcessor(feature_extractor=EncodecFeatureExtractor(feature_size=1, sampling_rate=32000),
                      tokenizer=AutoTokenizer.from_pretrained(t5_dir)).save_pretrained(folder)
    return folder


def request(folder: Path, seconds: float, run: dict, **options) -> Request:
    """A request for ``folder`` (a model named by its path); ``run`` holds the device and threads."""
    return Request(PROMPT, model=str(folder), seconds=seconds, **{"seed": 0} | run | options)


def first_preview(engine: Engine, folder: Path, seconds: float, run: dict) -> tuple[float, float]:
    """Seconds from submit to the first `Preview` event and to the take's `TakeDone`."""
    marks: dict[str, float] = {}

    def on_event(event) -> None:  # on the inference thread, as the panel's would be
        if isinstance(event, events.Preview):
            marks.setdefault("first", time.perf_counter())
        elif isinstance(event, events.TakeDone):
            marks["done"] = time.perf_counter()

    start = time.perf_counter()
    engine.submit(request(folder, seconds, run), on_event=on_event).result()
    return marks["first"] - start, marks["done"] - start


def batched_and_in_a_row(engine: Engine, folder: Path, seconds: float, run: dict, repeats: int, takes: int = 4):
    """Median seconds for one request of ``takes`` takes, and for ``takes`` one-take requests queued together
    (the engine runs them one after another); interleaved, each going first in turn, so a busy moment or a
    drift in the load of a shared machine hits both alike."""
    def batched() -> None:
        assert len(engine.submit(request(folder, seconds, run, takes=takes)).result()) == takes

    def in_a_row() -> None:
        for job in [engine.submit(request(folder, seconds, run, seed=seed)) for seed in range(takes)]:
            job.result()

    samples = {batched: [], in_a_row: []}
    for repeat in range(repeats):
        for way in (batched, in_a_row) if repeat % 2 == 0 else (in_a_row, batched):
            samples[way].append(timed(way))
    return statistics.median(samples[batched]), statistics.median(samples[in_a_row])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--seconds", type=float, default=30.0, help="the tiny model's take and the decode's")
    parser.add_argument("--small-seconds", type=float, default=10.0, help="the musicgen-small shape's take")
    parser.add_argument("--batch-seconds", type=float, default=0.5,
                        help="each take of the musicgen-small shape's 4-take comparison (the tiny model's: 10 s)")
    parser.add_argument("--small-codec", action="store_true", help="add musicgen-small's codec to the decode rows")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from transformers import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    run = {"device": args.device, "threads": args.threads}
    precision = "float16 LM" if args.device == "cuda" else "float32"
    print(f"# engine: {machine(args.device)}, torch {torch.__version__}, {precision}, {args.device.upper()}, "
          f"load average {os.getloadavg()[0]:.1f} at start\n")
    with tempfile.TemporaryDirectory() as workdir:
        work = Path(workdir)
        models = {  # name: (folder, one take's seconds, each of the 4 takes' seconds, repeats of the 4)
            "tiny MusicGen": (tiny_musicgen(work), args.seconds, min(args.seconds, 10.0), 5),
            "musicgen-small shape, random weights": (small_shape_musicgen(work), args.small_seconds,
                                                     args.batch_seconds, 1)}
        with Engine(work / "takes") as engine:
            print("| model | take | first preview | whole take | whole / first |\n|---|---:|---:|---:|---:|")
            for name, (folder, seconds, _, _) in models.items():
                engine.submit(request(folder, 0.5, run)).result()  # warm-up: the load is not timed
                first, whole = first_preview(engine, folder, seconds, run)
                print(f"| {name} | {seconds:g} s | {first:.2f} s | {whole:.2f} s | {whole / first:.0f}x |", flush=True)
            print("\n| model | 4 takes of | takes=4, one request | 4 requests in a row | in a row / takes=4 |"
                  "\n|---|---:|---:|---:|---:|")
            for name, (folder, _, seconds, repeats) in models.items():
                batched, in_a_row = batched_and_in_a_row(engine, folder, seconds, run, repeats)
                print(f"| {name} | {seconds:g} s | {batched:.2f} s | {in_a_row:.2f} s "
                      f"| {in_a_row / batched:.2f}x |", flush=True)
    print(f"\n| codec (decode only, CPU), {args.seconds:g} s | first chunk | whole decode | incremental previews "
          "| prefix re-decoded | prefix / incremental |\n|---|---:|---:|---:|---:|---:|")
    for shape in ("tiny",) + (("musicgen-small codec",) if args.small_codec else ()):
        print(decode_row(shape, args.seconds), flush=True)


if __name__ == "__main__":
    main()
