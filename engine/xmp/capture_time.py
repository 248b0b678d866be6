"""When a photograph was taken, as a sidecar says it: the capture time that Lightroom's "Edit Capture Time" and
darktable's date editor write into a raw's XMP (a camera whose clock was wrong, or in another time zone), carried
to every output like the geotag.

A sidecar's ``exif:DateTimeOriginal`` (else ``photoshop:DateCreated``) is the photographer's: it replaces the raw's
own EXIF DateTimeOriginal, with its fraction of a second and its offset from UTC (:func:`with_capture_time`), so a
studio that corrected two bodies' clocks delivers files that sort and date as shot. ``xmp:CreateDate`` does the
same for DateTimeDigitized; without it, DateTimeDigitized follows the corrected DateTimeOriginal where the camera's
two were the same. A sidecar time equal to the camera's, to the second, keeps the camera's fraction.
"""

from __future__ import annotations

import datetime
import re
from typing import TYPE_CHECKING, Any

from engine.xmp.location import EXIF_NS, PHOTOSHOP_NS

if TYPE_CHECKING:
    from lxml import etree

XMP_BASIC_NS = "http://ns.adobe.com/xap/1.0/"

# sidecar property -> output XMP key
_TIMES = {(EXIF_NS, "DateTimeOriginal"): "Xmp.exif.DateTimeOriginal",
          (PHOTOSHOP_NS, "DateCreated"): "Xmp.photoshop.DateCreated",
          (XMP_BASIC_NS, "CreateDate"): "Xmp.xmp.CreateDate"}
OUTPUT_KEYS = tuple(_TIMES.values())

# XMP's date (ISO 8601: 2022-01-01T10:00:00.50+01:00), or EXIF's colons, which darktable and some tools write
_DATE = re.compile(r"\s*(\d{4})[-:](\d{2})[-:](\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?"
                   r"\s*(Z|[+-]\d{2}:?\d{2})?\s*")


def capture_time(tree: etree._ElementTree) -> dict[str, Any]:
    """The sidecar's capture times as output XMP (pyexiv2 keys), each only when it reads as a time of day."""
    from engine.xmp.document import simple_properties  # lxml: only where a sidecar is read

    read = {namespace: simple_properties(tree, namespace) for namespace in {ns for ns, _name in _TIMES}}
    found = {}
    for (namespace, name), key in _TIMES.items():
        value = read[namespace].get(name, "").strip()
        if _parsed(value) is not None:
            found[key] = value
    return found


def with_capture_time(exif: dict[str, str] | None, xmp: dict[str, Any]) -> dict[str, str] | None:
    """``exif`` (pyexiv2 EXIF keys) with DateTimeOriginal (and DateTimeDigitized) replaced by the times in
    ``xmp`` (from :func:`capture_time`), or as it is when ``xmp`` holds none."""
    taken = _original(xmp)
    digitized = _parsed(str(xmp.get("Xmp.xmp.CreateDate", "")))
    if taken is None and digitized is None:
        return exif
    out = dict(exif or {})
    if digitized is None and taken is not None and _same_instant(out, "Original", "Digitized"):
        digitized = taken  # the camera's two times were one: a corrected capture time corrects both (a tester's
        # DateTimeDigitized stayed two hours off, darktable's date editor writing exif:DateTimeOriginal only)
    for when, suffix in ((taken, "Original"), (digitized, "Digitized")):
        if when is not None:
            _set_time(out, suffix, *when)
    return out


def taken_at(xmp: dict[str, Any]) -> datetime.datetime | None:
    """The capture time a sidecar corrected (in ``xmp``, from :func:`capture_time`) as the local time it states,
    or None: what a watch daemon's ``{date}`` token files an output under."""
    taken = _original(xmp)
    return datetime.datetime.strptime(taken[0], "%Y:%m:%d %H:%M:%S") if taken is not None else None


def _original(xmp: dict[str, Any]) -> tuple[str, str | None, str | None] | None:
    """The capture time ``xmp`` states (exif:DateTimeOriginal, else photoshop:DateCreated), :func:`_parsed`."""
    return _parsed(str(xmp.get("Xmp.exif.DateTimeOriginal") or xmp.get("Xmp.photoshop.DateCreated") or ""))


def _same_instant(exif: dict[str, str], first: str, second: str) -> bool:
    """Whether the camera's DateTime{first} and DateTime{second} are the same time, in the same zone."""
    def stated(suffix: str) -> tuple[str, str]:
        return (exif.get(f"Exif.Photo.DateTime{suffix}", "").strip(),
                exif.get(f"Exif.Photo.OffsetTime{suffix}", "").strip())

    return bool(stated(first)[0]) and stated(first) == stated(second)


def _set_time(exif: dict[str, str], suffix: str, stamp: str, fraction: str | None, offset: str | None) -> None:
    """Set Exif's DateTime{suffix}, SubSecTime{suffix} and OffsetTime{suffix}; a time equal to the camera's to the
    second, in the same offset or none, leaves the camera's as they are."""
    keys = (f"Exif.Photo.DateTime{suffix}", f"Exif.Photo.SubSecTime{suffix}", f"Exif.Photo.OffsetTime{suffix}")
    camera_time = exif.get(keys[0], "").strip()
    camera_zone = exif.get(keys[2]) or (exif.get("Exif.Photo.OffsetTime") if exif.get(
        "Exif.Image.DateTime", "").strip() == camera_time else "")  # (a camera may give its zone there only)
    if camera_time == stamp and offset in (None, (camera_zone or "").strip()):
        return  # the camera's own time, as darktable copies it into every sidecar (".000" for its fraction)
    exif[keys[0]] = stamp
    for key, value in ((keys[1], fraction), (keys[2], offset)):
        if value:
            exif[key] = value
        else:
            exif.pop(key, None)


def _parsed(text: str) -> tuple[str, str | None, str | None] | None:
    """(EXIF's "YYYY:MM:DD HH:MM:SS", the fraction's digits, the offset "+01:00") of an XMP date, or None for
    anything that is no valid time of day (a date alone says nothing to replace a camera's time with)."""
    match = _DATE.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute = (int(part) for part in match.group(1, 2, 3, 4, 5))
    second = int(match[6] or 0)
    try:
        datetime.datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None
    zone = match[8]
    offset = None if zone is None else "+00:00" if zone == "Z" else f"{zone[:3]}:{zone[-2:]}"
    return f"{year:04d}:{month:02d}:{day:02d} {hour:02d}:{minute:02d}:{second:02d}", match[7], offset
