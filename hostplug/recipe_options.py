"""The recipe options every command shares, and how a command's keyword arguments become *changes*.

The changes are a plain mapping that :func:`engine.edits.apply_changes` applies to a recipe (the engine owns
what they mean); this module only declares the options and parses what a user typed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from engine.errors import RecipeError
from engine.recipe import WB_MODES, check_json_depth
from hostplug.commands.common import NameChoice


class _Amount(click.ParamType):
    """A number, or ``auto``: the amount goes back to automatic (the style's, the file's ISO)."""

    name = "amount"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float | str:
        if isinstance(value, (int, float)):
            return value
        if str(value).strip().lower() == "auto":
            return "auto"
        try:
            return float(value)
        except ValueError:
            self.fail(f"{value!r} is neither a number nor auto", param, ctx)


AMOUNT = _Amount()

_OPTIONS = [
    click.option("--style", help="Picture style, or a blend of styles: warm:0.7,moody:0.3 (default: the stored "
                                 "recipe's, else natural)."),
    click.option("--style-strength", type=float, help="How strongly the style applies, 0 to 2 (default 1)."),
    click.option("--exposure", type=float,
                 help="Exposure in EV over the style's, -6 to 6, for example +0.3 or -1; it replaces a stored exposure "
                      "(edit, rerender), it is not added to it."),
    click.option("--auto-exposure/--no-auto-exposure", "auto_exposure", default=None,
                 help="Meter the picture (its white point) instead of following the raw's exposure (the default)."),
    click.option("--wb", type=NameChoice(WB_MODES[:2]),
                 help="White balance: as-shot (default) or auto; either drops a stored custom temperature and tint "
                      "(not to be given with --temperature or --tint)."),
    click.option("--temperature", type=float,
                 help="White balance temperature in Kelvin, 1700 to 25000 (sets custom WB)."),
    click.option("--tint", type=float,
                 help="White balance tint, -150 (green) to 150 (magenta), with --temperature (custom WB)."),
    click.option("--contrast", type=float, help="Contrast, -100 to 100."),
    click.option("--highlights", type=float, help="Highlights, -100 (recover) to 100."),
    click.option("--shadows", type=float, help="Shadows, -100 to 100 (lift)."),
    click.option("--saturation", type=float, help="Saturation, -100 (monochrome) to 100."),
    click.option("--vibrance", type=float, help="Vibrance, -100 to 100."),
    click.option("--sharpening", type=AMOUNT, help="Sharpening amount, 0 to 100, or auto (the style's; default)."),
    click.option("--denoise", type=AMOUNT, help="Noise reduction strength, 0 to 100, or auto (from the ISO; "
                 "default)."),
    click.option("--preset", "presets", multiple=True, metavar="NAME",
                 help="Apply a preset (see 'hostplug presets') over the sidecar's or --recipe's recipe; repeat to "
                      "stack them, the last wins per setting; the options given here win over every preset."),
    click.option("--recipe", "recipe_file", type=click.Path(dir_okay=False, path_type=Path),
                 help="Start from a recipe: a JSON file, or a hostplug output (the recipe it records); options "
                      "given here override it."),
    click.option("--disable", "disabled", multiple=True, metavar="STAGE", help="Switch a stage off."),
    click.option("--use", "implementations", multiple=True, metavar="STAGE=IMPL",
                 help="Use another implementation of a stage, e.g. upsample=bilinear."),
    click.option("--set", "fixed", multiple=True, metavar="STAGE.PARAM=JSON",
                 help="Fix a stage parameter, e.g. demosaic.algorithm='\"ahd\"' or denoise.strength=0."),
]

# The recipe settings that have an option of their own (a recipe setting each, same name).
RECIPE_KEYS = ("style", "style_strength", "exposure", "auto_exposure", "wb", "temperature", "tint", "contrast",
               "highlights", "shadows", "saturation", "vibrance", "sharpening", "denoise")

_STAGE_KEYS = ("disabled", "implementations", "fixed")


def recipe_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator adding the shared recipe options to a click command."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def pop_recipe_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Remove the recipe options from a command's keyword arguments and return them as changes for
    :func:`engine.edits.apply_changes`; a click UsageError (exit 2) for a ``--use`` or ``--set`` that does not parse
    or a wrong option value."""
    given = {name: kwargs.pop(name) for name in (*RECIPE_KEYS, "presets", "recipe_file", *_STAGE_KEYS)}
    changes: dict[str, Any] = {k: given[k] for k in RECIPE_KEYS if given[k] is not None}
    if given["presets"]:
        changes["presets"] = tuple(given["presets"])
    if given["recipe_file"]:
        changes["recipe_file"] = given["recipe_file"]
    try:
        stages = stage_changes(given["disabled"], given["implementations"], given["fixed"])
    except RecipeError as e:  # a --use or --set that does not parse: a wrong option (exit 2)
        raise click.UsageError(str(e)) from None
    if stages:
        changes["stages"] = stages
    _check_option_values(changes)
    return changes


