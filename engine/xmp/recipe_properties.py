"""A recipe as properties in hostplug's XMP namespace: one readable property per setting.

Sidecars and preset files share this form, so a user can read and edit either in a text editor::

    <rdf:Description rdf:about="" xmlns:hostplug="http://ns.hostplug.org/xmp/1.0/"
        hostplug:schemaVersion="1" hostplug:style="natural" hostplug:exposure="0.3"
        hostplug:stages='{"denoise":{"enabled":false}}'/>

``schemaVersion`` says which layout wrote the properties; older layouts are upgraded on read by the functions in
:data:`MIGRATIONS` (one step per version, darktable's ``legacy_params`` pattern), a newer one is refused. Version 17
is the current layout; it reads as versions 1 to 9 did, but a sidecar's recipe is of the recipe version of its
layout (:data:`engine.recipe.RECIPE_VERSION`; layout 10 was written by recipe versions 10 to 12 and reads as 12,
layouts 13 to 17 each by the recipe version of its number), and what it left to the defaults of its day (layouts 1 to 3:
the classical denoiser; layout 2: the "fast" learned denoiser; layout 3: the "mid" one; layouts 1 to 4: a DNG's lens-
shading maps, lens warps and DefaultCrop left unapplied; layout 5: its bad pixels left; layouts 1 to 6: less
saturation in the chroma table alone; layouts 1 to 7: the demosaic's false colour left; layouts 4 to 8: the "mid2"
learned denoiser; layouts 1 to 9: the whole visible sensor of a raw that is no DNG; layouts 1 to 10: an image
input decoded, not unprocessed; layouts 1 to 13: a chroma move beyond the gamut pulled towards grey; layouts 1 to
14: a Saturation slider that bent hues; layouts 1 to 15: a vibrance that boosted skin most; layouts 1 to 16: a custom
tint kept beyond what the calibration balances, white balance gains below 1 kept, the learned denoiser's local means
given back as a whole)
:func:`properties_to_recipe`
pins (presets, which hold only the settings they change, are left as they are). ``description`` is a free-text
note (presets use it). A preset holds only the settings it changes; a sidecar holds the whole recipe.

``stages`` holds the recipe's JSON form of its stage settings, so stage params are stored with their own
version (``{"detail":{"params":{"radius":1.5,"version":1}}}``, stamped by :meth:`Recipe.to_dict`) and read back
as :meth:`Recipe.from_dict` reads them, the stage migrating older ones. Without a version they are version 1 in
layout 1 (hostplug wrote them so before it stamped params; the step to layout 2 stamps them) and the current version
in a later one, where only a person writes them so (a preset made by hand).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any

from engine.errors import NewerSettingsError, RecipeError, StoredSettingError, shown
from engine.recipe import AUTOMATIC_AMOUNTS, Recipe, parse_json
from engine.stages.catalogue import pin_former_defaults

SCHEMA_VERSION = 17  # the recipe version (engine.recipe.RECIPE_VERSION) of the recipes it holds
# Layout 10 was written by recipe versions 10 to 12 alike: its sidecars render as version 12 rendered them (image
# inputs decoded, not unprocessed), which is what they rendered as before version 13
_RECIPE_VERSION_OF_LAYOUT = {10: 12}
SETTINGS = tuple(f.name for f in dataclasses.fields(Recipe) if f.name != "stages")
TEXT_SETTINGS = frozenset({"style", "wb"})
BOOL_SETTINGS = frozenset({"auto_exposure"})  # XMP Boolean: "True" or "False"
META_PROPERTIES = ("schemaVersion", "description", "stages")
# What an output's XMP holds in our namespace beside no recipe properties: its provenance (engine.output.export).
OUTPUT_PROPERTIES = frozenset({"sourcePath", "sourceSHA256", "engineVersion", "models", "recipe", "decided",
                               "output", "written"})


def _stamp_version_1(properties: dict[str, str]) -> dict[str, str]:
    """Layout 1 to 2: stage params stored without a version are version 1 (layout 1 was written before params
    were stamped; from layout 2 on, unstamped params are the current version). Malformed stages are left as they
    are, for reading to name."""
    try:
        stages = json.loads(properties["stages"]) if "stages" in properties else None
    except (ValueError, RecursionError):
        return properties
    if not isinstance(stages, dict):
        return properties
    for settings in stages.values():
        if isinstance(settings, dict) and isinstance(settings.get("params"), dict) and settings["params"]:
            settings["params"].setdefault("version", 1)
    return {**properties, "stages": json.dumps(stages, sort_keys=True, separators=(",", ":"))}


# MIGRATIONS[v] turns the properties of layout v into those of layout v + 1.
MIGRATIONS: dict[int, Callable[[dict[str, str]], dict[str, str]]] = {
    1: _stamp_version_1, **{version: lambda properties: properties for version in range(2, SCHEMA_VERSION)}}


def format_number(value: float) -> str:
    """The shortest text that reads back as exactly ``value`` ("0.3", "5200", "-1.5")."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def settings_to_properties(settings: Mapping[str, Any], stages: Mapping[str, Any] | None = None,
                           description: str | None = None) -> dict[str, str]:
    """Our XMP properties (local name -> text) for some recipe settings, in recipe order."""
    properties = {"schemaVersion": str(SCHEMA_VERSION)}
    if description:
        properties["description"] = description
    for name in SETTINGS:
        value = settings.get(name)
        if value is not None:
            if name in TEXT_SETTINGS:
                properties[name] = value
            elif name in BOOL_SETTINGS:
                properties[name] = "True" if value else "False"
            else:
                properties[name] = format_number(value)
    if stages:
        properties["stages"] = json.dumps(stages, sort_keys=True, separators=(",", ":"))
    return properties


