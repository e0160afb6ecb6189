"""`daw-plugin` end to end through `raw_main`, on the tiny model: takes, recipes, and every bad input."""

import json
import os

import numpy as np
import pytest
import torch
from pedalboard.io import AudioFile

from daw_plugin import __version__
from daw_plugin.cli import ExitStatus, raw_main


def cli(capsys, *argv):
    status = raw_main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def write_wav(path, seconds=2.0, sample_rate=44100, channels=2):
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    audio = np.stack([0.3 * np.sin(2 * np.pi * 220 * (c + 1) * t) for c in range(channels)]).astype(np.float32)
    with AudioFile(str(path), "w", sample_rate, channels) as f:
        f.write(audio)
    return path


def read(path):
    with AudioFile(str(path)) as f:
        return f.read(f.frames), f.samplerate


def test_generate_writes_takes_with_recipes(capsys, converted, tmp_path):
    status, out, err = cli(capsys, "generate", "rain on a tin roof", "--model", converted, "--seconds", 0.5,
                           "--takes", 2, "--seed", 11, "--out", tmp_path, "--device", "cpu", "--top-k", 20)
    assert status == ExitStatus.OK
    paths = out.split()
    assert [os.path.basename(p) for p in paths] == ["rain-on-a-tin-roof-seed11.wav", "rain-on-a-tin-roof-seed12.wav"]
    assert "2 takes: 100%" in err  # the progress bar: the two takes are made together, as one batch
    for take, path in enumerate(paths, start=1):
        audio, sample_rate = read(path)
        assert audio.shape == (1, 8000) and sample_rate == 16000
        recipe = json.loads(open(path[:-4] + ".json").read())
        assert recipe["prompt"] == "rain on a tin roof" and recipe["model"] == str(converted)
        assert recipe["seed"] == 10 + take and recipe["take"] == take and recipe["of_takes"] == 2
        # what a token model used, its own defaults filled in; nothing of AudioLDM 2's
        assert recipe["parameters"] == {"guidance": 3.0, "top_k": 20, "top_p": 0.0, "temperature": 1.0,
                                        "text_encoder": None}
        assert recipe["family"] == "audiogen"
        assert recipe["sample_rate"] == 16000 and recipe["duration_seconds"] == 0.5
        assert (recipe["device"], recipe["dtype"]) == ("cpu", "float32")
        assert recipe["program"] == {"name": "daw-plugin", "version": __version__}
        assert recipe["audio"] == {"finished": os.path.basename(path), "raw": os.path.basename(path)[:-4] + ".raw.wav"}
        assert recipe["id"] == os.path.basename(path)[:-4] and recipe["finishing"]["preset"] == "foley"
        plain = tmp_path.parent / f"plain-{take}.txt"
        plain.write_text("made the ordinary way")
        assert os.stat(path).st_mode == os.stat(plain).st_mode  # not mkstemp's private 0600


def test_takes_are_never_overwritten(capsys, converted, tmp_path):
    args = ("generate", "dog", "--model", converted, "--seconds", 0.2, "--seed", 5, "--out", tmp_path,
            "--format", "flac")
    first = cli(capsys, *args)[1].strip()
    before = open(first, "rb").read()
    second = cli(capsys, *args)[1].strip()
    assert os.path.basename(second) == "dog-seed5-2.flac"
    assert open(first, "rb").read() == before
    assert np.array_equal(read(first)[0], read(second)[0])  # same seed, same take
    assert sorted(os.listdir(tmp_path)) == ["dog-seed5", "dog-seed5-2"]  # one folder per take
    assert sorted(os.listdir(tmp_path / "dog-seed5-2")) == ["dog-seed5-2.flac", "dog-seed5-2.json",
                                                            "dog-seed5-2.raw.flac"]


