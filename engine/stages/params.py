"""Stage params that describe themselves (darktable's params introspection), checked by one generic function.

A stage's ``Params`` is a frozen dataclass whose annotations say what each field may hold: ``float``, ``int``,
``str``, ``Literal[...]`` for a closed choice, ``tuple[float, float, float]`` for a fixed-length vector,
``X | None`` where ``None`` means "derive it". A numeric field's range lives on the field::

    strength: float | None = field(default=None, metadata={"range": (0.0, 100.0)})

:func:`check_params` holds every params object to that description before any pixel is touched, so a wrong
``--set``, recipe file or sidecar fails with one line naming the stage, the parameter, the value and what is
allowed.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from functools import cache
from typing import Any, Literal, Union

from engine.errors import RecipeError, shown


@cache
def field_types(params_class: Any) -> dict[str, Any]:
    """The resolved annotation of each params field (the classes use postponed annotations)."""
    hints = typing.get_type_hints(params_class)
    return {f.name: hints[f.name] for f in dataclasses.fields(params_class)}


def field_range(params_class: Any, name: str) -> tuple[float, float] | None:
    """The ``(low, high)`` range a numeric field declares in its metadata, if any."""
    for f in dataclasses.fields(params_class):
        if f.name == name:
            return f.metadata.get("range")
    return None


def check_params(stage: str, params: Any) -> None:
    """Raise :class:`RecipeError` unless every field of ``params`` fits its type, choices and range."""
    params_class: Any = type(params)
    for name, hint in field_types(params_class).items():
        value = getattr(params, name)
        problem = _problem(hint, value, field_range(params_class, name))
        if problem:
            raise RecipeError(f"stage {stage!r} parameter {name!r} = {shown(value)} {problem}")


def check_version(stage: str, version: Any, current: int) -> int:
    """The stored params version as an int; :class:`RecipeError` when it is not one this engine can read."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise RecipeError(f"stage {stage!r} params version {shown(version)} is not a whole number from 1")
    if version > current:
        raise RecipeError(f"stage {stage!r} params version {version} is newer than this hostplug "
                          f"({current}); upgrade hostplug")
    return version


def coerce(params_class: Any, values: Mapping[str, Any]) -> dict[str, Any]:
    """JSON gives lists where params hold tuples: turn them into the tuples the fields declare."""
    hints = field_types(params_class)
    return {key: _as_declared(hints[key], value) if key in hints else value for key, value in values.items()}


def _as_declared(hint: Any, value: Any) -> Any:
    if isinstance(value, list):
        tuple_hint = next((h for h in _alternatives(hint) if typing.get_origin(h) is tuple), None)
        if tuple_hint is not None:
            args = typing.get_args(tuple_hint)
            items = [args[0]] * len(value) if len(args) == 2 and args[1] is Ellipsis else args
            if len(items) == len(value):
                return tuple(_as_declared(h, v) for h, v in zip(items, value, strict=True))
            return tuple(value)  # the wrong length is reported by check_params, with the declared one
    return value


def _alternatives(hint: Any) -> tuple[Any, ...]:
    """The members of a union (``X | None``), or the hint itself."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        return typing.get_args(hint)
    return (hint,)


def _problem(hint: Any, value: Any, bounds: tuple[float, float] | None) -> str | None:
    """Why ``value`` does not fit ``hint`` (a phrase that completes "parameter 'x' = value ..."), or None."""
    options = _alternatives(hint)
    if len(options) > 1:
        if value is None and type(None) in options:
            return None
        problems = [_problem(h, value, bounds) for h in options if h is not type(None)]
        return None if any(p is None for p in problems) else problems[0]
    origin = typing.get_origin(hint)
    if hint is Any:
        return None
    if origin is Literal:
        choices = typing.get_args(hint)
        if isinstance(value, str) and value in choices:
            return None
        return f"is not one of: {', '.join(str(c) for c in choices)}"
    if hint is float or hint is int:
        return _number_problem(hint, value, bounds)
    if hint is str:
        return None if isinstance(value, str) else "is not a text value"
    if hint is bool:
        return None if isinstance(value, bool) else "is not true or false"
    if origin is tuple:
        return _tuple_problem(hint, value, bounds)
    if origin in (dict, Mapping) or hint is dict:
        return None if isinstance(value, Mapping) else "is not an object"
    return None if isinstance(value, hint) else f"is not a {getattr(hint, '__name__', hint)}"


def _number_problem(kind: type, value: Any, bounds: tuple[float, float] | None) -> str | None:
    allowed = (int,) if kind is int else (int, float)
    if isinstance(value, bool) or not isinstance(value, allowed):
        return "is not a whole number" if kind is int else "is not a number"
    if not isinstance(value, int) and not math.isfinite(value):  # an int is finite (isfinite overflows on 400 digits)
        return "is not a finite number"
    if bounds is not None and not bounds[0] <= value <= bounds[1]:
        return f"is out of range ({bounds[0]:g} to {bounds[1]:g})"
    return None


def _tuple_problem(hint: Any, value: Any, bounds: tuple[float, float] | None) -> str | None:
    args = typing.get_args(hint)
    items = [args[0]] * len(value) if isinstance(value, tuple) and len(args) == 2 and args[1] is Ellipsis else args
    if not isinstance(value, tuple) or len(value) != len(items):
        return f"is not a list of {len(args)} {_noun(args[0])}" if args[-1] is not Ellipsis else "is not a list"
    for item_hint, item in zip(items, value, strict=True):
        problem = _problem(item_hint, item, bounds)
        if problem:
            return f"has an item {shown(item)} that {problem}"
    return None


def _noun(hint: Any) -> str:
    return "numbers" if hint in (float, int) else "lists" if typing.get_origin(hint) is tuple else "values"
