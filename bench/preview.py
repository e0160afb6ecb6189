"""Hearing a take while it is made: what chunked decoding (`models.chunked_decode`) costs and saves.

For a 30 s take:

1. time to the first preview against time to the whole take, generating with the tiny MusicGen
   (the whole pipeline: LM steps and codec);
2. the codec's work for a preview a second: incremental chunks (ours) against re-decoding the whole
   prefix at each preview, on the tiny codec and on musicgen-small's codec shape (32 kHz EnCodec,
   random weights, random codes: decode only, as the LM is the same either way);
3. the peak memory of the final decode, whole against chunked (peak RSS growth, each in a fresh process);
4. the same for AudioLDM 2's VAE and vocoder at cvssp/audioldm2's shape (random weights, random latents).

    python bench/preview.py [--threads 1] [--seconds 30]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from machine import machine  # noqa: E402  (bench/ is on sys.path when a script here runs)

from models.chunked_decode import ChunkedDecode, lookahead_frames  # noqa: E402


def tiny_lm(workdir: Path):
    from fixtures.tiny_musicgen import save_tiny_musicgen

    from models import musicgen

    return musicgen.load(save_tiny_musicgen(workdir / "musicgen-tiny"), torch.device("cpu"), extend_stride_seconds=0.6)


def small_codec():
    """musicgen-small's codec (facebook/encodec_32khz's config), random weights."""
    from transformers import EncodecConfig, EncodecModel

    torch.manual_seed(0)
    return EncodecModel(EncodecConfig(
        sampling_rate=32000, audio_channels=1, codebook_size=2048, hidden_size=128, num_filters=64,
        num_lstm_layers=2, num_residual_layers=1, upsampling_ratios=[8, 5, 4, 4], target_bandwidths=[2.2],
        pad_mode="reflect", use_causal_conv=False, use_conv_shortcut=False, normalize=False, trim_right_ratio=1.0,
    )).eval()


def codec_of(shape: str, workdir: Path):
    return tiny_lm(workdir).codec if shape == "tiny" else small_codec()


class AudioLDM2Decode:
    """cvssp/audioldm2's VAE and vocoder shapes behind our `AudioLDM2Generator.decode`, random weights."""

    def __init__(self, seconds: float):
        from types import SimpleNamespace

        from diffusers import AutoencoderKL
        from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

        from models.audioldm2 import AudioLDM2Generator, Transformers5Pipeline

        torch.manual_seed(0)
        vae = AutoencoderKL(block_out_channels=[128, 256, 512], in_channels=1, out_channels=1, latent_channels=8,
                            norm_num_groups=32, down_block_types=["DownEncoderBlock2D"] * 3,
                            up_block_types=["UpDecoderBlock2D"] * 3, layers_per_block=2).eval()
        vocoder = SpeechT5HifiGan(SpeechT5HifiGanConfig(
            model_in_dim=64, sampling_rate=16000, upsample_initial_channel=1024, upsample_rates=[5, 4, 2, 2, 2],
            upsample_kernel_sizes=[16, 16, 8, 4, 4], resblock_kernel_sizes=[3, 7, 11],
            resblock_dilation_sizes=[[1, 3, 5]] * 3, normalize_before=False)).eval()
        pipe = SimpleNamespace(vae=vae, vocoder=vocoder, vae_scale_factor=4, unet=SimpleNamespace(
            config=SimpleNamespace(sample_size=256)))  # what decode() reads: 10.24 s windows
        pipe.mel_spectrogram_to_waveform = lambda mel: Transformers5Pipeline.mel_spectrogram_to_waveform(pipe, mel)
        self.generator = AudioLDM2Generator(pipe, torch.device("cpu"))
        self.latents = torch.randn(1, 8, round(seconds * 25), 16, generator=torch.Generator().manual_seed(0))

    @torch.inference_mode()
    def whole(self) -> None:
        mel = self.generator.pipe.vae.decode(self.latents / self.generator.pipe.vae.config.scaling_factor).sample
        self.generator.pipe.mel_spectrogram_to_waveform(mel)

    def chunked(self) -> None:
        self.generator.decode(self.latents)


class Codec:
    """Decode-only: random codes for ``seconds`` and the two ways of decoding them."""

    def __init__(self, codec, seconds: float):
        self.codec, self.hop = codec, codec.config.hop_length
        self.frame_rate = codec.config.frame_rate
        books = codec.quantizer.get_num_quantizers_for_bandwidth(codec.config.target_bandwidths[0])
        frames = round(seconds * self.frame_rate)
        self.codes = torch.randint(0, codec.config.codebook_size, (1, books, frames),
                                   generator=torch.Generator().manual_seed(0))

    @torch.inference_mode()
    def decode(self, codes):
        return self.codec.decode(codes[None], [None]).audio_values[:, 0].numpy()

    def stream(self) -> ChunkedDecode:
        frames = self.codes.shape[-1]
        return ChunkedDecode(self.decode, hop=self.hop, first_sample=0, last_sample=frames * self.hop,
                             total_frames=frames, chunk_frames=round(self.frame_rate),
                             lookahead=lookahead_frames(self.codec.config))

    def incremental(self) -> None:
        """A preview a second, as `CodecLM.generate` makes them: each decodes its chunk and context only."""
        stream = self.stream()
        for end in range(round(self.frame_rate), self.codes.shape[-1] + 1, round(self.frame_rate)):
            stream.feed(self.codes[..., :end])
        stream.feed(self.codes)

    def prefix(self) -> None:
        """A preview a second made by decoding everything so far again."""
        step = round(self.frame_rate)
        for end in range(step, self.codes.shape[-1] + step, step):
            self.decode(self.codes[..., :end])


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def first_preview_row(seconds: float) -> str:
    with tempfile.TemporaryDirectory() as workdir:
        lm = tiny_lm(Path(workdir))
        lm.generate("warm up", 1.0, seed=0)
        start, first = time.perf_counter(), []
        lm.generate("dusty drum loop", seconds, seed=0,
                    on_preview=lambda chunk: first or first.append(time.perf_counter() - start))
        whole = time.perf_counter() - start
    return (f"| tiny MusicGen (LM + codec) | {seconds:g} s | {first[0]:.2f} s | {whole:.2f} s "
            f"| {whole / first[0]:.0f}x |")


