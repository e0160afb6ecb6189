"""Model management: `models list / add`, names resolved to folders, and the model's own checks before
it loads. Hub downloads are in test_models_pull.py."""

import json
import os
import shutil

import pytest
from test_cli import cli

from daw_plugin.cli import ExitStatus
from models import registry
from models.catalog import BY_ID, META_LICENSE
from models.formats import detect


@pytest.fixture(autouse=True)
def _own_registrations(tmp_path, monkeypatch):
    monkeypatch.setenv("DAW_PLUGIN_CONFIG", str(tmp_path / "config"))


def listing(capsys):
    status, out, _ = cli(capsys, "models", "list", "--json")
    assert status == ExitStatus.OK
    return {row["name"]: row for row in json.loads(out)}


def test_list_shows_every_known_model_with_its_terms(capsys):
    rows = listing(capsys)
    assert set(BY_ID) <= set(rows)
    for family in ("audiogen", "musicgen", "audioldm2"):
        assert any(row["family"] == family for row in rows.values())
    assert rows["musicgen-stereo-melody-large"]["stereo"] and rows["musicgen-stereo-melody-large"]["melody"]
    assert rows["musicgen-small"]["license"] == META_LICENSE == rows["audiogen-medium"]["license"]
    assert "CC-BY-NC-SA" in rows["audioldm2"]["license"]
    assert not any(row["on_disk"] for row in rows.values())  # a fresh Hugging Face cache
    status, out, _ = cli(capsys, "models", "list")
    assert status == ExitStatus.OK and "CC-BY-NC 4.0" in out and "musicgen-melody" in out


def test_a_model_in_the_hugging_face_cache_is_on_disk_and_runs_offline(capsys, converted, tmp_path):
    """The cache's own layout (refs/main -> snapshots/<commit>), as a finished download leaves it."""
    from huggingface_hub import constants

    repo = constants.HF_HUB_CACHE + "/models--facebook--musicgen-small"
    commit = "0" * 40
    shutil.copytree(converted, f"{repo}/snapshots/{commit}", ignore=shutil.ignore_patterns("daw-plugin.json"))
    os.makedirs(f"{repo}/refs")
    with open(f"{repo}/refs/main", "w") as ref:
        ref.write(commit)
    try:
        assert listing(capsys)["musicgen-small"]["on_disk"]
        status, out, err = cli(capsys, "generate", "kick", "--model", "musicgen-small", "--seconds", 0.3,
                               "--device", "cpu", "--out", tmp_path / "takes")
        assert status == ExitStatus.OK, err
        assert json.loads(open(out.split()[0][:-4] + ".json").read())["family"] == "musicgen"
    finally:
        shutil.rmtree(repo)


def test_add_registers_a_folder_under_a_name(capsys, converted, tiny, tmp_path):
    status, out, err = cli(capsys, "models", "add", converted, "--as", "my-foley")
    assert status == ExitStatus.OK and "audiogen" in out
    rows = listing(capsys)
    assert rows["my-foley"]["on_disk"] and rows["my-foley"]["where"] == str(converted.resolve())
    status, out, err = cli(capsys, "generate", "door", "--model", "my-foley", "--seconds", 0.2, "--device", "cpu",
                           "--out", tmp_path)
    assert status == ExitStatus.OK, err
    # An audiocraft checkpoint is detected too, named after its folder by default.
    status, out, _ = cli(capsys, "models", "add", tiny.folder)
    assert status == ExitStatus.OK and f"added {tiny.folder.name!r}: audiogen (audiocraft format)" in out


