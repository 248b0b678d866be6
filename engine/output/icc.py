"""ICC profiles for the output spaces, written by hand.

Every output space is a matrix/TRC display space, which an ICC v4.3 profile describes with a few small tags:
the D50-adapted primaries (rXYZ, gXYZ, bXYZ), one tone curve per channel (rTRC, gTRC, bTRC), the white point,
the adaptation matrix (chad), a description and a copyright. No installed library writes such profiles for
arbitrary primaries, so :func:`icc_profile` assembles the bytes itself, following ICC.1:2022 (v4.4).
"""

from __future__ import annotations

import functools
import hashlib
import struct

import numpy as np

from engine.colour import D50_XY, RGBSpace, bradford_adaptation

# The PCS illuminant as the ICC specification writes it (the header and the v4 display wtpt carry it).
ICC_D50_XYZ = (0.9642, 1.0, 0.8249)

_VERSION = 0x04300000  # 4.3: widely read, and 'para' curves and 'mluc' text are native
_CREATOR = b"hstp"
_DATE = (2024, 1, 1, 0, 0, 0)  # fixed, so a space always gives the same bytes
_COPYRIGHT = "No copyright, use freely"

# Parametric curves (function type 3: Y = (aX + b)^g for X >= d, Y = cX below), as (g, a, b, c, d).
_PARA_SRGB = (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)
_PARA_PROPHOTO = (1.8, 1.0, 0.0, 1 / 16, 1 / 32)


def _s15f16(values: tuple[float, ...] | np.ndarray) -> bytes:
    """Numbers as big-endian s15Fixed16 (signed, 16 fractional bits)."""
    return b"".join(struct.pack(">i", round(float(v) * 65536)) for v in np.ravel(values))


def _xyz_tag(xyz: tuple[float, ...] | np.ndarray) -> bytes:
    """An XYZType tag holding one XYZ triple."""
    return b"XYZ \0\0\0\0" + _s15f16(xyz)


def _mluc_tag(text: str) -> bytes:
    """A multiLocalizedUnicodeType tag with one en-US record."""
    utf16 = text.encode("utf-16-be")
    return b"mluc\0\0\0\0" + struct.pack(">II2s2sII", 1, 12, b"en", b"US", len(utf16), 28) + utf16


def _trc_tag(transfer: str) -> bytes:
    """The tone curve (encoded value to linear light) of a transfer function name from engine.colour."""
    if transfer == "srgb":
        return b"para\0\0\0\0" + struct.pack(">HH", 3, 0) + _s15f16(_PARA_SRGB)
    if transfer == "prophoto":
        return b"para\0\0\0\0" + struct.pack(">HH", 3, 0) + _s15f16(_PARA_PROPHOTO)
    if transfer == "gamma2.2":
        return b"curv\0\0\0\0" + struct.pack(">IH", 1, 563)  # u8Fixed8 563/256, Adobe RGB's exact gamma
    if transfer == "linear":
        return b"curv\0\0\0\0" + struct.pack(">I", 0)  # no entries: the identity
    raise ValueError(f"unknown transfer function {transfer!r}")


def _pad4(data: bytes) -> bytes:
    """Data padded with zeros to a multiple of four bytes (tag data must start 4-aligned)."""
    return data + b"\0" * (-len(data) % 4)


def _assemble(tags: list[tuple[bytes, bytes]]) -> bytes:
    """Header, tag table and tag data of a v4 display profile; identical tag data is stored once."""
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
    header += b"\0" * (128 - len(header))
    profile = bytearray(header + table + body)
    # Profile ID: MD5 of the whole profile with flags, rendering intent and the ID itself set to zero.
    digest = hashlib.md5(bytes(profile), usedforsecurity=False).digest()
    profile[84:100] = digest
    return bytes(profile)


@functools.cache
def icc_profile(space: RGBSpace) -> bytes:
    """The ICC v4 display profile of an RGB space (matrix/TRC, D50 PCS, Bradford adaptation)."""
    matrix = space.rgb_to_xyz_d50
    chad = bradford_adaptation(np.array(space.white_xy), D50_XY)
    trc = _trc_tag(space.transfer)
    return _assemble(
        [
            (b"desc", _mluc_tag(space.name)),
            (b"cprt", _mluc_tag(_COPYRIGHT)),
            (b"wtpt", _xyz_tag(ICC_D50_XYZ)),
            (b"chad", b"sf32\0\0\0\0" + _s15f16(chad)),
            (b"rXYZ", _xyz_tag(matrix[:, 0])),
            (b"gXYZ", _xyz_tag(matrix[:, 1])),
            (b"bXYZ", _xyz_tag(matrix[:, 2])),
            (b"rTRC", trc),
            (b"gTRC", trc),
            (b"bTRC", trc),
        ]
    )