def decode_row(shape: str, seconds: float) -> str:
    with tempfile.TemporaryDirectory() as workdir:
        codec = Codec(codec_of(shape, Path(workdir)), seconds)
        codec.decode(codec.codes[..., :60])  # warm-up
        incremental, prefix = timed(codec.incremental), timed(codec.prefix)
        first = timed(lambda: codec.stream().feed(codec.codes[..., :round(codec.frame_rate) + 10]))
        whole = timed(lambda: codec.decode(codec.codes))
    return (f"| {shape} | {first:.3f} s | {whole:.2f} s | {incremental:.2f} s | {prefix:.2f} s "
            f"| {prefix / incremental:.1f}x |")


def rss_mib() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**20


def peak_memory(shape: str, seconds: float, how: str) -> float:
    """MiB the decode adds to the process's RSS at its peak, sampled every millisecond (torch's ops release the
    GIL); in a fresh process, so that what an earlier decode left in the allocator does not hide it."""
    with tempfile.TemporaryDirectory() as workdir:
        if shape == "audioldm2":
            ldm2 = AudioLDM2Decode(seconds)
            ldm2.generator.decode(ldm2.latents[:, :, :25])  # warm-up: one-time allocations are not the decode's
            return peak_during(ldm2.whole if how == "whole" else ldm2.chunked)
        codec = Codec(codec_of(shape, Path(workdir)), seconds)
        codec.decode(codec.codes[..., :60])

        def chunked():
            stream = codec.stream()
            stream.feed(codec.codes)
            stream.audio(1)

        return peak_during(lambda: codec.decode(codec.codes) if how == "whole" else chunked())


def peak_during(call) -> float:
    before, peak, running = rss_mib(), [0.0], [True]

    def sample():
        while running[0]:
            peak[0] = max(peak[0], rss_mib())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample)
    sampler.start()
    call()
    running[0] = False
    sampler.join()
    return peak[0] - before


def memory_row(shape: str, seconds: float, threads: int) -> str:
    peaks = {}
    for how in ("whole", "chunked"):
        out = subprocess.run([sys.executable, __file__, "--threads", str(threads), "--memory", shape, how,
                              str(seconds)], capture_output=True, text=True, check=True).stdout
        peaks[how] = json.loads(out.strip().splitlines()[-1])
    return (f"| {shape} | {seconds:g} s | {peaks['whole']:.0f} MiB | {peaks['chunked']:.0f} MiB "
            f"| {peaks['whole'] / seconds:.1f} MiB/s |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--audioldm2", action="store_true", help="only AudioLDM 2's decode (slow on a CPU)")
    parser.add_argument("--memory", nargs=3, metavar=("SHAPE", "HOW", "SECONDS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from transformers import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    if args.memory:
        shape, how, seconds = args.memory
        print(json.dumps(peak_memory(shape, float(seconds), how)))
        return
    if args.audioldm2:
        print(f"# AudioLDM 2 decode: {machine('cpu')}, torch {torch.__version__}, float32\n")
        print("| VAE + vocoder | take | whole: peak RSS growth | chunked | whole s | chunked s |"
              "\n|---|---:|---:|---:|---:|---:|")
        ldm2 = AudioLDM2Decode(args.seconds)
        times = timed(ldm2.whole), timed(ldm2.chunked)
        print(memory_row("audioldm2", args.seconds, args.threads) + f" {times[0]:.1f} | {times[1]:.1f} |")
        return
    shapes = ("tiny", "musicgen-small codec")
    print(f"# previews: {machine('cpu')}, torch {torch.__version__}, float32, {args.seconds:g} s of audio\n")
    print("| model | take | first preview | whole take | whole / first |\n|---|---:|---:|---:|---:|")
    print(first_preview_row(args.seconds), flush=True)
    print("\n| codec (decode only) | first chunk | whole decode | incremental previews | prefix re-decoded "
          "| prefix / incremental |\n|---|---:|---:|---:|---:|---:|")
    for shape in shapes:
        print(decode_row(shape, args.seconds), flush=True)
    print("\n| codec | take | final decode whole: peak RSS growth | chunked | whole per second |"
          "\n|---|---:|---:|---:|---:|")
    for shape in shapes:
        print(memory_row(shape, args.seconds, args.threads), flush=True)


if __name__ == "__main__":
    main()
