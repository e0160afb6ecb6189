"""Finishing with real pedalboard processing: loudness, true peak, tempo fit, loops, seams, plugins, presets."""

import json

import numpy as np
import pytest

from daw_plugin.audio import Clip
from daw_plugin.finishing import (
    Target,
    estimate_bpm,
    finish,
    integrated_lufs,
    splice,
    to_length,
    true_peak_db,
)
from daw_plugin.presets import PRESETS, PluginSpec, Preset, load_preset, save_preset
from models.errors import UserError

SR = 48000


def music(seconds=10.0, level=0.1, seed=0, channels=2) -> Clip:
    """A bass tone with gated noise: steady enough to measure, busy enough to limit."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = np.sin(2 * np.pi * 110 * t) * 0.2 + rng.normal(0, 0.05, len(t)) * (np.sin(2 * np.pi * 2 * t) > 0)
    return Clip((np.stack([x, x * 0.8][:channels]) * level).astype(np.float32), SR)


def clicks(bpm: float, seconds=8.0) -> Clip:
    x = np.zeros(int(seconds * SR), np.float32)
    burst = (np.hanning(200) * np.sin(np.arange(200) * 0.3)).astype(np.float32)
    for start in np.arange(0, seconds - 0.01, 60 / bpm):
        x[int(start * SR):int(start * SR) + 200] += burst
    return Clip(np.stack([x, x]), SR)


def largest_jump(samples: np.ndarray) -> float:
    return float(np.abs(np.diff(samples, axis=1)).max())


@pytest.mark.parametrize("level", [0.02, 0.1, 2.0], ids=["quiet", "moderate", "hot"])
@pytest.mark.parametrize("target", [-20.0, -14.0])
def test_loudness_lands_on_target_under_a_true_peak_ceiling(level, target):
    preset = Preset("t", target_lufs=target, ceiling_dbtp=-1.0)
    finished = finish(music(level=level), preset, Target(SR))
    assert integrated_lufs(finished.clip) == pytest.approx(target, abs=0.5)
    assert true_peak_db(finished.clip) <= -1.0 + 1e-3
    assert finished.report["loudness_lufs"] == pytest.approx(integrated_lufs(finished.clip), abs=0.05)


def test_limiter_catches_inter_sample_peaks():
    t = np.arange(SR) / SR
    # A sine at fs/4 sampled at 45 degrees: every sample is 0.707 of the real peak, which sits between samples.
    x = np.sin(2 * np.pi * SR / 4 * t + np.pi / 4).astype(np.float32) * 0.99
    clip = Clip(np.stack([x, x]), SR)
    assert np.abs(clip.samples).max() < 0.71 and true_peak_db(clip) > -0.5
    out = finish(clip, Preset("t", ceiling_dbtp=-1.0), Target(SR)).clip
    assert true_peak_db(out) <= -1.0 + 1e-3


def test_continuation_matches_the_region_loudness():
    region = music(seconds=4.0, level=0.3, seed=1)
    finished = finish(music(level=0.02), PRESETS["foley"], Target(SR), reference=region)
    assert integrated_lufs(finished.clip) == pytest.approx(integrated_lufs(region), abs=0.5)


@pytest.mark.parametrize(("source", "host"), [(100.0, 120.0), (128.0, 90.0)])
def test_tempo_fit_gives_whole_bars_at_the_host_tempo(source, host):
    finished = finish(clicks(source, seconds=10.0), PRESETS["music-stem"], Target(SR, bpm=host), source_bpm=source)
    bar = SR * 60 / host * 4
    assert finished.clip.frames % round(bar) == 0 and finished.clip.frames >= round(bar)
    assert finished.report["bars"] == finished.clip.frames // round(bar)
    assert estimate_bpm(finished.clip) == pytest.approx(host, rel=0.02)


def test_tempo_is_estimated_when_not_declared():
    finished = finish(clicks(100.0, seconds=10.0), PRESETS["music-stem"], Target(SR, bpm=120.0))
    assert finished.report["source_bpm"] == pytest.approx(100.0, abs=1.0)
    assert estimate_bpm(finished.clip) == pytest.approx(120.0, rel=0.02)


@pytest.mark.parametrize("bpm", [75.0, 92.0, 128.0, 150.0])
def test_bpm_estimate(bpm):
    assert estimate_bpm(clicks(bpm)) == pytest.approx(bpm, rel=0.01)


def test_short_take_is_looped_up_to_a_bar():
    short = music(seconds=0.7)
    out = to_length(short, SR * 2)
    assert out.frames == SR * 2
    np.testing.assert_array_equal(out.samples[:, short.frames:2 * short.frames], short.samples)


def test_seamless_loop_has_no_click_at_the_wrap():
    t = np.arange(5 * SR) / SR
    take = Clip(np.stack([np.sin(2 * np.pi * 110 * t)] * 2).astype(np.float32) * 0.5, SR)
    crossfade, frames = round(SR * 0.04), SR * 4 + 109  # 109 samples into a 110 Hz cycle: a plain cut clicks
    hard = to_length(take, frames)
    looped = to_length(take, frames, loop_crossfade=crossfade)
    own = largest_jump(take.samples)

    def wrap_jump(clip):
        return float(np.abs(clip.samples[:, 0] - clip.samples[:, -1]).max())

    assert wrap_jump(looped) <= own
    assert wrap_jump(hard) > own  # the plain cut would click: the test can tell


def test_continuation_seam_is_cross_faded_without_a_click():
    """The take's pre-roll (the model's rendering of the region's end) fades in over the region's own tail."""
    whole = music(seconds=3.0, seed=2)
    region = Clip(whole.samples[:, :SR * 2], SR)
    rendering = Clip(whole.samples[:, SR * 2 - 960:] * 0.9 + 0.05, SR)  # offset: an imperfect rendering
    spliced = splice(region, rendering, overlap_seconds=0.02)
    joined = np.concatenate([region.samples[:, :-960], spliced.samples], axis=1)
    hard = np.concatenate([region.samples, rendering.samples[:, 960:]], axis=1)
    own = largest_jump(whole.samples)
    seam = slice(SR * 2 - 960 - 2, SR * 2 + 2)
    assert largest_jump(joined[:, seam]) <= own
    assert largest_jump(hard[:, SR * 2 - 2:SR * 2 + 2]) > own
    np.testing.assert_array_equal(spliced.samples[:, 960:], rendering.samples[:, 960:])


def test_conform_to_host_rate_and_channels():
    mono16k = Clip(music(channels=1).resampled(16000).samples, 16000)
    stereo = finish(mono16k, PRESETS["music-stem"], Target(44100)).clip
    assert (stereo.channels, stereo.sample_rate) == (2, 44100)
    back = finish(stereo, Preset("mono", channels=1), Target(22050)).clip
    assert (back.channels, back.sample_rate, back.frames) == (1, 22050, stereo.frames // 2)


def test_highpass_removes_rumble():
    t = np.arange(SR * 2) / SR
    rumble = Clip(np.sin(2 * np.pi * 15 * t)[None].astype(np.float32) * 0.5, SR)
    out = finish(rumble, Preset("hp", highpass_hz=80.0), Target(SR)).clip
    assert np.abs(out.samples[:, SR:]).max() < 0.05


def test_fades_and_raw():
    take = music(seconds=2.0)
    faded = finish(take, Preset("f", fade_in_ms=50, fade_out_ms=100), Target(SR)).clip
    assert faded.samples[:, 0].max() == 0 and faded.samples[:, -1].max() == 0
    np.testing.assert_array_equal(faded.samples[:, SR:SR + 10], take.samples[:, SR:SR + 10])
    np.testing.assert_array_equal(finish(take, PRESETS["raw"], Target(SR)).clip.samples, take.samples)


def test_plugin_chain_with_builtin_effects():
    take = music(seconds=2.0)
    chain = Preset("c", plugins=(PluginSpec(builtin="Gain", params={"gain_db": -6.0}),
                                 PluginSpec(builtin="Reverb", params={"room_size": 0.8})))
    out = finish(take, chain, Target(SR)).clip
    assert out.frames == take.frames and not np.allclose(out.samples, take.samples * 10 ** (-6 / 20), atol=1e-3)
    gain_only = finish(take, Preset("g", plugins=(PluginSpec(builtin="Gain", params={"gain_db": -6.0}),)), Target(SR))
    np.testing.assert_allclose(gain_only.clip.samples, take.samples * 10 ** (-6 / 20), atol=1e-5)


@pytest.mark.parametrize(("spec", "message"), [
    (PluginSpec(path="/nowhere/Missing.vst3"), "does not exist"),
    (PluginSpec(path="{not_a_plugin}"), "could not be loaded as a plugin"),
    (PluginSpec(builtin="Pedalboard"), "not one of pedalboard's built-in effects"),
    (PluginSpec(builtin="os"), "not one of pedalboard's built-in effects"),
    (PluginSpec(builtin="Reverb", params={"size_of_room": 2}), "Bad settings for Reverb"),
])
def test_plugin_errors_are_one_clear_line(tmp_path, spec, message):
    fake = tmp_path / "Fake.vst3"
    fake.write_text("not a plugin")
    if spec.path == "{not_a_plugin}":
        spec = PluginSpec(path=str(fake))
    with pytest.raises(UserError, match=message) as info:
        finish(music(seconds=0.5), Preset("p", plugins=(spec,)), Target(SR))
    assert "\n" not in str(info.value)


def test_tempo_of_zero_is_refused():
    with pytest.raises(UserError, match="tempo is 0"):
        finish(music(seconds=1.0), PRESETS["music-stem"], Target(SR, bpm=0.0))


def test_user_presets_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    preset = Preset("warm", target_lufs=-16.0, plugins=(PluginSpec(builtin="Reverb", params={"room_size": 0.2}),))
    folder = tmp_path / "daw-plugin" / "presets"
    folder.mkdir(parents=True)
    save_preset(preset, folder / "warm.json")
    assert load_preset("warm") == preset
    assert load_preset(str(folder / "warm.json")) == preset
    assert json.loads((folder / "warm.json").read_text())["target_lufs"] == -16.0
    (folder / "broken.json").write_text('{"target_lufs": -16, "colour": "red"}')
    with pytest.raises(UserError, match="not valid"):
        load_preset("broken")
    with pytest.raises(UserError, match="no preset"):
        load_preset("nonexistent")


@pytest.mark.parametrize("source", [180.0, 200.0])
def test_an_estimate_an_octave_off_still_fits_the_host_tempo(source):
    """Fast material may be read at half time; the fit must not stretch it by a wrong octave."""
    finished = finish(clicks(source, seconds=10.0), PRESETS["music-stem"], Target(SR, bpm=source))
    assert "stretch_factor" not in finished.report or finished.report["stretch_factor"] == pytest.approx(1, abs=0.02)
