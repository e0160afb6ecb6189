"""daw_plugin.audio against real pedalboard encoding, decoding and resampling (no mocks)."""

import os
import stat
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from pedalboard.io import AudioFile

from daw_plugin.audio import Clip, Region, read_clip, write_clip
from models.errors import UserError

LOSSLESS = ("wav", "flac", "aiff")


def sine(sample_rate, channels, seconds=1.0, freq=440.0, amp=0.5):
    t = np.arange(round(sample_rate * seconds)) / sample_rate
    return Clip(np.repeat((amp * np.sin(2 * np.pi * freq * t))[None], channels, 0).astype(np.float32), sample_rate)


def peak_hz(x, sample_rate):
    return np.argmax(np.abs(np.fft.rfft(x * np.hanning(len(x))))) * sample_rate / len(x)


def rms(x):
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


@pytest.mark.parametrize("fmt", [*LOSSLESS, "ogg", "mp3"])
def test_read_clip_decodes_every_format(tmp_path, fmt):
    src = sine(44100, 2, seconds=2.0)
    with AudioFile(str(tmp_path / f"a.{fmt}"), "w", 44100, 2) as f:
        f.write(src.samples)
    clip = read_clip(tmp_path / f"a.{fmt}")
    assert (clip.channels, clip.sample_rate, clip.samples.dtype) == (2, 44100, np.float32)
    if fmt in LOSSLESS:  # 16-bit integer files by pedalboard's default: exact length, quantised values
        assert clip.frames == src.frames
        np.testing.assert_allclose(clip.samples, src.samples, atol=1e-4)
    else:  # encoder priming/padding adds a few tens of milliseconds
        assert 2.0 <= clip.duration_seconds < 2.1
    assert peak_hz(clip.samples[1], 44100) == pytest.approx(440, abs=2)
    assert rms(clip.samples) == pytest.approx(rms(src.samples), rel=0.1)


@pytest.mark.parametrize(("sample_rate", "channels"), [(44100, 2), (48000, 2), (22050, 1)])
def test_conformed_to_16k_mono(sample_rate, channels):
    src = sine(sample_rate, channels, seconds=1.37)
    out = src.conformed(16000, 1)
    assert (out.channels, out.sample_rate, out.samples.dtype) == (1, 16000, np.float32)
    assert out.frames == round(src.frames * 16000 / sample_rate)
    assert peak_hz(out.samples[0], 16000) == pytest.approx(440, abs=2)
    assert rms(out.samples) == pytest.approx(rms(src.samples), rel=0.1)
    # Lines up with a sine made at 16 kHz, end to end: not shifted by the resampler's latency, no tail lost.
    assert np.abs(out.samples[0] - sine(16000, 1, seconds=1.37).samples[0]).max() < 0.08


def test_wav_keeps_peaks_past_full_scale(tmp_path):
    """Takes are 32-bit float WAV: a generation's peaks above 1.0 survive for finishing to deal with."""
    loud = Clip(np.array([[0.5, 1.7, -2.0, 1e-6]], np.float32), 16000)
    np.testing.assert_array_equal(read_clip(write_clip(loud, tmp_path / "loud.wav")).samples, loud.samples)


def test_upmix_duplicates_and_same_rate_is_identity():
    mono = sine(22050, 1)
    stereo = mono.conformed(22050, 2)
    assert stereo.channels == 2
    np.testing.assert_array_equal(stereo.samples, np.repeat(mono.samples, 2, 0))
    assert mono.resampled(22050) is mono
    np.testing.assert_array_equal(sine(48000, 2).conformed(48000, 2).samples, sine(48000, 2).samples)
    up = mono.conformed(16000, 2)
    np.testing.assert_array_equal(up.samples[0], up.samples[1])


def test_downmix_is_an_average():
    x = sine(44100, 1).samples[0]
    out = Clip(np.stack([x, -x]), 44100).conformed(16000, 1)
    assert out.frames == 16000 and np.abs(out.samples).max() < 1e-6


@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_write_read_round_trip_leaves_no_temp_files(tmp_path, fmt):
    src = sine(48000, 2)
    path = write_clip(src, tmp_path / f"out.{fmt}")
    assert path == tmp_path / f"out.{fmt}" and os.listdir(tmp_path) == [f"out.{fmt}"]
    back = read_clip(path)
    assert (back.channels, back.sample_rate, back.frames) == (2, 48000, src.frames)
    np.testing.assert_allclose(back.samples, src.samples, atol=1e-6 if fmt == "wav" else 1e-6 * 2**8)
    write_clip(sine(48000, 1, freq=1000), path)  # replaces an existing file
    assert read_clip(path).channels == 1 and os.listdir(tmp_path) == [f"out.{fmt}"]


