"""hostplug's rendering engine: a modular neural image signal processor, as a library.

    import engine
    source = engine.open("IMG_0001.ARW")
    result = engine.render(source, engine.Recipe(exposure=0.3))
    engine.write_image(result, "IMG_0001.tif")
"""

from __future__ import annotations

from engine.errors import (
    CorruptInputError,
    HostplugError,
    InputNotFoundError,
    ModelError,
    OutputError,
    RecipeError,
    UnsupportedInputError,
)
from engine.io.source import Source
from engine.io.source import open_source as open
from engine.pipeline import STAGE_ORDER, Rendered, render
from engine.recipe import Recipe, StageSettings

__version__ = "0.1.0"

__all__ = [
    "STAGE_ORDER",
    "CorruptInputError",
    "HostplugError",
    "InputNotFoundError",
    "ModelError",
    "OutputError",
    "Recipe",
    "RecipeError",
    "Rendered",
    "Source",
    "StageSettings",
    "UnsupportedInputError",
    "__version__",
    "open",
    "render",
]
