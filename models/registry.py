"""Model names -> folders on disk -> loaded generators: one front door to the modules that do each part.

- `models.catalog`: the models known by name, and what counts as a hub repo name;
- `models.resolution`: what ``--model`` names and where it is on disk (`resolve`, `Resolved`);
- `models.hub`: the Hugging Face Hub calls (`pull`, `local_snapshot`);
- `models.registrations` (``models.json``) and `models.registering` (``models add`` / ``remove``);
- `models.listing`: ``models list``;
- `models.conversion_cache`: audiocraft folders converted once into our cache (`converted`, `cache_dir`);
- `models.loading`: a resolved model -> a ready generator (`load_generator`).

Callers import from here (tests replace ``models.registry.load_generator``), so keep calling through it.
"""

from models.catalog import hub_repo
from models.conversion_cache import cache_dir, converted
from models.hub import local_snapshot, missing, pull
from models.listing import Entry, entries
from models.loading import load_generator, weight_bytes
from models.registering import add, registered_models, remove
from models.registrations import Registration, config_dir
from models.resolution import Resolved, local_model, resolve

__all__ = [
    "Entry", "Registration", "Resolved", "add", "cache_dir", "config_dir", "converted", "entries",
    "hub_repo", "load_generator", "local_model", "local_snapshot", "missing", "pull", "registered_models", "remove",
    "resolve", "weight_bytes",
]
