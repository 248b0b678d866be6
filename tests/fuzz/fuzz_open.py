"""Fuzz ``engine.open`` on raws and RGB images: mutated bytes written to a temporary file whose suffix matches
what the bytes look like (so both the raw path, LibRaw and our DNG checks, and the Pillow path are reached).

Only the open is fuzzed (header, tags, limits, the decode LibRaw or Pillow does on open), not a whole render.
"""

from __future__ import annotations

import io
import sys

from _common import Scratch, main, raw_seeds

import engine
from engine.errors import HostplugError

_scratch = Scratch()

_RAW_SUFFIXES = (".dng", ".arw", ".nef", ".cr2", ".gpr")


def _images() -> list[bytes]:
    import numpy as np
    from PIL import Image

    pixels = (np.arange(24 * 16 * 3, dtype=np.uint32).reshape(16, 24, 3) * 7 % 256).astype(np.uint8)
    image = Image.fromarray(pixels)
    out = []
    for fmt, options in (("PNG", {}), ("JPEG", {"quality": 80}), ("TIFF", {}), ("WEBP", {"quality": 60})):
        buffer = io.BytesIO()
        try:
            image.save(buffer, fmt, **options)
        except (KeyError, OSError):  # a Pillow without WebP
            continue
        out.append(buffer.getvalue())
    return out


def seeds() -> list[bytes]:
    # raws in full would make every input megabytes long; the small Nikon DNG and the bundled sample stay whole
    return raw_seeds() + _images()


def _suffix(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return ".png"
    if data.startswith(b"\xff\xd8"):
        return ".jpg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        # a TIFF: the same bytes once as a raw and once as a plain TIFF, chosen by the last byte
        return _RAW_SUFFIXES[data[-1] % len(_RAW_SUFFIXES)] if data[-1] % 2 else ".tif"
    return _RAW_SUFFIXES[len(data) % len(_RAW_SUFFIXES)] if data else ".dng"


def one_input(data: bytes) -> None:
    path = _scratch.write("input" + _suffix(data), data)
    try:
        source = engine.open(path)
    except HostplugError:
        return
    finally:
        path.unlink(missing_ok=True)
    close = getattr(source, "close", None)
    if callable(close):
        close()


if __name__ == "__main__":
    main(one_input, seeds)
    sys.exit(0)
