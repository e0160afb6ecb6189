"""Audio in memory: a request continues (or follows the melody of) a `Clip` as it would its file, and every take
keeps a copy of the audio it was conditioned on, so `takes regenerate` works after the original is gone."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from daw_plugin import Clip, Engine, Region, read_clip, write_clip
from daw_plugin.cli import ExitStatus, raw_main
from daw_plugin.request import GenerationRequest
from daw_plugin.takes import list_takes
from models.errors import InvalidRequest


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    pass


def cli(capsys, *argv):
    status = raw_main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert status == ExitStatus.OK, err
    return out.split()


def tone(seconds=1.5, sample_rate=22050, channels=2) -> Clip:
    """Stereo, at another rate than the model's, and louder than 1 in places: float WAV must keep it all."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    samples = np.stack([1.2 * np.sin(2 * np.pi * 220 * (c + 1) * t + 0.1) for c in range(channels)])
    return Clip(samples.astype(np.float32), sample_rate)


def takes_of(engine, out, request) -> list[Path]:
    return [take.path for take in engine.submit(request, out).result()]


def recipe_of(path: Path) -> dict:
    return json.loads(path.with_suffix(".json").read_text())


def audio(path: Path) -> np.ndarray:
    return read_clip(path).samples


def assert_same_takes(first: Path, second: Path) -> None:
    """The same finished and raw audio, to the last bit."""
    for name in (lambda p: p, lambda p: p.with_name(p.stem + ".raw" + p.suffix)):
        np.testing.assert_array_equal(audio(name(first)), audio(name(second)))


def test_a_clip_in_memory_continues_exactly_as_its_file(converted, tmp_path):
    clip = tone()
    path = write_clip(clip, tmp_path / "loop.wav")
    base = dict(prompt="", model=str(converted), seconds=0.3, seed=3, device="cpu", region=Region(0.5, 1.2))
    with Engine(tmp_path / "takes") as engine:
        (from_file,) = takes_of(engine, tmp_path / "file", GenerationRequest(clip=str(path), **base))
        for name, given in (("read", read_clip(path)), ("built", Clip(clip.samples.copy(), clip.sample_rate))):
            (from_memory,) = takes_of(engine, tmp_path / name, GenerationRequest(clip=given, **base))
            assert_same_takes(from_file, from_memory)
    recipe = recipe_of(from_memory)
    # no path for audio in memory: the take's copy of the region it continued is the source
    assert recipe["source"] == {"clip": None, "start_seconds": 0.5, "end_seconds": 1.2}
    assert from_memory.name == "clip-continued-seed3.wav"
    copy = from_memory.parent / recipe["audio"]["source"]
    assert copy.name == "clip-continued-seed3.source.wav"
    kept = read_clip(copy)
    assert kept.sample_rate == clip.sample_rate
    np.testing.assert_array_equal(kept.samples, clip.samples[:, round(0.5 * 22050):round(1.2 * 22050)])
    assert recipe_of(from_file)["source"]["clip"] == str(path.resolve())
    assert [r["id"] for r in list_takes(tmp_path / "read")] == ["clip-continued-seed3"]  # the recipe is valid


def test_a_continuation_regenerates_from_its_copy_when_the_file_is_gone(capsys, converted, tmp_path):
    path = write_clip(tone(seconds=14.0), tmp_path / "song.wav")  # longer than the 12 s a continuation hears
    (first,) = map(Path, cli(capsys, "continue", path, "--model", converted, "--seconds", 0.2, "--seed", 4,
                             "--format", "flac", "--out", tmp_path / "takes"))
    recipe = recipe_of(first)
    assert recipe["audio"]["source"] == "song-continued-seed4.source.wav"  # float WAV, whatever the take's format
    os.remove(path)
    (again,) = map(Path, cli(capsys, "takes", "regenerate", recipe["id"], "--out", tmp_path / "takes"))
    assert again.name == "song-continued-seed4-2.flac"  # named for the original file still
    assert_same_takes(first, again)
    assert (again.parent / recipe_of(again)["audio"]["source"]).is_file()  # the new take keeps its own copy


