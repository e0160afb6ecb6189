"""`daw-plugin models pull` for real: huggingface_hub downloads from `FakeHub` (a local stand-in for huggingface.co)
into a throwaway cache, with progress, resuming a dropped download; afterwards the model is found offline."""

import json
import re
from pathlib import Path

import huggingface_hub
import pytest
from fixtures.fake_hub import FakeHub
from fixtures.tiny_audiocraft import save_tiny_t5
from huggingface_hub import constants

from daw_plugin.cli import ExitStatus, raw_main

REPO = "facebook/musicgen-small"
WEIGHTS = "model.safetensors"
CHUNK = 16 * 1024  # huggingface_hub writes 10 MB chunks; ours are smaller, so a cut file keeps what came in
CUT = 2 * CHUNK
AUDIOCRAFT = {"state_dict.bin", "compression_state_dict.bin"}  # in Meta's repos too; our patterns skip them


@pytest.fixture(scope="module")
def musicgen_files(tmp_path_factory) -> dict[str, bytes]:
    """A tiny transformers MusicGen folder, plus the audiocraft weights Meta's repos also carry."""
    import transformers as tf

    t5 = save_tiny_t5(tmp_path_factory.mktemp("t5"), d_model=32)
    codec = tf.EncodecModel(tf.EncodecConfig(target_bandwidths=[1.5], sampling_rate=8000, normalize=False,
                                             hidden_size=8, num_filters=2, num_residual_layers=1,
                                             upsampling_ratios=[4, 4], chunk_length_s=None, overlap=None,
                                             codebook_size=16))
    decoder = tf.MusicgenForCausalLM(tf.MusicgenDecoderConfig(vocab_size=16, num_hidden_layers=1, ffn_dim=32,
                                                              hidden_size=16, num_attention_heads=2, num_codebooks=2,
                                                              max_position_embeddings=64))
    model = tf.MusicgenForConditionalGeneration(text_encoder=tf.T5EncoderModel.from_pretrained(t5),
                                                audio_encoder=codec, decoder=decoder)
    folder = tmp_path_factory.mktemp("musicgen-small")
    model.save_pretrained(folder)
    tf.AutoTokenizer.from_pretrained(t5).save_pretrained(folder)
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert len(files[WEIGHTS]) > 3 * CUT
    return files | {"README.md": b"# tiny musicgen\n"} | {name: b"\0" * 4096 for name in AUDIOCRAFT}


def _go_online(monkeypatch, endpoint: str, home: Path) -> None:
    """huggingface_hub reads these at import: point the constants at the server and a private cache."""
    patched = {
        "ENDPOINT": endpoint,
        "HUGGINGFACE_CO_URL_TEMPLATE": endpoint + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_HUB_OFFLINE": False,
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HF_TOKEN_PATH": str(home / "token"),  # no token of the user's goes anywhere
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
        "DOWNLOAD_CHUNK_SIZE": CHUNK,
    }
    for name, value in patched.items():
        monkeypatch.setattr(constants, name, value)
    for name, value in {"HF_ENDPOINT": endpoint, "HF_HOME": str(home), "HF_HUB_CACHE": str(home / "hub"),
                        "HF_HUB_OFFLINE": "0"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HF_TOKEN", raising=False)


def _go_offline(monkeypatch) -> None:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def hub(musicgen_files, tmp_path, monkeypatch):
    monkeypatch.setenv("DAW_PLUGIN_CONFIG", str(tmp_path / "config"))  # no models the user registered
    with FakeHub({REPO: musicgen_files}) as server:
        _go_online(monkeypatch, server.endpoint, tmp_path / "hf")
        yield server
    huggingface_hub.close_session()  # its pooled connections point at a server that is gone


def pull(capfd, model="musicgen-small"):
    status = raw_main(["models", "pull", model])
    out, err = capfd.readouterr()
    return status, out, err


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("daw-plugin:")]


