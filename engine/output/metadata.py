"""EXIF and XMP for rendered outputs: what to carry over from a raw file, and the project's XMP namespace.

pyexiv2 (a binding of exiv2) does the reading and writing. A raw file's EXIF describes the raw data as much as
the photograph, so :func:`read_exif` keeps only the tags that still hold for a rendered RGB image.

A TIFF gets its metadata in the same pass as its pixels: :func:`tiff_tags` has exiv2 encode the EXIF on a
tiny TIFF (and the XMP on a PNG) and returns them as TIFF directory entries, which the TIFF writer stores beside
the pixels (exiv2 editing the written file would read and rewrite all of its 100 MB again).
"""

from __future__ import annotations

import functools
import io
import os
import stat
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyexiv2

from engine.xmp.namespaces import DARKTABLE_NS
from engine.xmp.namespaces import HOSTPLUG_NS as XMP_NS_URI
from engine.xmp.namespaces import HOSTPLUG_PREFIX as XMP_PREFIX

# The EXIF groups that describe the photograph; SubImage*, Thumbnail, MakerNote and vendor groups do not.
_KEPT_GROUPS = ("Image", "Photo", "GPSInfo")

# Tags (by number) that describe the source's image data or point into its file structure.
_STRUCTURE_TAGS = frozenset(
    # NewSubfileType, SubfileType, ImageWidth, ImageLength, BitsPerSample, Compression, PhotometricInterpretation
    (254, 255, 256, 257, 258, 259, 262)
    # StripOffsets, SamplesPerPixel, RowsPerStrip, StripByteCounts, PlanarConfiguration, WhitePoint,
    # PrimaryChromaticities, TileWidth, TileLength, TileOffsets, TileByteCounts
    + (273, 277, 278, 279, 284, 318, 319, 322, 323, 324, 325)
    # SubIFDs, ExtraSamples, SampleFormat, SMinSampleValue, SMaxSampleValue, JPEGInterchangeFormat(Length)
    + (330, 338, 339, 340, 341, 513, 514)
    # YCbCrCoefficients, YCbCrSubSampling, YCbCrPositioning, ReferenceBlackWhite, XMLPacket (XMP travels apart)
    + (529, 530, 531, 532, 700)
    # CFARepeatPatternDim, CFAPattern, Exif IFD, InterColorProfile (the writer embeds its own), GPS IFD,
    # TIFF/EP StandardID, MakerNote, ComponentsConfiguration, CompressedBitsPerPixel
    + (33421, 33422, 34665, 34675, 34853, 37398, 37500, 37121, 37122)
    # ColorSpace, PixelXDimension, PixelYDimension (the writer sets these three), Interoperability IFD,
    # CFAPattern (Exif), Gamma, PrintImageMatching
    + (40961, 40962, 40963, 40965, 41730, 42240, 50341)
)
_DNG_TAGS = range(50706, 52601)  # DNGVersion ... the DNG 1.7 tags: all describe the raw data

# Exif-IFD tags that TIFF/EP (and DNGs written after it) may keep in IFD0, where exiv2 calls them Exif.Image.*:
# an output states them in its Exif IFD, where Exif readers look (exiftool flags them as in the wrong IFD).
_TIFF_EP_EXIF = ("ExposureTime", "FNumber", "ExposureProgram", "ISOSpeedRatings", "DateTimeOriginal",
                 "ShutterSpeedValue", "ApertureValue", "BrightnessValue", "ExposureBiasValue", "MaxApertureValue",
                 "SubjectDistance", "MeteringMode", "LightSource", "Flash", "FocalLength")  # not SensingMethod:
# TIFF/EP's values mean other things than Exif's (its 1 is "monochrome area", Exif's "not defined")


# exiv2 keeps one log for the whole process, from which pyexiv2 raises the errors it logged: a read and a write in
# two threads could raise each other's errors, and a read with the log muted (_exif_detail) would hide a write's.
# Every use of pyexiv2 holds this lock.
EXIV2 = threading.RLock()


