"""Finishing a raw generation with pedalboard, by a `Preset`, for a host.

The stages, in order: conform (sample rate, channels) -> high-pass (and DC block) -> the preset's
plugin chain -> tempo fit (stretch to the host BPM, then whole bars, seamless loop) -> loudness ->
true-peak-safe limiter -> fades -> the continuation seam. Each stage reports what it did into the
take's recipe. Tempo fit cuts whole bars from audio the model made long enough (`raw_seconds`), so
a take is never padded with a repeat of itself unless its tempo turned out far from the host's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pedalboard

from daw_plugin.audio import Clip
from daw_plugin.presets import Preset
from models.errors import UserError, notify

LOUDNESS_PASSES = 4  # each pass re-measures after the limiter; 2-3 reach 0.1 LU on real material
TRUE_PEAK_HEADROOM_DB = 0.3  # the limiter's ceiling under the true-peak one: most inter-sample peaks fit in it
OVERSAMPLING = 4  # enough to see inter-sample peaks within a few tenths of a dB (BS.1770 annex 2)
MAX_GAIN_DB = 40.0  # the most a take is raised toward its target: past that it is noise (or an offset) being lifted
MAX_LIMITING_DB = 12.0  # the most the limiter may take off the peaks: more flattens any material audibly
LOUDNESS_TOLERANCE_LU = 1.0  # a take further than this from its target is told to the user
DC_BLOCK_HZ = 10.0  # under hearing: the loudness stage measures and limits music, not an offset
# Tempo fit stretches by host/take tempo; with the take's tempo unknown until it is estimated, the model
# makes this much more than the bars need, so a take up to 15% slower than the host still fills them.
ESTIMATE_MARGIN = 1.15
RAW_SLACK_SECONDS = 0.01  # covers the samples resampling and stretching round away


@dataclass(frozen=True)
class Target:
    """What the host wants: its sample rate, its tempo and bar length when it knows them."""

    sample_rate: int
    bpm: float | None = None
    beats_per_bar: int = 4

    @property
    def bar_seconds(self) -> float:
        if self.bpm is None:
            raise ValueError("a bar's length needs the host's tempo")
        return 60.0 / self.bpm * self.beats_per_bar


def whole_bars(seconds: float, target: Target) -> int:
    """The whole number of bars nearest to ``seconds`` at the target tempo (halves round up), at least one."""
    return max(1, math.floor(seconds / target.bar_seconds + 0.5))


def with_loop(preset: Preset, loop: bool | None) -> Preset:
    """``preset`` with a request's Loop (None: the preset's own). A loop is whole bars at the tempo, so Loop on
    turns tempo fit on too; Loop off keeps the preset's tempo fit, and its fades."""
    if loop is None:
        return preset
    return replace(preset, loop=loop, tempo_fit=preset.tempo_fit or loop)


def fits_tempo(preset: Preset, target: Target, continuation: bool = False) -> bool:
    """Whether tempo fit runs: the preset asks for it, there is a tempo, and it is not a continuation
    (which keeps the timing of the region it continues)."""
    return preset.tempo_fit and target.bpm is not None and not continuation


def raw_seconds(seconds: float, preset: Preset, target: Target, source_bpm: float | None = None,
                continuation: bool = False) -> float:
    """How long the model's take must be for finishing to cut ``seconds`` from it rather than pad it.

    With tempo fit that is the whole bars nearest to ``seconds``, plus the loop's cross-fade (the audio
    past the end that fades into the start), times the stretch: a take slower than the host is sped
    up, and so shortened. An unknown tempo is estimated only once the audio exists, so the model then
    makes `ESTIMATE_MARGIN` more.
    """
    if not fits_tempo(preset, target, continuation) or target.bpm is None:  # (fits_tempo needs a tempo too)
        return seconds
    needed = whole_bars(seconds, target) * target.bar_seconds
    needed += preset.loop_crossfade_ms / 1000 if preset.loop else 0.0
    stretch = target.bpm / source_bpm if source_bpm else ESTIMATE_MARGIN
    return needed * stretch + RAW_SLACK_SECONDS


