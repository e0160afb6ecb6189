"""Finishing speed, in multiples of real time on one core, against the obvious alternatives.

- the ``music-stem`` preset on 10 s of 48 kHz stereo, with the take already at the host's tempo and
  with a 100 -> 120 BPM tempo fit;
- tempo fit's stretch: pedalboard's Rubber Band vs librosa's phase vocoder (the usual Python answer);
- the true-peak meter: a 4x polyphase FIR (BS.1770 annex 2's method) vs a windowed-sinc resampler;
- with ``--audacity``, an insert's round trip into a running Audacity (median of 10).

    python bench/finishing.py [--audacity]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daw_plugin.audio import Clip, write_clip  # noqa: E402
from daw_plugin.finishing import Target, finish, true_peak_db  # noqa: E402
from daw_plugin.presets import PRESETS  # noqa: E402

SR, SECONDS = 48000, 10.0


def music(drums: float) -> Clip:
    """A bass line and chord pad at 100 BPM, with noise hits of strength ``drums`` on every beat.

    0.05: a steady stem, peaks about 11 dB over its loudness (light limiting at -14 LUFS / -1 dBTP);
    0.3: a drum-heavy loop, 16 dB (about 3 dB of limiting).
    """
    rng = np.random.default_rng(0)
    t = np.arange(int(SECONDS * SR)) / SR
    beat = (t * 100 / 60) % 1
    pad = sum(np.sin(2 * np.pi * f * t) for f in (220, 277, 330)) * 0.05
    x = 0.3 * np.sin(2 * np.pi * 55 * t) + pad + rng.normal(0, drums, len(t)) * np.exp(-beat * 12)
    return Clip(np.stack([x, 0.9 * x]).astype(np.float32), SR)


def best_seconds(call, repeats: int = 5) -> float:
    call()  # warm-up
    return min(_timed(call) for _ in range(repeats))


def _timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def rows():
    stem, take = PRESETS["music-stem"], music(drums=0.05)
    for name, material in (("steady stem", take), ("drum-heavy loop", music(drums=0.3))):
        matched = best_seconds(lambda m=material: finish(m, stem, Target(SR, bpm=100.0), source_bpm=100.0))
        yield f"music-stem, {name}, tempo already at the host's", SECONDS / matched, None
    fitted = best_seconds(lambda: finish(take, stem, Target(SR, bpm=120.0), seconds=8.0, source_bpm=100.0))

    import librosa
    import pedalboard

    ours = best_seconds(lambda: pedalboard.time_stretch(take.samples, SR, stretch_factor=1.2), repeats=3)
    theirs = best_seconds(lambda: librosa.effects.time_stretch(take.samples, rate=1.2), repeats=3)
    yield "music-stem, steady stem, 100 -> 120 BPM tempo fit", SECONDS / fitted, None
    yield "stretch x1.2: Rubber Band vs librosa phase vocoder", SECONDS / ours, theirs / ours

    polyphase = best_seconds(lambda: true_peak_db(take))
    sinc = best_seconds(lambda: np.abs(take.resampled(SR * 4).samples).max())
    yield "true-peak meter: polyphase FIR vs windowed-sinc resampler", SECONDS / polyphase, sinc / polyphase


def audacity_round_trip(take: Clip) -> float:
    from daw_plugin.hosts.audacity import AudacityHost

    host = AudacityHost()
    host.check()
    with tempfile.TemporaryDirectory() as folder:
        path = write_clip(Clip(take.samples[:, :SR], SR), Path(folder) / "take.wav")
        times = [_timed(lambda: host.insert(path, None, 1.0)) for _ in range(10)]
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audacity", action="store_true", help="also time inserts into a running Audacity")
    args = parser.parse_args()
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core, as the target says
    print(f"# finishing 10 s of 48 kHz stereo on one core ({os.cpu_count()} on the machine)")
    print("| what | x real time | alternative's time / ours |")
    print("|---|---:|---:|")
    for name, speed, ratio in rows():
        print(f"| {name} | {speed:.0f}x | {'' if ratio is None else f'{ratio:.2g}'} |", flush=True)
    if args.audacity:
        print(f"\nAudacity insert round trip (median of 10): {audacity_round_trip(music(0.05)):.0f} ms")


if __name__ == "__main__":
    main()