@pytest.mark.parametrize(
    ("name", "clip"),
    [("out.mp3", sine(44100, 2)), ("out.ogg", sine(44100, 2)), ("out.wav", Clip(np.zeros((2, 100), np.float32), 0))],
    ids=["mp3", "ogg", "encoder-fails-midway"],
)
def test_failed_write_keeps_target_and_leaves_no_temp(tmp_path, name, clip):
    (tmp_path / name).write_bytes(b"original")
    with pytest.raises(UserError if name.endswith(("mp3", "ogg")) else ValueError) as info:
        write_clip(clip, tmp_path / name)
    if isinstance(info.value, UserError):
        assert ".wav" in str(info.value) and ".flac" in str(info.value)
    assert os.listdir(tmp_path) == [name] and (tmp_path / name).read_bytes() == b"original"


def test_unwritable_folder_keeps_target(tmp_path):
    (tmp_path / "out.wav").write_bytes(b"original")
    tmp_path.chmod(0o500)
    try:
        if os.access(tmp_path, os.W_OK):
            pytest.skip("this user (root) ignores folder permissions")
        with pytest.raises(OSError):
            write_clip(sine(44100, 1), tmp_path / "out.wav")
    finally:
        tmp_path.chmod(0o700)
    assert os.listdir(tmp_path) == ["out.wav"] and (tmp_path / "out.wav").read_bytes() == b"original"


# Prepended to a child's code: writes past argv[2] bytes then fail (EFBIG), as they fail on a full disk (ENOSPC).
# No root or tmpfs needed; SIGXFSZ is ignored, or the kernel would kill the writer instead of failing the write.
FILE_SIZE_LIMIT = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), int(sys.argv[2])))
"""


@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_a_write_that_fails_for_space_is_an_oserror_and_keeps_the_old_file(tmp_path, fmt):
    """pedalboard writing to a path raised RuntimeError, and lost a last block that failed on close without a word."""
    (tmp_path / f"out.{fmt}").write_bytes(b"original")
    code = FILE_SIZE_LIMIT + textwrap.dedent("""
        import numpy as np
        from daw_plugin.audio import Clip, write_clip
        for frames in (48000, 3000):  # many blocks, and one that only fails as the file is closed
            try:
                write_clip(Clip(np.random.default_rng(0).uniform(-1, 1, (1, frames)).astype(np.float32), 16000),
                           sys.argv[1])
                print("written")
            except OSError as error:
                print(type(error).__name__, error.strerror)
    """)
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / f"out.{fmt}"), "6000"], cwd=os.getcwd(),
                          capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == ["OSError File too large"] * 2, done.stdout + done.stderr
    assert os.listdir(tmp_path) == [f"out.{fmt}"] and (tmp_path / f"out.{fmt}").read_bytes() == b"original"


def test_written_file_has_normal_permissions(tmp_path):
    """Not mkstemp's private 0600: a DAW running as another user must be able to read the take."""
    path = write_clip(sine(44100, 1), tmp_path / "out.wav")
    (tmp_path / "plain.txt").write_text("made the ordinary way")
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)


def test_region_slices_exact_frames():
    clip = sine(44100, 2, seconds=2.0)
    part = clip.region(Region(0.5, 1.0))
    assert part.frames == 22050 and part.sample_rate == 44100
    np.testing.assert_array_equal(part.samples, clip.samples[:, 22050:44100])
    whole = clip.region(Region(0.0, clip.duration_seconds))
    np.testing.assert_array_equal(whole.samples, clip.samples)


@pytest.mark.parametrize(("start", "end"), [(1.5, 2.5), (3.0, 4.0), (1.0, 1.0), (1.2, 0.8), (-0.1, 0.5)])
def test_region_outside_clip_raises(start, end):
    with pytest.raises(UserError, match="outside the clip"):
        sine(44100, 2, seconds=2.0).region(Region(start, end))


@pytest.mark.parametrize("kind", ["missing", "text", "zero-frames", "zero-bytes"])
def test_read_clip_errors_are_one_line(tmp_path, kind):
    path = tmp_path / "bad.wav"
    if kind == "text":
        path.write_text("not audio\nat all\n")
    elif kind == "zero-frames":
        with AudioFile(str(path), "w", 44100, 2):
            pass
    elif kind == "zero-bytes":
        path.write_bytes(b"")
    with pytest.raises(UserError) as info:
        read_clip(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)
