"""The shape every pipeline stage shares, after darktable's image-operation modules.

A stage declares a frozen ``Params`` dataclass (what the user set, stored in recipes and sidecars) with a
``VERSION``; ``migrate`` upgrades params written by older versions; ``params_from`` derives params from a
recipe; ``prepare`` turns params into the data processing needs (darktable's ``commit_params``); ``process``
is pure maths on pixels. The pipeline, not the stage, owns ordering, resolution and progress.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from engine.errors import RecipeError
from engine.io.source import Source
from engine.recipe import Recipe


@dataclass
class Context:
    """What a stage may know about the render besides its own params: the source and the shared images."""

    source: Source
    recipe: Recipe
    device: str = "cpu"
    low_input: np.ndarray | None = None  # the photofinishing input at reduced resolution
    full_input: np.ndarray | None = None  # the photofinishing input at full resolution
    notes: dict[str, Any] = field(default_factory=dict)  # what each stage decided, for --stages and info


class Stage(ABC):
    """One image operation. Subclasses set the class variables and implement the three methods."""

    name: ClassVar[str]  # the pipeline slot it fills, e.g. "denoise"
    implementation: ClassVar[str]  # which variant, e.g. "classical"
    Params: ClassVar[type]  # frozen dataclass; its VERSION class attribute is the params version
    can_disable: ClassVar[bool] = True

    @classmethod
    def migrate(cls, params: dict[str, Any], version: int) -> dict[str, Any]:
        """Upgrade params stored by an older version (darktable's ``legacy_params``). Version 1 is current."""
        return params

    def params_from(self, recipe: Recipe) -> Any:
        """The params this stage takes from a recipe's user-level settings (defaults unless overridden)."""
        return self.Params()

    def resolve_params(self, recipe: Recipe) -> Any:
        """Params from the recipe, with the stage's fixed values from ``recipe.stages`` applied on top."""
        params = self.params_from(recipe)
        fixed = dict(recipe.stage(self.name).params)
        if not fixed:
            return params
        version = fixed.pop("version", self.Params.VERSION)
        if version > self.Params.VERSION:
            raise RecipeError(f"stage {self.name!r} params version {version} is newer than this hostplug "
                              f"({self.Params.VERSION}); upgrade hostplug")
        fixed = self.migrate(fixed, version)
        names = {f.name for f in dataclasses.fields(params)}
        unknown = sorted(set(fixed) - names)
        if unknown:
            raise RecipeError(f"stage {self.name!r} has no parameter {unknown[0]!r} "
                              f"(it has: {', '.join(sorted(names))})")
        return dataclasses.replace(params, **_coerce(fixed, params))

    @abstractmethod
    def prepare(self, params: Any, ctx: Context) -> Any:
        """Turn params into processing data (matrices, predicted operator parameters...)."""

    @abstractmethod
    def process(self, image: np.ndarray, data: Any, ctx: Context) -> np.ndarray:
        """The operation itself: pixels in, pixels out, no I/O."""


def _coerce(values: Mapping[str, Any], params: Any) -> dict[str, Any]:
    """JSON gives lists where params hold tuples; keep the params' own types."""
    out = {}
    for key, value in values.items():
        current = getattr(params, key)
        out[key] = tuple(value) if isinstance(current, tuple) and isinstance(value, list) else value
    return out


def params_dict(params: Any) -> dict[str, Any]:
    """Params as a JSON-ready dict with their version."""
    return {"version": type(params).VERSION, **dataclasses.asdict(params)}
