"""A small corpus of hostile inputs, made in code: tag mutations of the bundled sample DNG and tiny image bombs.

Nothing large is written to the repository; every case is a few lines here and at most a few MB in a test's
temporary folder. :func:`dng_with` rewrites IFD0 or the raw SubIFD of a DNG with tags changed, added or
removed: the new IFD goes to the end of the file (with any values that do not fit in its entries) and the
pointer to it is patched, so every other offset in the file stays valid.
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

import engine

SAMPLE_DNG = Path(engine.__file__).parent / "samples" / "hostplug_colorchecker.dng"

# TIFF type code -> (struct format of one value, bytes of one value)
_TYPES = {1: ("B", 1), 2: ("c", 1), 3: ("H", 2), 4: ("I", 4), 5: ("II", 8), 6: ("b", 1), 7: ("B", 1),
          8: ("h", 2), 9: ("i", 4), 10: ("ii", 8), 11: ("f", 4), 12: ("d", 8), 13: ("I", 4)}

Tag = tuple[int, int, bytes]  # (type, count, value bytes)


def doubles(*values: float) -> Tag:
    return 12, len(values), struct.pack(f"<{len(values)}d", *values)


def shorts(*values: int) -> Tag:
    return 3, len(values), struct.pack(f"<{len(values)}H", *values)


def longs(*values: int) -> Tag:
    return 4, len(values), struct.pack(f"<{len(values)}I", *values)


def srationals(*values: float) -> Tag:
    """Signed rationals with denominator 10000 (what camera DNGs write for matrices)."""
    packed = b"".join(struct.pack("<ii", round(v * 10000), 10000) for v in values)
    return 10, len(values), packed


def undefined(data: bytes) -> Tag:
    return 7, len(data), data


def _read_ifd(b: bytes, offset: int) -> dict[int, tuple[int, int, bytes]]:
    """Entries of the (little-endian) IFD at ``offset``: code -> (type, count, the entry's 4-byte field)."""
    (n,) = struct.unpack_from("<H", b, offset)
    entries = {}
    for i in range(n):
        code, typ, count = struct.unpack_from("<HHI", b, offset + 2 + 12 * i)
        entries[code] = (typ, count, bytes(b[offset + 2 + 12 * i + 8 : offset + 2 + 12 * i + 12]))
    return entries


def _append_ifd(out: bytearray, entries: dict[int, tuple[int, int, bytes]], changes: dict[int, Tag | None]) -> int:
    """Write ``entries`` with ``changes`` applied at the end of ``out``; returns the new IFD's offset."""
    fields: dict[int, tuple[int, int, bytes]] = dict(entries)
    for code, tag in changes.items():
        if tag is None:
            fields.pop(code, None)
            continue
        typ, count, data = tag
        if len(data) <= 4:
            fields[code] = (typ, count, data.ljust(4, b"\0"))
        else:
            if len(out) % 2:
                out += b"\0"
            fields[code] = (typ, count, struct.pack("<I", len(out)))
            out += data
    if len(out) % 2:
        out += b"\0"
    offset = len(out)
    out += struct.pack("<H", len(fields))
    for code in sorted(fields):
        typ, count, field = fields[code]
        out += struct.pack("<HHI", code, typ, count) + field
    out += struct.pack("<I", 0)
    return offset


def dng_with(ifd0: dict[int, Tag | None] | None = None, raw: dict[int, Tag | None] | None = None,
             base: bytes | None = None) -> bytes:
    """The sample DNG (or ``base``, little-endian) with tags of IFD0 and of the raw SubIFD changed."""
    b = bytearray(SAMPLE_DNG.read_bytes() if base is None else base)
    assert b[:2] == b"II"
    (ifd0_offset,) = struct.unpack_from("<I", b, 4)
    entries = _read_ifd(b, ifd0_offset)
    changes = dict(ifd0 or {})
    if raw:  # the raw image is the first SubIFD (a camera's DNG has one; Adobe's converter adds previews)
        typ, count, field = entries[330]
        (pointer,) = struct.unpack_from("<I", field)
        offsets = struct.unpack_from(f"<{count}I", b, pointer) if count > 1 else (pointer,)
        new_sub = _append_ifd(b, _read_ifd(b, offsets[0]), raw)
        changes[330] = (typ if count > 1 else 13, count, struct.pack(f"<{count}I", new_sub, *offsets[1:]))
    struct.pack_into("<I", b, 4, _append_ifd(b, entries, changes))
    return bytes(b)


def opcode_list(*opcodes: tuple[int, bytes], count: int | None = None) -> bytes:
    """An OpcodeList (big-endian, DNG 1.3 chapter 7) of (opcode id, parameters); ``count`` overrides the count."""
    body = b"".join(struct.pack(">IIII", op, 0x01030000, 0, len(params)) + params for op, params in opcodes)
    return struct.pack(">I", len(opcodes) if count is None else count) + body


def map_polynomial(*coefficients: float, plane: int = 0, planes: int = 1,
                   degree: int | None = None) -> tuple[int, bytes]:
    """A MapPolynomial opcode (id 8) over the whole image."""
    degree = len(coefficients) - 1 if degree is None else degree
    params = struct.pack(">9I", 0, 0, 0x7FFFFFFF, 0x7FFFFFFF, plane, planes, 1, 1, degree)
    return 8, params + struct.pack(f">{len(coefficients)}d", *coefficients)


# The DNG's own tags, in the order the sweep goes through them: (IFD "ifd0" or "raw", code, name, count).
NUMERIC_TAGS = [
    ("ifd0", 50721, "ColorMatrix1", 9), ("ifd0", 50722, "ColorMatrix2", 9), ("ifd0", 50964, "ForwardMatrix1", 9),
    ("ifd0", 50965, "ForwardMatrix2", 9), ("ifd0", 50723, "CameraCalibration1", 9),
    ("ifd0", 50724, "CameraCalibration2", 9), ("ifd0", 50727, "AnalogBalance", 3),
    ("ifd0", 50728, "AsShotNeutral", 3), ("ifd0", 50729, "AsShotWhiteXY", 2), ("ifd0", 50730, "BaselineExposure", 1),
    ("ifd0", 50778, "CalibrationIlluminant1", 1), ("ifd0", 50779, "CalibrationIlluminant2", 1),
    ("ifd0", 51041, "NoiseProfile", 2), ("ifd0", 274, "Orientation", 1),
    ("raw", 50714, "BlackLevel", 1), ("raw", 50717, "WhiteLevel", 1), ("raw", 256, "ImageWidth", 1),
    ("raw", 257, "ImageLength", 1), ("raw", 258, "BitsPerSample", 1), ("raw", 277, "SamplesPerPixel", 1),
    ("raw", 273, "StripOffsets", 1), ("raw", 279, "StripByteCounts", 1), ("raw", 278, "RowsPerStrip", 1),
    ("raw", 259, "Compression", 1), ("raw", 262, "PhotometricInterpretation", 1),
    ("raw", 33421, "CFARepeatPatternDim", 2), ("raw", 50712, "LinearizationTable", 4), ("raw", 50829, "ActiveArea", 4),
]
HOSTILE_VALUES = [math.nan, math.inf, 0.0, -1.0, 1e308]

# What the sample's tags hold where it has none: forward and calibration matrices, analog balance, white xy.
_DEFAULTS = {"ForwardMatrix": [0.6, 0.3, 0.1, 0.25, 0.7, 0.05, 0.05, 0.1, 0.7],
             "CameraCalibration": [1, 0, 0, 0, 1, 0, 0, 0, 1], "AnalogBalance": [1.0, 1.0, 1.0],
             "AsShotWhiteXY": [0.3457, 0.3585]}


def small_sample() -> bytes:
    """The sample DNG cut to its first 96 rows (900 x 96): it renders several times faster."""
    return dng_with(raw={257: longs(96), 278: longs(96), 279: longs(900 * 96 * 2)})


def swept_dng(ifd: str, code: int, name: str, count: int, value: float, spread: bool = False,
              base: bytes | None = None) -> bytes:
    """The sample (or ``base``, made from it) with tag ``code`` written as DOUBLEs: ``value`` in its first
    element (every element if ``spread``), the rest from the sample or a sane default."""
    import tifffile

    with tifffile.TiffFile(SAMPLE_DNG) as tif:
        page = tif.pages[0].aspage() if ifd == "ifd0" else tif.pages[0].pages[0].aspage()
        if code in page.tags:
            current = [float(v) for v in _as_floats(page.tags[code].value, page.tags[code].dtype)]
        else:
            current = [float(v) for v in next((d for k, d in _DEFAULTS.items() if name.startswith(k)), [1.0] * count)]
    current = (current + [1.0] * count)[:count]
    values = [value] * count if spread else [value] + current[1:]
    change = {code: doubles(*values)}
    return dng_with(ifd0=change, base=base) if ifd == "ifd0" else dng_with(raw=change, base=base)


def _as_floats(value: object, dtype: int) -> list[float]:
    if isinstance(value, bytes):
        return list(value)
    flat = list(value) if isinstance(value, (tuple, list)) else [value]
    if dtype in (5, 10):
        return [n / (d or 1) for n, d in zip(flat[0::2], flat[1::2], strict=True)]
    return [float(v) for v in flat]


def png_bomb(width: int, height: int) -> bytes:
    """A valid grey PNG of ``width`` x ``height`` zeros: a few hundred kB that decode to width * height bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(9)
    row = b"\0" * (width + 1)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def jpeg_bomb(width: int, height: int) -> bytes:
    """A tiny JPEG (about 600 bytes) whose frame header claims ``width`` x ``height``: the data ends at once."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (90, 120, 200)).save(buffer, "JPEG", quality=50)
    data = bytearray(buffer.getvalue())
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)