@dataclass(frozen=True)
class Finished:
    clip: Clip
    report: dict  # what each stage did, for the recipe


def finish(take: Clip, preset: Preset, target: Target, *, seconds: float | None = None,
           source_bpm: float | None = None, reference: Clip | None = None, overlap_seconds: float = 0.0,
           plugins: pedalboard.Pedalboard | None = None) -> Finished:
    """Finish ``take``. ``seconds`` is the length asked for (tempo fit makes it the nearest whole bars;
    default: the take's own). For a continuation, ``reference`` is the region it continues, and the
    take's first ``overlap_seconds`` are the model's own rendering of the region's end (the pre-roll)
    for the seam; the finished take has the region's channels (a mono model's take on both channels
    of a stereo clip). ``plugins`` is the preset's chain already loaded (`load_chain`), to load a VST3
    once for many takes.
    """
    report: dict = {"preset": preset.name}
    clip = take.conformed(target.sample_rate, finished_channels(preset, take.channels, reference))
    if reference is not None:
        reference = reference.conformed(clip.sample_rate, clip.channels)
    samples = _highpass(clip, preset, levelled=_sets_level(preset, reference))
    if preset.plugins:
        samples = (plugins or load_chain(preset))(samples, clip.sample_rate, reset=True)
    clip = Clip(samples, clip.sample_rate)
    if preset.tempo_fit and reference is None:  # a continuation keeps the region's timing
        asked = take.duration_seconds if seconds is None else seconds
        clip = _fit_tempo(clip, preset, target, source_bpm, asked, report)
    clip = _loudness(clip, preset, reference, report)
    if not (preset.loop and "bars" in report):  # fades would put a dip into a seamless loop
        clip = _fades(clip, 0.0 if reference is not None else preset.fade_in_ms, preset.fade_out_ms)
    if reference is not None and overlap_seconds > 0:
        clip = splice(reference, clip, overlap_seconds)
        report["seam_crossfade_ms"] = overlap_seconds * 1000
    return Finished(clip, report)


def finished_channels(preset: Preset, take_channels: int, reference: Clip | None = None) -> int:
    """The preset's channel count, else a continuation's region's (mono or stereo), else the take's own."""
    if preset.channels:
        return preset.channels
    return reference.channels if reference is not None and reference.channels <= 2 else take_channels


def _sets_level(preset: Preset, reference: Clip | None) -> bool:
    return (preset.target_lufs is not None or preset.ceiling_dbtp is not None
            or (preset.match_region_loudness and reference is not None))


def _highpass(clip: Clip, preset: Preset, levelled: bool) -> np.ndarray:
    """The preset's high-pass; a take whose level is set gets at least a DC block, so an offset is
    neither measured as loudness nor limited as peaks. The mean goes first, so the filter does not
    ring on the offset's step at the start."""
    cutoff = max(preset.highpass_hz or 0.0, DC_BLOCK_HZ if levelled else 0.0)
    if not cutoff:
        return clip.samples
    samples = _without_dc(clip.samples) if levelled else clip.samples
    # pedalboard's high-pass is first order; two make the usual 12 dB/octave
    chain = pedalboard.Pedalboard([pedalboard.HighpassFilter(cutoff), pedalboard.HighpassFilter(cutoff)])
    return chain(samples, clip.sample_rate)


def _without_dc(samples: np.ndarray) -> np.ndarray:
    return (samples - samples.mean(axis=1, keepdims=True, dtype=np.float64)).astype(np.float32)


def load_chain(preset: Preset) -> pedalboard.Pedalboard:
    """The preset's plugins, loaded: a missing or broken VST3 is one `UserError` line, before any work."""
    return pedalboard.Pedalboard([spec.load() for spec in preset.plugins])


