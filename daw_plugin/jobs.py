"""One generation job: a validated request in, takes on disk out.

The same function serves the CLI now and the panel's inference thread later: progress and
cancel are callbacks, errors a user can cause are `UserError`, and a cancelled job writes nothing.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from daw_plugin import __version__
from daw_plugin.audio import Clip, Region, read_clip
from daw_plugin.takes import save_take, slug
from models.errors import UserError

MAX_SECONDS = 300.0  # a typo guard: 5 minutes of audio is hours of CPU and minutes of GPU
MAX_TAKES = 32

# (take index from 0, steps done, steps in the take)
OnProgress = Callable[[int, int, int], None]


@dataclass(frozen=True)
class GenerationRequest:
    """Everything that decides a take. Invalid values raise `UserError` on construction."""

    prompt: str
    model: str
    seconds: float
    takes: int = 1
    seed: int = field(default_factory=lambda: random.randrange(2**31))
    cfg_coef: float = 3.0
    top_k: int = 250
    top_p: float = 0.0
    temperature: float = 1.0
    device: str = "auto"
    text_encoder: str | None = None
    clip: str | None = None  # continuation: the clip and the region of it to continue
    region: Region | None = None
    audio_format: str = "wav"

    def __post_init__(self):
        object.__setattr__(self, "prompt", self.prompt.strip())
        for problem in self._problems():
            raise UserError(problem)

    def _problems(self):
        if not self.prompt and self.clip is None:
            yield "The prompt is empty; describe the sound, or continue a region of a clip."
        if (self.clip is None) != (self.region is None):
            yield "A continuation needs both a clip and a region (--start and --end)."
        if not 0 < self.seconds <= MAX_SECONDS:
            yield f"--seconds must be more than 0 and at most {MAX_SECONDS:g}, not {self.seconds:g}."
        if not 1 <= self.takes <= MAX_TAKES:
            yield f"--takes must be between 1 and {MAX_TAKES}, not {self.takes}."
        if self.seed < 0:
            yield f"--seed must be 0 or more, not {self.seed}."
        if self.cfg_coef < 0:
            yield f"--cfg must be 0 or more (1 turns guidance off), not {self.cfg_coef:g}."
        if self.top_k < 0:
            yield f"--top-k must be 0 (off) or more, not {self.top_k}."
        if not 0 <= self.top_p <= 1:
            yield f"--top-p must be between 0 (off) and 1, not {self.top_p:g}."
        if self.temperature < 0:
            yield f"--temperature must be 0 (greedy) or more, not {self.temperature:g}."
        if self.audio_format not in ("wav", "flac"):
            yield f"Takes can be written as wav or flac, not {self.audio_format!r}."
        if self.region is not None and not 0 <= self.region.start_seconds < self.region.end_seconds:
            yield (f"The region {self.region.start_seconds:g}-{self.region.end_seconds:g} s is empty or "
                   "negative; give a start before the end.")

    @property
    def is_continuation(self) -> bool:
        return self.clip is not None

    def take_seed(self, index: int) -> int:
        """Each take has its own seed, so any one of them can be regenerated alone."""
        return self.seed + index


def run(request: GenerationRequest, out: Path, on_progress: OnProgress | None = None,
        should_stop: Callable[[], bool] | None = None) -> list[Path]:
    """Generate ``request.takes`` takes into ``out``; return their audio paths.

    Bad audio is reported before the model loads; a cancel raises `Cancelled` between steps and
    leaves only the takes already finished.
    """
    source = read_clip(request.clip).region(request.region) if request.is_continuation else None
    from models.registry import load_generator
    from models.sampling import Sampling

    generator = load_generator(request.model, request.device, request.text_encoder)
    prompt_audio = None
    if source is not None:
        prompt_audio = source.conformed(generator.sample_rate, generator.channels).samples
    sampling = Sampling(request.cfg_coef, request.top_k, request.top_p, request.temperature)
    paths = []
    for index in range(request.takes):
        seed = request.take_seed(index)
        audio = generator.generate(
            request.prompt, request.seconds, audio_prompt=prompt_audio, sampling=sampling, seed=seed,
            on_step=None if on_progress is None else (lambda done, total, i=index: on_progress(i, done, total)),
            should_stop=should_stop,
        )
        clip = Clip(audio, generator.sample_rate)
        recipe = _recipe(request, index, seed, clip, generator)
        paths.append(save_take(out, clip, recipe, _stem(request, seed), request.audio_format))
    return paths


def _stem(request: GenerationRequest, seed: int) -> str:
    if request.is_continuation:
        return f"{slug(Path(request.clip).stem)}-continued-seed{seed}"
    return f"{slug(request.prompt)}-seed{seed}"


def _absolute_if_path(name: str) -> str:
    """Model ids stay as they are; folders are recorded absolute, so a recipe works from anywhere."""
    path = Path(name).expanduser()
    return str(path.resolve()) if path.exists() else name


def _recipe(request: GenerationRequest, index: int, seed: int, clip: Clip, generator) -> dict:
    recipe = {
        "kind": "continue" if request.is_continuation else "generate",
        "prompt": request.prompt,
        "model": _absolute_if_path(request.model),
        "seed": seed,
        "take": index + 1,
        "of_takes": request.takes,
        "seconds": request.seconds,
        "parameters": {"cfg_coef": request.cfg_coef, "top_k": request.top_k, "top_p": request.top_p,
                       "temperature": request.temperature,
                       "text_encoder": request.text_encoder and _absolute_if_path(request.text_encoder)},
        "device": str(generator.device),
        "dtype": str(generator.dtype).removeprefix("torch."),
        "sample_rate": clip.sample_rate,
        "channels": clip.channels,
        "duration_seconds": clip.duration_seconds,
        "program": {"name": "daw-plugin", "version": __version__},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if request.is_continuation:
        recipe["source"] = {"clip": str(Path(request.clip).resolve()), **asdict(request.region)}
    return recipe