def exiv2_image(path: str | Path) -> pyexiv2.Image:
    """pyexiv2's image of the file at ``path``, whatever bytes its name holds: pyexiv2 encodes a name as UTF-8,
    which a name written under another encoding (bytes Python keeps as lone surrogates) is not, and raised
    UnicodeEncodeError; Latin-1 gives each byte back as it is. The caller holds :data:`EXIV2`. RuntimeError, as
    pyexiv2 raises for a file it cannot read, for a FIFO or a device, which exiv2's open would wait on for ever (a
    tester's FIFO at an output's name hung ``open``, the render service and a daemon's worker)."""
    try:
        regular = stat.S_ISREG(os.stat(path).st_mode)
    except OSError as e:  # as pyexiv2 says it of a missing file
        raise RuntimeError(f"{os.fsdecode(path)}: {e.strerror}") from e
    if not regular:
        raise RuntimeError(f"{os.fsdecode(path)} is not a regular file")
    return pyexiv2.Image(os.fsencode(path).decode("latin-1"), encoding="latin-1")


def xmp_file_name(name: str) -> str:
    """A file name or path as XMP text: a name that is no UTF-8 (bytes of another encoding, which Python keeps as
    lone surrogates) with U+FFFD for those bytes."""
    return os.fsencode(name).decode("utf-8", "replace")


@functools.cache
def register_namespace() -> None:
    """Register hostplug's XMP namespace (and darktable's, whose colour labels outputs carry) with exiv2 and keep
    exiv2's warnings off stdout (idempotent)."""
    pyexiv2.set_log_level(3)  # pyexiv2 prints warnings to stdout; errors still raise
    pyexiv2.registerNs(XMP_NS_URI, XMP_PREFIX)
    pyexiv2.registerNs(DARKTABLE_NS, "darktable")
    pyexiv2.registerNs("http://ns.adobe.com/xmp/note/", "xmpNote")  # a JPEG's note of its Extended XMP


def _one_resolution(value: str) -> bool:
    """One positive RATIONAL, as exiv2 prints it ("300/1")."""
    numerator, _, denominator = value.partition("/")
    return numerator.isdigit() and denominator.isdigit() and int(numerator) > 0 and int(denominator) > 0


# What the TIFF writer hands to tifffile's own arguments must be what those take (a damaged source's ResolutionUnit
# of 255 or XResolution of 1/0 made tifffile raise while writing the output)
_VALUE_CHECKS = {"Exif.Image.XResolution": _one_resolution, "Exif.Image.YResolution": _one_resolution,
                 "Exif.Image.ResolutionUnit": lambda value: value in ("1", "2", "3")}


def _is_carried(key: str, number: int, value: str) -> bool:
    """Whether one EXIF entry of a source still describes a rendered output."""
    group = key.split(".")[1]
    return (
        group in _KEPT_GROUPS
        and number not in _STRUCTURE_TAGS
        and number not in _DNG_TAGS
        and not key.rsplit(".", 1)[-1].startswith("0x")  # a tag exiv2 has no name for
        and bool(value.strip())
        and _VALUE_CHECKS.get(key, bool)(value)
    )


