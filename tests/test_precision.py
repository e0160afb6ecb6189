"""Reduced-precision weights for the token models' decoder: quality against float32, exact takes, the option's
path from the CLI and a request to the loaded generator and the recipe, and refusals where a mode cannot run."""

import json

import pytest
import torch
from test_cli import cli

from daw_plugin.cli import ExitStatus
from daw_plugin.recipes import Recipe
from daw_plugin.request import GenerationRequest
from models.errors import InvalidRequest, UserError
from models.precision import bfloat16_native, int8_available, resolve_precision
from models.quality import THRESHOLDS, compare, spectral_distance_db

REDUCED = [pytest.param("int8", marks=pytest.mark.skipif(not int8_available(), reason="no int8 CPU kernels")),
           pytest.param("bfloat16", marks=pytest.mark.skipif(not bfloat16_native(), reason="no native bfloat16"))]


@pytest.fixture(scope="module")
def float32_lm(musicgen_dirs):
    from models.registry import load_generator

    return load_generator(str(musicgen_dirs["mono"]), "cpu", precision="float32")


@pytest.mark.parametrize("precision", REDUCED)
def test_a_reduced_precision_stays_within_the_thresholds_of_float32(float32_lm, precision):
    quality = compare(float32_lm, precision, steps=THRESHOLDS.steps)
    assert quality.passes(), quality
    assert quality.logits_max > 0  # the weights really are held in fewer bits


