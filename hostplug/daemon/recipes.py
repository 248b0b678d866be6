"""Which recipe a dropped raw gets, and the hash that says whether its outputs are up to date.

A hot folder's look is its presets, applied in order, then its ``recipe`` settings. A raw's own sidecar wins:
its stored recipe replaces the folder's look, Adobe sidecars add their settings as hints, and any sidecar the
orientation the photographer set there (:func:`engine.xmp.sidecar.sidecar_render`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import HostplugError
from engine.orientation import Orientation
from engine.recipe import Recipe
from hostplug.daemon.config import FolderConfig
from hostplug.daemon.errors import LookError

if TYPE_CHECKING:  # the sidecar reader loads with the first raw, not with the daemon's start
    from engine.xmp.sidecar import SidecarRender


def apply_settings(recipe: Recipe, settings: Mapping[str, Any]) -> Recipe:
    """``recipe`` with some settings (the recipe JSON's keys) replaced; stage settings merge by stage
    (:func:`engine.edits.apply_settings`)."""
    from engine.edits import apply_settings as apply

    return apply(recipe, settings)


def apply_presets(recipe: Recipe, names: Iterable[str]) -> Recipe:
    """``recipe`` with the named presets applied in order (:mod:`engine.xmp.presets`)."""
    from engine.xmp.presets import apply_presets as apply

    return apply(recipe, tuple(names))


def folder_recipe(folder: FolderConfig) -> Recipe:
    """The look a hot folder gives every raw without a recipe of its own; LookError (a ConfigError) when it is
    invalid."""
    try:
        return apply_settings(apply_presets(Recipe(), folder.presets), folder.recipe)
    except HostplugError as e:
        raise LookError(f"hot folder {folder.path}: {e}") from e


def recipe_for_file(raw: Path, base: Recipe) -> SidecarRender:
    """The recipe for one raw (its sidecar's, else ``base`` plus the sidecar's hints), the output XMP that carries
    the sidecar's rating, labels and keywords, the orientation the sidecar sets (None: the raw's EXIF one
    applies) and a notice of a crop it sets, from one reading of the sidecars
    (:func:`engine.xmp.sidecar.sidecar_render`)."""
    from engine.xmp.sidecar import sidecar_render

    return sidecar_render(raw, base=base)


def recipe_hash(recipe: Recipe, folder: FolderConfig, extra_xmp: Mapping[str, Any] | None = None,
                orientation: Orientation | None = None) -> str:
    """A hash of everything that decides a raw's outputs: the recipe, the outputs, the sidecar's catalogue data
    (rating, labels, keywords) and orientation, and the engine version."""
    from engine import __version__

    data: dict[str, Any] = {"recipe": recipe.to_dict(), "outputs": [o.describe() for o in folder.outputs],
                            "catalogue": dict(extra_xmp or {}), "engine": __version__}
    if orientation is not None:  # only then: the hashes of raws whose sidecar sets none stay as they were
        data["orientation"] = orientation.value
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()

