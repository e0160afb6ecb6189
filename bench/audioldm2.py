"""AudioLDM 2 per step and per take: DPM-Solver++ (our default, 25 steps) vs the pipeline's DDIM (200 steps).

Both schedulers run our denoising loop (`models.audioldm2.denoise`) on the same UNet, batch 1 with
classifier-free guidance (two rows). A step's cost is measured differentially, (T(n2) - T(n1)) / (n2 - n1),
so fixed costs cancel; medians of interleaved runs. A take costs its fixed part (text encoders, GPT-2, VAE,
vocoder; measured on the tiny pipeline only) plus steps x ms/step. The step counts are the ones that give
equal quality with the trained model (the AudioLDM 2 authors' DDIM 200 against DPM-Solver++ 25, as in
Hugging Face's "AudioLDM 2, but faster"): random weights cannot judge quality, so that part is not measured.

Shapes: the tiny test pipeline (`tests/fixtures/tiny_audioldm2.py`, through `models.audioldm2.load`), and a
randomly initialised UNet with ``cvssp/audioldm2``'s published ``unet/config.json`` (346.9 M parameters).
``--memory`` also runs one guided UNet step per length in a fresh process and reports its peak memory.

    python bench/audioldm2.py [--device cpu|cuda] [--steps 3] [--seconds 1.0] [--repeats 3] [--threads N]
                                [--memory 2.56,10.24,40.96]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from diffusers import AudioLDM2UNet2DConditionModel, DDIMScheduler, DPMSolverMultistepScheduler

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fixtures.tiny_audioldm2 import save_tiny_audioldm2  # noqa: E402
from machine import machine, seconds_for  # bench/ is on sys.path when a script here runs

from models.audioldm2 import Condition, denoise, load  # noqa: E402
from models.quiet import local_work  # noqa: E402

PROMPT = "rain on a tin roof"
STEPS_PER_TAKE = {"DPM-Solver++": 25, "DDIM": 200}  # equal quality on the trained model
LATENT_FRAMES_PER_SECOND = 25  # cvssp/audioldm2: 16 kHz / hop 160 / VAE factor 4
TEXT_TOKENS = 16  # a short prompt's T5 length; its cross-attention cost is small either way

# cvssp/audioldm2 unet/config.json (the keys that differ from AudioLDM2UNet2DConditionModel's defaults).
REAL_UNET = dict(
    sample_size=256, in_channels=8, out_channels=8, layers_per_block=2, attention_head_dim=8,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    block_out_channels=(128, 256, 384, 640), cross_attention_dim=[[None, 768, 1024]] * 4,
    transformer_layers_per_block=1,
)
# cvssp/audioldm2 scheduler/scheduler_config.json.
REAL_SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.0015, beta_end=0.0195, beta_schedule="scaled_linear",
                      clip_sample=False, set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon")


def schedulers(config) -> dict:
    return {"DPM-Solver++": DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++"),
            "DDIM": DDIMScheduler.from_config(config)}


def differential(runs: dict, n1: int, n2: int, repeats: int, device: str) -> dict:
    """name -> (median ms per step, median fixed seconds) for ``runs[name](steps)``, interleaved."""
    for run in runs.values():
        run(1)  # warm-up: first calls allocate and pick kernels
    samples = {name: [] for name in runs}
    for _ in range(repeats):  # interleaved, so a busy moment on a shared machine hits both
        for name, run in runs.items():
            t1 = seconds_for(lambda run=run: run(n1), device)
            t2 = seconds_for(lambda run=run: run(n2), device)
            per_step = (t2 - t1) / (n2 - n1)
            samples[name].append((1000 * per_step, t1 - n1 * per_step))
    return {name: tuple(statistics.median(column) for column in zip(*rows, strict=True))
            for name, rows in samples.items()}


def tiny_runs(workdir: Path, device: str) -> dict:
    """Whole takes of the tiny pipeline (text, denoising, VAE, vocoder), one scheduler each."""
    generator = load(save_tiny_audioldm2(workdir / "tiny"), torch.device(device))
    by_name = schedulers(generator.pipe.scheduler.config)

    def run_with(scheduler):
        def run(steps):
            generator.pipe.scheduler = scheduler
            generator.generate(PROMPT, 1.0, steps=steps)
        return run

    return {name: run_with(scheduler) for name, scheduler in by_name.items()}


def full_unet(device: str) -> AudioLDM2UNet2DConditionModel:
    torch.manual_seed(0)
    unet = AudioLDM2UNet2DConditionModel(**REAL_UNET).eval().to(device)
    return unet.half() if device == "cuda" else unet


def full_condition(unet, device: str) -> Condition:
    dtype = unet.dtype
    return Condition(generated=torch.randn(2, 8, 768, device=device, dtype=dtype),
                     text=torch.randn(2, TEXT_TOKENS, 1024, device=device, dtype=dtype),
                     mask=torch.ones(2, TEXT_TOKENS, dtype=torch.long, device=device), guidance=3.5)


def full_runs(seconds: float, device: str) -> dict:
    """The denoising loop alone (no text encoders, VAE or vocoder at full size) on the full-shape UNet."""
    unet = full_unet(device)
    condition = full_condition(unet, device)
    frames = round(seconds * LATENT_FRAMES_PER_SECOND)
    noise = torch.randn(1, 8, frames, 16, generator=torch.Generator().manual_seed(0)).to(device, unet.dtype)

    def run_with(scheduler):
        def run(steps):
            with torch.inference_mode():
                denoise(unet, scheduler, noise, condition, steps=steps)
        return run

    return {name: run_with(scheduler) for name, scheduler in schedulers(REAL_SCHEDULER).items()}


def print_rows(model: str, measured: dict, with_fixed: bool) -> None:
    takes = {}
    for name, (ms_step, fixed) in measured.items():
        steps = STEPS_PER_TAKE[name]
        takes[name] = (fixed if with_fixed else 0.0) + steps * ms_step / 1000
        fixed_text = f"{fixed:.2f}" if with_fixed else "n/a"
        print(f"| {model} | {name} | {ms_step:.1f} | {steps} | {fixed_text} | {takes[name]:.2f} |", flush=True)
    step_ratio = measured["DDIM"][0] / measured["DPM-Solver++"][0]
    take_ratio = takes["DDIM"] / takes["DPM-Solver++"]
    print(f"| {model} | DDIM / DPM-Solver++ | {step_ratio:.2f}x | | | {take_ratio:.1f}x |", flush=True)


def memory_probe(seconds: float, device: str) -> dict:
    """Memory before and at the peak of one guided UNet step at ``seconds``, in a fresh process."""
    unet = full_unet(device)
    condition = full_condition(unet, device)
    noise = torch.randn(1, 8, round(seconds * LATENT_FRAMES_PER_SECOND), 16, device=device, dtype=unet.dtype)
    scheduler = schedulers(REAL_SCHEDULER)["DPM-Solver++"]
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # resets the peak RSS, so building the UNet is not counted
        before = _status_bytes("VmRSS")
    with torch.inference_mode():
        step_s = seconds_for(lambda: denoise(unet, scheduler, noise, condition, steps=1), device)
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else _status_bytes("VmHWM")
    return {"frames": noise.shape[2], "before_mib": before / 2**20, "peak_mib": peak / 2**20, "step_s": step_s}


def _status_bytes(field: str) -> int:
    line = next(line for line in open("/proc/self/status") if line.startswith(field + ":"))
    return int(line.split()[1]) * 1024  # reported in kB


def print_memory(lengths: list[float], device: str) -> None:
    where = "GPU allocated" if device == "cuda" else "process RSS"
    print(f"\n# peak memory of one guided step, full-shape UNet ({where}, MiB)")
    print("| audio s | latent frames | after loading | peak in the step | step's own | step s (one, cold) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for seconds in lengths:
        command = [sys.executable, __file__, "--device", device, "--threads", str(torch.get_num_threads()),
                   "--memory-probe", str(seconds)]
        result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
        print(f"| {seconds:g} | {result['frames']} | {result['before_mib']:.0f} | {result['peak_mib']:.0f} "
              f"| {result['peak_mib'] - result['before_mib']:.0f} | {result['step_s']:.1f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--steps", type=int, default=None, help="steps timed on the full UNet (n2; n1 = 1)")
    parser.add_argument("--seconds", type=float, default=None, help="audio length for the full UNet")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--memory", default="", help="comma-separated lengths in seconds for the memory table")
    parser.add_argument("--memory-probe", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_probe is not None:
        print(json.dumps(memory_probe(args.memory_probe, args.device)))
        return
    on_gpu = args.device == "cuda"
    steps = args.steps or (20 if on_gpu else 3)
    seconds = args.seconds or (10.24 if on_gpu else 1.0)
    dtype = "float16" if on_gpu else "float32"
    print(f"# AudioLDM 2 denoising, batch 1 with CFG: {machine(args.device)}, torch {torch.__version__}, {dtype}")
    print("| model | scheduler | ms/step | steps/take | fixed s/take | s/take |")
    print("|---|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as workdir, local_work(diffusers=True):
        print_rows("tiny, 1 s", differential(tiny_runs(Path(workdir), args.device), 5, 25, args.repeats,
                                             args.device), with_fixed=True)
    print_rows(f"cvssp/audioldm2 UNet shape, {seconds:g} s", differential(
        full_runs(seconds, args.device), 1, steps, args.repeats, args.device), with_fixed=False)
    if args.memory:
        print_memory([float(s) for s in args.memory.split(",")], args.device)


if __name__ == "__main__":
    main()