def test_continue_writes_only_new_audio(capsys, converted, tmp_path):
    clip = write_wav(tmp_path / "loop.wav")
    status, out, _ = cli(capsys, "continue", clip, "--start", 0.5, "--end", 1.5, "--model", converted,
                         "--seconds", 0.6, "--seed", 1, "--out", tmp_path / "takes")
    assert status == ExitStatus.OK
    finished, rate = read(out.strip())
    raw, raw_rate = read(out.strip()[:-4] + ".raw.wav")
    assert raw.shape == (1, round(0.6 * 16000)) and raw_rate == 16000  # the model's new audio only
    # plus the 20 ms seam cross-faded over the region's end, at the clip's rate (no host says otherwise), on
    # both channels of the stereo clip: the mono continuation on each, after a seam against each channel
    assert rate == 44100 and finished.shape == (2, round(0.62 * 44100))
    seam = round(0.02 * 44100)
    np.testing.assert_array_equal(finished[0, seam:], finished[1, seam:])
    assert not np.allclose(finished[0, :seam], finished[1, :seam])
    recipe = json.loads(open(out.strip()[:-4] + ".json").read())
    assert recipe["kind"] == "continue" and recipe["prompt"] == ""
    assert (recipe["channels"], recipe["finishing"]["channels"], recipe["raw_take"]["channels"]) == (2, 2, 1)
    assert recipe["seconds"] == recipe["duration_seconds"] == 0.62 and recipe["requested_seconds"] == 0.6
    assert recipe["source"] == {"clip": str(clip.resolve()), "start_seconds": 0.5, "end_seconds": 1.5}


def test_audiocraft_folder_is_converted_once(capsys, tiny, t5_dir, tmp_path):
    args = ("generate", "wind", "--model", tiny.folder, "--text-encoder", t5_dir, "--seconds", 0.1, "--out", tmp_path)
    assert cli(capsys, *args)[0] == ExitStatus.OK
    cache = os.path.join(os.environ["DAW_PLUGIN_CACHE"], "converted")
    (folder,) = os.listdir(cache)
    stamp = os.stat(os.path.join(cache, folder, "config.json")).st_mtime_ns
    assert cli(capsys, *args)[0] == ExitStatus.OK
    assert os.listdir(cache) == [folder]
    assert os.stat(os.path.join(cache, folder, "config.json")).st_mtime_ns == stamp


def test_convert_command_writes_a_standard_transformers_folder(capsys, tiny, t5_dir, tmp_path):
    from transformers import AutoProcessor, MusicgenForConditionalGeneration

    dst = tmp_path / "audiogen-tiny-hf"
    status, out, _ = cli(capsys, "models", "convert-audiocraft", tiny.folder, dst, "--text-encoder", t5_dir)
    assert status == ExitStatus.OK and out.strip() == str(dst)
    model = MusicgenForConditionalGeneration.from_pretrained(dst)
    processor = AutoProcessor.from_pretrained(dst)
    # Sizes come from xp.cfg, through its ${...} interpolations (card: ${rvq.bins}, n_q: ${rvq.n_q}).
    lm = tiny.cfg.transformer_lm
    decoder = model.config.decoder
    assert (decoder.hidden_size, decoder.num_hidden_layers, decoder.num_attention_heads) == (lm.dim, lm.num_layers,
                                                                                            lm.num_heads)
    assert (decoder.vocab_size, decoder.num_codebooks, decoder.ffn_dim) == (tiny.cfg.rvq.bins, 4, 4 * lm.dim)
    assert model.config.audio_encoder.sampling_rate == 16000 and model.config.audio_encoder.frame_rate == 50
    assert model.generation_config.max_length == 500 and model.generation_config.guidance_scale == 3.0
    assert processor.tokenizer("rain").input_ids[-1] == processor.tokenizer.eos_token_id
    # transformers' own generate() runs on the converted weights
    inputs = processor(text=["rain"], return_tensors="pt")
    codes = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert codes.shape[0] == 1 and torch.isfinite(codes).all()

    again = cli(capsys, "models", "convert-audiocraft", tiny.folder, dst, "--text-encoder", t5_dir)
    assert again[0] == ExitStatus.BAD_INPUT and "already exists" in again[2]


