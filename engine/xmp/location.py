"""Where a photograph was taken, as a sidecar says it: the geotag and the IPTC place that Lightroom's and
darktable's map modules write into a raw's XMP, carried to every output like the rating and keywords.

A sidecar's position (``exif:GPSLatitude`` / ``exif:GPSLongitude``, XMP's ``DDD,MM,SSk`` or ``DDD,MM.mmk`` form) is
the photographer's: it replaces the raw's own EXIF GPS position in an output (:func:`with_position`; the
camera's GPS time, direction and precision stay), so readers that prefer EXIF to XMP, as the Metadata Working
Group asks, show the place the photographer set.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from engine.xmp.namespaces import PHOTOSHOP_NS

if TYPE_CHECKING:
    from lxml import etree

EXIF_NS = "http://ns.adobe.com/exif/1.0/"
IPTC_CORE_NS = "http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/"

# sidecar property -> output XMP key (pyexiv2's prefixes: "iptc" is Iptc4xmpCore)
_PLACE = {(PHOTOSHOP_NS, "Headline"): "Xmp.photoshop.Headline", (PHOTOSHOP_NS, "City"): "Xmp.photoshop.City",
          (PHOTOSHOP_NS, "State"): "Xmp.photoshop.State", (PHOTOSHOP_NS, "Country"): "Xmp.photoshop.Country",
          (IPTC_CORE_NS, "Location"): "Xmp.iptc.Location", (IPTC_CORE_NS, "CountryCode"): "Xmp.iptc.CountryCode"}
_POSITION = ("GPSLatitude", "GPSLongitude")
_ALTITUDE = ("GPSAltitude", "GPSAltitudeRef")
_POSITION_KEYS = frozenset(f"Exif.GPSInfo.GPS{name}" for name in (
    "VersionID", "LatitudeRef", "Latitude", "LongitudeRef", "Longitude", "AltitudeRef", "Altitude"))
OUTPUT_KEYS = (*_PLACE.values(), *(f"Xmp.exif.{name}" for name in _POSITION + _ALTITUDE))

_COORDINATE = re.compile(r"\s*(\d{1,3}),(\d{1,2}(?:\.\d+)?)(?:,(\d{1,2}(?:\.\d+)?))?\s*([NSEW])\s*")


def location(tree: etree._ElementTree) -> dict[str, Any]:
    """The sidecar's place names and position as output XMP (pyexiv2 keys): a position only when both its
    latitude and longitude read as coordinates, its altitude only with it."""
    from engine.xmp.document import simple_properties  # lxml: only where a sidecar is read

    found = {}
    read = {namespace: simple_properties(tree, namespace) for namespace in {ns for ns, _name in _PLACE}}
    for (namespace, name), key in _PLACE.items():
        value = read[namespace].get(name, "").strip()
        if value:
            found[key] = value
    exif = simple_properties(tree, EXIF_NS)
    if _degrees(exif.get("GPSLatitude", ""), "NS") and _degrees(exif.get("GPSLongitude", ""), "EW"):
        found |= {f"Xmp.exif.{name}": exif[name].strip() for name in _POSITION}
        if _altitude(exif.get("GPSAltitude", "")) is not None and exif.get("GPSAltitudeRef", "0").strip() in ("0", "1"):
            found |= {f"Xmp.exif.{name}": exif.get(name, "0").strip() for name in _ALTITUDE}
    return found


def with_position(exif: dict[str, str] | None, xmp: dict[str, Any]) -> dict[str, str] | None:
    """``exif`` (pyexiv2 EXIF keys) with its GPS replaced by the position in ``xmp`` (from :func:`location`),
    or as it is when ``xmp`` holds none."""
    latitude = _degrees(str(xmp.get("Xmp.exif.GPSLatitude", "")), "NS")
    longitude = _degrees(str(xmp.get("Xmp.exif.GPSLongitude", "")), "EW")
    if latitude is None or longitude is None:
        return exif
    gps = {"Exif.GPSInfo.GPSVersionID": "2 3 0 0"}
    for name, (value, ref) in (("Latitude", latitude), ("Longitude", longitude)):
        gps[f"Exif.GPSInfo.GPS{name}Ref"] = ref
        gps[f"Exif.GPSInfo.GPS{name}"] = _dms(value)
    altitude = _altitude(str(xmp.get("Xmp.exif.GPSAltitude", "")))
    if altitude is not None:
        gps["Exif.GPSInfo.GPSAltitudeRef"] = str(xmp.get("Xmp.exif.GPSAltitudeRef", "0"))
        gps["Exif.GPSInfo.GPSAltitude"] = _rational(altitude)
    # only the position: the camera's time, direction, speed and precision of the fix stay (darktable and
    # Lightroom copy a raw's own position into its sidecar)
    kept = {key: value for key, value in (exif or {}).items() if key not in _POSITION_KEYS}
    if kept.get("Exif.GPSInfo.GPSStatus", "").strip().upper() == "V":  # "measurement void": a camera without a fix
        del kept["Exif.GPSInfo.GPSStatus"]  # would call the sidecar's position void
    return kept | gps


def _degrees(text: str, refs: str) -> tuple[tuple[Fraction, Fraction, Fraction], str] | None:
    """(degrees, minutes, seconds) and N/S/E/W of an XMP GPS coordinate, or None for anything else."""
    match = _COORDINATE.fullmatch(text)
    if match is None or match[4] not in refs:
        return None
    degrees, minutes, seconds = (Fraction(part or 0) for part in match.group(1, 2, 3))
    if minutes >= 60 or seconds >= 60 or degrees + minutes / 60 + seconds / 3600 > (90 if refs == "NS" else 180):
        return None
    return (degrees, minutes, seconds), match[4]


def _dms(value: tuple[Fraction, Fraction, Fraction]) -> str:
    """Degrees, minutes and seconds as EXIF's three rationals, the last one given rounded to 1/10000 and carried
    over when it rounds to 60 (59.99999 seconds is the next minute, not 60 seconds)."""
    degrees, minutes, seconds = value
    if seconds:
        seconds = seconds.limit_denominator(10_000)
        minutes, seconds = (minutes + 1, seconds - 60) if seconds >= 60 else (minutes, seconds)
    else:
        minutes = minutes.limit_denominator(10_000)
    degrees, minutes = (degrees + 1, minutes - 60) if minutes >= 60 else (degrees, minutes)
    return " ".join(_rational(part) for part in (degrees, minutes, seconds))


def _altitude(text: str) -> Fraction | None:
    """An XMP rational ("35/1", "3512/100") of metres, or None."""
    try:
        value = Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        return None
    return value if 0 <= value < 100_000 else None


def _rational(value: Fraction) -> str:
    """EXIF's unsigned rational, within 32 bits (minutes to 1/10000 as XMP's decimals give them)."""
    value = value.limit_denominator(10_000)
    return f"{value.numerator}/{value.denominator}"
