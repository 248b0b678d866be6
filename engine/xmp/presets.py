"""Presets: named sets of recipe settings, stored as XMP files in hostplug's namespace.

A preset file holds only the settings it changes (see :mod:`engine.xmp.recipe_properties` for the layout), so presets
stack: applied in order, the last one wins for each setting it sets. A *style* preset sets ``style`` (one per
picture style the engine knows); the others are adjustments.

Where presets come from, later folders overriding earlier ones by name (case-insensitive):

1. the presets shipped with hostplug: the repository's top-level ``presets/``, packaged as
   ``engine/shipped_presets/`` (a link to it), so a source checkout, an editable install and a wheel all read the
   same files;
2. the user's folder: ``$XDG_CONFIG_HOME/hostplug/presets`` (default ``~/.config/hostplug/presets``), where a
   copied and edited preset can be dropped.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from engine.errors import RecipeError, SidecarError, UnknownPresetError, shown
from engine.io.bounded import read_regular
from engine.output.metadata import XMP_NS_URI
from engine.recipe import Recipe, StageSettings
from engine.xmp.document import MAX_PACKET_BYTES, parse_packet, setting_properties
from engine.xmp.recipe_properties import properties_to_settings

PRESET_SUFFIX = ".xmp"


@dataclass(frozen=True)
class Preset:
    """A named set of recipe settings read from one XMP file."""

    name: str
    path: Path
    settings: dict[str, Any]  # recipe settings, only those the file sets
    stages: dict[str, Any] = field(default_factory=dict)  # stage settings, in the recipe's JSON form
    description: str = ""

    @property
    def kind(self) -> str:
        """"style" for a picture style preset, else "adjustment"."""
        return "style" if "style" in self.settings else "adjustment"

    def apply(self, recipe: Recipe) -> Recipe:
        """``recipe`` with this preset's settings (and stage settings) replacing its own; SidecarError naming the
        preset for settings that contradict each other ("auto" white balance with a temperature)."""
        try:
            changed = recipe.replace(**self.settings)  # a temperature implies custom white balance
        except RecipeError as e:
            raise SidecarError(f"{self.path}: {e}") from None
        if not self.stages:
            return changed
        stages = dict(changed.stages)
        overrides = Recipe.from_dict({"stages": self.stages}).stages
        stages.update({name: _merged(name, stages.get(name), s, "enabled" in self.stages[name])
                       for name, s in overrides.items()})
        return changed.replace(stages=stages)


def _merged(name: str, current: StageSettings | None, preset: StageSettings, sets_enabled: bool) -> StageSettings:
    """A stage's settings with the preset's on top (fixed params merge key by key); a stage the user switched
    off stays off unless the preset says ``enabled`` itself. A preset that names another implementation keeps
    what the stored params of the recipe's one mean now (:func:`engine.pipeline.switched_params`)."""
    if current is None:
        return preset
    params = current.params
    if preset.implementation is not None and "version" in params:
        from engine.pipeline import switched_params

        params = switched_params(name, current.implementation, params, preset.implementation)
    return StageSettings(enabled=preset.enabled if sets_enabled else current.enabled,
                         implementation=preset.implementation or current.implementation,
                         params={**params, **preset.params})


def shipped_folder() -> Path:
    """The folder of the presets that come with hostplug."""
    return Path(str(resources.files("engine") / "shipped_presets"))


def config_home() -> Path:
    """The user's configuration folder: ``$XDG_CONFIG_HOME``, ``~/.config`` without it (hostplug's settings live in
    its ``hostplug`` folder)."""
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")


def user_folder() -> Path:
    """The user's preset folder (it may not exist)."""
    return config_home() / "hostplug" / "presets"


def read_preset(path: Path) -> Preset:
    """Read one preset file; :class:`SidecarError` when it is malformed or sets no setting of ours."""
    data = read_regular(path, MAX_PACKET_BYTES, "preset", SidecarError)
    # a description may be a language alternative, as dc:description is; a setting written so is refused
    properties = setting_properties(parse_packet(data, str(path)), XMP_NS_URI, str(path), loose=("description",))
    if not properties:
        raise SidecarError(f"{path}: not a hostplug preset (no properties in {XMP_NS_URI})")
    settings, stages = properties_to_settings(properties, str(path))
    return Preset(name=unicodedata.normalize("NFC", path.stem).lower(), path=path, settings=settings, stages=stages,
                  description=properties.get("description", ""))


def _key(name: str) -> str:
    """A preset name as it is looked up: "Café" typed is the file "Cafe\u0301.xmp" a Mac or a share wrote
    (composed alike), and "STRASSE" is "Straße" (case folded)."""
    return unicodedata.normalize("NFC", name).casefold()


def _preset_files() -> dict[str, Path | tuple[Path, ...]]:
    """Preset name (:func:`_key`) -> file, user presets overriding shipped ones of the same name; a name that two
    files of one folder give (UPPER.xmp and upper.XMP) -> both, which no use may pick between."""
    files: dict[str, Path | tuple[Path, ...]] = {}
    for folder in (shipped_folder(), user_folder()):
        if folder.is_dir():
            try:
                names = sorted(folder.iterdir())
            except OSError as e:
                raise SidecarError(f"{folder}: cannot read the preset folder ({e.strerror})") from e
            here: dict[str, list[Path]] = {}
            for path in names:  # dark.xmp and dark.XMP alike, as for sidecars
                if path.suffix.lower() == PRESET_SUFFIX and not path.is_dir():
                    here.setdefault(_key(path.stem), []).append(path)
            files |= {key: paths[0] if len(paths) == 1 else tuple(paths) for key, paths in here.items()}
    return files


def _one_file(found: Path | tuple[Path, ...]) -> Path:
    """The file of a preset name; :class:`SidecarError` when two files of one folder give that name."""
    if isinstance(found, Path):
        return found
    raise SidecarError(f"{found[0].parent}: {len(found)} presets of one name, {', '.join(p.name for p in found)}; "
                       "rename or remove all but one")


def list_presets(on_error: Callable[[SidecarError], None] | None = None) -> list[Preset]:
    """Every preset, by name. A malformed file raises :class:`SidecarError` naming it; with ``on_error``, it is
    handed the error instead and left out, so one bad user preset does not hide the good ones."""
    presets = []
    for _, found in sorted(_preset_files().items()):
        try:
            preset = read_preset(_one_file(found))
            preset.apply(Recipe())  # settings that contradict each other fail here, as every use of it would
            presets.append(preset)
        except SidecarError as e:
            if on_error is None:
                raise
            on_error(e)
    return presets


def preset_file(name: str) -> Path:
    """The file of the preset called ``name``; :class:`UnknownPresetError` listing the known names when there is
    none."""
    found = _preset_files().get(_key(name))
    if found is None:  # the usable ones: a damaged file is no preset to choose (`hostplug presets` names it)
        known = ", ".join(preset.name for preset in list_presets(on_error=lambda _error: None)) or "none"
        raise UnknownPresetError(f"no preset named {shown(name)}; known presets: {known} (user presets go in "
                                 f"{user_folder()})")
    return _one_file(found)


def load_preset(name: str) -> Preset:
    """The preset called ``name`` (:func:`preset_file`)."""
    return read_preset(preset_file(name))


def apply_presets(recipe: Recipe, names: list[str] | tuple[str, ...]) -> Recipe:
    """``recipe`` with the named presets applied in order (the last wins per setting)."""
    for name in names:
        recipe = load_preset(name).apply(recipe)
    return recipe
