"""Finishing presets: what happens to a raw generation before it lands on a track.

Built-in presets cover the common cases; a user preset is a JSON file with the same fields
(``daw-plugin ... --preset my-preset.json``), saved atomically and safe to edit by hand. A preset's
plugin chain holds pedalboard's built-in effects or the user's own VST3s with their saved state.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import pedalboard

from daw_plugin.files import replace_file
from models.errors import UserError, brief


class PresetError(UserError):
    """The preset the user chose cannot be used: its field is ``preset``, so a front end points at the choice."""

    def __init__(self, message: str):
        super().__init__(message, field="preset")


class InvalidPreset(PresetError):
    """A preset setting of the wrong type or out of range: one sentence naming the preset and the setting."""

    def __init__(self, problem: str, where: str = ""):
        super().__init__(f"The preset{' ' + where if where else ''} is not valid: {problem}; fix it or remove it.")
        self.problem = problem


@dataclass(frozen=True)
class PluginSpec:
    """One plugin in a preset's chain: a pedalboard built-in by class name, or a VST3 by path."""

    builtin: str | None = None  # e.g. "Reverb", "Compressor"
    params: dict = field(default_factory=dict)  # constructor arguments (built-in) or parameter values (VST3)
    path: str | None = None  # a .vst3 bundle
    state_base64: str | None = None  # the VST3's saved state (pedalboard's raw_state), as saved with the preset

    def __post_init__(self):
        if (self.builtin is None) == (self.path is None):
            raise InvalidPreset("each plugin names either a pedalboard effect (\"builtin\") or a VST3 (\"path\"), "
                                "not both or neither")
        for name in ("builtin", "path", "state_base64"):
            if not isinstance(getattr(self, name), str | None):
                raise InvalidPreset(f"a plugin's {name} must be text, not {getattr(self, name)!r}")
        if not isinstance(self.params, dict):
            raise InvalidPreset(f"a plugin's params must be an object of settings, not {self.params!r}")

    def load(self) -> pedalboard.Plugin:
        """The live plugin; one `PresetError` line if it cannot be made."""
        if self.builtin is not None:
            return self._builtin(self.builtin)
        path = Path(self.path or "")
        if not path.exists():
            raise PresetError(f"The plugin {path} does not exist; fix its path in the preset or remove it.")
        try:
            plugin = pedalboard.load_plugin(str(path), parameter_values=self.params)
            if self.state_base64:
                # load_plugin gives a VST3Plugin, or an AudioUnitPlugin on macOS: both have raw_state, which
                # pedalboard's stub leaves off their common base, ExternalPlugin.
                plugin.raw_state = base64.b64decode(self.state_base64)  # type: ignore[attr-defined]
        except Exception as error:  # pedalboard raises ImportError, RuntimeError or ValueError here
            raise PresetError(f"{path} could not be loaded as a plugin ({brief(error)}); "
                            "use a VST3 built for this system.") from error
        return plugin

    def _builtin(self, name: str) -> pedalboard.Plugin:
        cls = getattr(pedalboard, name, None)
        if not (isinstance(cls, type) and issubclass(cls, pedalboard.Plugin)) or issubclass(
                cls, (pedalboard.ExternalPlugin, pedalboard.PluginContainer)):
            raise PresetError(f"{name!r} is not one of pedalboard's built-in effects; check the preset.")
        try:
            return cls(**self.params)
        except (TypeError, ValueError) as error:
            raise PresetError(f"Bad settings for {self.builtin} in the preset ({brief(error)}).") from error


@dataclass(frozen=True)
class Preset:
    """How a take is finished. None or 0 turns a stage off."""

    name: str
    channels: int | None = None  # 1 or 2; None keeps the take's
    highpass_hz: float | None = None
    target_lufs: float | None = None  # integrated loudness, ITU-R BS.1770
    match_region_loudness: bool = False  # a continuation takes the loudness of the region it continues
    ceiling_dbtp: float | None = None  # true-peak ceiling of the limiter
    fade_in_ms: float = 0.0
    fade_out_ms: float = 0.0
    tempo_fit: bool = False  # stretch to the host's BPM, then trim or loop to whole bars
    loop: bool = False  # seamless loop: the end cross-faded into the start
    loop_crossfade_ms: float = 40.0
    seam_crossfade_ms: float = 20.0  # a continuation's seam against the region it continues
    plugins: tuple[PluginSpec, ...] = ()

    def __post_init__(self):
        for problem in _problems(self):
            raise InvalidPreset(problem, repr(self.name) if isinstance(self.name, str) else "")


