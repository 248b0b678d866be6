"""Fuzz the XMP sidecar and recipe reader: ``read_sidecar`` on a mutated ``IMG.dng.xmp`` packet.

``read_sidecar`` parses the packet (``parse_packet``), reads our recipe properties (``properties_to_recipe``,
which goes through ``properties_to_settings``), Adobe's hints, rating, labels and keywords.
"""

from __future__ import annotations

import contextlib
import sys

from _common import Scratch, main

from engine.errors import HostplugError
from engine.xmp.sidecar import read_sidecar

_scratch = Scratch()
_RAW = _scratch.write("IMG.dng", b"")

_HEAD = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
         b'<rdf:Description rdf:about="" ')
_TAIL = b"</rdf:RDF></x:xmpmeta>"


def _packet(attributes: bytes, body: bytes = b"") -> bytes:
    return _HEAD + attributes + b">" + body + b"</rdf:Description>" + _TAIL


def seeds() -> list[bytes]:
    from engine.recipe import Recipe
    from engine.xmp.sidecar import write_recipe

    ours = write_recipe(_RAW, Recipe()).read_bytes()
    adobe = _packet(b'xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/" '
                    b'xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
                    b'crs:Temperature="5500" crs:Tint="+10" crs:Exposure2012="+0.50" crs:Contrast2012="+20" '
                    b'crs:WhiteBalance="Custom" xmp:Rating="4" xmp:Label="Red"',
                    b'<dc:subject xmlns:dc="http://purl.org/dc/elements/1.1/"><rdf:Bag><rdf:li>sky</rdf:li>'
                    b'<rdf:li>sea</rdf:li></rdf:Bag></dc:subject>')
    return [ours, adobe, _packet(b""), b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>' + _packet(b"")
            + b'<?xpacket end="w"?>']


def one_input(data: bytes) -> None:
    _scratch.write("IMG.dng.xmp", data)
    with contextlib.suppress(HostplugError):  # an expected, one-line refusal
        read_sidecar(_RAW)


if __name__ == "__main__":
    main(one_input, seeds)
    sys.exit(0)