def _fit_tempo(clip: Clip, preset: Preset, target: Target, source_bpm: float | None, seconds: float,
               report: dict) -> Clip:
    if target.bpm is None:
        report["tempo_fit"] = "skipped: the host has no tempo"
        return clip
    if target.bpm <= 0:
        raise UserError(f"The host's tempo is {target.bpm:g} BPM; set a tempo above 0 in the project.")
    host_bpm, source = target.bpm, source_bpm
    if source is None and (estimate := estimate_bpm(clip)) is not None:
        # An estimate can be off by an octave (half or double time), which fit the same bars musically:
        # take the reading closest to the host's tempo, so the stretch is the smallest one.
        source = min((estimate / 2, estimate, estimate * 2), key=lambda bpm: abs(np.log(host_bpm / bpm)))
        report["estimated_bpm"] = round(float(source), 2)
    if source is not None and abs(target.bpm / source - 1) > 1e-3:  # a stretch costs ~0.7 s per 10 s
        stretched = pedalboard.time_stretch(clip.samples, clip.sample_rate, stretch_factor=target.bpm / source)
        clip = Clip(np.ascontiguousarray(stretched, dtype=np.float32), clip.sample_rate)
        report["stretch_factor"] = round(float(target.bpm / source), 4)
    bars = whole_bars(seconds, target)
    frames = round(bars * target.bar_seconds * clip.sample_rate)  # rounded once: many bars stay on the grid
    crossfade = min(round(clip.sample_rate * preset.loop_crossfade_ms / 1000), frames // 2) if preset.loop else 0
    if clip.frames < frames + crossfade:
        notify(f"The take's tempo was far from {target.bpm:g} BPM, so {bars} bar{'s' * (bars > 1)} had to be "
               f"filled by repeating it; give its tempo with --bpm to have enough made.")
        report["repeated_to_fill"] = True
    report["bars"] = bars
    return to_length(clip, frames, crossfade)


def to_length(clip: Clip, frames: int, loop_crossfade: int = 0) -> Clip:
    """Exactly ``frames`` long: trimmed, or repeated when shorter. With ``loop_crossfade`` frames,
    the audio past the end is cross-faded into the start, so the clip loops without a click."""
    samples = clip.samples
    needed = frames + loop_crossfade
    if samples.shape[1] < needed:
        samples = np.tile(samples, (1, -(-needed // samples.shape[1])))
    out = samples[:, :frames].copy()
    if loop_crossfade:
        fade_in, fade_out = _equal_power(loop_crossfade)
        out[:, :loop_crossfade] = out[:, :loop_crossfade] * fade_in + samples[:, frames:needed] * fade_out
    return Clip(out, clip.sample_rate)


def _loudness(clip: Clip, preset: Preset, reference: Clip | None, report: dict) -> Clip:
    """Gain the take to the target loudness, into a brick-wall limiter when its peaks need one.

    Each pass gains the *original* take (so it is limited once, not again and again); when the limiter
    takes loudness back, the next gain comes from the slope measured so far (the secant method). The
    limiter works on samples, 0.3 dB under the ceiling, and a true-peak measurement trims what still
    pokes over between samples, before the loudness is measured, so the passes aim at what is delivered.
    The gain is bounded: at most `MAX_GAIN_DB`, and at most `MAX_LIMITING_DB` into the limiter; a take
    that cannot reach its target so says in one notice.
    """
    target = preset.target_lufs
    if preset.match_region_loudness and reference is not None:
        target = integrated_lufs(reference) or target
    if target is None and preset.ceiling_dbtp is None:
        return clip
    clip = Clip(_without_dc(clip.samples), clip.sample_rate)  # DC a plugin or a loop added is not loudness either
    start = integrated_lufs(clip) if target is not None else None
    source, ceiling = clip, preset.ceiling_dbtp
    most = MAX_GAIN_DB if ceiling is None else min(MAX_GAIN_DB, ceiling - _sample_peak_db(clip) + MAX_LIMITING_DB)
    gain, measured, previous = (0.0 if target is None or start is None else min(target - start, most)), start, None
    for _ in range(LOUDNESS_PASSES):
        clip = Clip((source.samples * 10 ** (gain / 20)).astype(np.float32), source.sample_rate)
        measured = None if start is None else start + gain  # a pure gain moves loudness by exactly its dB
        if ceiling is None:
            break
        if _sample_peak_db(clip) <= ceiling - TRUE_PEAK_HEADROOM_DB:
            clip, trimmed_db = _trim_to_true_peak(clip, ceiling)
            measured = None if measured is None else measured - trimmed_db
            break
        limiter = pedalboard.BrickwallLimiter(ceiling_db=ceiling - TRUE_PEAK_HEADROOM_DB)
        clip, _ = _trim_to_true_peak(Clip(limiter(clip.samples, clip.sample_rate), clip.sample_rate), ceiling)
        if target is None or start is None or (measured := integrated_lufs(clip)) is None \
                or abs(target - measured) < 0.1:
            break
        slope = 1.0 if previous is None else (measured - previous[1]) / (gain - previous[0])
        previous = (gain, measured)
        gain, last = min(gain + (target - measured) / min(max(slope, 0.2), 1.0), most), gain
        if gain == last:  # held at the most gain allowed: another pass would give the same take
            break
    if target is not None:
        report.update(target_lufs=round(float(target), 2), gain_db=round(float(gain), 2),
                      loudness_lufs=_rounded(measured))
        if measured is not None and abs(target - measured) > LOUDNESS_TOLERANCE_LU:
            quiet = start is None or start + MAX_GAIN_DB < target - LOUDNESS_TOLERANCE_LU
            _tell_missed_target(target, measured, quiet=quiet, ceiling=ceiling)
        elif start is None and clip.frames >= 0.4 * clip.sample_rate:  # long enough to measure: it is silence
            notify(f"The take is too quiet to measure (under -70 LUFS), so it was not raised to {target:.1f} LUFS; "
                   "make another take.")
    return clip


def _tell_missed_target(target: float, measured: float, quiet: bool, ceiling: float | None) -> None:
    if quiet or ceiling is None:
        why = f"it is nearly silent, and more than +{MAX_GAIN_DB:g} dB would only lift its noise; make another take"
    else:
        why = f"the {ceiling:g} dBTP ceiling holds it down; raise ceiling_dbtp or lower target_lufs in the preset"
    notify(f"The take reached {measured:.1f} LUFS, not its target {target:.1f}: {why}.")


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), 2)


def integrated_lufs(clip: Clip) -> float | None:
    """BS.1770 integrated loudness; None for silence or audio shorter than one 400 ms block."""
    if clip.frames < 0.4 * clip.sample_rate:
        return None
    import pyloudnorm  # here, not at the top: it imports scipy.signal (~0.5 s), which a first step need not wait on

    loudness = pyloudnorm.Meter(clip.sample_rate).integrated_loudness(clip.samples.T.astype(np.float64))
    return loudness if np.isfinite(loudness) else None


def true_peak_db(clip: Clip) -> float:
    """The peak of the signal between samples too: 4x polyphase oversampling, as BS.1770 annex 2 meters it."""
    from scipy.signal import resample_poly  # see integrated_lufs

    peak = np.abs(resample_poly(clip.samples, OVERSAMPLING, 1, axis=1)).max(initial=0.0)
    return 20 * np.log10(max(peak, 1e-12))


def _sample_peak_db(clip: Clip) -> float:
    return 20 * np.log10(max(float(np.abs(clip.samples).max(initial=0.0)), 1e-12))


def _trim_to_true_peak(clip: Clip, ceiling_db: float) -> tuple[Clip, float]:
    """A static trim if the true peak is over the ceiling; returns the clip and the dB taken off.

    Real audio does not peak more than about 3 dB between its samples, so a take whose samples stay
    further below the ceiling skips the (4x oversampled) measurement.
    """
    if _sample_peak_db(clip) <= ceiling_db - 3.0:
        return clip, 0.0
    over = true_peak_db(clip) - ceiling_db
    if over <= 0:
        return clip, 0.0
    trim = over + 0.01
    return Clip((clip.samples * 10 ** (-trim / 20)).astype(np.float32), clip.sample_rate), trim


def _fades(clip: Clip, fade_in_ms: float, fade_out_ms: float) -> Clip:
    samples = clip.samples.copy()
    fade_in, fade_out = (min(round(clip.sample_rate * ms / 1000), clip.frames) for ms in (fade_in_ms, fade_out_ms))
    if fade_in:
        samples[:, :fade_in] *= _raised_cosine(fade_in)
    if fade_out:
        samples[:, clip.frames - fade_out:] *= _raised_cosine(fade_out)[::-1]
    return Clip(samples, clip.sample_rate)


def _raised_cosine(n: int) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, n, dtype=np.float32))