def _check_option_values(changes: dict[str, Any]) -> None:
    """A wrong option value (out of range, an unknown style or preset, a temperature with --wb auto) is a usage
    error, exit 2, as click's own checks of option types are; a bad recipe or preset file stays a bad recipe (exit
    4)."""
    from engine.edits import check_changes

    try:
        check_changes({k: v for k, v in changes.items() if k not in ("recipe_file", "presets")})
        if changes.get("presets"):  # (its XMP reader loads only then)
            from engine.xmp.presets import preset_file

            for name in changes["presets"]:
                preset_file(name)  # a damaged preset file is a bad preset (exit 4), said where it is read
        for name, change in (changes.get("stages") or {}).items():
            _check_stage_change(name, change)
        _check_style_for(changes)
        _check_single_weight(changes.get("style"))
    except RecipeError as e:
        from engine.errors import RecipeOptionError, SidecarError

        if isinstance(e, SidecarError) and not isinstance(e, RecipeOptionError):
            raise  # a bad preset file (two of one name): exit 4, as `presets` says it (a re-tester's got 2)
        raise click.UsageError(str(e)) from None


def _check_single_weight(style: Any) -> None:
    """A weight on one style alone (``--style vivid:0.3``) rendered all of vivid, as weights are shares of a blend:
    refused, saying how to get part of a style (a tester's)."""
    if not isinstance(style, str) or "," in style or ":" not in style:
        return
    name, _colon, weight = style.partition(":")
    try:
        share = float(weight)
    except ValueError:
        return  # (a weight that is no number was said by check_changes)
    name, part = name.strip(), share if 0.0 < share < 1.0 else 0.3
    if share == 1.0 or name.lower() == "natural":  # (natural at any share is natural: nothing is lost)
        return
    from engine.errors import RecipeError

    raise RecipeError(f"--style {style}: a weight is a share of a blend, so one style alone is all of it; for "
                      f"part of {name}, blend it with natural (--style natural:{1 - part:g},{name}:{part:g}) or "
                      f"give --style-strength {part:g}")


def _check_style_for(changes: dict[str, Any]) -> None:
    """A ``--style`` the photofinish that ``--use`` names cannot render (``--use photofinish=classical --style
    vivid``: the classical one knows only its own looks) is refused with the other options, not at render time
    as a bad recipe (exit 4)."""
    chosen = ((changes.get("stages") or {}).get("photofinish") or {}).get("implementation")
    if "style" not in changes or chosen is None:  # the stages load only when both are given
        return
    from engine.pipeline import IMPLEMENTATIONS

    stage = IMPLEMENTATIONS["photofinish"].get(chosen)
    if stage is not None:  # an unknown one: _check_stage_change says so
        stage().check_style(changes["style"])


def _check_stage_change(name: str, change: dict[str, Any]) -> None:
    """Refuse a ``--disable``, ``--use`` or ``--set`` of one stage that no recipe could take: an unknown stage or
    implementation, or params that fit none of the stage's implementations (or not the one ``--use`` names). Which
    implementation runs may come from the stored recipe (a sidecar), so params that fit any one of them pass."""
    from engine.edits import apply_changes
    from engine.pipeline import IMPLEMENTATIONS
    from engine.xmp.recipe_properties import check_stages

    if name not in IMPLEMENTATIONS or "params" not in change:
        check_stages(apply_changes(None, {"stages": {name: change}}))  # the stage's and implementation's names
        return
    chosen = [change["implementation"]] if change.get("implementation") else list(IMPLEMENTATIONS[name])
    errors = []
    for implementation in chosen:
        try:
            return check_stages(apply_changes(None, {"stages": {name: {**change, "implementation": implementation}}}))
        except RecipeError as e:
            errors.append(e)
    raise errors[0]


def stage_changes(disabled: tuple[str, ...] = (), implementations: tuple[str, ...] = (),
                  fixed: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    """``--disable STAGE``, ``--use STAGE=IMPL`` and ``--set STAGE.PARAM=JSON`` as stage changes. Stage,
    implementation and parameter names are read in any case, as styles and presets are (a tester's DENOISE was
    unknown)."""
    stages: dict[str, dict[str, Any]] = {}
    disabled = tuple(name.strip().lower() for name in disabled or ())
    for name in disabled:
        stages.setdefault(name, {})["enabled"] = False
    for item in implementations or ():
        name, sep, impl = item.lower().partition("=")
        name, impl = name.strip(), impl.strip()
        if not sep or not impl:
            raise RecipeError(f"--use {item!r}: write STAGE=IMPLEMENTATION, e.g. upsample=bilinear")
        if name in disabled:
            raise RecipeError(f"--use {item} and --disable {name}: a stage is either switched off or given an "
                              "implementation; give one of them")
        stages.setdefault(name, {}).update(implementation=impl, enabled=True)  # choosing one switches it on
    for item in fixed or ():
        key, sep, raw = item.partition("=")
        name, dot, param = key.partition(".")
        name, param = name.strip().lower(), param.strip().lower()
        if not sep or not dot or not param:
            raise RecipeError(f"--set {item!r}: write STAGE.PARAM=VALUE, e.g. denoise.strength=0")
        check_json_depth(raw, f"--set {key}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw  # a bare word is a string
        except ValueError:  # Python reads no integer of more than 4300 digits
            raise RecipeError(f"--set {key}: the number is far too long to be a setting") from None
        stages.setdefault(name, {}).setdefault("params", {})[param] = value
    return stages
