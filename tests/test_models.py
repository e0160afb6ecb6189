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
    from models import audiogen, musicgen

    # audiocraft's defaults: MusicGen adds 18 s past its 30 s window, AudioGen 2 s past its 10 s one
    assert musicgen.EXTEND_STRIDE * 30 == pytest.approx(18) and audiogen.EXTEND_STRIDE * 10 == pytest.approx(2)


MODEL_OPTION_MISTAKES = {
    "melody on a non-melody model": (["--melody", "{clip}"], "has no melody conditioning"),
    "negative prompt on a token model": (["--negative-prompt", "hiss"], "has no --negative-prompt"),
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


# --- models.json: the user's file, never lost --------------------------------------------------------------


def models_json():
    return registry.config_dir() / "models.json"


def fake_model(folder):
    """A folder `models add` takes as a transformers MusicGen (its files are checked, never loaded)."""
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "musicgen"}')
    (folder / "model.safetensors").write_bytes(b"")
    return folder


BROKEN_MODELS_JSON = {
    "typo": ('{\n  "mine": "/models/mine",\n  "other": "/models/other"\n  "third": "/models/third"\n}\n',
             "line 4 column 3"),
    "a list": ('["/models/mine"]\n', "must hold a JSON object"),
    "an entry of the wrong shape": ('{\n  "mine": "/models/mine",\n  "other": 3\n}\n', "line 3 column 3"),
    "an object without a path": ('{"mine": {"text_encoder": "/t5"}}', "the entry 'mine'"),
}


@pytest.mark.parametrize("case", BROKEN_MODELS_JSON, ids=list(BROKEN_MODELS_JSON))
def test_a_models_json_that_cannot_be_read_is_never_overwritten(case, capsys, converted, tmp_path):
    text, where = BROKEN_MODELS_JSON[case]
    models_json().parent.mkdir(parents=True)
    models_json().write_text(text)
    for argv in (["models", "add", converted, "--as", "new"], ["models", "list"], ["models", "remove", "mine"],
                 ["generate", "x", "--model", "mine", "--out", tmp_path]):
        status, out, err = cli(capsys, *argv)
        assert status == ExitStatus.BAD_INPUT, (argv, err)
        assert str(models_json()) in err and where in err and "fix it by hand" in err
        assert len(err.strip().splitlines()) == 1
    assert models_json().read_text() == text
    status, _, err = cli(capsys, "generate", "x", "--model", "musicgen-small", "--out", tmp_path)
    assert status == ExitStatus.BAD_INPUT and "models pull musicgen-small" in err  # a known id is not blocked


def test_the_plain_string_form_is_still_read(converted):
    models_json().parent.mkdir(parents=True)
    models_json().write_text(json.dumps({"mine": str(converted)}))
    assert registry.resolve("mine").folder == converted
    registry.add(converted, "again")  # a write keeps the old entries, in their old form
    assert json.loads(models_json().read_text()) == {"mine": str(converted), "again": str(converted.resolve())}


def test_models_json_is_rewritten_atomically_keeping_its_permissions(tmp_path):
    """Written by the one atomic writer (`models.atomic_files`): the user's mode is kept and no staging is left."""
    import stat

    registry.add(fake_model(tmp_path / "one"), "one")
    models_json().chmod(0o600)
    registry.add(fake_model(tmp_path / "two"), "two")
    assert set(json.loads(models_json().read_text())) == {"one", "two"}
    assert stat.S_IMODE(models_json().stat().st_mode) == 0o600
    assert sorted(p.name for p in models_json().parent.iterdir()) == [".models.json.lock", "models.json"]


def test_concurrent_adds_keep_every_registration(tmp_path):
    """Two processes registering 30 names each: without the lock, each one's read-then-write drops the other's."""
    import subprocess
    import sys

    folder = fake_model(tmp_path / "model")
    script = ("import sys; from pathlib import Path; from models.registry import add\n"
              "for i in range(30): add(Path(sys.argv[1]), f'{sys.argv[2]}-{i}')")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    writers = [subprocess.Popen([sys.executable, "-c", script, str(folder), who], cwd=root) for who in "ab"]
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0]
    assert set(registry.registered_models()) == {f"{who}-{i}" for who in "ab" for i in range(30)}


def test_remove_unregisters_and_leaves_the_folder(capsys, tmp_path):
    folder = fake_model(tmp_path / "model")
    assert cli(capsys, "models", "add", folder, "--as", "mine")[0] == ExitStatus.OK
    assert cli(capsys, "models", "add", folder, "--as", "kept")[0] == ExitStatus.OK
    status, out, _ = cli(capsys, "models", "remove", "mine")
    assert status == ExitStatus.OK and "left as it is" in out and str(folder) in out
    assert set(registry.registered_models()) == {"kept"} and (folder / "config.json").is_file()
    status, _, err = cli(capsys, "models", "remove", "mine")
    assert status == ExitStatus.BAD_INPUT and "No model was added under the name 'mine'" in err
    status, _, err = cli(capsys, "models", "remove", "musicgen-small")
    assert status == ExitStatus.BAD_INPUT and "hf cache rm model/facebook/musicgen-small" in err
    assert len(err.strip().splitlines()) == 1


