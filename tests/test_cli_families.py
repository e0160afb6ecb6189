"""`daw-plugin` end to end with each family's tiny model saved in its real format: MusicGen (stereo,
melody) and AudioLDM 2, through the same job runner, recipes and takes library as AudioGen."""

import json

import numpy as np
import pytest
from pedalboard.io import AudioFile
from test_cli import cli, read, write_wav

from daw_plugin.cli import ExitStatus

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def audioldm2(audioldm2_dir):
    return audioldm2_dir


@pytest.fixture(scope="module")
def stereo(musicgen_dirs):
    return musicgen_dirs["stereo"]


@pytest.fixture(scope="module")
def melody(musicgen_dirs):
    return musicgen_dirs["melody"]


def recipe_of(path):
    return json.loads(open(path[:-4] + ".json").read())


def test_audioldm2_takes_are_ranked_by_clap_and_regenerate_alike(capsys, audioldm2, tmp_path):
    status, out, err = cli(capsys, "generate", "thunder", "--model", audioldm2, "--seconds", 0.5, "--takes", 3,
                           "--steps", 4, "--negative-prompt", "hiss", "--seed", 3, "--preset", "raw",
                           "--device", "cpu", "--out", tmp_path, "--json")
    assert status == ExitStatus.OK, err
    takes = [json.loads(line) for line in out.splitlines()]
    scores = [take["score"] for take in takes]
    assert scores == sorted(scores, reverse=True)  # best first
    recipes = [recipe_of(take["path"]) for take in takes]
    assert sorted(r["seed"] for r in recipes) == [3, 4, 5]
    assert [r["seed"] for r in recipes] == [take["seed"] for take in takes]
    for recipe, score in zip(recipes, scores, strict=True):
        assert recipe["family"] == "audioldm2" and recipe["clap_score"] == score
        # what AudioLDM 2 used, the model's own guidance written down; no token sampling options
        assert recipe["parameters"] == {"guidance": 3.5, "steps": 4, "negative_prompt": "hiss"}
        assert f"{recipe['id']}.wav: CLAP score {score:.2f}" in err  # the score for people, on stderr
    first, sample_rate = read(takes[0]["path"])
    assert first.shape == (1, round(0.5 * sample_rate))
    status, out, _ = cli(capsys, "takes", "list", "--dir", tmp_path)
    listed_scores = [line.split("\t")[-1] for line in out.splitlines()[1:]]  # the CLAP column, under a header
    assert status == ExitStatus.OK and sorted(listed_scores) == sorted(f"{score:.2f}" for score in scores)
    status, out, err = cli(capsys, "takes", "regenerate", recipes[0]["id"], "--dir", tmp_path)
    assert status == ExitStatus.OK, err
    assert out.strip().endswith(".wav") and "CLAP score" in err  # stdout carries the path only
    again, _ = read(out.strip())
    assert (again == first).all()


@pytest.mark.parametrize("option", [("--top-k", 20), ("--top-p", 0.9), ("--temperature", 0.5)])
def test_token_sampling_options_are_refused_on_audioldm2(option, capsys, audioldm2, tmp_path, monkeypatch):
    import models.registry

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded before its options were checked")

    monkeypatch.setattr(models.registry, "load_generator", no_loading)
    status, _, err = cli(capsys, "generate", "thunder", "--model", audioldm2, *option, "--out", tmp_path)
    assert status == ExitStatus.BAD_INPUT and f"has no {option[0]}" in err and "AudioGen or MusicGen" in err
    assert len(err.strip().splitlines()) == 1 and not any(tmp_path.iterdir())


def test_audioldm2_continues_a_region_of_a_clip(capsys, audioldm2, tmp_path):
    clip = write_wav(tmp_path / "field.wav", seconds=1.0, sample_rate=44100)
    status, out, err = cli(capsys, "continue", clip, "rain", "--start", 0.2, "--end", 0.9, "--seconds", 0.4,
                           "--model", audioldm2, "--steps", 3, "--device", "cpu", "--out", tmp_path / "takes")
    assert status == ExitStatus.OK, err
    recipe = recipe_of(out.split()[0])
    assert recipe["kind"] == "continue" and recipe["source"]["end_seconds"] == 0.9
    raw, sample_rate = read(out.split()[0][:-4] + ".raw.wav")
    assert raw.shape == (1, round(0.4 * sample_rate))


def test_stereo_musicgen_gives_two_channel_takes(capsys, stereo, tmp_path):
    status, out, err = cli(capsys, "generate", "lo-fi piano", "--model", stereo, "--seconds", 0.4, "--preset", "raw",
                           "--device", "cpu", "--out", tmp_path)
    assert status == ExitStatus.OK, err
    audio, sample_rate = read(out.split()[0])
    assert audio.shape == (2, round(0.4 * sample_rate)) and not (audio[0] == audio[1]).all()
    assert recipe_of(out.split()[0])["family"] == "musicgen"


def test_melody_follows_the_chosen_part_of_a_clip(capsys, melody, tmp_path):
    hum = tmp_path / "hum.wav"  # C for a second and a half, then A
    t = np.arange(int(1.5 * 32000)) / 32000
    with AudioFile(str(hum), "w", 32000, 1) as f:
        f.write(np.concatenate([np.sin(2 * np.pi * 261.63 * t), np.sin(2 * np.pi * 440 * t)])[None].astype("float32"))
    args = ("generate", "jazz", "--model", melody, "--seconds", 0.3, "--preset", "raw", "--seed", 1,
            "--device", "cpu", "--melody", hum)
    takes = {}
    for name, part in (("start", ("--start", 0, "--end", 1)), ("end", ("--start", 2, "--end", 3))):
        status, out, err = cli(capsys, *args, *part, "--out", tmp_path / name)
        assert status == ExitStatus.OK, err
        takes[name] = out.split()[0]
        assert recipe_of(takes[name])["melody"]["clip"] == str(hum.resolve())
    assert not (read(takes["start"])[0] == read(takes["end"])[0]).all()  # another part, another melody
    status, out, err = cli(capsys, "takes", "regenerate", recipe_of(takes["end"])["id"], "--dir", tmp_path / "end")
    assert status == ExitStatus.OK and (read(out.split()[0])[0] == read(takes["end"])[0]).all()