def test_pull_downloads_the_transformers_files_and_works_offline_after(hub, musicgen_files, monkeypatch, capfd):
    from models.formats import detect
    from models.registry import resolve

    status, out, err = pull(capfd)
    assert status == ExitStatus.OK, err
    folder = Path(out.strip())
    assert folder == Path(constants.HF_HUB_CACHE) / "models--facebook--musicgen-small" / "snapshots" / hub.commits[REPO]
    assert {p.name for p in folder.iterdir()} == set(musicgen_files) - AUDIOCRAFT
    assert all((folder / name).read_bytes() == musicgen_files[name] for name in set(musicgen_files) - AUDIOCRAFT)
    assert not [r for r in hub.log if r.path.endswith("state_dict.bin")]  # the audiocraft weights: not even asked for
    assert not [r for r in hub.log if "xet" in r.path]  # plain HTTP, no Xet
    assert detect(folder).kind == "transformers" and detect(folder).family == "musicgen"

    hub.stop()  # from here on nothing answers: what follows must come from the cache
    _go_offline(monkeypatch)
    assert resolve("musicgen-small").folder == folder
    assert raw_main(["models", "list", "--json"]) == ExitStatus.OK
    on_disk = {row["name"]: row["on_disk"] for row in json.loads(capfd.readouterr().out)}
    assert on_disk["musicgen-small"] is True and on_disk["musicgen-medium"] is False


def test_pull_shows_download_progress(hub, musicgen_files, monkeypatch, capfd):
    # huggingface_hub draws its byte bars only on a terminal (tqdm's disable=None); TQDM_POSITION=-1 forces them
    # on here, where stderr is captured. Its "Fetching N files" bar shows everywhere.
    monkeypatch.setenv("TQDM_POSITION", "-1")
    status, _, err = pull(capfd)
    assert status == ExitStatus.OK, err
    wanted = set(musicgen_files) - AUDIOCRAFT
    total = huggingface_hub.utils.tqdm.format_sizeof(sum(len(musicgen_files[n]) for n in wanted))
    assert f"Fetching {len(wanted)} files" in err
    assert "Download complete" in err and "Reconstruction complete: 100%" in err
    assert re.search(rf"100%\|█+\| +{total}B / +{total}B", err)  # every byte, the weights' too, went through the bar


def test_a_dropped_download_resumes_from_where_it_stopped(hub, musicgen_files, capfd):
    hub.faults[WEIGHTS] = [("cut", CUT)]  # the connection drops after CUT bytes of the weights
    status, out, err = pull(capfd)
    assert status == ExitStatus.OK, err
    gets = hub.requests("GET", WEIGHTS)
    assert [(r.range, r.status) for r in gets] == [(None, 200), (f"bytes={CUT}-", 206)]  # only the rest, once
    assert (Path(out.strip()) / WEIGHTS).read_bytes() == musicgen_files[WEIGHTS]


def test_an_interrupted_pull_says_to_pull_again_and_the_next_pull_completes(hub, musicgen_files, capfd):
    hub.faults[WEIGHTS] = [("cut", CUT), ("status", 503)]  # dropped, and the Hub is gone when it tries to resume
    status, out, err = pull(capfd)
    assert status == ExitStatus.BAD_INPUT and not out
    assert "Traceback" not in err
    [line] = error_lines(err)
    assert "daw-plugin models pull musicgen-small" in line and "again" in line
    assert [r.range for r in hub.requests("GET", WEIGHTS)] == [None, f"bytes={CUT}-"]
    assert not list(Path(constants.HF_HUB_CACHE).rglob("*.incomplete"))  # nothing half-written left behind

    hub.log.clear()
    status, out, err = pull(capfd)
    assert status == ExitStatus.OK, err
    assert (Path(out.strip()) / WEIGHTS).read_bytes() == musicgen_files[WEIGHTS]
    # The files the first pull finished are kept; only the weights are fetched again. (huggingface_hub 2.4
    # resumes bytes within one pull, above; a new pull starts the interrupted file over.)
    assert {r.path.rsplit("/", 1)[-1] for r in hub.log if "/resolve/" in r.path} == {WEIGHTS}


def test_pulling_a_repo_the_hub_does_not_have_fails_in_one_line(hub, capfd):
    status, out, err = pull(capfd, "nobody/no-such-model")
    assert status == ExitStatus.BAD_INPUT and not out
    assert "Traceback" not in err
    [line] = error_lines(err)
    assert "nobody/no-such-model" in line and ("404" in line or "not found" in line.lower())
    assert [(r.path, r.status) for r in hub.log] == [("/api/models/nobody/no-such-model/revision/main", 404)]