# --- a registered audiocraft checkpoint keeps its text encoder ---------------------------------------------


def test_a_registered_checkpoint_keeps_its_text_encoder(capsys, tiny, t5_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("DAW_PLUGIN_CACHE", str(tmp_path / "cache"))  # converted afresh, with the T5 kept
    status, _, err = cli(capsys, "models", "add", tiny.folder, "--as", "foley", "--text-encoder", t5_dir)
    assert status == ExitStatus.OK, err
    assert registry.registered_models()["foley"].text_encoder == str(t5_dir.resolve())
    assert cli(capsys, "models", "add", tiny.folder, "--as", "foley")[0] == ExitStatus.OK  # kept when added again
    status, out, err = cli(capsys, "generate", "door", "--model", "foley", "--seconds", 0.2, "--out", tmp_path / "t")
    assert status == ExitStatus.OK, err
    status, _, err = cli(capsys, "models", "add", fake_model(tmp_path / "hf"), "--text-encoder", t5_dir)
    assert status == ExitStatus.BAD_INPUT and "carries its own text encoder" in err


@pytest.mark.parametrize("offline", ["HF_HUB_OFFLINE", "no network"])
def test_without_its_text_encoder_offline_a_checkpoint_fails_at_once(offline, capsys, tiny, tmp_path, monkeypatch):
    from huggingface_hub import constants

    import models.audiocraft_conversion

    if offline == "no network":
        monkeypatch.delenv("HF_HUB_OFFLINE")
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # the discard port: refused at once

    def cache_only(name, *, local_files_only=False, **kwargs):
        assert local_files_only, "went to the hub, which may retry for over a minute"
        raise OSError(f"{name} is not in the cache")

    monkeypatch.setattr(models.audiocraft_conversion.T5EncoderModel, "from_pretrained", cache_only)
    assert cli(capsys, "models", "add", tiny.folder, "--as", "foley")[0] == ExitStatus.OK
    status, _, err = cli(capsys, "generate", "door", "--model", "foley", "--out", tmp_path)
    assert status == ExitStatus.BAD_INPUT and "cannot be reached" in err and "--text-encoder" in err
    assert len(err.strip().splitlines()) == 1


def test_converting_onto_a_file_is_one_line(capsys, tiny, tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("mine")
    status, _, err = cli(capsys, "models", "convert-audiocraft", tiny.folder, taken)
    assert status == ExitStatus.BAD_INPUT and "is a file" in err and len(err.strip().splitlines()) == 1
    assert taken.read_text() == "mine"


# --- damaged models never make takes ------------------------------------------------------------------------


def damaged_copy(folder, to, damage: str):
    """A copy of a model folder with its weights' data (not their header) replaced or cut, its codec's output
    stage zeroed (it then makes exact silence), or its tokenizer gone."""
    import struct

    from safetensors.torch import load_file, save_file

    shutil.copytree(folder, to)
    if damage == "no tokenizer":
        for name in ("tokenizer.json", "spiece.model", "tokenizer_config.json", "special_tokens_map.json"):
            (to / name).unlink(missing_ok=True)
        return to
    for weights in to.glob("*.safetensors"):
        if damage == "silent codec":  # every decoder conv's gain and bias: each conv, the last one too, gives 0
            tensors = load_file(weights)
            for name, tensor in tensors.items():
                if name.startswith("audio_encoder.decoder.") and name.endswith(("original0", "conv.bias")):
                    tensor.zero_()
            save_file(tensors, weights, metadata={"format": "pt"})
            continue
        data = weights.read_bytes()
        start = 8 + struct.unpack("<Q", data[:8])[0]  # safetensors: a length, a JSON header, then the tensors
        body = {"random bytes": os.urandom(len(data) - start), "truncated": data[start:(start + len(data)) // 2]}
        weights.write_bytes(data[:start] + body[damage])
    return to


@pytest.mark.parametrize("damage, expected", [("random bytes", "NaN or infinite samples"),
                                              ("silent codec", "nothing but silence"),
                                              ("no tokenizer", "has no tokenizer"),
                                              ("truncated", "Could not load the model")])
@pytest.mark.parametrize("family", ["musicgen", "audiogen"])
def test_a_damaged_model_makes_no_take(family, damage, expected, capsys, musicgen_dirs, converted, tmp_path):
    source = {"musicgen": musicgen_dirs["mono"], "audiogen": converted}[family]
    folder = damaged_copy(source, tmp_path / "damaged", damage)
    status, out, err = cli(capsys, "generate", "rain", "--model", folder, "--seconds", 0.3, "--seed", 3,
                           "--out", tmp_path / "takes", "--device", "cpu")
    assert status == ExitStatus.BAD_INPUT, err
    last = err.strip().splitlines()[-1]  # after the progress bar, when the damage shows only in the take
    assert last.startswith("daw-plugin: error:") and expected in last and str(folder) in last
    assert out == "" and not (tmp_path / "takes").exists()
    if damage in ("no tokenizer", "truncated"):  # found while loading, before any generation
        assert "take 1/1" not in err


def test_check_take_tells_damage_from_sound(tmp_path):
    import numpy as np

    from models.damage import check_take
    from models.errors import UserError

    check_take(np.full((1, 100), 1e-3, np.float32), tmp_path)
    check_take(np.zeros((1, 0), np.float32), tmp_path)  # nothing to judge by
    for bad in (np.full((2, 100), np.nan, np.float32), np.array([[0.1, np.inf]], np.float32),
                np.zeros((1, 100), np.float32)):
        with pytest.raises(UserError, match="damaged weights"):
            check_take(bad, tmp_path)


# --- threads -------------------------------------------------------------------------------------------------


def test_the_thread_rule():
    from models.device import SMALL_MODEL_BYTES, cpu_threads

    big = 2 * 2**30  # about musicgen-small's weights
    assert cpu_threads(SMALL_MODEL_BYTES // 2, physical_cores=8, usable_cores=8, load=0.0) == 1  # tiny: one
    assert cpu_threads(SMALL_MODEL_BYTES // 2) == 1  # whatever this machine's load
    assert cpu_threads(big, physical_cores=2, usable_cores=2, load=1.2) == 1  # the other core is busy
    assert cpu_threads(big, physical_cores=2, usable_cores=2, load=0.1) == 2
    assert cpu_threads(big, physical_cores=4, usable_cores=8, load=0.0) == 4  # hyper-threads do not count
    assert cpu_threads(big, physical_cores=8, usable_cores=8, load=30.0) == 1  # at least one


@pytest.fixture
def torch_threads():
    import torch

    before = torch.get_num_threads()
    yield torch
    torch.set_num_threads(before)


def test_a_tiny_model_runs_on_one_thread_and_threads_overrides(capsys, musicgen_dirs, tmp_path, torch_threads,
                                                              monkeypatch):
    import models.registry
    from models.registry import load_generator

    torch_threads.set_num_threads(2)  # torch's default on this 2-core machine
    assert load_generator(str(musicgen_dirs["mono"]), "cpu").threads == 1 and torch_threads.get_num_threads() == 1
    used = []  # torch's threads on the engine's inference thread, where the model runs (OpenMP's are per thread)

    def loading(*args, **kwargs):
        generator = load_generator(*args, **kwargs)
        used.append(torch_threads.get_num_threads())
        return generator

    monkeypatch.setattr(models.registry, "load_generator", loading)
    status, _, err = cli(capsys, "generate", "kick", "--model", musicgen_dirs["mono"], "--seconds", 0.2,
                         "--threads", 2, "--device", "cpu", "--out", tmp_path)
    assert status == ExitStatus.OK, err
    assert used == [2]
    status, _, err = cli(capsys, "generate", "kick", "--model", musicgen_dirs["mono"], "--threads", 0)
    assert status == ExitStatus.BAD_INPUT and "--threads must be between 1 and" in err


# --- only what the user can act on reaches stderr ------------------------------------------------------------


def test_generating_on_each_family_prints_only_progress_and_our_lines(tiny, t5_dir, musicgen_dirs, audioldm2_dir,
                                                                       tmp_path):
    """In a fresh process with Python's default warning filters, as a user runs it: a conversion (transformers'
    pad_token_id notes), MusicGen, and AudioLDM 2 generating, continuing and scoring (past_key_values, mel filters)."""
    import re
    import subprocess
    import sys

    from test_cli import write_wav

    clip = write_wav(tmp_path / "clip.wav")
    runs = [["generate", "door", "--model", tiny.folder, "--text-encoder", t5_dir],
            ["generate", "kick", "--model", musicgen_dirs["mono"]],
            ["generate", "rain", "--model", audioldm2_dir, "--steps", 2],
            ["continue", clip, "--start", 0.5, "--end", 1.5, "--model", audioldm2_dir, "--steps", 2]]
    script = ("import json, sys; from daw_plugin.cli import raw_main\n"
              "sys.exit(max(raw_main(argv) for argv in json.loads(sys.argv[1])))")
    argvs = [[str(a) for a in run + ["--seconds", 0.3, "--out", tmp_path / "takes", "--threads", 1]] for run in runs]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "DAW_PLUGIN_CACHE": str(tmp_path / "cache")}  # the checkpoint is converted here, afresh
    env.pop("PYTHONWARNINGS", None)
    done = subprocess.run([sys.executable, "-c", script, json.dumps(argvs)], cwd=root, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == len(runs)
    progress = re.compile(r"(take|\d+ takes): +\d+%\|")
    lines = [line.strip() for line in re.split(r"[\r\n]+", done.stderr) if line.strip()]
    ours = re.compile(r"daw-plugin: |\S+\.wav: CLAP score -?\d")  # our notes and errors, and AudioLDM 2's scores
    assert lines and all(progress.match(line) or ours.match(line) for line in lines), done.stderr