def recipe_to_properties(recipe: Recipe) -> dict[str, str]:
    """Every setting of ``recipe`` (those not at None) as our XMP properties."""
    data = recipe.to_dict()
    return settings_to_properties(data, data.get("stages"))


def _migrate(properties: dict[str, str], where: str) -> dict[str, str]:
    text = properties.get("schemaVersion")
    if text is None:
        raise StoredSettingError(f"{where}: hostplug properties without hostplug:schemaVersion (the layout "
                                 f"they were written in; this hostplug writes {SCHEMA_VERSION})")
    try:
        version = int(text)
    except ValueError:
        raise StoredSettingError(f"{where}: hostplug:schemaVersion {shown(text)} is not a whole number") from None
    if version > SCHEMA_VERSION:
        raise NewerSettingsError(f"{where}: written by a newer hostplug (schema version {version}; this one reads "
                                 f"up to {SCHEMA_VERSION}); upgrade hostplug")
    if version < 1:
        raise StoredSettingError(f"{where}: hostplug:schemaVersion {version} is not valid")
    for step in range(version, SCHEMA_VERSION):
        properties = MIGRATIONS[step](dict(properties))
    return properties


def _setting(name: str, text: str, where: str) -> Any:
    if name in TEXT_SETTINGS:
        return text.strip()
    if name in BOOL_SETTINGS:
        if text.strip().lower() not in ("true", "false"):  # XMP writes True; other writers' true is read too
            raise StoredSettingError(f"{where}: hostplug:{name} {shown(text)} is not True or False")
        return text.strip().lower() == "true"
    if name in AUTOMATIC_AMOUNTS and text.strip().lower() == "auto":  # back to the style's or the ISO's amount
        return "auto"
    try:
        return float(text)
    except ValueError:
        raise StoredSettingError(f"{where}: hostplug:{name} {shown(text)} is not a number") from None


def properties_to_settings(properties: Mapping[str, str], where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validated settings and stage settings from our properties; :class:`~engine.errors.StoredSettingError`
    naming ``where``.

    Only the settings present are returned (a preset changes just those); each is checked against the
    recipe's ranges.
    """
    properties = _migrate(dict(properties), where)
    settings: dict[str, Any] = {}
    for name, text in properties.items():
        if name in META_PROPERTIES:
            continue
        if name not in SETTINGS:
            raise StoredSettingError(f"{where}: unknown setting hostplug:{name}")
        settings[name] = _setting(name, text, where)
    stages: dict[str, Any] = {}
    if "stages" in properties:
        try:
            stages = parse_json(properties["stages"], "hostplug:stages")
        except RecipeError as e:
            raise StoredSettingError(f"{where}: {e}") from None
    try:
        check_stages(Recipe.from_dict({"stages": stages, **settings, **_wb_for(settings)}))
    except RecipeError as e:
        raise StoredSettingError(f"{where}: {e}") from None
    return settings, stages


def check_stages(recipe: Recipe) -> None:
    """Hold every stage setting the recipe stores to its stage's description (known stage and implementation,
    each parameter's type and range, a params version this engine reads), so a sidecar or preset with a bad
    stage setting is refused where it is read: by ``show`` and ``edit`` as well as ``render``."""
    if not recipe.stages:
        return
    from engine.pipeline import check_recipe, stage_for

    check_recipe(recipe)
    for name in recipe.stages:
        stage_for(name, recipe).resolve_params(recipe)


def _wb_for(settings: Mapping[str, Any]) -> dict[str, str]:
    """The white balance mode that settings without one imply, by the recipe's own rule (:meth:`Recipe.replace`:
    a temperature or a tint means custom), so a sidecar reads as the command line does."""
    white_balance = {k: settings[k] for k in ("temperature", "tint") if k in settings}
    return {"wb": Recipe().replace(**white_balance).wb} if white_balance and "wb" not in settings else {}


def properties_to_recipe(properties: Mapping[str, str], where: str) -> Recipe:
    """The complete recipe our properties describe (settings they omit keep their defaults)."""
    settings, stages = properties_to_settings(properties, where)
    layout = properties.get("schemaVersion", "").strip()
    if not (layout.isdigit() and int(layout) < SCHEMA_VERSION):
        return Recipe.from_dict({"stages": stages, **settings, **_wb_for(settings)})
    # a recipe of an older recipe version (module docstring): checked again once its defaults are pinned, since
    # the stage that runs may then be another (a denoiser named by no implementation was the classical one)
    version = _RECIPE_VERSION_OF_LAYOUT.get(int(layout), int(layout))
    recipe = Recipe.from_dict({"stages": pin_former_defaults(stages, version), **settings, **_wb_for(settings)})
    try:
        check_stages(recipe)
    except RecipeError as e:
        raise StoredSettingError(f"{where}: {e}") from None
    return recipe
