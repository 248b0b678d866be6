"""Limits on what an input may ask of the engine, checked from its header before anything is decoded.

``MAX_PIXELS`` (default 200 megapixels, the environment variable ``HOSTPLUG_MAX_PIXELS`` changes it) bounds
the pixel count of raws and images: a 600-byte file whose header claims 13000 x 13000 pixels would otherwise
allocate gigabytes. ``DECODE_SECONDS`` (default 60, ``HOSTPLUG_DECODE_SECONDS``) bounds how long LibRaw may
take to decode one raw; it is a last resort behind the header checks of :mod:`engine.io.dng`.

A pixel limit alone does not stop a small file that claims a large image (a 632-byte JPEG claiming 13000 x
13000 pixels decodes to gigabytes of grey), so an image of more than ``DENSITY_CHECK_PIXELS`` (50 MP) must
also hold at least one byte per ``MAX_PIXELS_PER_BYTE`` (256) pixels: photographs hold far more (a JPEG about
one byte per 2 to 20 pixels), and only flat fills compress further.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
from collections.abc import Iterator

from engine.errors import OptionError, UnsupportedInputError, shown

MAX_PIXELS = 200_000_000
DECODE_SECONDS = 60.0
DENSITY_CHECK_PIXELS = 50_000_000
MAX_PIXELS_PER_BYTE = 256


def max_pixels() -> int:
    """The pixel limit in force: ``HOSTPLUG_MAX_PIXELS`` when set, else ``MAX_PIXELS``; OptionError (exit 2) when
    it is set to anything but a positive whole number (a studio's typo must not leave its safety limit at the
    default without a word)."""
    value = os.environ.get("HOSTPLUG_MAX_PIXELS", "").strip()
    if not value:
        return MAX_PIXELS
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if limit <= 0:
        raise OptionError(f"HOSTPLUG_MAX_PIXELS={shown(value)} is not a positive whole number of pixels; unset it "
                          f"for the default ({MAX_PIXELS})")
    return limit


def decode_seconds() -> float:
    """The decoding time limit: ``HOSTPLUG_DECODE_SECONDS`` when set, else ``DECODE_SECONDS``; OptionError (exit 2)
    when it is set to anything but a positive number of seconds."""
    value = os.environ.get("HOSTPLUG_DECODE_SECONDS", "").strip()
    if not value:
        return DECODE_SECONDS
    try:
        limit = float(value)
    except ValueError:
        limit = 0.0
    if not (math.isfinite(limit) and limit > 0):
        raise OptionError(f"HOSTPLUG_DECODE_SECONDS={shown(value)} is not a positive number of seconds; unset it "
                          f"for the default ({DECODE_SECONDS:g})")
    return limit


def check_pixels(path: object, width: int, height: int, what: str = "image") -> None:
    """Refuse, in one line, an image whose header claims more pixels than the limit allows."""
    limit = max_pixels()
    if width * height > limit:
        raise UnsupportedInputError(
            f"{path}: the {what} claims {width} x {height} pixels ({_megapixels(width * height)} MP), more than the "
            f"{limit / 1e6:g} MP hostplug decodes (set HOSTPLUG_MAX_PIXELS to raise the limit)")


def _megapixels(pixels: int) -> str:
    """Megapixels as a message gives them: 0.54, 61.4, 4295 (three figures, never "4.29e+03")."""
    megapixels = pixels / 1e6
    return f"{megapixels:.3g}" if megapixels < 100 else f"{megapixels:.0f}"


def check_density(path: object, width: int, height: int, file_size: int) -> None:
    """Refuse, in one line, a large image whose file is far too small to hold it (a decompression bomb)."""
    pixels = width * height
    if pixels > DENSITY_CHECK_PIXELS and pixels > MAX_PIXELS_PER_BYTE * max(file_size, 1):
        raise UnsupportedInputError(
            f"{path}: the image claims {width} x {height} pixels ({_megapixels(pixels)} MP) in a file of {file_size} "
            f"bytes, more than {MAX_PIXELS_PER_BYTE} pixels a byte: a decompression bomb or a damaged header")


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Keep what C libraries print themselves on the process's stderr (libpng's "IDAT: CRC error" through
    OpenCV, LibRaw's "Unexpected end of file") off the terminal: the engine reports the failure as one
    exception, and the command line prints one line for it."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no usable fd 2: nothing to silence
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class _Drop(logging.Filter):
    """Drops every record, keeping the first message (to explain a failure, when there is one)."""

    def __init__(self) -> None:
        super().__init__()
        self.first: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if self.first is None:
            with contextlib.suppress(Exception):
                self.first = record.getMessage()
        return False


@contextlib.contextmanager
def quiet_tifffile() -> Iterator[_Drop]:
    """Keep tifffile's log lines (warnings about damaged files) off stderr while reading: the engine reports a
    damaged file as one exception, and the command line prints one line for it."""
    drop = _Drop()
    logger = logging.getLogger("tifffile")
    logger.addFilter(drop)
    try:
        yield drop
    finally:
        logger.removeFilter(drop)
