"""What other programs' sidecars tell us: Adobe Camera Raw's basic settings, the orientation, ratings, colour
labels, keywords.

Adobe's basic panel maps onto the recipe almost one to one (both use -100..100 sliders, Kelvin and EV).
Whites and Blacks have no setting of their own here; half of each is folded into highlights and shadows, the
neighbouring tonal range, which is an approximation. White balance follows ``crs:WhiteBalance``: "As Shot" keeps
the camera's, "Auto" estimates, anything else (Custom, Daylight, ...) uses Adobe's Temperature and Tint.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lxml import etree

from engine.errors import SidecarError, shown
from engine.orientation import Orientation
from engine.recipe import RANGES
from engine.xmp.document import array_items, descriptions, simple_properties, structured_properties
from engine.xmp.namespaces import (
    CRS_NS,
    DARKTABLE_NS,
    DC_NS,
    LIGHTROOM_NS,
    PHOTOSHOP_NS,
    RDF_NS,
    RIGHTS_NS,
    TIFF_NS,
    XMP_BASIC_NS,
)

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
# The settings of Lightroom's process versions before 2012 (PV2010 and older): Exposure is in EV as Exposure2012 is,
# and stands in for it; the others mean other things (PV2010's Contrast 0..100 around +25, its Shadows are blacks)
# and have no setting here: `show` names them as not used.
ADOBE_OLDER = ("Exposure", "Contrast", "Brightness", "Recovery", "FillLight", "Shadows", "Clarity")
ADOBE_READ = ("WhiteBalance", "Temperature", "Tint", *ADOBE_SETTINGS, *ADOBE_FOLDED, *ADOBE_OLDER, "ProcessVersion")
PROCESS_2012 = 6.7  # crs:ProcessVersion of Lightroom's 2012 process (PV2010 is 5.7, PV2003 5.0)
# Adobe edits with no counterpart here, which `show` names as not rendered where Adobe's settings are used: the crop
# first (a tester's Lightroom crop was dropped without a word), then the edits of a value other than 0.
ADOBE_CROP = ("HasCrop", "CropTop", "CropLeft", "CropBottom", "CropRight", "CropAngle")
ADOBE_UNRENDERED = ("Clarity2012", "Texture", "Dehaze", "ConvertToGrayscale", "PostCropVignetteAmount",
                    "VignetteAmount", "GrainAmount", "ParametricShadows", "ParametricDarks", "ParametricLights",
                    "ParametricHighlights", "SplitToningShadowSaturation", "SplitToningHighlightSaturation",
                    "ColorGradeShadowSat", "ColorGradeMidtoneSat", "ColorGradeHighlightSat", "ColorGradeGlobalSat",
                    "LuminanceSmoothing", "LensProfileEnable", "PerspectiveUpright",  # noise reduction, lens, Upright
                    "PerspectiveVertical", "PerspectiveHorizontal", "PerspectiveRotate", "PerspectiveScale",
                    "PerspectiveAspect", "LensManualDistortionAmount", "DefringePurpleAmount",
                    "DefringeGreenAmount",  # the manual Transform and lens corrections
                    "Sharpness", "ColorNoiseReduction")  # hostplug's own sharpening and denoising run instead
_ADOBE_MIXER = ("HueAdjustment", "SaturationAdjustment", "LuminanceAdjustment")  # + Red, Orange, ... Magenta
# Adobe edits held in arrays or structures (a tester's masks, healing and point curve were not named): the local
# adjustments, spot healing and red eye, read as present or not
ADOBE_STRUCTURED = {"MaskGroupBasedCorrections": "masks", "GradientBasedCorrections": "graduated filters",
                    "CircularGradientBasedCorrections": "radial filters", "PaintBasedCorrections": "brush",
                    "RetouchAreas": "spot healing", "RedEyeInfo": "red eye"}
# the settings whose "no edit" is not 0 (Lightroom's defaults for a raw: sharpening 40, colour noise reduction 25)
_UNSET = {"PerspectiveScale": 100.0, "Sharpness": 40.0, "ColorNoiseReduction": 25.0}
ADOBE_CURVES = ("ToneCurvePV2012", "ToneCurvePV2012Red", "ToneCurvePV2012Green", "ToneCurvePV2012Blue")


def _linear(points: list[str]) -> bool:
    """Whether a point curve ("0, 0", "128, 128", "255, 255", spaced any way) leaves every tone as it is (no
    points: none set)."""
    try:
        pairs = [tuple(float(v) for v in point.split(",")) for point in points]
    except ValueError:
        return False  # unreadable: named rather than hidden
    return all(len(pair) == 2 and pair[0] == pair[1] for pair in pairs)

# darktable stores colour labels as numbers 0-4.
DARKTABLE_LABELS = ("red", "yellow", "green", "blue", "purple")

# darktable's orientation module ("flip", params version 2): its dt_image_orientation_t (bit 0 flips the rows, bit 1
# the columns, bit 2 swaps the axes; -1 "as the EXIF says") -> the EXIF orientation that shows the same picture.
# Checked against darktable 4.2.1's own renders of each value. The value is absolute, not relative to the EXIF.
DARKTABLE_FLIP = {0: 1, 1: 4, 2: 2, 3: 3, 4: 5, 5: 6, 6: 8, 7: 7}
# darktable's dt_image_orientation_to_flip_bits: the EXIF orientation -> dt_image_orientation_t, DARKTABLE_FLIP reversed
_EXIF_TO_DARKTABLE = {exif: bits for bits, exif in DARKTABLE_FLIP.items()}
_FLIP_Y, _FLIP_X, _SWAP_XY = 1, 2, 4


def adobe_settings(tree: etree._ElementTree) -> dict[str, str]:
    """The crs basic-panel values present in a packet, as written; none where Adobe marks them as no edit to
    apply: crs:HasSettings="False" (Adobe DNG Converter's packet in a DNG it made) or crs:AlreadyApplied="True"
    (the pixels hold them already)."""
    crs = simple_properties(tree, CRS_NS)
    flag = {name: crs.get(name, "").strip().lower() for name in ("HasSettings", "AlreadyApplied")}
    if flag["HasSettings"] == "false" or flag["AlreadyApplied"] == "true":
        return {}
    read = {name: crs[name] for name in ADOBE_READ if name in crs}
    structured = {name: f"({ADOBE_STRUCTURED[name]})" for name in structured_properties(tree, CRS_NS)
                  if name in ADOBE_STRUCTURED}
    for name in ADOBE_CURVES:  # the point curves; the parametric one is ADOBE_UNRENDERED's
        if not _linear(array_items(tree, CRS_NS, name)):
            structured[name] = "(a point curve)"
    return read | structured | {name: value for name, value in crs.items()
                                if name in ADOBE_CROP or name in ADOBE_UNRENDERED or name.startswith(_ADOBE_MIXER)}


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
    """Recipe settings from Adobe's basic settings (clamped to the recipe's ranges: :func:`clamped_hints` says
    which were)."""
    return {k: _clamped(k, v) if k in RANGES else v for k, v in _hints(adobe, where).items()}


def clamped_hints(adobe: dict[str, str], where: str) -> dict[str, str]:
    """A note for each of Adobe's settings that :func:`adobe_hints` clamped to the recipe's range, by the recipe
    setting (Lightroom's temperature goes to 50000 K, the recipe's to 25000; a highlights slider with half the
    whites folded in can pass 100), which a render took without a word (a tester's)."""
    notes = {}
    for setting, value in _hints(adobe, where).items():
        if setting in RANGES and _clamped(setting, value) != value:
            low, high = RANGES[setting]
            notes[setting] = (f"{setting} {value:g} from Lightroom's settings ({Path(where).name}) is beyond "
                              f"hostplug's {low:g} to {high:g}: rendered at {_clamped(setting, value):g}")
    return notes


def _hints(adobe: dict[str, str], where: str) -> dict[str, Any]:
    """:func:`adobe_hints` before clamping."""
    hints: dict[str, Any] = {}
    for name, setting in ADOBE_SETTINGS.items():
        if name in adobe:
            hints[setting] = _number(adobe, name, where)
    if "Exposure2012" not in adobe and "Exposure" in adobe:  # an older process version's exposure, also in EV
        hints["exposure"] = _number(adobe, "Exposure", where)
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
    return hints


def unused_adobe(adobe: dict[str, str]) -> list[str]:
    """The Adobe edits that Lightroom renders and hostplug does not, as written: a crop ("crs:HasCrop=True (top
    0.1, left 0.1, bottom 0.5, right 0.9)"), the edits of :data:`ADOBE_UNRENDERED` and the colour mixer that are
    not 0, and the settings of an older process version (:data:`ADOBE_OLDER`) that no hint takes."""
    unused = []
    if adobe.get("HasCrop", "").strip().lower() == "true":
        box = ", ".join(f"{name[4:].lower()} {adobe[name]}" for name in ADOBE_CROP[1:] if name in adobe)
        unused.append(f"crs:HasCrop=True ({box})" if box else "crs:HasCrop=True")
    for name, value in adobe.items():
        if (name in ADOBE_UNRENDERED or name.startswith(_ADOBE_MIXER)) and _is_an_edit(value, _UNSET.get(name, 0.0)):
            unused.append(f"crs:{name}={value}")
        elif name in ADOBE_STRUCTURED or name in ADOBE_CURVES:
            unused.append(f"crs:{name} {value}")
    if _older_process(adobe):
        used = {"Exposure"} if "Exposure2012" not in adobe else set()
        unused += [f"crs:{name}={adobe[name]}" for name in ADOBE_OLDER if name in adobe and name not in used]
    return unused


def _is_an_edit(value: str, unset: float = 0.0) -> bool:
    """Whether an Adobe setting's value asks for something: "True", or a number other than its ``unset`` one (text
    that is neither counts too, rather than hide what it might ask)."""
    text = value.strip()
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return float(text) != unset
    except ValueError:
        return bool(text)


def _older_process(adobe: dict[str, str]) -> bool:
    """Whether the settings are of a process version before 2012 (by crs:ProcessVersion, else by having no 2012
    settings at all)."""
    version = adobe.get("ProcessVersion", "").strip()
    if not version:
        return not any(name.endswith("2012") for name in adobe)
    try:
        return float(version) < PROCESS_2012
    except ValueError:
        return False


def orientation(tree: etree._ElementTree, where: str, exif: Callable[[], int]) -> Orientation | None:
    """The orientation a packet sets, or None when it sets none: darktable's orientation module when its history
    sets one, else tiff:Orientation (written by Lightroom, Camera Raw, digiKam, exiftool). ``exif`` gives the raw's
    own EXIF orientation, asked only for darktable's version 1 of the module, which was relative to it.
    :class:`SidecarError` naming ``where`` (the sidecar's path, or a DNG's embedded XMP) for a value that is no
    orientation."""
    return _darktable_orientation(tree, where, exif) or _tiff_orientation(tree, where)


def _tiff_orientation(tree: etree._ElementTree, where: str) -> Orientation | None:
    text = simple_properties(tree, TIFF_NS).get("Orientation")
    if text is None:
        return None
    if not re.fullmatch(r"[1-8]", text.strip()):
        raise SidecarError(f"{where}: tiff:Orientation {shown(text)} is not an EXIF orientation (a whole number from "
                           "1 to 8)")
    return Orientation(int(text), f"{Path(where).name} (tiff:Orientation)")


def _darktable_orientation(tree: etree._ElementTree, where: str, exif: Callable[[], int]) -> Orientation | None:
    """What darktable's orientation module does: the last "flip" item within the history's applied part; None
    when there is none or it says "as the EXIF says" (-1, darktable's default)."""
    items = _darktable_history(tree)
    applied = items[:_history_end(tree, len(items), where)]
    flips = [item for item in applied if item.get("operation") == "flip"]
    if not flips:
        return None
    flip, origin = flips[-1], f"{Path(where).name} (darktable history: flip)"
    if flip.get("enabled", "1").strip() == "0":  # darktable then shows the sensor's orientation, EXIF or not
        return Orientation(1, origin + ", switched off")
    version = flip.get("modversion", "2").strip()
    if version not in ("1", "2"):
        raise SidecarError(f"{where}: darktable's orientation (flip) is of module version {shown(version)}, which "
                           "hostplug does not know (it reads 1 and 2)")
    value = _flip_value(flip.get("params", ""), where, version)
    if version == "1":
        return Orientation(DARKTABLE_FLIP[_flip_from_version_1(value, exif())], origin + ", version 1")
    return None if value == -1 else Orientation(DARKTABLE_FLIP[value], origin)


# darktable's history always holds its pipeline's structure; "flip" is read as the orientation (_darktable_orientation)
_DARKTABLE_STRUCTURE = frozenset({"rawprepare", "demosaic", "colorin", "colorout", "gamma", "flip"})


def darktable_edits(tree: etree._ElementTree, where: str) -> list[str]:
    """The darktable modules a sidecar's history applies (within darktable:history_end, switched on), each named
    once in order, leaving out the pipeline's structure and the orientation: darktable's own processing, its
    defaults included (a new darktable sidecar holds its scene-referred exposure and tone mapper), which a render
    does not apply. ``show`` names them so that nobody takes them for applied."""
    items = _darktable_history(tree)
    try:
        applied = items[:_history_end(tree, len(items), where)]
    except SidecarError:  # only named here: a damaged history_end fails no read that did not need it
        applied = items
    # each instance of a module (its multi_priority) as its last step left it: a crop switched off later is off
    last: dict[tuple[str, str], bool] = {}
    for item in applied:
        instance = (item.get("operation", "").strip(), item.get("multi_priority", "0").strip())
        last[instance] = item.get("enabled", "1").strip() != "0"  # (named in the order they were first used)
    names = [name for (name, _), enabled in last.items() if enabled]
    return list(dict.fromkeys(name for name in names if name and name not in _DARKTABLE_STRUCTURE))


def _flip_from_version_1(user: int, exif: int) -> int:
    """darktable's own conversion of the orientation module's params from version 1 to 2 (legacy_params and
    merge_two_orientations in src/iop/flip.c): version 1 held the photographer's flip on top of the raw's EXIF
    orientation, version 2 holds the whole orientation. Where the flip swaps the axes, the EXIF's row and column
    flips trade places before the two are combined."""
    raw = _EXIF_TO_DARKTABLE.get(exif, 0)
    if user & _SWAP_XY:
        raw = (raw & _SWAP_XY) | (_FLIP_X if raw & _FLIP_Y else 0) | (_FLIP_Y if raw & _FLIP_X else 0)
    return raw ^ user


def _darktable_history(tree: etree._ElementTree) -> list[dict[str, str]]:
    """darktable's history items (darktable:history), in order, each as its darktable: fields; from a sidecar of
    darktable 1.x (``xmp_version`` 1, no darktable:history), its parallel arrays (:func:`_darktable_history_v1`)."""
    tag, item = f"{{{DARKTABLE_NS}}}history", f"{{{RDF_NS}}}li"
    for description in descriptions(tree):
        for prop in description.iterchildren(tag):
            return [_darktable_fields(li) for array in prop for li in array.iterchildren(item)]
    return _darktable_history_v1(tree)


# darktable 1.x's history: one array per field (rdf:Seq, or rdf:Bag in the oldest), item i of each is step i
_V1_ARRAYS = {"operation": "history_operation", "enabled": "history_enabled", "modversion": "history_modversion",
              "params": "history_params"}


def _darktable_history_v1(tree: etree._ElementTree) -> list[dict[str, str]]:
    """The history of darktable 1.x's layout, read as darktable's read_history_v1 does: one item per operation,
    the other arrays' items taken in step (a field whose array is shorter is left out, as darktable then reads
    nothing for it)."""
    arrays = {field: array_items(tree, DARKTABLE_NS, name) for field, name in _V1_ARRAYS.items()}
    return [{field: values[i] for field, values in arrays.items() if i < len(values)}
            for i in range(len(arrays["operation"]))]


def _darktable_fields(item: etree._Element) -> dict[str, str]:
    """An rdf:li struct's darktable: fields, written as attributes (as darktable does) or as elements."""
    fields: dict[str, str] = {}
    for element in item.iter(etree.Element):  # the item itself, and a nested rdf:Description or field elements
        for key, value in element.attrib.items():
            name = etree.QName(key)
            if name.namespace == DARKTABLE_NS:
                fields[name.localname] = value
        name = etree.QName(element)
        if name.namespace == DARKTABLE_NS and len(element) == 0:
            fields[name.localname] = (element.text or "").strip()
    return fields


def _history_end(tree: etree._ElementTree, count: int, where: str) -> int:
    """How many history items darktable applies (darktable:history_end; the rest were undone)."""
    text = simple_properties(tree, DARKTABLE_NS).get("history_end")
    if text is None:
        return count
    if not re.fullmatch(r"\d+", text.strip()):
        raise SidecarError(f"{where}: darktable:history_end {shown(text)} is not a whole number")
    return int(text)


def _flip_value(params: str, where: str, version: str) -> int:
    """darktable's flip params: one little-endian int32, 0 to 7 (see ``DARKTABLE_FLIP``), or -1 from version 2 on."""
    data = _darktable_params(params.strip())
    value = int.from_bytes(data, "little", signed=True) if data is not None and len(data) == 4 else None
    lowest = -1 if version == "2" else 0  # "as the EXIF says" came with version 2
    if value is None or not lowest <= value <= 7:
        raise SidecarError(f"{where}: darktable's orientation (flip) params {shown(params)} are not an orientation "
                           f"(one of {lowest} to 7 in module version {version})")
    return value


def _darktable_params(text: str) -> bytes | None:
    """darktable's params encoding: hex, or "gz", two digits and base64 of zlib-compressed bytes; None for
    neither, or for more bytes than any orientation has (read no further: a hostile packet could inflate)."""
    if not text.startswith("gz"):
        try:
            return bytes.fromhex(text)
        except ValueError:
            return None
    inflate = zlib.decompressobj()
    try:
        data = inflate.decompress(base64.b64decode(text[4:], validate=True), 16)
    except (binascii.Error, zlib.error):
        return None
    return data if inflate.eof else None


def rating(tree: etree._ElementTree) -> int | None:
    """xmp:Rating (-1 rejected, 0 to 5 stars), or None when absent or not a rating."""
    text = simple_properties(tree, XMP_BASIC_NS).get("Rating")
    try:
        value = float(text) if text is not None else math.nan
    except ValueError:
        return None
    if not math.isfinite(value):  # "Infinity" and "1e400" raised OverflowError in round()
        return None
    return round(value) if -1 <= round(value) <= 5 else None


def colour_labels(tree: etree._ElementTree) -> list[str]:
    """Colour labels: Adobe's xmp:Label as written (free text that Lightroom and Bridge match against the user's
    label set: Bridge's "To Do", a studio's "Client OK"), and darktable's numbered darktable:colorlabels by name
    ("Red"); one of each, whatever its case."""
    labels = []
    adobe = simple_properties(tree, XMP_BASIC_NS).get("Label", "").strip()
    if adobe:
        labels.append(adobe)
    for item in array_items(tree, DARKTABLE_NS, "colorlabels"):
        if item.isdigit() and int(item) < len(DARKTABLE_LABELS):
            labels.append(DARKTABLE_LABELS[int(item)].capitalize())
    unique: dict[str, str] = {}
    for label in labels:
        unique.setdefault(label.casefold(), label)
    return list(unique.values())


def keywords(tree: etree._ElementTree) -> list[str]:
    """dc:subject keywords (Lightroom, darktable, digiKam all write them)."""
    return [item for item in array_items(tree, DC_NS, "subject") if item]


# The properties that name a photograph's author, publisher and terms of use, and Lightroom's keyword tree
# ("places|France|Paris", which darktable reads too): carried to its outputs. (namespace, name) -> output key.
_CREDIT_ARRAYS = {(DC_NS, "creator"): "Xmp.dc.creator", (DC_NS, "publisher"): "Xmp.dc.publisher",  # lists
                  (LIGHTROOM_NS, "hierarchicalSubject"): "Xmp.lr.hierarchicalSubject"}
_CREDIT_TEXTS = {(DC_NS, "rights"): "Xmp.dc.rights", (DC_NS, "title"): "Xmp.dc.title",  # language alternatives
                 (DC_NS, "description"): "Xmp.dc.description", (RIGHTS_NS, "UsageTerms"): "Xmp.xmpRights.UsageTerms"}
_CREDIT_SIMPLE = {(RIGHTS_NS, "WebStatement"): "Xmp.xmpRights.WebStatement",
                  (RIGHTS_NS, "Marked"): "Xmp.xmpRights.Marked",
                  # IPTC Core's credit line, embargo, job and writer (a tester's press file lost its embargo)
                  **{(PHOTOSHOP_NS, name): f"Xmp.photoshop.{name}" for name in (
                      "Credit", "Instructions", "Source", "CaptionWriter", "AuthorsPosition", "TransmissionReference")}}

CREDIT_KEYS = (*_CREDIT_ARRAYS.values(), *_CREDIT_TEXTS.values(), *_CREDIT_SIMPLE.values())  # what credits() gives


def credits(tree: etree._ElementTree) -> dict[str, Any]:
    """dc:creator, dc:publisher, dc:rights, dc:title, dc:description, the xmpRights usage terms, web statement
    and copyright flag, lr:hierarchicalSubject, and IPTC Core's credit line, instructions (an embargo), source,
    caption writer, creator's job title and job identifier as output XMP (pyexiv2 keys); a language alternative keeps
    every language, its x-default first (the first text stands for it when none is marked x-default)."""
    found: dict[str, Any] = {}
    for (namespace, name), key in _CREDIT_ARRAYS.items():
        items = [item for item in array_items(tree, namespace, name) if item]
        if items:
            found[key] = items
    for (namespace, name), key in _CREDIT_TEXTS.items():
        texts = _languages(tree, namespace, name)
        if texts:
            found[key] = {f'lang="{language}"': text for language, text in texts.items()}
    for (namespace, name), key in _CREDIT_SIMPLE.items():
        value = simple_properties(tree, namespace).get(name, "").strip()
        if value:
            found[key] = value
    return found


_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


def _languages(tree: etree._ElementTree, namespace: str, name: str) -> dict[str, str]:
    """A language alternative's texts by language, x-default first; {} when it is absent or empty."""
    for description in descriptions(tree):
        for prop in description.iterchildren(f"{{{namespace}}}{name}"):
            texts: dict[str, str] = {}
            for item in prop.iter(f"{{{RDF_NS}}}li"):
                text = (item.text or "").strip()
                if text:
                    texts.setdefault(item.get(_XML_LANG, "x-default").strip() or "x-default", text)
            if not texts:
                return {}
            default = texts.pop("x-default", next(iter(texts.values())))
            return {"x-default": default, **texts}
    return {}