def test_a_take_from_audio_in_memory_regenerates(capsys, converted, tmp_path):
    given = tone()
    request = GenerationRequest(prompt="", model=str(converted), seconds=0.2, seed=8, device="cpu", clip=given,
                                clip_name="Drums")
    given.samples[:] = 0  # a host reusing its buffer: the request holds its own copy
    np.testing.assert_array_equal(request.clip.samples, tone().samples)
    with Engine(tmp_path) as engine:
        (first,) = takes_of(engine, tmp_path, request)
    assert first.name == "drums-continued-seed8.wav"
    (again,) = map(Path, cli(capsys, "takes", "regenerate", first.parent.name, "--out", tmp_path))
    assert_same_takes(first, again)


def test_an_older_recipe_without_a_copy_regenerates_from_the_original(capsys, converted, tmp_path):
    path = write_clip(tone(), tmp_path / "loop.wav")
    (first,) = map(Path, cli(capsys, "continue", path, "--start", 0.2, "--end", 1.0, "--model", converted,
                             "--seconds", 0.2, "--seed", 2, "--out", tmp_path / "takes"))
    recipe = recipe_of(first)
    copy = first.parent / recipe["audio"].pop("source")
    os.remove(copy)
    first.with_suffix(".json").write_text(json.dumps(recipe))
    (again,) = map(Path, cli(capsys, "takes", "regenerate", recipe["id"], "--out", tmp_path / "takes"))
    assert_same_takes(first, again)
    os.remove(path)  # neither a copy nor the original: one clear error naming the file
    assert raw_main(["takes", "regenerate", recipe["id"], "--out", str(tmp_path / "takes")]) == ExitStatus.BAD_INPUT
    assert "no audio file" in capsys.readouterr().err


def test_a_melody_in_memory_and_its_copy_give_the_take_of_its_file(capsys, musicgen_dirs, tmp_path):
    hum = tone(seconds=3.0, sample_rate=32000, channels=1)
    path = write_clip(hum, tmp_path / "hum.wav")
    base = dict(prompt="jazz", model=str(musicgen_dirs["melody"]), seconds=0.3, seed=1, device="cpu", preset="raw",
                melody_region=Region(2.0, 3.0))
    with Engine(tmp_path) as engine:
        (from_file,) = takes_of(engine, tmp_path / "file", GenerationRequest(melody=str(path), **base))
        (from_memory,) = takes_of(engine, tmp_path / "memory", GenerationRequest(melody=hum, **base))
    assert_same_takes(from_file, from_memory)
    assert recipe_of(from_memory)["melody"] == {"clip": None, "start_seconds": 2.0, "end_seconds": 3.0}
    copy = from_file.parent / recipe_of(from_file)["audio"]["melody"]
    np.testing.assert_array_equal(read_clip(copy).samples, hum.samples[:, 64000:96000])  # the part followed
    os.remove(path)
    (again,) = map(Path, cli(capsys, "takes", "regenerate", from_file.parent.name, "--out", tmp_path / "file"))
    assert_same_takes(from_file, again)


@pytest.mark.parametrize("given, problem", [
    (Clip(np.zeros((1, 0), np.float32), 16000), "holds no audio"),
    (Clip(np.full((1, 100), np.nan, np.float32), 16000), "NaN or infinite"),
    (b"loop.wav", "an audio file's path or a Clip, not a bytes"),
])
def test_audio_in_memory_that_cannot_be_heard_is_refused(converted, given, problem):
    with pytest.raises(InvalidRequest) as refused:
        GenerationRequest(prompt="", model=str(converted), seconds=0.2, clip=given)
    assert refused.value.fields == ("clip",) and problem in str(refused.value)
