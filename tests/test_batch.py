"""A request's takes as one batch on the device: each take its own seed, the batch made again exactly, previews
per take, and a continuation or a melody shared by every take of the batch."""

import numpy as np
import pytest
import torch

from models.clip import Clip
from models.generator import Settings

PROMPT = "dusty drum loop"
SEEDS = [3, 4, 5]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def lms(musicgen_dirs, generator, audioldm2_dir):
    from models import audioldm2, musicgen

    cpu = torch.device("cpu")
    return {"audiogen": generator, "stereo": musicgen.load(musicgen_dirs["stereo"], cpu),
            "melody": musicgen.load(musicgen_dirs["melody"], cpu), "audioldm2": audioldm2.load(audioldm2_dir, cpu)}


def tone(sample_rate: int, seconds: float, channels: int = 1) -> Clip:
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return Clip(np.tile(0.3 * np.sin(2 * np.pi * 440 * t, dtype=np.float32), (channels, 1)), sample_rate)


def options(kind: str, lm) -> dict:
    """Each family at its cheapest; the continuation's region at another rate and channel count than the model's."""
    settings = Settings(steps=2) if kind == "audioldm2" else Settings()
    extra = {"melody": tone(22050, 0.7, channels=2)} if kind == "melody" else {}
    return {"settings": settings, "prompt": tone(44100, 0.6, channels=2), "preroll_seconds": 0.04, **extra}


@pytest.mark.parametrize("kind", ["audiogen", "stereo", "melody", "audioldm2"])
def test_each_take_has_its_own_seed_and_a_batch_is_made_again_exactly(lms, kind):
    lm = lms[kind]
    batch = lm.generate(PROMPT, 0.5, seeds=SEEDS, **options(kind, lm))
    expected = round(0.5 * lm.sample_rate) + round(0.04 * lm.sample_rate)  # new audio and the preroll
    assert [take.shape for take in batch] == [(lm.channels, expected)] * 3
    assert not np.allclose(batch[0], batch[1]) and not np.allclose(batch[1], batch[2])
    again = lm.generate(PROMPT, 0.5, seeds=SEEDS, **options(kind, lm))
    for take, repeat in zip(batch, again, strict=True):
        np.testing.assert_array_equal(take, repeat)


@pytest.mark.parametrize("kind", ["stereo", "audioldm2"])
def test_each_takes_previews_add_up_to_it(lms, kind):
    lm = lms[kind]
    chunks: dict[int, list] = {0: [], 1: []}
    takes = lm.generate(PROMPT, 1.5, seeds=SEEDS[:2], on_preview=lambda take, chunk: chunks[take].append(chunk),
                        settings=options(kind, lm)["settings"])
    assert len(chunks[0]) == (1 if kind == "audioldm2" else 2)  # the token models: a chunk a second of audio
    for take, audio in enumerate(takes):
        np.testing.assert_array_equal(np.concatenate(chunks[take], axis=1), audio)


def test_the_batch_steps_together(lms):
    """N takes cost one take's steps, each step N rows wide: the progress a musician sees counts them once."""
    lm, totals = lms["audiogen"], {}
    for takes in (1, 3):
        steps: list[int] = []
        lm.generate(PROMPT, 0.3, seeds=SEEDS[:takes], on_step=lambda done, total, seen=steps: seen.append(total))
        totals[takes] = set(steps)
    assert totals[1] == totals[3] and len(totals[1]) == 1
