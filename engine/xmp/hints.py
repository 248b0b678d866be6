"""What other programs' sidecars tell us: Adobe Camera Raw's basic settings, ratings, colour labels, keywords.

Adobe's basic panel maps onto the recipe almost one to one (both use -100..100 sliders, Kelvin and EV).
Whites and Blacks have no setting of their own here; half of each is folded into highlights and shadows, the
neighbouring tonal range, which is an approximation. White balance follows ``crs:WhiteBalance``: "As Shot" keeps
the camera's, "Auto" estimates, anything else (Custom, Daylight, ...) uses Adobe's Temperature and Tint.
"""

from __future__ import annotations

import math
from typing import Any

from lxml import etree

from engine.errors import SidecarError
from engine.recipe import RANGES
from engine.xmp.document import array_items, simple_properties
from engine.xmp.namespaces import CRS_NS, DARKTABLE_NS, DC_NS, XMP_BASIC_NS

# crs property -> recipe setting it maps to directly.
ADOBE_SETTINGS = {
    "Exposure2012": "exposure",
    "Contrast2012": "contrast",
    "Highlights2012": "highlights",
    "Shadows2012": "shadows",
    "Vibrance": "vibrance",
    "Saturation": "saturation",
}
# crs property -> (recipe setting, weight) for the ranges the recipe has no slider for.
ADOBE_FOLDED = {"Whites2012": ("highlights", 0.5), "Blacks2012": ("shadows", 0.5)}
ADOBE_READ = ("WhiteBalance", "Temperature", "Tint", *ADOBE_SETTINGS, *ADOBE_FOLDED)

# darktable stores colour labels as numbers 0-4.
DARKTABLE_LABELS = ("red", "yellow", "green", "blue", "purple")


def adobe_settings(tree: etree._ElementTree) -> dict[str, str]:
    """The crs basic-panel values present in a packet, as written."""
    crs = simple_properties(tree, CRS_NS)
    return {name: crs[name] for name in ADOBE_READ if name in crs}


def _number(adobe: dict[str, str], name: str, where: str) -> float:
    try:
        value = float(adobe[name])
    except ValueError:
        value = float("nan")
    if not math.isfinite(value):
        raise SidecarError(f"{where}: crs:{name} {adobe[name]!r} is not a number")
    return value


def _clamped(setting: str, value: float) -> float:
    low, high = RANGES[setting]
    return min(max(value, low), high)


def adobe_hints(adobe: dict[str, str], where: str) -> dict[str, Any]:
    """Recipe settings from Adobe's basic settings (clamped to the recipe's ranges)."""
    hints: dict[str, Any] = {}
    for name, setting in ADOBE_SETTINGS.items():
        if name in adobe:
            hints[setting] = _number(adobe, name, where)
    for name, (setting, weight) in ADOBE_FOLDED.items():
        if name in adobe:
            hints[setting] = hints.get(setting, 0.0) + weight * _number(adobe, name, where)
    balance = adobe.get("WhiteBalance", "Custom" if "Temperature" in adobe else "As Shot")
    if balance == "Auto":
        hints["wb"] = "auto"
    elif balance != "As Shot" and "Temperature" in adobe:
        hints["wb"] = "custom"
        hints["temperature"] = _number(adobe, "Temperature", where)
        if "Tint" in adobe:
            hints["tint"] = _number(adobe, "Tint", where)
    return {k: _clamped(k, v) if k in RANGES else v for k, v in hints.items()}


def rating(tree: etree._ElementTree) -> int | None:
    """xmp:Rating (-1 rejected, 0 to 5 stars), or None when absent or not a rating."""
    text = simple_properties(tree, XMP_BASIC_NS).get("Rating")
    try:
        value = round(float(text)) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and -1 <= value <= 5 else None


def colour_labels(tree: etree._ElementTree) -> list[str]:
    """Colour labels, lower-case: Adobe's xmp:Label and darktable's numbered darktable:colorlabels."""
    labels = []
    adobe = simple_properties(tree, XMP_BASIC_NS).get("Label", "").strip()
    if adobe:
        labels.append(adobe.lower())
    for item in array_items(tree, DARKTABLE_NS, "colorlabels"):
        if item.isdigit() and int(item) < len(DARKTABLE_LABELS):
            labels.append(DARKTABLE_LABELS[int(item)])
    return list(dict.fromkeys(labels))


def keywords(tree: etree._ElementTree) -> list[str]:
    """dc:subject keywords (Lightroom, darktable, digiKam all write them)."""
    return [item for item in array_items(tree, DC_NS, "subject") if item]


# Dublin Core properties that name a photograph's author and terms: carried to its outputs.
_CREDIT_ARRAYS = {"creator": "Xmp.dc.creator"}  # an ordered list of names
_CREDIT_TEXTS = {"rights": "Xmp.dc.rights", "title": "Xmp.dc.title", "description": "Xmp.dc.description"}


def credits(tree: etree._ElementTree) -> dict[str, Any]:
    """dc:creator, dc:rights, dc:title and dc:description as output XMP (pyexiv2 keys); a language alternative's
    first text (the x-default one, as Lightroom, darktable and digiKam write it) stands for it."""
    found: dict[str, Any] = {}
    for name, key in _CREDIT_ARRAYS.items():
        names = [item for item in array_items(tree, DC_NS, name) if item]
        if names:
            found[key] = names
    for name, key in _CREDIT_TEXTS.items():
        texts = [item for item in array_items(tree, DC_NS, name) if item]
        if texts:
            found[key] = {'lang="x-default"': texts[0]}
    return found