def test_the_checks_catch_a_decoder_that_is_wrong(float32_lm, monkeypatch):
    import models.linear

    right = models.linear.linear

    def off_by_a_lot(weight, precision):  # a broken int8 kernel: the weights' sign flipped in a quarter of the rows
        if precision != "int8":
            return right(weight, precision)
        broken = weight.clone()
        broken[: weight.shape[0] // 4] *= -1
        return lambda x: torch.nn.functional.linear(x, broken)

    monkeypatch.setattr(models.linear, "linear", off_by_a_lot)
    quality = compare(float32_lm, "int8", steps=50)
    assert not quality.passes() and quality.agreement < THRESHOLDS.agreement


@pytest.mark.parametrize("precision", REDUCED)
def test_kernels_built_side_by_side_compute_what_each_built_alone_does(precision, monkeypatch):
    from models import linear as kernels

    monkeypatch.setattr(kernels, "usable_core_count", lambda: 3)  # side by side even on a one-core machine
    torch.manual_seed(0)
    weights = [torch.randn(rows, 48) for rows in (96, 48, 144, 48, 200)]
    x = torch.randn(2, 48)
    threads = torch.get_num_threads()
    together = kernels.linears(weights, precision)
    assert torch.get_num_threads() == threads  # torch's threads are given back after packing
    for weight, kernel in zip(weights, together, strict=True):
        assert torch.equal(kernel(x), kernels.linear(weight, precision)(x))


@pytest.mark.parametrize("precision", REDUCED)
def test_the_checks_refuse_a_reduced_generator_which_has_freed_its_float32_weights(musicgen_dirs, precision):
    from models.registry import load_generator

    reduced = load_generator(str(musicgen_dirs["mono"]), "cpu", precision=precision)
    with pytest.raises(ValueError, match="needs a generator loaded in float32"):
        compare(reduced, "int8", steps=2)


def test_the_spectral_distance_is_zero_for_the_same_audio_and_grows_with_a_difference():
    noise = torch.randn(1, 16000).numpy()
    assert spectral_distance_db(noise, noise) == 0
    assert spectral_distance_db(noise, 0.5 * noise) == pytest.approx(20 * torch.log10(torch.tensor(2.0)).item(),
                                                                      rel=1e-3)


@pytest.mark.parametrize("kind", ["mono", "melody"])
@pytest.mark.parametrize("precision", ["float32", *REDUCED])
def test_each_precision_makes_takes_of_exact_length_from_its_own_weights_only(musicgen_dirs, precision, kind):
    from models.registry import load_generator

    generator = load_generator(str(musicgen_dirs[kind]), "cpu", precision=precision)
    assert generator.precision == precision
    takes = generator.generate("a steady beat", 0.37, seeds=[1, 2])
    assert [take.shape for take in takes] == [(1, round(0.37 * generator.sample_rate))] * 2
    assert all(take.dtype == "float32" and abs(take).max() > 0 for take in takes)
    # A reduced precision's generator frees the modules' float32 copies of its products: they were never read.
    decoder = generator.model.decoder
    layer = decoder.model.decoder.layers[0]
    left = [module.weight.numel() for module in (layer.self_attn.q_proj, layer.fc1, decoder.lm_heads[0])]
    assert all(left) if precision == "float32" else not any(left)


@pytest.mark.skipif(not int8_available(), reason="no int8 CPU kernels")
@pytest.mark.parametrize("native, cache_dtype", [(True, torch.bfloat16), (False, torch.float32)])
def test_int8_keeps_its_kv_cache_in_bfloat16_only_where_the_cpu_has_native_bfloat16(
        float32_lm, musicgen_dirs, monkeypatch, native, cache_dtype):
    import models.precision
    from models.registry import load_generator

    def stand_in_for_the_cpu_check():  # bfloat16 attention runs everywhere, emulated where the CPU lacks it
        return native

    monkeypatch.setattr(models.precision, "bfloat16_native", stand_in_for_the_cpu_check)
    generator = load_generator(str(musicgen_dirs["mono"]), "cpu", precision="int8")
    state = generator.decoder.start(None, batch=2, max_len=4)
    assert {cache.dtype for cache in state.cache} == {cache_dtype}
    (take,) = generator.generate("a steady beat", 0.37, seeds=[1])
    assert take.shape == (1, round(0.37 * generator.sample_rate))
    quality = compare(float32_lm, "int8", steps=THRESHOLDS.steps)  # its reduced decoder asks the stand-in too
    assert quality.passes(), quality


def test_float32_keeps_an_exact_kv_cache_whatever_the_cpu(float32_lm):
    assert float32_lm.decoder.cache_dtype == torch.float32


def test_auto_keeps_a_tiny_model_in_float32_and_picks_int8_for_a_big_one_on_the_cpu():
    assert resolve_precision(None, "cpu", 2 * 2**20) == "float32"
    assert resolve_precision("auto", "cpu", 1500 * 2**20) == ("int8" if int8_available() else "float32")
    assert resolve_precision(None, "cuda", 1500 * 2**20) == "float16"


@pytest.mark.parametrize("precision, device, fix", [
    ("float16", "cpu", "on the CPU use --precision"), ("int8", "cuda", "int8 runs on the CPU only"),
    ("int4", "cpu", "Unknown precision 'int4'"),
])
def test_a_precision_this_device_cannot_run_is_one_sentence(precision, device, fix):
    with pytest.raises(UserError, match=fix):
        resolve_precision(precision, device, 2**30)


def test_audioldm2_refuses_a_reduced_precision_before_loading(audioldm2_dir):
    from models.registry import load_generator

    with pytest.raises(UserError, match="AudioLDM 2 runs in float32 on cpu; leave out --precision"):
        load_generator(str(audioldm2_dir), "cpu", precision="int8")


def test_a_request_names_the_field_of_an_unknown_precision():
    with pytest.raises(InvalidRequest) as info:
        GenerationRequest(prompt="x", model="m", seconds=1.0, precision="int4")
    assert [problem.field for problem in info.value.problems] == ["precision"]


def test_the_cli_passes_precision_to_the_model_and_the_recipe_keeps_it(capsys, musicgen_dirs, tmp_path):
    status, out, err = cli(capsys, "generate", "a beat", "--model", musicgen_dirs["mono"], "--seconds", 0.3,
                           "--precision", "int8", "--preset", "raw", "--out", tmp_path, "--seed", 4)
    assert status == 0, err
    (path,) = out.split()
    recipe = json.loads(next(tmp_path.rglob("*.json")).read_text())
    assert recipe["precision"] == "int8"
    assert GenerationRequest.from_recipe(recipe).precision == "int8"  # regenerate asks for it again

    status, _, err = cli(capsys, "generate", "a beat", "--model", musicgen_dirs["mono"], "--precision", "int4",
                         "--out", tmp_path)
    assert status == ExitStatus.BAD_INPUT and "--precision must be auto" in err and len(err.splitlines()) == 1


def test_an_older_recipe_reads_as_the_precision_it_ran_in():
    from test_recipes import OLDEST

    assert Recipe.from_json(OLDEST).ran_in == "float32" and "precision" not in Recipe.from_json(OLDEST).to_json()
    assert Recipe.from_json({**OLDEST, "device": "cuda"}).ran_in == "float16"
    assert GenerationRequest.from_recipe(OLDEST).precision == "float32"  # not auto: a big model would get int8