# The sane range of each number, with its unit; a value outside (a negative high-pass, say) makes
# pedalboard's filters unstable or the loudness stage chase a level nobody wants.
RANGES = {
    "highpass_hz": (0.0, 1000.0, "Hz"),
    "target_lufs": (-70.0, 0.0, "LUFS"),
    "ceiling_dbtp": (-20.0, 0.0, "dBTP"),
    "fade_in_ms": (0.0, 10000.0, "ms"),
    "fade_out_ms": (0.0, 10000.0, "ms"),
    "loop_crossfade_ms": (0.0, 1000.0, "ms"),
    "seam_crossfade_ms": (0.0, 1000.0, "ms"),
}
OPTIONAL = ("highpass_hz", "target_lufs", "ceiling_dbtp")  # None turns the stage off
FLAGS = ("match_region_loudness", "tempo_fit", "loop")


def _problems(preset: Preset):
    if not isinstance(preset.name, str) or not preset.name:
        yield f"name must be some text, not {preset.name!r}"
    if preset.channels is not None and (type(preset.channels) is not int or preset.channels not in (1, 2)):
        yield f"channels must be 1, 2 or null (keep the take's), not {preset.channels!r}"
    for name, (low, high, unit) in RANGES.items():
        value = getattr(preset, name)
        if value is None and name in OPTIONAL:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            yield f"{name} must be a number{' or null' if name in OPTIONAL else ''}, not {value!r}"
        elif not low <= value <= high:
            yield f"{name} must be between {low:g} and {high:g} {unit}, not {value:g}"
    for name in FLAGS:
        if not isinstance(getattr(preset, name), bool):
            yield f"{name} must be true or false, not {getattr(preset, name)!r}"
    if not isinstance(preset.plugins, tuple | list) or not all(isinstance(s, PluginSpec) for s in preset.plugins):
        yield "plugins must be a list of plugins"


PRESETS = {
    "raw": Preset("raw"),
    "foley": Preset("foley", highpass_hz=40.0, target_lufs=-20.0, match_region_loudness=True, ceiling_dbtp=-1.0,
                    fade_in_ms=5.0, fade_out_ms=30.0),
    "music-stem": Preset("music-stem", channels=2, highpass_hz=30.0, target_lufs=-14.0, match_region_loudness=True,
                         ceiling_dbtp=-1.0, fade_in_ms=2.0, fade_out_ms=10.0, tempo_fit=True, loop=True),
}


def user_preset_dir() -> Path:
    root = os.environ.get("XDG_CONFIG_HOME", "~/.config")
    return Path(root).expanduser() / "daw-plugin" / "presets"


def load_preset(name_or_path: str) -> Preset:
    """A built-in name, a user preset's name (in `user_preset_dir`), or a JSON file's path."""
    if name_or_path in PRESETS:
        return PRESETS[name_or_path]
    path = Path(name_or_path).expanduser()
    if not path.suffix:
        path = user_preset_dir() / f"{name_or_path}.json"
    if not path.is_file():
        raise PresetError(f"There is no preset {name_or_path!r}; use {', '.join(PRESETS)} or a preset JSON file.")
    try:
        fields = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise PresetError(f"The preset {path} is not valid ({brief(error)}); fix or remove it.") from error
    try:
        return _preset_from(fields, path.stem)
    except InvalidPreset as error:
        raise InvalidPreset(error.problem, str(path)) from error


def _preset_from(fields, name: str) -> Preset:
    """A preset from its JSON, every setting checked (type, finite, in range) before any audio is made."""
    if not isinstance(fields, dict):
        raise InvalidPreset("it must be a JSON object of settings")
    valid = [f.name for f in dataclasses.fields(Preset)]
    if unknown := sorted(set(fields) - set(valid)):
        raise InvalidPreset(f"it has the unknown setting{'s' * (len(unknown) > 1)} {', '.join(map(repr, unknown))} "
                            f"(the valid ones are {', '.join(valid)})")
    specs = fields.get("plugins", [])
    if not isinstance(specs, list) or not all(isinstance(spec, dict) for spec in specs):
        raise InvalidPreset("plugins must be a list of objects such as {\"builtin\": \"Reverb\"}")
    keys = [f.name for f in dataclasses.fields(PluginSpec)]
    for spec in specs:
        if unknown := sorted(set(spec) - set(keys)):
            raise InvalidPreset(f"a plugin has the unknown setting {unknown[0]!r} "
                                f"(the valid ones are {', '.join(keys)})")
    return Preset(**{"name": name, **fields, "plugins": tuple(PluginSpec(**spec) for spec in specs)})


def save_preset(preset: Preset, path: Path) -> Path:
    """Write ``preset`` as JSON, atomically (a temporary file, then a rename)."""
    text = json.dumps(dataclasses.asdict(preset), indent=2) + "\n"
    return replace_file(path, lambda tmp: tmp.write_text(text))