def edited_checkpoint(tiny, folder, old: str, new: str):
    """A copy of the tiny checkpoint whose LM xp.cfg has ``old`` replaced by ``new``."""
    folder.mkdir()
    package = torch.load(tiny.folder / "state_dict.bin", weights_only=True)
    package["xp.cfg"] = package["xp.cfg"].replace(old, new)
    torch.save(package, folder / "state_dict.bin")
    (folder / "compression_state_dict.bin").write_bytes((tiny.folder / "compression_state_dict.bin").read_bytes())
    return folder


@pytest.fixture
def unsupported_checkpoint(tiny, tmp_path):
    """The tiny checkpoint with one option transformers' MusicGen cannot express (rotary positions)."""
    return edited_checkpoint(tiny, tmp_path / "rope", "positional_embedding: sin", "positional_embedding: rope")


@pytest.fixture
def corrupt_checkpoint(tiny, tmp_path):
    folder = tmp_path / "corrupt"
    folder.mkdir()
    (folder / "state_dict.bin").write_bytes(b"not a checkpoint")
    (folder / "compression_state_dict.bin").write_bytes((tiny.folder / "compression_state_dict.bin").read_bytes())
    return folder


BAD_INPUTS = {
    "empty prompt": (["generate", "  "], "prompt is empty"),
    "zero seconds": (["generate", "x", "--seconds", "0"], "--seconds must be from 0.02"),
    "too long": (["generate", "x", "--seconds", "301"], "to 300"),
    "a 0-frame take": (["generate", "x", "--seconds", "1e-7"], "--seconds must be from 0.02"),
    "NaN seconds": (["generate", "x", "--seconds", "nan"], "--seconds must be a finite number"),
    "infinite bpm": (["generate", "x", "--bpm", "inf", "--preset", "music-stem"], "--bpm must be a finite number"),
    "NaN bpm": (["generate", "x", "--bpm", "nan", "--preset", "music-stem"], "--bpm must be a finite number"),
    "bpm out of range": (["generate", "x", "--bpm", "5000", "--preset", "music-stem"], "--bpm must be from 20"),
    "NaN cfg": (["generate", "x", "--guidance", "nan"], "--guidance must be a finite number"),
    "huge cfg": (["generate", "x", "--guidance", "1e30"], "--guidance must be from 0 to 30"),
    "NaN temperature": (["generate", "x", "--temperature", "nan"], "--temperature must be a finite number"),
    "underflowing temperature": (["generate", "x", "--temperature", "1e-40"], "0 (greedy) or from 0.01"),
    "NaN top-p": (["generate", "x", "--top-p", "nan"], "--top-p must be a finite number"),
    "NaN at": (["generate", "x", "--at", "nan", "--host", "session:{dir}/song"], "--at must be a finite number"),
    "at past a day": (["generate", "x", "--at", "1e7", "--host", "session:{dir}/song"], "--at must be from 0"),
    "NaN start": (["continue", "{clip}", "--start", "nan", "--end", "1"], "--start and --end must be numbers"),
    "steps past the guard": (["generate", "x", "--steps", "100000"], "up to 1000"),
    "seed past 64 bits": (["generate", "x", "--seed", str(2**63)], "--seed must be from 0 to 9223372036854775807"),
    "negative seed": (["generate", "x", "--seed", "-1"], "--seed must be from 0"),
    "last take's seed past 64 bits": (["generate", "x", "--seed", str(2**63 - 1), "--takes", "2"],
                                      "--seed must be from 0 to 9223372036854775806"),
    "invalid UTF-8 prompt": (["generate", b"caf\xe9".decode("utf-8", "surrogateescape")], "not UTF-8 text"),
    "bpm without tempo fit": (["generate", "x", "--bpm", "96", "--model", "{model}"], "--preset music-stem"),
    "start alone": (["continue", "{clip}", "--start", "1"], "--start alone"),
    "bpm on a continuation": (["continue", "{clip}", "--bpm", "96", "--preset", "music-stem", "--model", "{model}"],
                              "a continuation keeps the timing"),
    "no takes": (["generate", "x", "--takes", "0"], "--takes must be"),
    "bad top-p": (["generate", "x", "--top-p", "1.5"], "--top-p"),
    "unknown model offline": (["generate", "x", "--model", "audiogen-medium"], "models pull audiogen-medium"),
    "unknown model name": (["generate", "x", "--model", "nonsense"], "Unknown model"),
    "missing checkpoint": (["generate", "x", "--model", "{half}"], "holds no model"),
    "corrupt checkpoint": (["generate", "x", "--model", "{corrupt}", "--text-encoder", "{t5}"], "damaged or not"),
    "unsupported checkpoint": (["generate", "x", "--model", "{rope}", "--text-encoder", "{t5}"], "does not support"),
    "no such device": (["generate", "x", "--model", "{model}", "--device", "cuda"], "no CUDA device"),
    "unknown device": (["generate", "x", "--model", "{model}", "--device", "tpu"], "Unknown device"),
    "missing audio": (["continue", "{dir}/nope.wav", "--start", "0", "--end", "1"], "no audio file"),
    "unreadable audio": (["continue", "{text}", "--start", "0", "--end", "1"], "Could not read audio"),
    "empty audio": (["continue", "{empty}", "--start", "0", "--end", "1"], "holds no audio"),
    "region past the clip": (["continue", "{clip}", "--start", "1", "--end", "3"], "outside the clip"),
    "region backwards": (["continue", "{clip}", "--start", "1", "--end", "0.5"], "give a start before the end"),
    "region under a frame": (["continue", "{clip}", "--start", "1", "--end", "1.005", "--model", "{model}"],
                             "shorter than one frame"),
    "not a number": (["generate", "x", "--seconds", "five"], "invalid float value"),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_bad_input_is_one_clear_line(case, capsys, tmp_path, converted, t5_dir, corrupt_checkpoint,
                                     unsupported_checkpoint):
    half = tmp_path / "half"
    half.mkdir()
    (half / "state_dict.bin").write_bytes(b"")
    (tmp_path / "notes.wav").write_text("not audio")
    write_wav(tmp_path / "empty.wav", seconds=0)
    values = dict(dir=tmp_path, half=half, corrupt=corrupt_checkpoint, rope=unsupported_checkpoint, t5=t5_dir,
                  model=converted, text=tmp_path / "notes.wav", empty=tmp_path / "empty.wav",
                  clip=write_wav(tmp_path / "clip.wav"))
    argv, expected = BAD_INPUTS[case]
    out_dir = tmp_path / "out"
    with pytest.raises(SystemExit) if case == "not a number" else _nothing() as exit_info:
        status, out, err = cli(capsys, *[a.format(**values) for a in argv], "--out", out_dir)
    if exit_info is not None:  # argparse exits by itself
        status, err = exit_info.value.code, capsys.readouterr().err
    assert status == ExitStatus.BAD_INPUT
    assert expected in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out_dir.exists() or not any(out_dir.iterdir())  # nothing written


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def test_cancel_keeps_finished_takes_and_writes_no_partial_one(converted, tmp_path):
    """The batch is made, then its takes are saved one by one: a cancel after the first is saved keeps it alone."""
    from daw_plugin import events
    from daw_plugin.jobs import GenerationRequest, run
    from models.errors import Cancelled

    request = GenerationRequest(prompt="hum", model=str(converted), seconds=0.5, takes=3, seed=0, device="cpu")
    saved = []
    with pytest.raises(Cancelled):
        run(request, tmp_path, on_event=lambda e: saved.append(e) if isinstance(e, events.TakeDone) else None,
            should_stop=lambda: len(saved) > 0)
    assert os.listdir(tmp_path) == ["hum-seed0"]  # the first take, and no staging left behind
    assert sorted(os.listdir(tmp_path / "hum-seed0")) == ["hum-seed0.json", "hum-seed0.raw.wav", "hum-seed0.wav"]


def test_recipe_records_folders_absolute(capsys, converted, tmp_path, monkeypatch):
    monkeypatch.chdir(converted.parent)
    out = cli(capsys, "generate", "hiss", "--model", converted.name, "--seconds", 0.1, "--out", tmp_path)[1]
    assert json.loads(open(out.strip()[:-4] + ".json").read())["model"] == str(converted.resolve())


def test_mismatched_weights_are_one_line(capsys, tiny, t5_dir, tmp_path):
    """A checkpoint whose weights disagree with its own xp.cfg (torch's error spans many lines)."""
    folder = edited_checkpoint(tiny, tmp_path / "mismatch", "hidden_scale: 4", "hidden_scale: 2")
    status, _, err = cli(capsys, "generate", "x", "--model", folder, "--text-encoder", t5_dir, "--seconds", 0.1,
                         "--out", tmp_path / "out")
    assert status == ExitStatus.BAD_INPUT and "do not fit its own config" in err
    assert len(err.strip().splitlines()) == 1


def test_a_take_that_cannot_be_written_leaves_nothing(tmp_path, monkeypatch):
    """A failure while encoding (a full disk, say) is one clear error and leaves no temp files."""
    from daw_plugin import takes
    from daw_plugin.audio import Clip
    from models.errors import UserError

    def disk_full(clip, path):
        path.write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(takes, "write_new_file", disk_full)
    with pytest.raises(UserError, match="No space left on device"):
        takes.save_take(tmp_path, {"finished": Clip(np.zeros((1, 10), np.float32), 16000)}, {}, "take")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("where", ["a file", "inside a file"])
def test_an_unwritable_library_is_refused_before_the_model_loads(where, capsys, converted, tmp_path, monkeypatch):
    import models.registry

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded before --out was checked")

    monkeypatch.setattr(models.registry, "load_generator", no_loading)
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine")
    out = blocker if where == "a file" else blocker / "takes"
    status, stdout, err = cli(capsys, "generate", "x", "--model", converted, "--out", out)
    assert status == ExitStatus.BAD_INPUT and f"Cannot write takes to {out}" in err and "--out" in err
    assert len(err.strip().splitlines()) == 1 and stdout == ""
    assert blocker.read_text() == "mine"


def test_the_shortest_take_into_a_library_not_made_yet(capsys, converted, tmp_path):
    out = tmp_path / "new" / "library"
    status, stdout, err = cli(capsys, "generate", "x", "--model", converted, "--seconds", 0.02, "--out", out)
    assert status == ExitStatus.OK and stdout.startswith(str(out)), err
    assert read(stdout.strip())[0].shape == (1, 320)  # the minimum length is a real take: one frame at 16 kHz


def test_options_go_in_any_order(capsys, converted, tmp_path):
    """The README's order: options between the clip and the prompt."""
    clip = write_wav(tmp_path / "loop.wav")
    status, out, err = cli(capsys, "continue", clip, "--start", 0.5, "--end", 1.5, "with a rising synth",
                           "--seconds", 0.3, "--model", converted, "--out", tmp_path / "takes")
    assert status == ExitStatus.OK, err
    recipe = json.loads(open(out.strip()[:-4] + ".json").read())
    assert recipe["prompt"] == "with a rising synth" and recipe["source"]["end_seconds"] == 1.5
    status, out, err = cli(capsys, "generate", "--seconds", 0.1, "--model", converted, "hiss", "--seed", 2,
                           "--out", tmp_path / "takes")
    assert status == ExitStatus.OK and out.strip().endswith("hiss-seed2.wav"), err


@pytest.mark.parametrize("given, region", [((), (2.0, 14.0)), (("--end", 5.0), (0.0, 5.0)),
                                           (("--end", 13.5), (1.5, 13.5))])
def test_continue_without_a_region_goes_on_from_the_clip_end(given, region, capsys, converted, tmp_path):
    """No --start: the region is the last 12 s before --end (the clip's end without one), or all there is."""
    clip = write_wav(tmp_path / "song.wav", seconds=14.0, sample_rate=16000, channels=1)
    status, out, err = cli(capsys, "continue", clip, *given, "--model", converted, "--seconds", 0.2, "--seed", 1,
                           "--out", tmp_path / "takes")
    assert status == ExitStatus.OK, err
    recipe = json.loads(open(out.strip()[:-4] + ".json").read())
    assert (recipe["source"]["start_seconds"], recipe["source"]["end_seconds"]) == region
    status, again, err = cli(capsys, "takes", "regenerate", recipe["id"], "--out", tmp_path / "takes")
    assert status == ExitStatus.OK, err  # the region written down is the one used
    np.testing.assert_array_equal(read(again.strip())[0], read(out.strip())[0])


def test_json_prints_one_object_per_take(capsys, converted, tmp_path):
    from daw_plugin.hosts.session import SessionHost

    song = SessionHost.create(tmp_path / "song", tempo_bpm=120, sample_rate=16000).folder
    status, out, err = cli(capsys, "generate", "bell", "--model", converted, "--seconds", 0.2, "--seed", 7,
                           "--json", "--host", f"session:{song}", "--at", 1.5, "--out", tmp_path / "takes")
    assert status == ExitStatus.OK, err
    (take,) = [json.loads(line) for line in out.splitlines()]
    assert take["path"].endswith("bell-seed7.wav") and os.path.isfile(take["path"])
    assert take["seed"] == 7 and take["score"] is None
    assert take["placement"] == {"host": f"session:{song}", "track": "bell-seed7", "start_seconds": 1.5,
                                 "end_seconds": pytest.approx(1.7)}
    status, out, _ = cli(capsys, "takes", "regenerate", "bell-seed7", "--dir", tmp_path / "takes", "--json")
    assert status == ExitStatus.OK and json.loads(out)["seed"] == 7 and json.loads(out)["placement"] is None


def test_request_refuses_numbers_of_the_wrong_kind():
    """What a hand-edited recipe or the panel may hand in: a string, a bool, a fraction of a seed.

    The request names the field; the CLI words the same error with the field's flag.
    """
    from daw_plugin.cli import worded
    from daw_plugin.request import GenerationRequest
    from models.errors import UserError

    for field, value, expected, flag in (("seconds", "5", "seconds must be a number", "--seconds"),
                                         ("seed", 1.5, "seed must be a whole number", "--seed"),
                                         ("takes", True, "takes must be a whole number", "--takes"),
                                         ("guidance", float("-inf"), "guidance must be a finite number", "--guidance")):
        with pytest.raises(UserError, match=f"^{expected}") as info:
            GenerationRequest(**{"prompt": "x", "model": "m", "seconds": 1.0, field: value})
        assert info.value.field == field
        assert worded(info.value) == flag + str(info.value)[len(field):]
    with pytest.raises(UserError, match="prompt must be text"):
        GenerationRequest(prompt=None, model="m", seconds=1.0)


def test_an_older_audioldm2_recipe_regenerates_without_token_options_and_with_cfg_coef():
    """AudioLDM 2 recipes used to hold the token models' sampling defaults, which it never used."""
    from daw_plugin.request import GenerationRequest

    recipe = {"prompt": "rain", "model": "audioldm2", "family": "audioldm2", "seconds": 1.0, "seed": 3,
              "device": "cpu", "audio_format": "wav", "finishing": {"preset": "foley"},
              "parameters": {"cfg_coef": 3.5, "top_k": 250, "top_p": 0.0, "temperature": 1.0, "steps": 25,
                             "negative_prompt": None, "text_encoder": None}}
    request = GenerationRequest.from_recipe(recipe)
    assert (request.top_k, request.top_p, request.temperature, request.steps) == (None, None, None, 25)
