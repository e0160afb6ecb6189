"""Seed an Audacity config so that mod-script-pipe is enabled on the next start, with no dialog to click.

Audacity 3.2 ships the module disabled and only trusts an enabled entry whose recorded date matches
the ``.so`` file's mtime exactly; any mismatch resets it to "new" and no pipes open. A config without
a ``[Version]`` group is treated as old and loses ``ShowSplashScreen=0``, so the splash would come back.

    python -m daw_plugin.hosts.audacity_setup ~/   # then start Audacity as usual

Where Audacity has never run, its first start scans plugins in a helper process that loads the
module too, takes the pipes and drops them: restart it once (``packaging/audacity/start-headless.sh``
does a warm-up start with ``--module-off`` for you).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from daw_plugin.files import replace_file
from daw_plugin.hosts.base import HostError

MODULE = "mod-script-pipe"
MODULE_DIRS = (
    "/usr/lib/audacity/modules",  # Debian, Ubuntu
    "/usr/lib/x86_64-linux-gnu/audacity/modules",
    "/usr/lib64/audacity/modules",  # Fedora
    "/usr/local/lib/audacity/modules",  # built from source
)
VERSION = (3, 2, 4)  # the Audacity the notes were checked against; only written when the config has none


def config_path(home: Path) -> Path:
    return Path(home) / ".config" / "audacity" / "audacity.cfg"


def default_temp_dir(home: Path) -> Path:
    return Path(home) / ".local" / "share" / "audacity" / "temp"


def find_module(dirs: tuple[str, ...] = MODULE_DIRS) -> Path:
    """The installed ``mod-script-pipe.so``; `HostError` when Audacity (or its module) is not installed."""
    for folder in dirs:
        candidate = Path(folder) / f"{MODULE}.so"
        if candidate.is_file():
            return candidate
    raise HostError(
        f"Audacity's {MODULE}.so is not in {', '.join(dirs)}; install Audacity 3.x (Debian: apt-get install audacity)."
    )


def module_date(module: Path) -> str:
    # Audacity compares this string with the file's mtime formatted in local time, so it must
    # be formatted the same way, in the same time zone as the Audacity process (both read $TZ).
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(module.stat().st_mtime))


def seed_config(home: Path, module: Path | None = None, enable_module: bool = True) -> Path:
    """Write (or update) ``home/.config/audacity/audacity.cfg`` and return its path; idempotent.

    Only the keys that matter are set; every other line already in the file (Audacity's own
    settings, a user's preferences) is kept as it is. ``enable_module=False`` is for the warm-up
    start of a fresh HOME: that start scans plugins in a helper process which would otherwise
    take the pipes and drop them when it exits.
    """
    module = Path(module) if module else find_module()
    path = config_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    groups = _read(path)
    _set(groups, "Module", MODULE, "1" if enable_module else "0")
    _set(groups, "ModulePath", MODULE, str(module))
    _set(groups, "ModuleDateTime", MODULE, module_date(module))
    _set(groups, "GUI", "ShowSplashScreen", "0")
    if "Version" not in groups:
        for key, number in zip(("Major", "Minor", "Micro"), VERSION, strict=True):
            _set(groups, "Version", key, str(number))
    if not _get(groups, "Directories", "TempDir"):
        # Unsaved projects land here instead of /var/tmp, so a throwaway HOME takes them with it.
        temp = default_temp_dir(home)
        temp.mkdir(parents=True, exist_ok=True)
        _set(groups, "Directories", "TempDir", str(temp))
    _write(groups, path)
    return path


# wxFileConfig files are INI-like, but Audacity writes keys before the first [group] header, which
# configparser rejects: a small line editor keeps every line it does not change byte for byte.
Groups = dict[str, list[str]]  # group name ("" for the keys before any header) -> its "key=value" lines


def _read(path: Path) -> Groups:
    groups: Groups = {"": []}
    current = ""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    for line in text.splitlines():
        if line.startswith("[") and line.rstrip().endswith("]"):
            current = line.strip()[1:-1]
            groups.setdefault(current, [])
        elif line.strip():
            groups[current].append(line)
    return groups


def _get(groups: Groups, group: str, key: str) -> str | None:
    for line in groups.get(group, []):
        name, _, value = line.partition("=")
        if name.strip() == key:
            return value.strip()
    return None


def _set(groups: Groups, group: str, key: str, value: str) -> None:
    lines = groups.setdefault(group, [])
    for number, line in enumerate(lines):
        if line.partition("=")[0].strip() == key:
            lines[number] = f"{key}={value}"
            return
    lines.append(f"{key}={value}")


def _write(groups: Groups, path: Path) -> None:
    parts = list(groups[""])
    for group, lines in groups.items():
        if group:
            parts += [f"[{group}]", *lines]
    text = "\n".join(parts) + "\n"
    replace_file(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), keep_mode=True)


if __name__ == "__main__":
    # python -m daw_plugin.hosts.audacity_setup HOME [--module-off]: used by packaging/audacity/start-headless.sh
    target = Path(sys.argv[1] if len(sys.argv) > 1 else Path.home()).expanduser()
    print(seed_config(target, enable_module="--module-off" not in sys.argv[2:]))