@functools.cache
def _probe(kind: str) -> bytes:
    """A tiny image of Pillow's format ``kind`` ("JPEG", "PNG") for exiv2 to encode metadata on."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format=kind)
    return buffer.getvalue()


# XMP arrays the standards define as unordered (rdf:Bag); pyexiv2 writes every list it is given as an rdf:Seq,
# which Lightroom and digiKam read, but not what they write.
_BAG_KEYS = frozenset(("Xmp.dc.subject", "Xmp.dc.publisher", "Xmp.lr.hierarchicalSubject"))


def exiv2_xmp(xmp: dict[str, Any]) -> dict[str, Any]:
    """``xmp`` as pyexiv2's ``modify_xmp`` takes it, a list under a key of :data:`_BAG_KEYS` written as an
    rdf:Bag: exiv2 reads a value that starts with ``type=Bag`` as an empty bag, then each item by its index."""
    typed: dict[str, Any] = {}
    for key, value in xmp.items():
        # an item that itself begins "type=" would be read as a type by exiv2: such a list stays a sequence
        if key in _BAG_KEYS and isinstance(value, list) and not any(str(v).startswith("type=") for v in value):
            typed[key] = "type=Bag"
            typed.update({f"{key}[{n}]": item for n, item in enumerate(value, start=1)})
        else:
            typed[key] = value
    return typed


def xmp_packet(xmp: dict[str, Any]) -> bytes:
    """``xmp`` serialised by exiv2, on a PNG: a JPEG's segment would cap the packet at 64 KB, which a TIFF's
    XMP tag has no need of (a raw with a few thousand keywords; hostplug's own record takes about 15 KB)."""
    image = pyexiv2.ImageData(_probe("PNG"))
    try:
        image.modify_xmp(exiv2_xmp(xmp))
        return image.read_raw_xmp().encode()
    finally:
        image.close()


def _written_back(exif: dict[str, str], kind: str) -> dict[str, str] | None:
    """The EXIF exiv2 reads back after writing ``exif`` into an image of Pillow's format ``kind``; None when it
    refuses to write them. In a JPEG or PNG exiv2 encodes EXIF as a JPEG's APP1 segment, and leaves out what
    passes its 64 KB (a description of 40 000 characters and a comment of 30 000); a TIFF holds it all."""
    with EXIV2:
        image = pyexiv2.ImageData(_probe(kind))
        try:
            image.modify_exif(exif)
            return image.read_exif()
        except Exception:  # noqa: BLE001 - exiv2 raises RuntimeError or its own error types
            return None
        finally:
            image.close()


def read_exif(path: str | Path) -> dict[str, str]:
    """A source's EXIF that describes the photograph, to be carried over to a rendered output; {} when it has
    none or is unreadable.

    Structure, thumbnail, maker-note and DNG tags are dropped, as are empty values. What exiv2 would not write back
    as it is goes only when an output is written (:func:`writable_exif`): opening a raw (``hostplug info``) does
    not pay for that check.
    """
    register_namespace()
    try:
        detail = _exif_detail(path)
    except Exception:  # noqa: BLE001 - no EXIF is not an error for rendering
        return {}
    carried = {
        key: entry["value"]
        for key, entry in detail.items()
        if isinstance(entry["value"], str) and _is_carried(key, int(entry["tagNumber"]), entry["value"])
    }
    for name in _TIFF_EP_EXIF:
        value = carried.pop(f"Exif.Image.{name}", None)
        if value is not None:
            carried.setdefault(f"Exif.Photo.{name}", value)  # the Exif IFD's own entry wins
    serial = detail.get("Exif.Image.CameraSerialNumber", {}).get("value")  # a DNG's (tag 50735): Exif calls it so
    if isinstance(serial, str) and serial.strip():
        carried.setdefault("Exif.Photo.BodySerialNumber", serial.strip())
    return carried


def _exif_detail(path: str | Path) -> dict[str, dict]:
    """exiv2's EXIF entries of ``path``, also of the camera files it stumbles on (16 of 112 camera JPEGs, whose
    EXIF other readers show):

    - a value that is no UTF-8 (Latin-1 text, or bytes of older cameras) fails pyexiv2's decoding: read as Latin-1
      instead, and each value that was UTF-8 after all decoded as such;
    - a maker note exiv2 calls invalid (a Nikon D70's NikonPreview) stops the read with an error: read again with
      exiv2's logging muted, which keeps everything else (under :data:`EXIV2`, so no other use of exiv2 runs
      meanwhile).
    """
    with EXIV2:
        return _exif_detail_locked(path, muted=False)


def _exif_detail_locked(path: str | Path, muted: bool) -> dict[str, dict]:
    try:
        with exiv2_image(path) as image:
            try:
                return image.read_exif_detail()
            except UnicodeDecodeError:
                detail = image.read_exif_detail(encoding="latin-1")
    except RuntimeError:
        if muted:
            raise
        pyexiv2.set_log_level(4)
        try:
            return _exif_detail_locked(path, muted=True)
        finally:
            pyexiv2.set_log_level(3)  # register_namespace's
    for entry in detail.values():
        if isinstance(entry["value"], str):
            entry["value"] = _utf8_or_latin1(entry["value"])
    return detail


def _utf8_or_latin1(text: str) -> str:
    """A value pyexiv2 decoded as Latin-1, decoded as UTF-8 where its bytes are UTF-8."""
    try:
        return text.encode("latin-1").decode("utf-8")
    except UnicodeError:  # not UTF-8; or beyond Latin-1, so pyexiv2 decoded it otherwise (Windows' XP* tags)
        return text


def writable_exif(exif: dict[str, str], fmt: str = "jpeg") -> dict[str, str]:
    """``exif`` without any entry exiv2 does not write back as it is into an output of format ``fmt`` ("tiff",
    "png", "jpeg"): one it refuses, a value the tag's type cannot hold (a damaged file's ``inf`` or 2**31 as a
    resolution, a RATIONAL), which exiv2 would write as an empty entry, or, in a PNG or JPEG, what passes the
    64 KB exiv2 encodes there. Remembered for the last few sources (a service renders the same raw again)."""
    return dict(_writable(tuple(exif.items()), "TIFF" if fmt == "tiff" else "JPEG"))


def exif_left_out(exif: dict[str, str], fmt: str) -> list[str]:
    """The EXIF entries (pyexiv2 keys) a TIFF would keep that an output of format ``fmt`` leaves out: in a PNG or
    JPEG, what passes the 64 KB exiv2 encodes there (a very long description or comment)."""
    if fmt == "tiff":
        return []
    kept = writable_exif(exif, fmt)
    return [key for key in writable_exif(exif, "tiff") if key not in kept]


@functools.lru_cache(maxsize=8)
def _writable(items: tuple[tuple[str, str], ...], kind: str) -> tuple[tuple[str, str], ...]:
    exif = dict(items)
    back = _written_back(exif, kind)
    if back is None:  # some entry is refused: try them one at a time
        back = {}
        for key, value in exif.items():
            back.update(_written_back({key: value}, kind) or {})
    return tuple((key, value) for key, value in items if back.get(key) == value)


# A TIFF directory entry: tag, TIFF type, count, and the value's bytes in little-endian order.
TiffEntry = tuple[int, int, int, bytes]

EXIF_IFD, GPS_IFD, INTEROP_IFD, XMP_TAG = 34665, 34853, 40965, 700
# the tags of the probe's own pixels (size, layout, strips), not the source's: the output's writer states its own
_PROBE_STRUCTURE = frozenset({256, 257, 258, 259, 262, 273, 277, 278, 279, 284})
# TIFF types -> numpy codes of one component (a RATIONAL is two LONGs), to turn big-endian values around.
_COMPONENT = {1: "u1", 2: "u1", 3: "u2", 4: "u4", 5: "u4", 6: "i1", 7: "u1", 8: "i2", 9: "i4", 10: "i4", 11: "f4",
              12: "f8", 13: "u4"}
_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}


