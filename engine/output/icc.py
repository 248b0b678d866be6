"""ICC profiles for the output spaces, written by hand.

Every output space is a matrix/TRC display space, which an ICC profile describes with a few small tags: the
D50-adapted primaries (rXYZ, gXYZ, bXYZ), one tone curve per channel (rTRC, gTRC, bTRC), the white point, a
description and a copyright. No installed library writes such profiles for arbitrary
primaries, so :func:`icc_profile` assembles the bytes itself.

The profiles are **version 2.1** (ICC.1:2001-04), as Lightroom, Capture One and Photoshop embed theirs: every
colour-managed reader takes them, while some (Firefox by default, older Windows viewers) pass over a version 4
profile and show a wide-gamut image as if it were sRGB (a tester's). Version 2 has no parametric curves, so the
sRGB and ProPhoto tone curves are tables of :data:`_CURVE_POINTS` values, which a reader interpolates to within
1e-5 of the formula; the white point is the space's own (D65 for sRGB), the primaries Bradford-adapted to D50,
as the version 2 sRGB profile that Lightroom embeds has them (version 4's chad tag is left out).
"""

from __future__ import annotations

import functools
import struct

import numpy as np

from engine.colour import RGBSpace

# The PCS illuminant as the ICC specification writes it (the header and the display wtpt carry it).
ICC_D50_XYZ = (0.9642, 1.0, 0.8249)

_VERSION = 0x02100000  # 2.1: read by every colour-managed program (see the module docstring)
_CREATOR = b"hstp"
_DATE = (2024, 1, 1, 0, 0, 0)  # fixed, so a space always gives the same bytes
_COPYRIGHT = "No copyright, use freely"
_CURVE_POINTS = 4096  # entries of a tabulated tone curve


def _s15f16(values: tuple[float, ...] | np.ndarray) -> bytes:
    """Numbers as big-endian s15Fixed16 (signed, 16 fractional bits)."""
    return b"".join(struct.pack(">i", round(float(v) * 65536)) for v in np.ravel(values))


def _xyz_tag(xyz: tuple[float, ...] | np.ndarray) -> bytes:
    """An XYZType tag holding one XYZ triple."""
    return b"XYZ \0\0\0\0" + _s15f16(xyz)


def _text_tag(text: str) -> bytes:
    """A version 2 textType tag (the copyright)."""
    return b"text\0\0\0\0" + text.encode("ascii") + b"\0"


def _description_tag(text: str) -> bytes:
    """A version 2 textDescriptionType tag: the ASCII text, no Unicode or ScriptCode text (their counts 0, the
    ScriptCode's 67 bytes left blank)."""
    ascii_text = text.encode("ascii") + b"\0"
    return (b"desc\0\0\0\0" + struct.pack(">I", len(ascii_text)) + ascii_text + struct.pack(">II", 0, 0)
            + struct.pack(">HB", 0, 0) + b"\0" * 67)


def _trc_tag(transfer: str) -> bytes:
    """The tone curve (encoded value to linear light) of a transfer function name from engine.colour, as a
    version 2 curveType: a gamma for Adobe RGB, the identity for linear, a table for the curves with a linear
    toe (sRGB, ProPhoto)."""
    if transfer == "gamma2.2":
        return b"curv\0\0\0\0" + struct.pack(">IH", 1, 563)  # u8Fixed8 563/256, Adobe RGB's exact gamma
    if transfer == "linear":
        return b"curv\0\0\0\0" + struct.pack(">I", 0)  # no entries: the identity
    if transfer not in ("srgb", "prophoto"):
        raise ValueError(f"unknown transfer function {transfer!r}")
    table = np.round(_decoded(np.linspace(0.0, 1.0, _CURVE_POINTS), transfer) * 65535)
    return b"curv\0\0\0\0" + struct.pack(">I", _CURVE_POINTS) + table.astype(">u2").tobytes()


def _decoded(v: np.ndarray, transfer: str) -> np.ndarray:
    """Encoded values to linear light (float64): the inverse of engine.colour.encode for the curves with a toe."""
    if transfer == "srgb":  # (engine.colour.srgb_decode's formula, in float64: its float32 moves 16-bit entries)
        return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    return np.where(v < 1 / 32, v / 16, v**1.8)  # ProPhoto (ROMM RGB): 16 x below 1/512 linear


def _pad4(data: bytes) -> bytes:
    """Data padded with zeros to a multiple of four bytes (tag data must start 4-aligned)."""
    return data + b"\0" * (-len(data) % 4)


def _assemble(tags: list[tuple[bytes, bytes]]) -> bytes:
    """Header, tag table and tag data of a version 2 display profile; identical tag data is stored once."""
    table_size = 4 + 12 * len(tags)
    offset = 128 + table_size
    table = struct.pack(">I", len(tags))
    body = b""
    placed: dict[bytes, int] = {}
    for signature, data in tags:
        if data not in placed:
            placed[data] = offset + len(body)
            body += _pad4(data)
        table += struct.pack(">4sII", signature, placed[data], len(data))
    size = 128 + table_size + len(body)
    header = (
        struct.pack(">I4sI", size, b"\0\0\0\0", _VERSION)
        + b"mntrRGB XYZ "
        + struct.pack(">6H", *_DATE)
        + b"acsp"
        + b"\0" * 4  # primary platform: none
        + struct.pack(">I", 0)  # flags: not embedded-only, may be used independently
        + b"\0" * 8  # device manufacturer and model
        + b"\0" * 8  # device attributes: reflective, glossy, positive, colour
        + struct.pack(">I", 0)  # rendering intent: perceptual
        + _s15f16(ICC_D50_XYZ)
        + _CREATOR
    )
    header += b"\0" * (128 - len(header))  # (version 2 has no profile ID: its bytes stay reserved, 0)
    return header + table + body


@functools.cache
def icc_profile(space: RGBSpace) -> bytes:
    """The ICC version 2 display profile of an RGB space (matrix/TRC, D50 PCS, primaries Bradford-adapted)."""
    matrix = space.rgb_to_xyz_d50
    x, y = space.white_xy
    trc = _trc_tag(space.transfer)
    return _assemble(
        [
            (b"desc", _description_tag(space.name)),
            (b"cprt", _text_tag(_COPYRIGHT)),
            (b"wtpt", _xyz_tag((x / y, 1.0, (1 - x - y) / y))),  # the display's own white, as version 2 states it
            (b"rXYZ", _xyz_tag(matrix[:, 0])),
            (b"gXYZ", _xyz_tag(matrix[:, 1])),
            (b"bXYZ", _xyz_tag(matrix[:, 2])),
            (b"rTRC", trc),
            (b"gTRC", trc),
            (b"bTRC", trc),
        ]
    )
