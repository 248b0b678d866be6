"""A JPEG's XMP beyond the 64 KB of its one APP1 segment: Adobe's Extended XMP (XMP Specification Part 3, 1.1.3.1).

A JPEG holds its XMP packet in one APP1 segment, at most 65 502 bytes of it. A photograph whose catalogue data
passes that (a few thousand keywords, a long caption) was refused as a JPEG output. Lightroom and Photoshop then
write the *standard* packet with what fits, and the rest as an *extended* packet, a serialised ``x:xmpmeta`` cut into
APP1 segments headed ``http://ns.adobe.com/xmp/extension/``, the GUID (the MD5 of the extended packet, 32 upper-case
hex digits), the packet's full length and the chunk's offset; the standard packet names the GUID in
``xmpNote:HasExtendedXMP``. exiftool and Adobe's tools read the two as one.

hostplug keeps its own record (``Xmp.hostplug.*``: the recipe, the source) in the standard packet, which every
reader sees (exiv2 reads only that one); the largest of the other properties go to the extended one.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

STANDARD_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
EXTENDED_HEADER = b"http://ns.adobe.com/xmp/extension/\x00"
NOTE_KEY = "Xmp.xmpNote.HasExtendedXMP"
STANDARD_LIMIT = 65_000  # bytes of the standard packet, under the segment's 65 502 (exiv2 pads a little)
_CHUNK = 65_400  # bytes of the extended packet per segment (at most 65 458 fit beside its header)
_GUID = "0" * 32  # a GUID's length, to size the standard packet before the extended one is known


def split(xmp: dict[str, Any], packet: Callable[[dict[str, Any]], bytes]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``xmp`` as a standard and an extended part: the largest properties other than hostplug's own move to the
    extended part until the standard packet (``packet`` serialises one) fits a JPEG's segment with the note of its
    extended part. ValueError when hostplug's own properties alone do not fit."""
    standard = dict(xmp)
    extended: dict[str, Any] = {}
    movable = sorted((key for key in xmp if not key.startswith("Xmp.hostplug.")), key=lambda k: -_size(xmp[k]))
    while len(packet({**standard, NOTE_KEY: _GUID})) > STANDARD_LIMIT:
        if not movable:
            raise ValueError("hostplug's own record does not fit a JPEG's XMP segment")
        key = movable.pop(0)
        extended[key] = standard.pop(key)
    return standard, extended


def _size(value: Any) -> int:
    """About how many bytes a property's value takes serialised."""
    return sum(len(str(item)) + 30 for item in value) if isinstance(value, list) else len(str(value))


def extended_packet(serialised: bytes) -> tuple[bytes, str]:
    """The extended packet out of a whole serialised packet (its ``x:xmpmeta`` element, without the ``xpacket``
    wrapper and padding, as the specification asks) and its GUID."""
    start, end = serialised.find(b"<x:xmpmeta"), serialised.rfind(b"</x:xmpmeta>")
    if start < 0 or end < 0:
        raise ValueError("the extended XMP was not serialised as an x:xmpmeta element")
    body = serialised[start:end + len(b"</x:xmpmeta>")]
    return body, hashlib.md5(body).hexdigest().upper()  # noqa: S324 - the GUID the specification defines


def insert(path: Path, body: bytes, guid: str) -> None:
    """Write ``body`` (the extended packet, ``guid`` its GUID) into the JPEG at ``path`` as APP1 segments right
    after its standard XMP segment, which must be there."""
    data = path.read_bytes()
    after = _end_of_standard_segment(data)
    segments = []
    for offset in range(0, len(body), _CHUNK):
        payload = EXTENDED_HEADER + guid.encode("ascii") + struct.pack(">II", len(body), offset) \
            + body[offset:offset + _CHUNK]
        segments.append(b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload)
    path.write_bytes(data[:after] + b"".join(segments) + data[after:])


def _end_of_standard_segment(data: bytes) -> int:
    """The offset just after the JPEG's standard XMP APP1 segment; ValueError when it has none before its image
    data."""
    at = 2  # after SOI
    while at + 4 <= len(data) and data[at] == 0xFF:
        marker = data[at + 1]
        if marker == 0xDA:  # start of scan: no more header segments
            break
        length = struct.unpack(">H", data[at + 2:at + 4])[0]
        if marker == 0xE1 and data[at + 4:at + 4 + len(STANDARD_HEADER)] == STANDARD_HEADER:
            return at + 2 + length
        at += 2 + length
    raise ValueError("the JPEG holds no standard XMP segment to follow")

