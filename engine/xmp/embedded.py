"""A file's own XMP packet: where Lightroom and Camera Raw keep a DNG's develop settings, rotation, rating and
keywords instead of writing a sidecar (TIFF tag 700, XMLPacket, in IFD0), and where they (and Photo Mechanic,
Bridge...) keep a JPEG's, a PNG's or a TIFF's keywords, rating and credits (a tester's keyworded JPEG was
rendered without them).

The packet is found and read with tifffile, which the DNG reader loads anyway, and never parsed here: a DNG
without a packet costs one look at its first directory and loads no XMP parser. hostplug only reads it; edits go
to the sidecar (:mod:`engine.xmp.sidecar`), whose word comes first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.errors import InputNotFoundError, SidecarError

XMP_TAG = 700  # XMLPacket
MAX_EMBEDDED_BYTES = 16 << 20  # engine.xmp.document.MAX_PACKET_BYTES, which loads lxml to say it


def embedded_name(raw: Path) -> str:
    """How error lines and orientation origins name the packet: ``/photos/IMG_0001.dng's embedded XMP``."""
    return f"{raw}'s embedded XMP"


def embedded_packet(raw: Path) -> bytes | None:
    """The XMP packet of the DNG or TIFF ``raw`` (in IFD0) or of the JPEG or PNG ``raw``, or None for another file
    (by its suffix), one without a packet or one that cannot be read as its kind (its render says what is wrong
    with it). :class:`SidecarError` for a packet that is there but cannot be read."""
    suffix = raw.suffix.lower()
    if suffix in (".jpg", ".jpeg", ".png"):
        return _image_packet(raw)
    if suffix not in (".dng", ".tif", ".tiff"):
        return None
    value = _tag_value(raw)
    if value is None:
        return None
    if not isinstance(value, (bytes, str)):  # tag 700 of another type (SHORT, ...): no packet's bytes
        raise SidecarError(f"{embedded_name(raw)}: not an XMP packet (the DNG's tag 700 holds "
                           f"{type(value).__name__} values, not text)")
    data = value.encode("utf-8", "replace") if isinstance(value, str) else value
    data = data.rstrip(b"\0")  # some writers pad the tag
    return data if data.strip() else None


def _tag_value(raw: Path) -> Any:
    """The value of tag 700 in IFD0; None when there is no such tag, or ``raw`` is no regular file (a FIFO would
    keep tifffile waiting) or no TIFF tifffile reads."""
    import tifffile

    from engine.io.bounded import pinned
    from engine.io.limits import quiet_tifffile

    with quiet_tifffile():
        try:
            with pinned(raw, "input", InputNotFoundError) as file:
                tif = tifffile.TiffFile(file)  # reads the header and IFD0, no more
        except Exception:  # noqa: BLE001 - whatever the reason, there is no packet to read; the render says why
            return None
        with tif:
            try:
                tag = tif.pages.first.tags.get(XMP_TAG)
            except IndexError:  # a TIFF header without a directory
                return None
            if tag is None:
                return None
            if tag.valuebytecount > MAX_EMBEDDED_BYTES:  # refused before it is read: a share may be slow
                raise SidecarError(f"{embedded_name(raw)}: refused, {tag.valuebytecount} bytes is far too large "
                                   "for an XMP packet")
            try:
                return tag.value  # read only now: tifffile leaves a large value in the file until asked
            except Exception as e:  # noqa: BLE001 - a read error (tifffile already left out a tag past the end)
                raise SidecarError(f"{embedded_name(raw)}: cannot be read ({type(e).__name__}: {e})") from e


def _image_packet(image: Path) -> bytes | None:
    """The XMP packet of a JPEG (its APP1 segment; Extended XMP is not read) or PNG (its iTXt chunk), read by
    exiv2; None when it has none or exiv2 cannot read the file."""
    from engine.output.metadata import EXIV2, exiv2_image, register_namespace

    register_namespace()  # and exiv2's warnings off stdout ("Failed to decode XMP metadata" broke --json)
    try:  # (exiv2_image refuses a FIFO or a device, which exiv2 would wait on)
        with EXIV2, exiv2_image(image) as handle:
            text = handle.read_raw_xmp()
    except Exception:  # noqa: BLE001 - pyexiv2 raises RuntimeError or its own types: no packet to read
        return None
    data = text.encode("utf-8", "replace") if isinstance(text, str) else bytes(text or b"")
    if len(data) > MAX_EMBEDDED_BYTES:
        raise SidecarError(f"{embedded_name(image)}: refused, {len(data)} bytes is far too large for an XMP packet")
    return data if data.strip() else None
