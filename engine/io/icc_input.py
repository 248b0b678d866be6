"""16-bit images with an ICC profile, brought to sRGB at full precision.

Pillow's colour management (LittleCMS through ``ImageCms``) converts 8-bit images only. A 16-bit TIFF or PNG in
Display P3, Adobe RGB or ProPhoto RGB (hostplug's own outputs among them) carries a *matrix/TRC* profile: three
tone curves (``rTRC``, ``gTRC``, ``bTRC``: ``curv`` tables or gammas, or ``para`` functions) and three colorants
(``rXYZ``, ``gXYZ``, ``bXYZ``, adapted to the D50 connection space). That is read here (ICC.1:2022, 10.6, 10.18
and 10.31) and applied in float: curves to linear light, colorants to D50 XYZ, then to linear sRGB with the
same D50 adaptation the engine's outputs use, and the sRGB curve. A grey profile (``kTRC``) gives grey. A
profile built on lookup tables (``A2B0`` without colorants) is refused in one line rather than taken as sRGB.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from engine.colour import SRGB, srgb_decode, srgb_encode, xyz_d50_to_linear_srgb
from engine.errors import UnsupportedInputError


@dataclass(frozen=True)
class MatrixProfile:
    """A matrix/TRC profile: each channel's curve (encoded -> linear, on arrays in [0, 1]) and the matrix from
    linear RGB to D50 XYZ (None for a grey profile)."""

    curves: tuple[tuple[str, tuple[float, ...]], ...]  # per channel: ("curv", table) or ("para", (type, params))
    to_xyz_d50: np.ndarray | None


def read_profile(icc: bytes, where: str) -> MatrixProfile:
    """The matrix/TRC profile in ``icc``; :class:`UnsupportedInputError` naming ``where`` for one without it."""
    tags = _tag_table(icc, where)
    if all(name in tags for name in (b"rXYZ", b"gXYZ", b"bXYZ", b"rTRC", b"gTRC", b"bTRC")):
        columns = [_xyz(icc, tags[name], where) for name in (b"rXYZ", b"gXYZ", b"bXYZ")]
        curves = tuple(_curve(icc, tags[name], where) for name in (b"rTRC", b"gTRC", b"bTRC"))
        return MatrixProfile(curves, np.array(columns, dtype=np.float64).T)
    if b"kTRC" in tags:
        return MatrixProfile((_curve(icc, tags[b"kTRC"], where),), None)
    raise UnsupportedInputError(f"{where}: a 16-bit image whose ICC profile is built on lookup tables; hostplug "
                                "converts matrix/TRC profiles at 16 bits: convert the image to sRGB first")


def to_srgb(pixels: np.ndarray, icc: bytes, where: str) -> np.ndarray:
    """Encoded float32 pixels (H x W x 3, [0, 1]) in the profile's space as encoded sRGB (values outside sRGB's
    gamut are clipped, as Pillow's conversion of 8-bit images clips them)."""
    profile = read_profile(icc, where)
    if profile.to_xyz_d50 is None:  # grey: one curve, applied to every channel alike
        return srgb_encode(_linear(pixels, profile.curves[0]))
    if _is_srgb(profile):
        return pixels
    linear = np.empty_like(pixels, dtype=np.float32)
    for channel, curve in enumerate(profile.curves):
        linear[..., channel] = _linear(pixels[..., channel], curve)
    matrix = (xyz_d50_to_linear_srgb() @ profile.to_xyz_d50).astype(np.float32)
    return srgb_encode(linear @ matrix.T)


def _is_srgb(profile: MatrixProfile) -> bool:
    """Whether ``profile`` is sRGB's own (within 16-bit precision): nothing to convert."""
    ramp = np.linspace(0.0, 1.0, 257, dtype=np.float32)
    assert profile.to_xyz_d50 is not None
    return bool(np.allclose(profile.to_xyz_d50, SRGB.rgb_to_xyz_d50, atol=2e-3)
                and all(np.abs(_linear(ramp, curve) - srgb_decode(ramp)).max() < 2e-4 for curve in profile.curves))


