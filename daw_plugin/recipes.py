"""A take's recipe: everything that made it, so `takes regenerate` can make it again."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from daw_plugin import __version__
from daw_plugin.audio import Clip


def _absolute_if_path(name: str) -> str:
    """Model ids stay as they are; folders are recorded absolute, so a recipe works from anywhere."""
    path = Path(name).expanduser()
    return str(path.resolve()) if path.exists() else name


def _parameters(request, settings, family_name: str) -> dict:
    """The settings the model ran with, its defaults filled in (a recipe must not depend on tomorrow's
    defaults): only those its family takes (`models.families`)."""
    from models.families import family

    own = family(family_name)
    parameters = {name: getattr(settings, name) for name in own.settings}
    if own.text_encoder_option:
        parameters["text_encoder"] = request.text_encoder and _absolute_if_path(request.text_encoder)
    return parameters


def _file(audio) -> str | None:
    """An audio file's absolute path; None for audio given in memory (a `Clip`)."""
    return None if isinstance(audio, Clip) else str(Path(audio).resolve())


def _preset_reference(name: str) -> str:
    """A built-in preset by name; a preset file by its absolute path, so regenerate finds it from anywhere."""
    from daw_plugin.presets import PRESETS

    return name if name in PRESETS else _absolute_if_path(name)


def _finishing(request, finished, target) -> dict:
    """What decided the finished audio besides the raw take: the preset, and the rate, channels and
    tempo it aimed at (the host's, when there was one), so regenerate needs no host."""
    return {
        **finished.report,
        "preset": _preset_reference(request.preset),
        "sample_rate": target.sample_rate,
        "channels": finished.clip.channels,
        "tempo_bpm": target.bpm,
        "beats_per_bar": target.beats_per_bar,
        "source_bpm": request.source_bpm,  # as declared with --bpm; an estimate is under "estimated_bpm"
    }


def take_recipe(request, index: int, seed: int, raw: Clip, generator, finished, target, settings,
                score: float | None) -> dict:
    """``raw`` is the model's new audio, ``finished`` the `daw_plugin.finishing.Finished` take, ``target`` the
    `Target` it was finished for and ``settings`` the `models.generator.Settings` it was made with. The top-level
    length, rate and channels are the finished take's (what lands on a track); what was asked and what the model
    made are kept apart."""
    clip = finished.clip
    recipe = {
        "kind": "continue" if request.is_continuation else "generate",
        "prompt": request.prompt,
        "model": _absolute_if_path(request.model),
        "family": generator.family,
        "seed": seed,
        "take": index + 1,
        "of_takes": request.takes,
        # The batch it was made in, to make it again: a take depends on its batch (`models.generator`).
        "batch": {"first_seed": request.seed, "takes": request.takes, "index": index},
        "seconds": clip.duration_seconds,
        "requested_seconds": request.seconds,
        "requested_bars": request.bars,
        "parameters": _parameters(request, settings, generator.family),
        "finishing": _finishing(request, finished, target),
        "audio_format": request.audio_format,
        "device": generator.device.type,
        "dtype": str(generator.dtype).removeprefix("torch."),
        "sample_rate": clip.sample_rate,
        "channels": clip.channels,
        "duration_seconds": clip.duration_seconds,
        "raw_take": {"sample_rate": raw.sample_rate, "channels": raw.channels,
                     "duration_seconds": raw.duration_seconds},
        "program": {"name": "daw-plugin", "version": __version__},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if score is not None:
        recipe["clap_score"] = score
    # The original file, for information (null: the audio was in memory); the take keeps a copy, under "audio".
    if request.is_continuation:
        recipe["source"] = {"clip": _file(request.clip), **asdict(request.region)}
    if request.melody is not None:
        part = asdict(request.melody_region) if request.melody_region else {"start_seconds": None, "end_seconds": None}
        recipe["melody"] = {"clip": _file(request.melody), **part}
    return recipe
