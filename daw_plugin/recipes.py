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


def _parameters(request, options: dict) -> dict:
    """The values the model ran with, defaults filled in: a recipe must not depend on tomorrow's defaults.

    Only what the model's family uses: a token model samples, AudioLDM 2 denoises.
    """
    sampling = options.get("sampling")
    if sampling is None:
        return {"cfg_coef": options["guidance"], "steps": options["steps"],
                "negative_prompt": options["negative_prompt"]}
    return {
        "cfg_coef": sampling.cfg_coef, "top_k": sampling.top_k, "top_p": sampling.top_p,
        "temperature": sampling.temperature,
        "text_encoder": request.text_encoder and _absolute_if_path(request.text_encoder),
    }


def take_recipe(request, index: int, seed: int, clip: Clip, generator, finishing: dict, options: dict,
                score: float | None) -> dict:
    recipe = {
        "kind": "continue" if request.is_continuation else "generate",
        "prompt": request.prompt,
        "model": _absolute_if_path(request.model),
        "family": generator.family,
        "seed": seed,
        "take": index + 1,
        "of_takes": request.takes,
        "seconds": request.seconds,
        "parameters": _parameters(request, options),
        "finishing": {**finishing, "source_bpm": request.source_bpm},
        "audio_format": request.audio_format,
        "device": generator.device.type,
        "dtype": str(generator.dtype).removeprefix("torch."),
        "sample_rate": clip.sample_rate,
        "channels": clip.channels,
        "duration_seconds": clip.duration_seconds,
        "program": {"name": "daw-plugin", "version": __version__},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if score is not None:
        recipe["clap_score"] = score
    if request.is_continuation:
        recipe["source"] = {"clip": str(Path(request.clip).resolve()), **asdict(request.region)}
    if request.melody is not None:
        part = asdict(request.melody_region) if request.melody_region else {"start_seconds": None, "end_seconds": None}
        recipe["melody"] = {"clip": str(Path(request.melody).resolve()), **part}
    return recipe