def _tag_table(icc: bytes, where: str) -> dict[bytes, tuple[int, int]]:
    try:
        (count,) = struct.unpack_from(">I", icc, 128)
        if count > 1000:
            raise ValueError("too many tags")
        entries = (struct.unpack_from(">4sII", icc, 132 + 12 * i) for i in range(count))
        tags = {signature: (offset, size) for signature, offset, size in entries}
    except (struct.error, ValueError) as e:
        raise UnsupportedInputError(f"{where}: its ICC profile is damaged ({e}); convert the image to sRGB") from e
    for offset, size in tags.values():
        if offset + size > len(icc):
            raise UnsupportedInputError(f"{where}: its ICC profile is damaged (a tag lies outside it)")
    return tags


def _xyz(icc: bytes, tag: tuple[int, int], where: str) -> tuple[float, float, float]:
    offset, _size = tag
    if icc[offset:offset + 4] != b"XYZ ":
        raise UnsupportedInputError(f"{where}: its ICC profile's colorant is not an XYZ value")
    x, y, z = (v / 65536.0 for v in struct.unpack_from(">3i", icc, offset + 8))
    return x, y, z


def _curve(icc: bytes, tag: tuple[int, int], where: str) -> tuple[str, tuple[float, ...]]:
    offset, size = tag
    kind = icc[offset:offset + 4]
    try:
        if kind == b"curv":
            (count,) = struct.unpack_from(">I", icc, offset + 8)
            if 12 + 2 * count > size:
                raise struct.error("table longer than its tag")
            table = struct.unpack_from(f">{count}H", icc, offset + 12)
            if count == 0:
                return "para", (0.0, 1.0)  # the identity: gamma 1
            if count == 1:
                return "para", (0.0, table[0] / 256.0)  # u8Fixed8 gamma
            return "curv", tuple(v / 65535.0 for v in table)
        if kind == b"para":
            (function,) = struct.unpack_from(">H", icc, offset + 8)
            count = {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}[function]
            params = tuple(v / 65536.0 for v in struct.unpack_from(f">{count}i", icc, offset + 12))
            return "para", (float(function), *params)
    except (struct.error, KeyError) as e:
        raise UnsupportedInputError(f"{where}: its ICC profile's tone curve is damaged") from e
    raise UnsupportedInputError(f"{where}: its ICC profile's tone curve is of a kind hostplug does not read")


def _linear(encoded: np.ndarray, curve: tuple[str, tuple[float, ...]]) -> np.ndarray:
    """The curve (ICC.1 10.18 'para', 10.6 'curv') applied to ``encoded`` values in [0, 1]."""
    kind, values = curve
    x = np.clip(encoded, 0.0, 1.0).astype(np.float32)
    if kind == "curv":
        table = np.asarray(values, dtype=np.float32)
        return np.interp(x, np.linspace(0.0, 1.0, table.size, dtype=np.float32), table).astype(np.float32)
    function, g, *rest = values
    a, b, c, d, e, f = (*rest, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)[:6] if function else (1.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    if function == 0:
        return np.power(x, g).astype(np.float32)
    if function in (1, 2):  # (aX + b)^g (+ c) from X = -b/a, else 0 (+ c)
        offset = c if function == 2 else 0.0
        base = a * x + b
        return (np.where(base > 0, np.power(np.maximum(base, 0.0), g), 0.0) + offset).astype(np.float32)
    if function == 3:  # (aX + b)^g from X = d, else cX
        return np.where(x >= d, np.power(np.maximum(a * x + b, 0.0), g), c * x).astype(np.float32)
    return np.where(x >= d, np.power(np.maximum(a * x + b, 0.0), g) + e, c * x + f).astype(np.float32)