def splice(reference: Clip, take: Clip, overlap_seconds: float) -> Clip:
    """Cross-fade the region's last ``overlap_seconds`` into the take's first (its pre-roll).

    Both are the same moment of audio, the original and the model's rendering of it, so linear
    (equal-gain) fades keep the level steady; the result starts ``overlap_seconds`` before the region end.
    """
    n = min(round(overlap_seconds * take.sample_rate), reference.frames, take.frames)
    fade_in = np.linspace(0.0, 1.0, n, dtype=np.float32)
    samples = take.samples.copy()
    samples[:, :n] = reference.samples[:, reference.frames - n:] * (1 - fade_in) + samples[:, :n] * fade_in
    return Clip(samples, take.sample_rate)


def _equal_power(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Fades for uncorrelated audio (a loop's end into its start): their powers sum to one."""
    phase = np.linspace(0.0, np.pi / 2, n, dtype=np.float32)
    return np.sin(phase), np.cos(phase)


def estimate_bpm(clip: Clip, low: float = 50.0, high: float = 220.0) -> float | None:
    """Tempo from the autocorrelation of an onset envelope (spectral flux); None if nothing periodic."""
    hop, mono = 256, clip.samples.mean(axis=0)
    frames = len(mono) // hop - 1
    if frames < 16:
        return None
    window = np.hanning(2 * hop)
    spectra = np.abs(np.fft.rfft(np.stack([mono[i * hop:i * hop + 2 * hop] * window for i in range(frames)]), axis=1))
    flux = np.maximum(np.diff(np.log1p(spectra), axis=0), 0).sum(axis=1)
    # Smoothed a little, so a beat period that falls between two whole-frame lags still peaks as high.
    flux = np.convolve(flux - flux.mean(), np.hanning(5), mode="same")
    correlation = np.correlate(flux, flux, mode="full")[len(flux) - 1:]
    rate = clip.sample_rate / hop
    lags = np.arange(int(rate * 60 / high), min(int(rate * 60 / low) + 1, len(correlation)))
    if len(lags) == 0 or correlation[0] <= 0:
        return None
    # Autocorrelation also peaks at twice the beat period; a log-normal prior around 120 BPM (one octave
    # wide, as librosa's tempo estimator uses) picks the beat rather than every other beat.
    prior = np.exp(-0.5 * np.log2(60.0 * rate / lags / 120.0) ** 2)
    best = lags[np.argmax(correlation[lags] * prior)]
    if 0 < best < len(correlation) - 1:  # a parabola through the peak: lags are whole frames, tempos are not
        left, mid, right = correlation[best - 1:best + 2]
        best = best + 0.5 * (left - right) / (left - 2 * mid + right or 1.0)
    return 60.0 * rate / best