@dataclass(frozen=True)
class TiffTags:
    """EXIF and XMP as TIFF directory entries: those of the first directory (IFD0, the XMP packet included) and
    of the Exif and GPS directories it points to."""

    ifd0: tuple[TiffEntry, ...] = ()
    exif: tuple[TiffEntry, ...] = ()
    gps: tuple[TiffEntry, ...] = ()


def tiff_tags(exif: dict[str, str] | None, xmp: dict[str, str] | None) -> TiffTags:
    """``exif`` and ``xmp`` (pyexiv2 keys and values) encoded by exiv2, as TIFF entries.

    Raises RuntimeError, as pyexiv2 does, for a key or value exiv2 refuses.
    """
    register_namespace()
    with EXIV2:  # on a TIFF: exiv2 writes the tags natively there, with no 64 KB cap as in a JPEG's segment
        image = pyexiv2.ImageData(_probe("TIFF"))
        try:
            if exif:
                image.modify_exif(exif)
            blob = image.get_bytes()
        finally:
            image.close()
        packet = xmp_packet(xmp) if xmp else b""
    ifd0 = [entry for entry in _read_ifd(blob, _first_ifd(blob)) if entry[0] not in _PROBE_STRUCTURE]
    ifd0 += _resolution_entries(exif or {})
    pointers = {tag: raw for tag, _type, _count, raw in ifd0 if tag in (EXIF_IFD, GPS_IFD)}

    def directory(tag: int) -> tuple[TiffEntry, ...]:
        if tag not in pointers:
            return ()
        entries = _read_ifd(blob, struct.unpack("<I", pointers[tag])[0])
        return tuple(entry for entry in entries if entry[0] != INTEROP_IFD)  # the Interop group is not carried

    kept = [entry for entry in ifd0 if entry[0] not in (EXIF_IFD, GPS_IFD)]
    if packet:
        kept.append((XMP_TAG, 1, len(packet), packet))  # BYTE, as exiv2 and Adobe write it
    return TiffTags(ifd0=tuple(kept), exif=directory(EXIF_IFD), gps=directory(GPS_IFD))


