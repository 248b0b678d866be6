"""The recipe: everything a user decided about a render, versioned and serialisable.

A recipe holds only what the user set (like darktable's module params); what the engine derives from it
(matrices, predicted operator parameters) is computed by each stage's ``prepare``. Stages can additionally be
switched off, given another implementation, or given fixed parameters through :attr:`Recipe.stages`.

JSON form (version 10)::

    {"version": 10, "style": "natural", "exposure": 0.3, ...
     "stages": {"denoise": {"enabled": false}, "detail": {"params": {"version": 1, "radius": 1.5}}}}

Stage params carry their own version (the stage's ``Params.VERSION``), so a stage can change its params and
still read what older hostplugs stored (its ``migrate``). In memory, params without a ``version`` are the
stage's current version (what ``--set`` and pinning make); stored, they always carry one: :meth:`Recipe.to_dict`
stamps it. :meth:`Recipe.from_dict` reads params without one as version 1 in a recipe of version 1, the only
recipes hostplug wrote before it stamped them; in a later recipe they were written by hand (a preset, a recipe
file) and are the current version, as ``--set``'s are. A recipe of an older version is read with what it left to
the defaults of its day made explicit (:func:`engine.stages.catalogue.pin_former_defaults`): version 1 recipes keep the
classical denoiser and the "lite" learned networks, version 2 recipes the "fast" learned denoiser, version 3
recipes the "mid" one, and versions 1 to 3 the classical denoiser where they name none (version 4 made "auto",
learned where it pays, the default); versions 1 to 4 keep a demosaic that leaves a DNG's lens-shading maps, lens
warps and DefaultCrop unapplied (version 5 applies them), version 5 one that leaves its bad pixels (version 6
repairs them), versions 1 to 7 one that leaves its false colour (version 8 takes it out), and versions 4 to 8 the
"mid2" learned denoiser (version 9's "mid3" learned on the demosaic without false colour), and versions 1 to 9
keep the whole visible sensor of a raw that is no DNG (version 10 crops it to the picture area LibRaw names).
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from engine.errors import RecipeError, shown
from engine.stages.catalogue import current_version, pin_former_defaults
from engine.styles import parse_style, style_text

AUTOMATIC_AMOUNTS = ("sharpening", "denoise")  # None: the style's amount, the file's ISO
RECIPE_VERSION = 17  # 4: the default denoiser became "auto", with "mid2"; 5: DNG lens corrections, DefaultCrop;
# 6: DNG bad pixels repaired; 7: less saturation desaturates around luminance (-100 is black and white);
# 8: the demosaic's false colour taken out (demosaic params version 4); 9: denoise-mid3, learned on that demosaic;
# 10: the picture area LibRaw names in a raw that is no DNG (demosaic params version 5); 11: a white far off the
# daylight locus pinned as the DNG SDK pins it (white balance params version 3, colour version 2), vibrance of
# longer reach (photofinish params version 3); 12: colours beyond the working space's gamut compressed into it
# (colour params version 3); 13: an image input unprocessed, a typical camera's rendering of it undone (demosaic
# params version 6); 14: a chroma move (style, saturation, vibrance) that would leave the gamut stops at its edge
# (photofinish params version 4); 15: the Saturation slider, less and more, keeps each colour's hue (photofinish
# params version 5); 16: vibrance spares skin (photofinish params version 6); 17: a custom tint limited to what
# the calibration balances to white, white balance gains raised so the lowest is 1 (white balance params version 4),
# the learned denoiser's local means given back at each position of its 2 x 2 blocks (denoise params version 6)
WbMode = Literal["as-shot", "auto", "custom"]
WB_MODES: tuple[str, ...] = get_args(WbMode)

# Allowed range of each numeric setting: (low, high). Lightroom-style -100..100 sliders for the tone and
# colour adjustments, so a photographer can carry numbers over.
RANGES: dict[str, tuple[float, float]] = {
    "style_strength": (0.0, 2.0),
    "exposure": (-6.0, 6.0),
    "temperature": (1700.0, 25000.0),
    "tint": (-150.0, 150.0),
    "contrast": (-100.0, 100.0),
    "highlights": (-100.0, 100.0),
    "shadows": (-100.0, 100.0),
    "saturation": (-100.0, 100.0),
    "vibrance": (-100.0, 100.0),
    "sharpening": (0.0, 100.0),
    "denoise": (0.0, 100.0),
}


@dataclass(frozen=True)
class StageSettings:
    """How the pipeline treats one stage: on or off, which implementation, and fixed parameters.

    The stages are ``engine.STAGE_ORDER``; their implementations are in ``docs/rendering.md`` (Stages). A
    stage's parameters are the fields of its params dataclass in ``engine.stages`` (``DenoiseParams``...), and a
    render's ``stages_dir`` (``hostplug render --stages DIR``) writes every stage's resolved params as JSON."""

    enabled: bool = True
    implementation: str | None = None  # None: the stage's default implementation
    # Fixed values that override derived ones, in the stage's current params version unless they say
    # otherwise with a "version" key (older params read from storage, migrated when the stage resolves them).
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):  # "no" would switch a stage on, 0 off
            raise RecipeError(f"a stage's enabled must be True or False, not {self.enabled!r}")
        if self.implementation is not None and not isinstance(self.implementation, str):
            raise RecipeError(f"a stage's implementation must be a name, not {self.implementation!r}")
        if not isinstance(self.params, Mapping) or not all(isinstance(k, str) for k in self.params):
            raise RecipeError(f"a stage's params must map parameter names to values, not {self.params!r}")
        object.__setattr__(self, "params", FrozenDict(self.params))


def _refuse(self: Any, *args: Any, **kwargs: Any) -> None:
    raise TypeError("a recipe cannot be changed in place; make a changed copy with Recipe.replace "
                    "(or dataclasses.replace for StageSettings)")


class FrozenDict(dict):
    """A dict that refuses changes, its values frozen too (:func:`frozen`): what a frozen :class:`Recipe` holds in
    ``stages`` and a :class:`StageSettings` in ``params``, so a recipe shared with a cache, a worker or another
    thread cannot change under it, and recipes can be hashed (used as dictionary keys). A dict still, so JSON,
    ``dict(...)`` and ``{**...}`` work as before; ``Recipe.replace`` makes a changed copy."""

    def __init__(self, items: Any = (), /) -> None:
        super().__init__((k, frozen(v)) for k, v in dict(items).items())

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _refuse  # type: ignore

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))  # its values are frozen, so hashable

    def __reduce__(self) -> tuple[Any, ...]:  # pickled as a plain dict's items (to workers, Ray actors)
        return type(self), (dict(self),)


class FrozenList(list):
    """A list that refuses changes (a vector among a stage's params: a white balance neutral, a tone curve);
    equal to the list it was made from, and written to JSON as one."""

    def __init__(self, items: Any = (), /) -> None:
        super().__init__(frozen(v) for v in items)

    __setitem__ = __delitem__ = append = extend = insert = pop = remove = clear = sort = reverse = _refuse
    __iadd__ = __imul__ = _refuse  # type: ignore

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(self))

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (list(self),)


def frozen(value: Any) -> Any:
    """``value`` with its dicts and lists made :class:`FrozenDict` and :class:`FrozenList` (and the items of its
    tuples frozen), all the way down: equal values stay equal, and all are hashable."""
    if isinstance(value, Mapping) and not isinstance(value, FrozenDict):
        return FrozenDict(value)
    if isinstance(value, list) and not isinstance(value, FrozenList):
        return FrozenList(value)
    if isinstance(value, tuple):
        return tuple(frozen(v) for v in value)
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):  # a numpy number or array a script made
        return frozen(value.tolist())  # is the number or list it stands for (JSON and the params' checks take those)
    return value


def implied_white_balance(values: Mapping[str, Any]) -> dict[str, Any]:
    """What stored settings ``values`` mean for the white balance: a temperature or tint without a mode is custom;
    beside as-shot or auto they were kept unused by earlier versions (shown, never applied), so they are
    dropped (only the constructor, given them anew, refuses them)."""
    given = any(values.get(k) is not None for k in ("temperature", "tint"))
    if given and "wb" not in values:
        return {"wb": "custom"}
    if given and values.get("wb") in ("as-shot", "auto"):
        return {"temperature": None, "tint": None}
    return {}


@dataclass(frozen=True)
class Recipe:
    """A complete, versioned description of a render's look. Immutable all through (``stages`` and their params
    refuse changes) and hashable; use :meth:`replace` to change it.

    - ``style``: natural, vivid, warm, moody, cinematic or monochrome, or a blend ``"warm:0.7,moody:0.3"``;
      ``style_strength`` 0 (natural) to 2 (twice the style's departure from natural).
    - ``exposure``: EV over the style's, -6 to 6; ``auto_exposure`` meters the picture instead of following the
      raw's exposure.
    - ``wb``: ``"as-shot"``, ``"auto"`` (the learned estimate) or ``"custom"`` with ``temperature`` (1700 to
      25000 K) and ``tint`` (-150 green to 150 magenta); :meth:`replace` with a temperature implies custom.
    - ``contrast``, ``highlights``, ``shadows``, ``saturation``, ``vibrance``: -100 to 100, Lightroom's scale.
    - ``sharpening``, ``denoise``: 0 to 100; None (or ``"auto"``) takes the style's amount, and the file's ISO
      for denoising.
    - ``stages``: stage name -> :class:`StageSettings`, to switch a stage off, choose its implementation or fix
      its parameters.

    A setting out of range or of the wrong type is a :class:`~engine.errors.RecipeError` here, at construction;
    ``stages`` is held to the stages themselves (their names, implementations and params) when the recipe is
    rendered (:func:`engine.render`), since stages can be added.
    """

    style: str = "natural"
    style_strength: float = 1.0
    exposure: float = 0.0  # EV on top of the style's exposure
    auto_exposure: bool = False  # meter the picture (its white point) instead of following the raw's exposure
    wb: WbMode = "as-shot"  # "as-shot", "auto" (estimated) or "custom" (temperature/tint)
    temperature: float | None = None  # Kelvin, with wb="custom" (replace() and from_dict() imply it)
    tint: float | None = None
    contrast: float = 0.0
    highlights: float = 0.0
    shadows: float = 0.0
    saturation: float = 0.0
    vibrance: float = 0.0
    sharpening: float | None = None  # None: the style's default
    denoise: float | None = None  # None: automatic, from the file's ISO / noise profile
    stages: Mapping[str, StageSettings] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in AUTOMATIC_AMOUNTS:  # "auto", as the command line, a preset or a recipe file may write it
            value = getattr(self, name)
            if isinstance(value, str) and value.strip().lower() == "auto":
                object.__setattr__(self, name, None)
        for name in RANGES:  # a numpy number a script computed (np.float32(0.3)) is the float it stands for
            value = getattr(self, name)
            if isinstance(value, numbers.Real) and not isinstance(value, (bool, int, float)):
                object.__setattr__(self, name, value := float(value))
            if isinstance(value, float) and value == 0.0:  # -0.0 is stored and shown as 0 (a tester's "-0")
                object.__setattr__(self, name, 0.0)
        validate(self)
        object.__setattr__(self, "style", style_text(self.style))  # "Vivid " is "vivid", stored and compared
        object.__setattr__(self, "stages", FrozenDict(self.stages))

    def replace(self, **changes: Any) -> Recipe:
        """A copy with some settings changed (``None`` values in ``changes`` are ignored; ``"auto"`` sets
        ``sharpening`` or ``denoise`` back to automatic)."""
        changes = {k: v for k, v in changes.items() if v is not None}  # ("auto" is read by __post_init__)
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise RecipeError(f"unknown recipe setting {unknown[0]!r} (settings: "
                              f"{', '.join(f.name for f in dataclasses.fields(self))})")
        custom = "temperature" in changes or "tint" in changes
        if custom and changes.setdefault("wb", "custom") != "custom":
            raise RecipeError(f"white balance {shown(changes['wb'])} with a temperature or tint: a temperature and "
                              "tint are a custom white balance; give either, not both")
        if changes.get("wb") in ("as-shot", "auto"):  # the custom values it replaces would be shown, not used
            changes.update(temperature=None, tint=None)
        return dataclasses.replace(self, **changes)

    def stage(self, name: str) -> StageSettings:
        """Settings of one stage (defaults when the recipe says nothing about it)."""
        return self.stages.get(name, StageSettings())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with the schema version; settings at their default are kept for clarity."""
        data: dict[str, Any] = {"version": RECIPE_VERSION}
        for f in dataclasses.fields(self):
            if f.name == "stages":
                continue
            data[f.name] = getattr(self, f.name)
        if self.stages:
            data["stages"] = {name: _stage_dict(name, s) for name, s in sorted(self.stages.items())}
        return data

    def to_json(self) -> str:
        """Compact, key-sorted JSON (stable, so equal recipes give equal strings)."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Recipe:
        """Build a recipe from its JSON form, migrating older versions. Raises :class:`RecipeError`."""
        if not isinstance(data, Mapping):
            raise RecipeError("a recipe must be a JSON object")
        version = data.get("version", RECIPE_VERSION)
        if type(version) is not int or version < 1:  # not True, which Python counts as 1
            raise RecipeError(f"recipe version {shown(version)} is not valid")
        if version > RECIPE_VERSION:
            raise RecipeError(f"recipe version {shown(version)} is newer than this hostplug understands "
                              f"(up to {RECIPE_VERSION}); upgrade hostplug")
        values = dict(data)
        values.pop("version", None)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise RecipeError(f"unknown recipe setting {unknown[0]!r}")
        stages = values.pop("stages", None)
        stages = {} if stages is None else stages  # (an empty list is no object: refused below)
        if not isinstance(stages, Mapping):
            raise RecipeError("recipe 'stages' must be an object")
        if version < RECIPE_VERSION:
            stages = pin_former_defaults({str(k): v for k, v in stages.items()}, version)
        values.update(implied_white_balance(values))
        values["stages"] = {str(k): _stage_settings(str(k), v, version) for k, v in stages.items()}
        try:
            return cls(**values)
        except TypeError as e:
            raise RecipeError(f"invalid recipe: {e}") from e

    @classmethod
    def from_json(cls, text: str) -> Recipe:
        """Parse a recipe from JSON text."""
        return cls.from_dict(parse_json(text, "recipe"))


def parse_json(text: str, what: str) -> Any:
    """JSON ``text`` parsed; :class:`RecipeError` naming ``what`` when it is not JSON, nests deeper than
    :data:`MAX_JSON_DEPTH`, or holds a number Python does not read (an integer of more than 4300 digits)."""
    if not isinstance(text, str):
        raise RecipeError(f"{what} must be JSON text (a str), not {type(text).__name__}")
    check_json_depth(text, what)
    try:
        return json.loads(text, object_pairs_hook=_each_key_once)
    except _KeyTwiceError as e:
        raise RecipeError(f"{what} gives {shown(e.args[0])} twice; give each setting once") from None
    except json.JSONDecodeError as e:
        raise RecipeError(f"{what} is not valid JSON ({e.msg}: line {e.lineno}, column {e.colno})") from e
    except ValueError as e:
        raise RecipeError(f"{what} holds a number far too long to be a setting") from e


class _KeyTwiceError(ValueError):
    """A JSON object that gives a key twice (its ``args[0]``)."""


def _each_key_once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's members; :class:`_KeyTwiceError` for a key given twice (``{"exposure": 1, "exposure": -4}``
    rendered at -4 without a word, where a sidecar's setting given twice is refused)."""
    members = dict(pairs)
    if len(members) < len(pairs):
        keys = [key for key, _value in pairs]
        raise _KeyTwiceError(next(key for index, key in enumerate(keys) if key in keys[:index]))
    return members


def _exactly(value: float) -> str:
    """A number as short as it is and no shorter: 25000.01 is not "25000", which looked in range."""
    short = f"{value:g}"
    return short if float(short) == value else repr(float(value))


MAX_JSON_DEPTH = 32  # a recipe nests four levels (stages, a stage, params, a vector); Python's parser recurses


def check_json_depth(text: str, what: str, limit: int = MAX_JSON_DEPTH) -> None:
    """:class:`RecipeError` when JSON ``text`` nests objects and arrays deeper than ``limit`` (checked before
    parsing: ``json.loads`` recurses once per level, so 100,000 levels raise RecursionError)."""
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                raise RecipeError(f"{what} nests JSON more than {limit} levels deep")
        elif char in "]}":
            depth -= 1


def _stage_settings(name: str, value: Any, recipe_version: int) -> StageSettings:
    if not isinstance(value, Mapping):
        raise RecipeError(f"recipe stage {name!r} must be an object")
    unknown = set(value) - {"enabled", "implementation", "params"}
    if unknown:
        raise RecipeError(f"recipe stage {name!r} has unknown key {sorted(unknown)[0]!r}")
    enabled = value.get("enabled", True)
    if not isinstance(enabled, bool):
        raise RecipeError(f"recipe stage {name!r}: 'enabled' must be true or false")
    params = value.get("params", {}) or {}
    if not isinstance(params, Mapping):
        raise RecipeError(f"recipe stage {name!r}: 'params' must be an object")
    implementation = value.get("implementation")
    if implementation is not None and not isinstance(implementation, str):
        raise RecipeError(f"recipe stage {name!r}: 'implementation' must be a name")
    return StageSettings(enabled=enabled, implementation=implementation,
                         params=_stored_params(name, implementation, params, recipe_version))


def _stage_dict(name: str, settings: StageSettings) -> dict[str, Any]:
    """One stage's settings in JSON form, its params stamped with their version (see the module docstring)."""
    data = {k: v for k, v in dataclasses.asdict(settings).items() if v not in (None, {})}
    if "params" in data:
        data["params"] = stamped(name, settings.implementation, data["params"])
    return data


def stamped(name: str, implementation: Any, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` of stage ``name`` with the current params version where they carry none: params written now (in
    memory, a hot folder's recipe table), not read from a file an older hostplug stored. Left as they are for an
    unknown stage or implementation, or one that is no name: validation names what is wrong."""
    if "version" in params or not (implementation is None or isinstance(implementation, str)):
        return dict(params)
    current = current_version(name, implementation)
    return dict(params) if current is None else {"version": current, **params}


# Recipes up to this version may hold stage params without their version, all of them version 1: hostplug wrote
# them so before it stamped params.
UNSTAMPED_RECIPE_VERSION = 1


def _stored_params(name: str, implementation: str | None, params: Mapping[str, Any],
                   recipe_version: int) -> dict[str, Any]:
    """Stored params as a recipe holds them: current ones lose their stamp, older ones keep (or get) it."""
    params = dict(params)
    current = current_version(name, implementation)
    if not params or current is None:
        return params  # an unknown stage or implementation: rendering refuses it with a clear message
    version = params.pop("version", 1 if recipe_version <= UNSTAMPED_RECIPE_VERSION else current)
    if not (type(version) is int and version == current):
        params = {"version": version, **params}  # migrated (or refused, when newer) as the stage resolves it
    return params


# The settings whose type allows None (the as-shot, the style's or an automatic value); the others need a number.
OPTIONAL_SETTINGS = frozenset(f.name for f in dataclasses.fields(Recipe) if str(f.type).endswith("| None"))


def validate(recipe: Recipe) -> None:
    """Raise :class:`RecipeError` for a value out of range or of the wrong type."""
    if not isinstance(recipe.style, str) or not recipe.style:
        raise RecipeError("style must be a non-empty name")
    parse_style(recipe.style)  # a known style, or a blend of known styles with usable weights
    if not isinstance(recipe.stages, Mapping) or not all(
            isinstance(k, str) and isinstance(v, StageSettings) for k, v in recipe.stages.items()):
        raise RecipeError("stages must map stage names to engine.StageSettings (Recipe.from_dict reads the JSON "
                          "form)")
    if not isinstance(recipe.auto_exposure, bool):
        raise RecipeError(f"auto_exposure must be true or false, not {recipe.auto_exposure!r}")
    if recipe.wb not in WB_MODES:
        raise RecipeError(f"white balance {shown(recipe.wb)} is not one of {', '.join(WB_MODES)}")
    if recipe.wb != "custom" and (recipe.temperature is not None or recipe.tint is not None):
        raise RecipeError(f"a temperature or tint is a custom white balance, not {shown(recipe.wb)}: set wb to "
                          "'custom' (Recipe.replace and the options do so when given a temperature)")
    if recipe.wb == "custom" and recipe.temperature is None:
        raise RecipeError("custom white balance needs a temperature (for example --temperature 5200), a tint alone "
                          "shifts none; `hostplug info FILE` shows the file's as-shot temperature and tint (in "
                          "Python: Recipe(wb='custom', temperature=5200))")
    for name, (low, high) in RANGES.items():
        value = getattr(recipe, name)
        if value is None and name in OPTIONAL_SETTINGS:
            continue
        # (an int is finite however long: math.isfinite would overflow converting one of 400 digits)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                isinstance(value, int) or math.isfinite(value)):
            raise RecipeError(f"{name} must be a number, not {shown(value)}")
        if not low <= value <= high:
            raise RecipeError(f"{name} {shown(value) if isinstance(value, int) else _exactly(value)} is out of range "
                              f"({low:g} to {high:g})")
