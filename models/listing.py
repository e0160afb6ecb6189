"""``models list``: the models the plugin knows by name and the ones added with ``models add``, on disk or not."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from models import registrations
from models.catalog import KNOWN
from models.formats import detect, is_complete
from models.hub import local_snapshot


@dataclass(frozen=True)
class Entry:
    """One line of ``models list``."""

    name: str
    family: str
    size: str
    license: str
    on_disk: bool
    where: str  # a hub repo, or the folder a registered model lives in
    stereo: bool = False
    melody: bool = False


def entries() -> list[Entry]:
    rows = [Entry(i.id, i.family, i.size, i.license, local_snapshot(i.repo, i) is not None, i.repo, i.stereo,
                  i.melody) for i in KNOWN]
    for name, registered in sorted(registrations.read().items()):
        folder = registered.path
        found = detect(Path(folder))
        rows.append(Entry(name, found.family if found else "?", "-", "see the model's own card",
                          found is not None and is_complete(Path(folder), found.kind), folder,
                          bool(found and found.stereo), bool(found and found.melody)))
    return rows
