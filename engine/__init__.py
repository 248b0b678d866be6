"""hostplug's rendering engine: a modular neural image signal processor, as a library.

    import engine
    source = engine.open("IMG_0001.ARW")
    result = engine.render(source, engine.Recipe(exposure=0.3))
    engine.write_image(result, "IMG_0001.tif")

An interactive editor renders previews and keeps every stage's output, so a change re-runs only what it affects::

    cache = engine.StageCache()
    preview = engine.render(source, engine.Recipe(exposure=0.5), preview=1732, cache=cache)  # about 2 MP

Or a file to a file, with the raw's sidecar recipe, the source's metadata and the provenance a re-render needs::

    engine.render_file("IMG_0001.ARW", "IMG_0001.jpg", changes={"exposure": 0.3, "presets": ["warm"]})
    engine.rerender_file("IMG_0001.jpg", {"contrast": 20})  # IMG_0001_rerender.jpg: same format, size, look

The names are imported when first used, so ``import engine`` (and ``from engine.errors import ...``) stays cheap:
torch, numba, OpenCV and rawpy load with the first render, not with a command line's ``--help``.

Threads may render at once (each render's pixels are its own). Processes that render must be started with
``multiprocessing.get_context("spawn")`` (or "forkserver"), as ``hostplug watch`` starts its workers: numba's and
torch's OpenMP threads do not survive a fork, and a child forked after its parent rendered is killed by OpenMP.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from engine.errors import (
    CorruptInputError,
    HostplugError,
    InputNotFoundError,
    ModelError,
    NewerSettingsError,
    OptionError,
    OutputError,
    OutputOptionError,
    OutputTakenError,
    RecipeError,
    RecipeOptionError,
    SidecarError,
    StoredSettingError,
    UnknownPresetError,
    UnknownStyleError,
    UnsupportedInputError,
)

if TYPE_CHECKING:  # what type checkers and editors see; at run time each name loads on first use (below)
    from engine.edits import apply_changes
    from engine.io.source import Source
    from engine.io.source import open_source as open
    from engine.output.export import render_file, render_files, write_image
    from engine.output.formats import OutputOptions
    from engine.pipeline import STAGE_ORDER, render
    from engine.recipe import Recipe, StageSettings
    from engine.rerender import rerender_file
    from engine.results import ProgressCallback, Rendered, RenderResult
    from engine.stage_cache import StageCache
    from engine.xmp.sidecar import sidecar_recipe


def _version() -> str:
    """The installed distribution's version: pyproject.toml's ``version`` is the one place it is written."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hostplug")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "0+unknown"


# name -> (module, attribute): loaded on first access (PEP 562)
_LAZY = {
    "Source": ("engine.io.source", "Source"),
    "open": ("engine.io.source", "open_source"),
    "STAGE_ORDER": ("engine.pipeline", "STAGE_ORDER"),
    "Rendered": ("engine.results", "Rendered"),
    "ProgressCallback": ("engine.results", "ProgressCallback"),  # (stage, done, total), for typing a callback
    "render": ("engine.pipeline", "render"),
    "StageCache": ("engine.stage_cache", "StageCache"),
    "Recipe": ("engine.recipe", "Recipe"),
    "StageSettings": ("engine.recipe", "StageSettings"),
    "apply_changes": ("engine.edits", "apply_changes"),
    "OutputOptions": ("engine.output.formats", "OutputOptions"),  # without the writer's libraries
    "write_image": ("engine.output.export", "write_image"),
    "RenderResult": ("engine.results", "RenderResult"),
    "render_file": ("engine.output.export", "render_file"),
    "render_files": ("engine.output.export", "render_files"),
    "rerender_file": ("engine.rerender", "rerender_file"),
    "sidecar_recipe": ("engine.xmp.sidecar", "sidecar_recipe"),
}


def __getattr__(name: str) -> Any:
    if name == "__version__":  # read from the installed metadata on first use (30-40 ms a command need not pay)
        globals()[name] = _version()
        return globals()[name]
    if name not in _LAZY:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    module, attribute = _LAZY[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "STAGE_ORDER",
    "CorruptInputError",
    "HostplugError",
    "InputNotFoundError",
    "ModelError",
    "NewerSettingsError",
    "OptionError",
    "OutputError",
    "OutputOptionError",
    "OutputOptions",
    "OutputTakenError",
    "ProgressCallback",
    "Recipe",
    "RecipeError",
    "RecipeOptionError",
    "RenderResult",
    "Rendered",
    "SidecarError",
    "Source",
    "StageCache",
    "StageSettings",
    "StoredSettingError",
    "UnknownPresetError",
    "UnknownStyleError",
    "UnsupportedInputError",
    "__version__",
    "apply_changes",
    "open",
    "render",
    "render_file",
    "render_files",
    "rerender_file",
    "sidecar_recipe",
    "write_image",
]
