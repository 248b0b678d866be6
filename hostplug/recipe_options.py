"""The recipe options every command shares, and how they become a :class:`engine.Recipe`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from engine import Recipe, RecipeError, StageSettings
from engine.recipe import WB_MODES

_OPTIONS = [
    click.option("--style", help="Picture style (default: natural)."),
    click.option("--style-strength", type=float, help="How strongly the style applies, 0 to 2 (default 1)."),
    click.option("--exposure", type=float, help="Exposure change in EV, for example +0.3 or -1."),
    click.option("--wb", type=click.Choice(WB_MODES[:2]), help="White balance: as-shot (default) or auto."),
    click.option("--temperature", type=float, help="White balance temperature in Kelvin (sets custom WB)."),
    click.option("--tint", type=float, help="White balance tint, -150 (green) to 150 (magenta)."),
    click.option("--contrast", type=float, help="Contrast, -100 to 100."),
    click.option("--highlights", type=float, help="Highlights, -100 (recover) to 100."),
    click.option("--shadows", type=float, help="Shadows, -100 to 100 (lift)."),
    click.option("--saturation", type=float, help="Saturation, -100 (monochrome) to 100."),
    click.option("--vibrance", type=float, help="Vibrance, -100 to 100."),
    click.option("--sharpening", type=float, help="Sharpening amount, 0 to 100."),
    click.option("--denoise", type=float, help="Noise reduction strength, 0 to 100 (default: from ISO)."),
    click.option("--preset", "presets", multiple=True, metavar="NAME",
                 help="Apply a preset (see 'hostplug presets'); repeat to stack them, the last wins per setting."),
    click.option("--recipe", "recipe_file", type=click.Path(dir_okay=False, path_type=Path),
                 help="Start from a recipe JSON file; options given here override it."),
    click.option("--disable", "disabled", multiple=True, metavar="STAGE", help="Switch a stage off."),
    click.option("--use", "implementations", multiple=True, metavar="STAGE=IMPL",
                 help="Use another implementation of a stage, e.g. upsample=bilinear."),
    click.option("--set", "fixed", multiple=True, metavar="STAGE.PARAM=JSON",
                 help="Fix a stage parameter, e.g. demosaic.algorithm='\"ahd\"' or denoise.strength=0."),
]

RECIPE_KEYS = ("style", "style_strength", "exposure", "wb", "temperature", "tint", "contrast", "highlights",
               "shadows", "saturation", "vibrance", "sharpening", "denoise")


def recipe_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator adding the shared recipe options to a click command."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def pop_recipe_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Remove the recipe options from a command's keyword arguments and return them."""
    names = (*RECIPE_KEYS, "presets", "recipe_file", "disabled", "implementations", "fixed")
    return {name: kwargs.pop(name) for name in names}


def build_recipe(options: dict[str, Any], base: Recipe | None = None) -> Recipe:
    """Apply command-line recipe options on top of ``base`` (or a recipe file, or the defaults).

    Order: the base, then the presets in the order given, then the individual settings.
    """
    recipe = base or Recipe()
    if options.get("recipe_file"):
        path: Path = options["recipe_file"]
        try:
            recipe = Recipe.from_json(path.read_text())
        except OSError as e:
            raise RecipeError(f"{path}: cannot read the recipe file ({e.strerror})") from e
    if options.get("presets"):
        from engine.xmp.presets import apply_presets

        recipe = apply_presets(recipe, options["presets"])
    recipe = recipe.replace(**{k: options.get(k) for k in RECIPE_KEYS})
    stages = {name: settings for name, settings in recipe.stages.items()}
    for name in options.get("disabled") or ():
        stages[name] = _with(stages.get(name), enabled=False)
    for item in options.get("implementations") or ():
        name, sep, impl = item.partition("=")
        if not sep or not impl:
            raise RecipeError(f"--use {item!r}: write STAGE=IMPLEMENTATION, e.g. upsample=bilinear")
        stages[name] = _with(stages.get(name), implementation=impl)
    for item in options.get("fixed") or ():
        key, sep, raw = item.partition("=")
        name, dot, param = key.partition(".")
        if not sep or not dot or not param:
            raise RecipeError(f"--set {item!r}: write STAGE.PARAM=VALUE, e.g. denoise.strength=0")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw  # a bare word is a string
        current = stages.get(name) or StageSettings()
        stages[name] = _with(current, params={**current.params, param: value})
    return recipe.replace(stages=stages) if stages != dict(recipe.stages) else recipe


def _with(settings: StageSettings | None, **changes: Any) -> StageSettings:
    import dataclasses

    return dataclasses.replace(settings or StageSettings(), **changes)