def _resolution_entries(exif: dict[str, str]) -> list[TiffEntry]:
    """X/YResolution and ResolutionUnit as TIFF entries: exiv2 takes them for the probe's own image tags in a
    TIFF and does not write them there (the TIFF writer gives them to tifffile)."""
    entries: list[TiffEntry] = []
    for tag, key in ((282, "Exif.Image.XResolution"), (283, "Exif.Image.YResolution")):
        numerator, _, denominator = exif.get(key, "").partition("/")
        if numerator.strip().isdigit() and denominator.strip().isdigit():
            entries.append((tag, 5, 1, struct.pack("<II", int(numerator) % 2**32, int(denominator) % 2**32)))
    unit = exif.get("Exif.Image.ResolutionUnit", "").strip()
    if unit.isdigit() and int(unit) < 2**16:
        entries.append((296, 3, 1, struct.pack("<H", int(unit))))
    return entries


def _first_ifd(blob: bytes) -> int:
    order = "<" if blob[:2] == b"II" else ">"
    return struct.unpack(order + "I", blob[4:8])[0]


def _read_ifd(blob: bytes, offset: int) -> list[TiffEntry]:
    """The entries of the directory at ``offset`` of a TIFF structure, their values little-endian."""
    order = "<" if blob[:2] == b"II" else ">"
    (count,) = struct.unpack(order + "H", blob[offset:offset + 2])
    entries = []
    for index in range(count):
        start = offset + 2 + 12 * index
        tag, kind, number = struct.unpack(order + "HHI", blob[start:start + 8])
        size = _TYPE_SIZE[kind] * number
        if size <= 4:
            raw = blob[start + 8:start + 8 + size]
        else:
            (at,) = struct.unpack(order + "I", blob[start + 8:start + 12])
            raw = blob[at:at + size]
        if order == ">" and kind not in (1, 2, 6, 7):
            import numpy as np  # exiv2 writes little-endian EXIF; this is the rare other case

            code = _COMPONENT[kind]
            raw = np.frombuffer(raw, ">" + code).astype("<" + code).tobytes()
        entries.append((tag, kind, number, raw))
    return entries


def ifd_bytes(entries: tuple[TiffEntry, ...], offset: int) -> bytes:
    """A little-endian TIFF directory of ``entries`` (sorted by tag, as TIFF requires) with its values, to be
    stored at ``offset`` of a file (an even offset); no next directory."""
    entries = tuple(sorted(entries))
    values = b""
    data_start = offset + 2 + 12 * len(entries) + 4
    body = struct.pack("<H", len(entries))
    for tag, kind, count, raw in entries:
        if len(raw) <= 4:
            field = raw.ljust(4, b"\0")
        else:
            field = struct.pack("<I", data_start + len(values))
            values += raw + b"\0" * (len(raw) % 2)  # values start on word boundaries
        body += struct.pack("<HHI", tag, kind, count) + field
    return body + struct.pack("<I", 0) + values
