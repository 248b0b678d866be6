"""Picture styles: their names, the model each one uses, and how styles blend.

A recipe's ``style`` is either one style name (``"vivid"``) or a blend, ``"warm:0.7,moody:0.3"``: comma-separated
``NAME:WEIGHT`` terms (a bare name weighs 1), names case-insensitive, weights positive; weights are normalised to
sum to 1. As in the paper, a blend mixes the *predicted operator parameters* of each style (gain, knee, tone
curve, local tone grid, chroma table, gamma), not the rendered pixels. ``style_strength`` then moves from the
"natural" parameters towards the blend: 0 gives natural, 1 the blend, up to 2 exaggerates it.

Each style has one set of weights, the manifest model ``photofinish-NAME`` (see :mod:`engine.models`), and one
preset file ``presets/NAME.xmp`` that selects it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from engine.errors import RecipeError, UnknownStyleError, shown

NATURAL = "natural"


@dataclass(frozen=True)
class Style:
    """A picture style: what it does, in words, and its weights."""

    name: str
    description: str
    colour: float = 1.0  # how much colour the style keeps: 0 for black and white (operator ``keep_colour``)

    @property
    def model(self) -> str:
        """The manifest name of this style's photofinishing network."""
        return f"photofinish-{self.name}"


STYLES: dict[str, Style] = {
    s.name: s
    for s in (
        Style("natural", "the photograph's own look: neutral colour, gentle contrast (the default)"),
        Style("vivid", "more saturation (most where colour is dull) and more contrast"),
        Style("warm", "a warmer white balance, slightly brighter and richer"),
        Style("moody", "darker, desaturated, cool, with opened shadows"),
        Style("cinematic", "filmic curve with hues pulled towards teal and orange"),
        Style("monochrome", "black and white with contrast adapted to the picture", colour=0.0),
    )
}


def known_styles() -> str:
    """The known style names, for error messages."""
    return ", ".join(STYLES)


def parse_style(spec: str) -> list[tuple[str, float]]:
    """``"warm:0.7,moody:0.3"`` -> ``[("warm", 0.7), ("moody", 0.3)]`` (weights normalised to sum to 1).

    Raises :class:`UnknownStyleError` for an unknown name and :class:`RecipeError` for a malformed blend.
    """
    terms: dict[str, float] = {}
    for raw in spec.split(","):
        term = raw.strip()
        if not term:
            raise RecipeError(f"style {shown(spec)}: empty term; write NAME or NAME:WEIGHT, comma-separated")
        name, sep, weight_text = term.partition(":")
        name = name.strip().lower()
        if name not in STYLES:
            # "natural+vivid": say how a blend is written (a tester's guess)
            blend = " (a blend is written NAME:WEIGHT,NAME:WEIGHT, e.g. warm:0.7,moody:0.3)" if \
                any(mark in name for mark in "+&/;") else ""
            raise UnknownStyleError(f"unknown style {shown(name)}; known styles: {known_styles()}{blend}")
        try:
            weight = float(weight_text) if sep else 1.0
        except ValueError:
            raise RecipeError(f"style {shown(spec)}: weight {shown(weight_text.strip())} of {shown(name)} "
                              "is not a number") from None
        if not math.isfinite(weight) or weight < 0.0:
            raise RecipeError(f"style {shown(spec)}: the weight of {shown(name)} must be a number >= 0")
        terms[name] = terms.get(name, 0.0) + weight
    total = sum(terms.values())
    if total <= 0.0:
        raise RecipeError(f"style {shown(spec)}: the weights add up to 0")
    if not math.isfinite(total):  # each weight finite, their sum not (1e308 twice): every share would be 0
        raise RecipeError(f"style {shown(spec)}: the weights are too large; use shares such as 0.7 and 0.3")
    return [(name, weight / total) for name, weight in terms.items()]


def style_text(spec: str) -> str:
    """A valid style as one text however it was typed, so that styles that render alike store and compare alike:
    ``" Warm : 7, moody:3"``, ``"moody:0.3,warm:0.7"`` and ``"warm:0.7,moody:0.3"`` are all
    ``"warm:0.7,moody:0.3"`` (names folded, a name given twice added up, weights as shares of 1 to six
    significant digits, the largest share first, a share of 0 left out), and ``"vivid:1"`` is ``"vivid"``. The
    text of a text is itself (read again, stored again, a blend never drifts)."""
    text = _one_text(spec)
    for _ in range(4):  # the shares are written so that they add up to 1: reading them again changes nothing
        again = _one_text(text)
        if again == text:
            break
        text = again
    return text


def _one_text(spec: str) -> str:
    order = list(STYLES)
    terms = sorted(((name, weight) for name, weight in parse_style(spec) if weight > 0.0),
                   key=lambda term: (-term[1], order.index(term[0])))
    if len(terms) == 1:
        return terms[0][0]
    others = [f"{weight:.6g}" for _name, weight in terms[1:]]
    largest = (Decimal(1) - sum(Decimal(share) for share in others)).normalize()  # the rest of 1, exactly
    return ",".join(f"{name}:{share}" for (name, _weight), share in zip(terms, [str(largest), *others], strict=True))


def styles_needed(spec: str, strength: float) -> list[str]:
    """Every style whose network a render with this style and strength runs (natural unless strength is 1)."""
    names = [name for name, weight in parse_style(spec) if weight > 0.0]
    if strength != 1.0 and NATURAL not in names:
        names.append(NATURAL)
    return names


def _mix(values: list[Any], weights: list[float]) -> Any:
    """Weighted sum of equally shaped numbers or nested lists."""
    if isinstance(values[0], list):
        return [_mix([v[i] for v in values], weights) for i in range(len(values[0]))]
    return sum(w * float(v) for v, w in zip(values, weights, strict=True))


def blend_operators(operators: list[dict[str, Any]], weights: list[float]) -> dict[str, Any]:
    """Mix operator-parameter dicts (the JSON form of :mod:`engine.stages.photofinish`) with weights."""
    return {key: _mix([o[key] for o in operators], weights) for key in operators[0]}


def style_operators(predicted: dict[str, dict[str, Any]], spec: str, strength: float) -> dict[str, Any]:
    """The operator parameters of a (blended) style at a strength, from each style's own prediction.

    ``strength`` s gives ``natural + s * (blend - natural)``; values are clamped where an operator needs it.
    """
    blend = [(name, weight) for name, weight in parse_style(spec) if weight > 0.0]
    mixed = blend_operators([predicted[name] for name, _ in blend], [w for _, w in blend])
    if strength == 1.0:
        return mixed
    natural = predicted[NATURAL]
    out = blend_operators([natural, mixed], [1.0 - strength, strength])
    out["knee"] = min(max(out["knee"], 0.05), 0.99)
    out["tone"] = [max(out["tone"][0], 0.05), max(out["tone"][1], 0.05), max(out["tone"][2], 1e-3)]
    out["gamma"] = max(out["gamma"], 0.3)
    return out