@pytest.mark.parametrize("case", ["junk folder", "not a folder", "name taken", "known id", "gone"])
def test_add_refuses_with_one_line(case, capsys, converted, tiny, tmp_path):
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "config.json").write_text('{"model_type": "bert"}')
    argv, expected = {
        "junk folder": (["models", "add", junk], "holds no model this plugin knows"),
        "not a folder": (["models", "add", tmp_path / "none"], "is not a folder"),
        "name taken": (["models", "add", tiny.folder, "--as", "taken"], "already names"),
        "known id": (["models", "add", converted, "--as", "musicgen-small"], "known id"),
        "gone": (["generate", "x", "--model", "moved"], "which is gone"),
    }[case]
    assert cli(capsys, "models", "add", converted, "--as", "taken")[0] == ExitStatus.OK
    moved = tmp_path / "moved"
    shutil.copytree(converted, moved)
    assert cli(capsys, "models", "add", moved)[0] == ExitStatus.OK
    shutil.rmtree(moved)
    status, out, err = cli(capsys, *argv)
    assert status == ExitStatus.BAD_INPUT and expected in err
    assert len(err.strip().splitlines()) == 1


def test_offline_a_missing_model_names_pull_and_add(capsys, tmp_path):
    status, _, err = cli(capsys, "generate", "x", "--model", "musicgen-small", "--out", tmp_path)
    assert status == ExitStatus.BAD_INPUT
    assert "models pull musicgen-small" in err and "models add PATH" in err and len(err.splitlines()) == 1
    status, _, err = cli(capsys, "models", "pull", "musicgen-large")
    assert status == ExitStatus.BAD_INPUT and "models pull musicgen-large" in err


def test_a_half_copied_folder_is_refused_before_loading(capsys, converted, tmp_path):
    half = tmp_path / "half"
    shutil.copytree(converted, half, ignore=shutil.ignore_patterns("*.safetensors"))
    status, _, err = cli(capsys, "generate", "x", "--model", half, "--out", tmp_path / "out")
    assert status == ExitStatus.BAD_INPUT and "missing weight files" in err


def test_formats_are_told_apart(converted, tiny, tmp_path):
    assert detect(converted).family == "audiogen"  # our conversion's marker
    assert detect(tiny.folder).kind == "audiocraft"
    plain = tmp_path / "plain"
    shutil.copytree(converted, plain, ignore=shutil.ignore_patterns("daw-plugin.json"))
    assert (detect(plain).kind, detect(plain).family) == ("transformers", "musicgen")
    both = tmp_path / "both"  # Meta's repos carry audiocraft and transformers weights side by side
    shutil.copytree(plain, both)
    for name in ("state_dict.bin", "compression_state_dict.bin"):
        shutil.copy(tiny.folder / name, both / name)
    assert detect(both).kind == "transformers"
    assert registry.EXTEND_STRIDE["musicgen"] * 30 == pytest.approx(18)  # audiocraft's MusicGen default


MODEL_OPTION_MISTAKES = {
    "melody on a non-melody model": (["--melody", "{clip}"], "has no melody conditioning"),
    "negative prompt on a token model": (["--negative-prompt", "hiss"], "takes no negative prompt"),
    "steps on a token model": (["--steps", "20"], "has no --steps"),
    "zero steps": (["--steps", "0"], "--steps must be 1 or more"),
    "text encoder on a transformers folder": (["--text-encoder", "{clip}"], "carries its own text encoder"),
    "melody part without melody": (["--start", "1", "--end", "2"], "add --melody CLIP"),
    "half a melody part": (["--melody", "{clip}", "--start", "1"], "--start and --end go together"),
}


@pytest.mark.parametrize("case", MODEL_OPTION_MISTAKES, ids=list(MODEL_OPTION_MISTAKES))
def test_options_the_model_cannot_take_are_one_line(case, capsys, converted, tmp_path, monkeypatch):
    from test_cli import write_wav

    import models.registry

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded before its options were checked")

    monkeypatch.setattr(models.registry, "load_generator", no_loading)
    clip = write_wav(tmp_path / "clip.wav")
    extra, expected = MODEL_OPTION_MISTAKES[case]
    status, _, err = cli(capsys, "generate", "x", "--model", converted, "--out", tmp_path / "out",
                         *[a.format(clip=clip) for a in extra])
    assert status == ExitStatus.BAD_INPUT and expected in err, err
    assert len(err.strip().splitlines()) == 1
