"""A resolved model -> a ready generator on a device, with the threads torch gets chosen for its size."""

from __future__ import annotations

import importlib
from pathlib import Path

from models.conversion_cache import converted
from models.errors import UserError, naming
from models.formats import WEIGHTS
from models.generator import Generator
from models.resolution import Resolved, resolve


def load_generator(model: str | Resolved, device: str = "auto", text_encoder: str | None = None,
                   threads: int | None = None, precision: str | None = None) -> Generator:
    """A ready generator (see `models.generator.Generator`) for ``model`` on ``device``.

    On the CPU torch gets ``threads`` threads, or as many as `models.device.cpu_threads` chooses for the
    model's size and the free cores; on a GPU only a given ``threads`` is applied. ``generator.threads`` says
    which (None: torch's default). ``text_encoder`` (audiocraft checkpoints) overrides the registered one.
    ``precision`` (`models.precision`; None: auto) is how a token model's decoder holds its weights;
    ``generator.precision`` says which it got.
    """
    from models.device import cpu_threads, give_back_free_memory, resolve_device, use_threads

    torch_device = resolve_device(device)
    resolved = model if isinstance(model, Resolved) else resolve(model)
    folder = resolved.folder
    if resolved.format.kind == "audiocraft":
        named = resolved.info.text_encoder if resolved.info else None
        folder = converted(folder, text_encoder or resolved.text_encoder or named)
    if threads is None and torch_device.type == "cpu":
        threads = cpu_threads(weight_bytes(folder))
    if threads is not None:
        use_threads(threads)
    with naming("precision"):
        precision = _precision(resolved, folder, torch_device, precision)
    generator = _load(resolved, folder, torch_device, precision)
    generator.threads = threads
    if torch_device.type == "cpu":
        give_back_free_memory()  # what loading made and dropped: the decoder's packing, its float32 copies
    return generator


def _precision(resolved: Resolved, folder: Path, torch_device, precision: str | None) -> str | None:
    """The token models' decoder precision, resolved; AudioLDM 2 keeps its own dtype (None), refusing others."""
    from models.precision import resolve_precision

    if resolved.format.family != "audioldm2":
        return resolve_precision(precision, torch_device.type, weight_bytes(folder))
    own = "float16" if torch_device.type == "cuda" else "float32"
    if precision not in (None, "auto", own):
        raise UserError(f"AudioLDM 2 runs in {own} on {torch_device.type}; leave out --precision for it.")
    return None


def _load(resolved: Resolved, folder: Path, torch_device, precision: str | None) -> Generator:
    """The family's own module loads it: every one has ``load(folder, device)``, the token models ``precision`` too."""
    module = importlib.import_module(f"models.{resolved.format.family}")
    generator = module.load(folder, torch_device) if precision is None else module.load(folder, torch_device,
                                                                                         precision=precision)
    generator.name = resolved.name
    return generator


def weight_bytes(folder: Path) -> int:
    """The size of the weight files under ``folder`` (diffusers keeps them in subfolders): the model's size."""
    return sum(path.stat().st_size for pattern in WEIGHTS for path in folder.rglob(pattern) if path.is_file())
