"""The shape every pipeline stage shares, after darktable's image-operation modules.

A stage declares a frozen ``Params`` dataclass (what the user set, stored in recipes and sidecars) with a
``VERSION``; its fields describe themselves (``Literal`` choices, ``range`` metadata) and are checked by one
generic function (:mod:`engine.stages.params`); ``migrate`` upgrades params written by older versions;
``params_from`` derives params from a recipe, the only time a stage sees it; ``prepare`` turns params into the
data processing needs (darktable's ``commit_params``); ``process`` is pure maths on pixels. The pipeline, not the
stage, owns ordering, resolution and progress, acting on facts each stage declares (``resolution``,
``encoding``), never on its name.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeAlias

import numpy as np

from engine.errors import RecipeError
from engine.io.gain_map import Shading
from engine.io.source import Source
from engine.recipe import Recipe
from engine.stages.params import check_params, check_version, coerce

Resolution = Literal["full", "low"]
Encoding = Literal["linear", "display"]
# What a stage's ``process`` gets and returns: H x W x 3 float32 numpy on the CPU. On the torch path
# (:func:`engine.kernels.on_torch`, ``--device cuda``) the full-resolution stages get a tensor of that shape on the
# device and return one (the pipeline moves a host result there); reduced-resolution stages always get numpy.
Pixels: TypeAlias = Any


@dataclass(frozen=True)
class WhiteDecision:
    """The white the white-balance stage chose, which the colour stage interpolates its matrices at.

    Values are rounded as ``notes`` store them, so a render and its pinned re-render use the same matrix.
    """

    neutral: tuple[float, float, float]  # the camera's response to the scene's white, green = 1
    white_xy: tuple[float, float]  # that white's CIE xy chromaticity


@dataclass
class Context:
    """What a stage may know about the render besides its own params: the source and the shared images.

    ``recipe`` is there for callers' bookkeeping; stages take everything they need through their params.
    """

    source: Source
    recipe: Recipe
    device: str = "cpu"
    low_input: np.ndarray | None = None  # the photofinishing input at reduced resolution
    full_input: Pixels | None = None  # the photofinishing input at full resolution (a tensor on the torch path)
    white: WhiteDecision | None = None  # set by white balance, read by the colour stage
    shading: Shading | None = None  # lens-shading maps the demosaic applied; the learned denoiser's noise model
    # sensor pixels across one pixel of the image after the first stage: above 1 where a preview or a reduced
    # output scales it down right after demosaicing, which averages the noise down (the denoiser's noise model)
    binning: float = 1.0
    notes: dict[str, Any] = field(default_factory=dict)  # what each stage decided, for --stages and info


class Stage(ABC):
    """One image operation. Subclasses set the class variables and implement the three methods."""

    name: ClassVar[str]  # the pipeline slot it fills, e.g. "denoise"
    implementation: ClassVar[str]  # which variant, e.g. "classical"
    # A frozen dataclass; its VERSION class attribute is the params version (also in engine.stages.catalogue).
    Params: ClassVar[Any]
    can_disable: ClassVar[bool] = True
    # Facts the pipeline acts on, so it never tests a stage's name: "low" stages get the reduced-resolution
    # image; "display" stages output display-encoded values (others output linear light).
    resolution: ClassVar[Resolution] = "full"
    encoding: ClassVar[Encoding] = "linear"

    @classmethod
    def migrate(cls, params: dict[str, Any], version: int) -> dict[str, Any]:
        """Upgrade params stored by an older version (darktable's ``legacy_params``). Version 1 is current."""
        return params

    def params_from(self, recipe: Recipe) -> Any:
        """The params this stage takes from a recipe's user-level settings (defaults unless overridden)."""
        return self.Params()

    def resolve_params(self, recipe: Recipe) -> Any:
        """Params from the recipe, with the stage's fixed values from ``recipe.stages`` applied on top.

        Fixed values with a ``version`` older than the stage's are migrated first; without one they are current
        (:meth:`engine.recipe.Recipe.from_dict` stamps those a recipe of version 1 stored without one as version 1).
        Every field is then checked (:func:`engine.stages.params.check_params`): :class:`RecipeError` names the
        stage, parameter, value and what is allowed.
        """
        params = self.params_from(recipe)
        fixed = dict(recipe.stage(self.name).params)
        if fixed:
            version = check_version(self.name, fixed.pop("version", self.Params.VERSION), self.Params.VERSION)
            fixed = self.migrate(fixed, version) if version < self.Params.VERSION else fixed
            names = {f.name for f in dataclasses.fields(params)}
            unknown = sorted(set(fixed) - names)
            if unknown:
                raise RecipeError(f"stage {self.name!r} has no parameter {unknown[0]!r} "
                                  f"(it has: {', '.join(sorted(names))})")
            params = dataclasses.replace(params, **coerce(self.Params, fixed))
        check_params(self.name, params)
        return params

    @abstractmethod
    def prepare(self, params: Any, ctx: Context) -> Any:
        """Turn params into processing data (matrices, predicted operator parameters...)."""

    @abstractmethod
    def process(self, image: Pixels, data: Any, ctx: Context) -> Pixels:
        """The operation itself: pixels in, pixels out, no I/O (see :data:`Pixels`)."""


def params_dict(params: Any) -> dict[str, Any]:
    """Params as a JSON-ready dict with their version."""
    return {"version": type(params).VERSION, **dataclasses.asdict(params)}
