"""Changing a recipe: what a command line, a hot folder or a script asks for, applied in one order.

A *changes* mapping may hold, all optional:

``recipe_file``  a recipe JSON file to start from instead of the base recipe
``presets``      preset names, applied in order (the last wins per setting; see :mod:`engine.xmp.presets`)
any setting      a :class:`~engine.recipe.Recipe` field (``exposure``, ``temperature``...); ``None`` leaves it
``stages``       ``{stage: {"enabled": bool, "implementation": name, "params": {name: value}}}``, merged into the
                 recipe's stage settings (params merge by name)

Order: the base (or the recipe file), then the presets, then the settings, then the stage changes. The rule
that a temperature or tint implies custom white balance is :meth:`Recipe.replace`'s, so it holds here too.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, cast

from engine.errors import InputNotFoundError, RecipeError, RecipeOptionError
from engine.recipe import Recipe, StageSettings, stamped

MAX_RECIPE_BYTES = 1 << 20  # a recipe is a few hundred bytes

# The recipe's settings (every field but ``stages``), in declaration order.
SETTINGS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Recipe) if f.name != "stages")
# Settings that are a stage's parameter under another name: the stage and the parameter. A stage's own value wins
# when rendering, so a setting changed now takes the stage's value out, and one change may not give both.
AMOUNT_PARAMS: dict[str, tuple[str, str]] = {"denoise": ("denoise", "strength"), "sharpening": ("detail", "amount")}


def read_recipe_file(path: Path) -> Recipe:
    """A recipe from a JSON file, or the one recorded in a hostplug output (a JPEG, PNG or TIFF);
    :class:`InputNotFoundError` (a missing file, exit 2) when there is no such file, :class:`RecipeError` when it
    cannot be read or is not a recipe."""
    from engine.io.bounded import read_regular
    from engine.io.formats import RGB_SUFFIXES

    path = Path(path)
    if path.suffix.lower() in RGB_SUFFIXES:
        from engine.xmp.provenance import read_provenance

        if not path.is_file():
            raise InputNotFoundError(f"{path}: no such recipe file")
        provenance = read_provenance(path)
        if provenance.recipe_error is not None:
            raise RecipeError(f"{path}: its recorded recipe cannot be used: {provenance.recipe_error}")
        if provenance.recipe is None:
            raise RecipeError(f"{path}: records no hostplug recipe")
        return provenance.recipe
    data = read_regular(path, MAX_RECIPE_BYTES, "recipe file", RecipeError, missing=InputNotFoundError)
    try:
        return Recipe.from_json(data.decode("utf-8-sig"))  # (a byte-order mark, as Windows Notepad writes)
    except UnicodeDecodeError:
        raise RecipeError(f"{path}: the recipe file is not UTF-8 text") from None
    except RecipeError as e:
        raise RecipeError(f"{path}: {e}") from None


STAGE_CHANGE_KEYS = frozenset({"enabled", "implementation", "params"})


def _check_shape(changes: Mapping[str, Any]) -> None:
    """RecipeError for a key no change has (a typo would otherwise change nothing, silently) or a value of the
    wrong kind: the command line cannot make these, a script can."""
    if not isinstance(changes, Mapping):  # a string's characters would be read as the names of changes
        raise RecipeError(f"changes must be a dict of settings, not {type(changes).__name__}")
    unknown = sorted(set(changes) - {*SETTINGS, "recipe_file", "presets", "stages"})
    if unknown:
        raise RecipeError(f"unknown change {unknown[0]!r} (changes are recipe settings, 'presets', 'recipe_file' "
                          "and 'stages')")
    presets = changes.get("presets")
    if presets is not None and (isinstance(presets, str) or not isinstance(presets, Iterable)
                                or not all(isinstance(p, str) for p in presets)):
        raise RecipeError("'presets' must be a list of preset names")
    recipe_file = changes.get("recipe_file")
    if recipe_file and not isinstance(recipe_file, (str, os.PathLike)):
        raise RecipeError(f"'recipe_file' must be a path, not {type(recipe_file).__name__}")
    stages = changes.get("stages") or {}
    if not isinstance(stages, Mapping):
        raise RecipeError("'stages' must map stage names to their changes")
    for name, change in stages.items():
        if not isinstance(change, Mapping) or set(change) - STAGE_CHANGE_KEYS:
            raise RecipeError(f"the change to stage {name!r} must be an object of "
                              f"{', '.join(sorted(STAGE_CHANGE_KEYS))}")
        if not isinstance(change.get("params", {}), Mapping):
            raise RecipeError(f"the params of stage {name!r} must be an object of parameter names and values")
    _check_amounts_given_once(changes, stages)


def _check_amounts_given_once(changes: Mapping[str, Any], stages: Mapping[str, Any]) -> None:
    """RecipeOptionError for an amount given twice in one change, as a setting and as its stage's parameter
    (``--denoise 30`` with ``--set denoise.strength=20``): a tester's output recorded denoise 30 over pixels
    denoised at 20. (An amount with its stage switched off is kept for when the stage is on again.)"""
    for setting, (stage, param) in AMOUNT_PARAMS.items():
        value, change = changes.get(setting), stages.get(stage) or {}
        if value is not None and param in (change.get("params") or {}):
            shown = f"{value:g}" if isinstance(value, float) else str(value)
            raise RecipeOptionError(f"{setting} {shown} and the {stage} stage's {param} (--{setting} and --set "
                                    f"{stage}.{param}): the same amount twice; give one of them")


def apply_changes(base: Recipe | None, changes: Mapping[str, Any] | None) -> Recipe:
    """``base`` (or the defaults) with ``changes`` applied (see the module docstring). Raises RecipeError."""
    if base is not None and not isinstance(base, Recipe):
        raise RecipeError(f"the base recipe must be an engine.Recipe, not {type(base).__name__} (Recipe.from_dict "
                          "reads a dict)")
    recipe = base or Recipe()
    changes = changes or {}
    _check_shape(changes)
    if changes.get("recipe_file"):
        recipe = read_recipe_file(changes["recipe_file"])
    if changes.get("presets"):
        from engine.xmp.presets import apply_presets

        recipe = apply_presets(recipe, tuple(changes["presets"]))
    try:
        recipe = recipe.replace(**{k: changes.get(k) for k in SETTINGS})
    except RecipeError as e:
        if changes.get("tint") is not None and changes.get("temperature") is None and recipe.temperature is None:
            raise RecipeOptionError(str(e)) from None  # a tint alone, for a recipe without a custom white: the option
        raise
    recipe = _amounts_changed_now(recipe, changes)
    stage_changes = changes.get("stages") or {}
    if not stage_changes:
        return recipe
    stages = dict(recipe.stages)
    for name, change in stage_changes.items():
        stages[name] = merge_stage(name, stages.get(name), change)
    return recipe.replace(stages=stages) if stages != dict(recipe.stages) else recipe


def _amounts_changed_now(recipe: Recipe, changes: Mapping[str, Any]) -> Recipe:
    """``recipe`` without the stage parameter of each amount ``changes`` sets (:data:`AMOUNT_PARAMS`): stored
    there, by a recipe file or an earlier ``--set``, it would win over the amount asked for now."""
    stages = dict(recipe.stages)
    for setting, (stage, param) in AMOUNT_PARAMS.items():
        settings = stages.get(stage)
        if changes.get(setting) is not None and settings is not None and param in settings.params:
            params = {k: v for k, v in settings.params.items() if k != param}
            stages[stage] = dataclasses.replace(settings, params=params)
    return recipe.replace(stages=stages) if stages != dict(recipe.stages) else recipe


def check_changes(changes: Mapping[str, Any] | None) -> None:
    """Refuse ``changes`` that are wrong whatever recipe they will apply to (RecipeError), before any work: a
    tint alone is checked against a custom white balance, since a stored recipe may hold its temperature."""
    changes = changes or {}
    tint_alone = (changes.get("tint") is not None and changes.get("temperature") is None
                  and changes.get("wb") in (None, "custom"))
    apply_changes(Recipe(wb="custom", temperature=5000.0) if tint_alone else None, changes)


def merge_stage(name: str, current: StageSettings | None, change: Mapping[str, Any]) -> StageSettings:
    """Stage ``name``'s settings with ``change`` (``enabled``, ``implementation``, ``params``) applied. A change of
    implementation keeps what the stored params of the old one mean now (:func:`engine.pipeline.switched_params`):
    a recipe of an older version holds its former defaults pinned."""
    settings = current or StageSettings()
    updates: dict[str, Any] = {k: change[k] for k in ("enabled", "implementation") if k in change}
    params = settings.params
    if "implementation" in change and "version" in params:
        from engine.pipeline import switched_params

        params = switched_params(name, settings.implementation, params, change["implementation"])
    if change.get("params"):
        params = {**params, **change["params"]}
    if params != settings.params:
        updates["params"] = params
    return dataclasses.replace(settings, **updates)


def apply_settings(recipe: Recipe, settings: Mapping[str, Any]) -> Recipe:
    """``recipe`` with settings in the recipe JSON's form replaced, validated from scratch (a hot folder's
    ``recipe`` table); a stage named in ``settings["stages"]`` replaces that stage's settings whole. Stage params
    given without a version are of the stage's current version, as ``--set`` makes them: they are written now, not
    read from a file an older hostplug stored. So the settings carry no recipe ``version`` either."""
    if "version" in settings:
        raise RecipeError("recipe 'version': settings given here are of this hostplug's recipe version; remove it")
    data = recipe.to_dict()
    changes = dict(settings)
    stage_changes = changes.pop("stages", {})
    if not isinstance(stage_changes, Mapping):
        raise RecipeError("recipe 'stages' must be an object")
    stages = {**data.get("stages", {}), **{name: _current_params(name, value) for name, value in stage_changes.items()}}
    white_balance = {k: changes[k] for k in ("wb", "temperature", "tint") if changes.get(k) is not None}
    if white_balance:  # Recipe.replace decides what a temperature implies, and what as-shot or auto drops
        balanced = recipe.replace(**white_balance)
        changes.update(wb=balanced.wb, temperature=balanced.temperature, tint=balanced.tint)
    return Recipe.from_dict({**data, **changes, "stages": stages})


def _current_params(stage: str, settings: Any) -> Any:
    """A stage's settings (JSON form) with its params of the current params version where they carry none
    (:func:`engine.recipe.stamped`); anything malformed as it is, for validation to name."""
    if not isinstance(settings, Mapping) or not isinstance(settings.get("params"), Mapping):
        return settings
    return {**settings, "params": stamped(stage, settings.get("implementation"), settings["params"])}


def check_renderable(recipe: Recipe) -> None:
    """Refuse a recipe the pipeline would refuse (unknown stage, style or stage parameter), before storing it."""
    from engine.pipeline import STAGE_ORDER, check_recipe, stage_for

    check_recipe(recipe)
    for name in STAGE_ORDER:
        stage_for(name, recipe).resolve_params(recipe)
    photofinish = stage_for("photofinish", recipe)
    if getattr(photofinish.resolve_params(recipe), "operators", None) is None:
        cast(Any, photofinish).check_style(recipe.style)  # every photofinish implementation has check_style


def changed_settings(recipe: Recipe) -> dict[str, Any]:
    """The settings of ``recipe`` that differ from the defaults (JSON form)."""
    defaults = Recipe().to_dict()
    return {k: v for k, v in recipe.to_dict().items() if defaults.get(k) != v}
