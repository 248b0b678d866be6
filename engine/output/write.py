"""Writing a rendered image: colour space conversion, resizing, quantising, encoding and metadata.

:func:`write_image` writes TIFF (tifffile), PNG (OpenCV, which unlike Pillow writes 16-bit RGB) or JPEG
(Pillow), embeds the output space's ICC profile, then adds EXIF and XMP with pyexiv2. Everything goes to a
hidden ``.part`` file beside the target that replaces the target only once it is complete, so a failure never
leaves a half-written image behind.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pyexiv2
import tifffile
from PIL import Image

from engine import tiling
from engine.colour import SPACES, SRGB, RGBSpace, encode, srgb_decode, srgb_to_space_matrix
from engine.errors import OutputError
from engine.output.formats import OutputOptions, resolve_format
from engine.output.icc import icc_profile
from engine.output.metadata import register_namespace

__all__ = ["OutputOptions", "resolve_format", "write_image"]


def to_output_space(pixels: np.ndarray, space: RGBSpace, long_edge: int | None = None) -> np.ndarray:
    """Display-referred sRGB-encoded pixels, resized in linear light and re-encoded in ``space``, in [0, 1]."""
    pixels = np.clip(np.asarray(pixels, dtype=np.float32), 0.0, 1.0)
    height, width = pixels.shape[:2]
    scale = long_edge / max(height, width) if long_edge else 1.0
    if space == SRGB and scale >= 1.0:
        return pixels
    linear = srgb_decode(pixels)
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        linear = cv2.resize(linear, size, interpolation=cv2.INTER_AREA)
    if space != SRGB:
        linear = linear @ srgb_to_space_matrix(space).T.astype(np.float32)
    return encode(linear, space.transfer)


def quantise(encoded: np.ndarray, bits: int) -> np.ndarray:
    """Values in [0, 1] rounded to 8- or 16-bit integers."""
    top, dtype = (65535, np.uint16) if bits == 16 else (255, np.uint8)
    return np.round(np.clip(encoded, 0.0, 1.0) * top).astype(dtype)


def output_pixels(pixels: np.ndarray, space: RGBSpace, long_edge: int | None, bits: int) -> np.ndarray:
    """:func:`quantise` of :func:`to_output_space`, a band of rows at a time when nothing is resized (both are
    per pixel), so a big image needs no full-size float temporaries besides ``pixels``."""
    if long_edge and long_edge < max(pixels.shape[:2]):
        return quantise(to_output_space(pixels, space, long_edge), bits)
    data = np.empty(pixels.shape, dtype=np.uint16 if bits == 16 else np.uint8)
    for start, end in tiling.bands(pixels.shape[0]):
        data[start:end] = quantise(to_output_space(pixels[start:end], space), bits)
    return data


def _write_tiff(path: Path, data: np.ndarray, profile: bytes, quality: int) -> None:
    """Deflate-compressed RGB TIFF with a horizontal predictor and the ICC profile in tag 34675."""
    tifffile.imwrite(
        path, data, photometric="rgb", compression="zlib", predictor=True, iccprofile=profile, metadata=None
    )


def _with_iccp(png: bytes, profile: bytes) -> bytes:
    """PNG bytes with an iCCP chunk right after IHDR (exiv2's own iCCP has an empty name, which libpng rejects)."""
    body = b"iCCP" + b"ICC profile\0\0" + zlib.compress(profile)
    chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body))
    end_of_ihdr = 8 + 8 + 13 + 4  # signature, IHDR length and type, IHDR data, CRC
    return png[:end_of_ihdr] + chunk + png[end_of_ihdr:]


def _write_png(path: Path, data: np.ndarray, profile: bytes, quality: int) -> None:
    """PNG via OpenCV (BGR order), with the ICC profile as iCCP."""
    ok, buffer = cv2.imencode(".png", np.ascontiguousarray(data[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise OutputError(f"OpenCV could not encode {path.name} as PNG")
    path.write_bytes(_with_iccp(buffer.tobytes(), profile))


def _write_jpeg(path: Path, data: np.ndarray, profile: bytes, quality: int) -> None:
    """Baseline JPEG; chroma is not subsampled from quality 90 up.

    No ``optimize``: Pillow then encodes into a buffer of one byte per pixel, which noisy 4:4:4 images overflow.
    """
    subsampling = 0 if quality >= 90 else 2  # 4:4:4 or 4:2:0
    Image.fromarray(data).save(
        path, format="JPEG", quality=quality, subsampling=subsampling, icc_profile=profile
    )


_ENCODERS: dict[str, Callable[[Path, np.ndarray, bytes, int], None]] = {
    "tiff": _write_tiff,
    "png": _write_png,
    "jpeg": _write_jpeg,
}


def _write_metadata(
    path: Path, target: Path, exif: dict[str, str] | None, xmp: dict[str, str] | None, space: RGBSpace
) -> None:
    """Add EXIF (upright, with the output's size and colour space) and XMP to the image at ``path`` in place.

    pyexiv2 keeps the embedded ICC profile. ``target`` is the file's final name, for messages.
    """
    if exif is None and not xmp:
        return
    register_namespace()
    try:
        with pyexiv2.Image(str(path)) as image:
            if exif is not None:
                image.modify_exif(
                    exif
                    | {
                        "Exif.Image.Orientation": "1",  # the pixels are already turned upright
                        "Exif.Photo.PixelXDimension": str(image.get_pixel_width()),
                        "Exif.Photo.PixelYDimension": str(image.get_pixel_height()),
                        "Exif.Photo.ColorSpace": "1" if space == SRGB else "65535",  # 65535: see the ICC
                    }
                )
            if xmp:
                image.modify_xmp(xmp)
    except RuntimeError as error:  # how pyexiv2 reports exiv2's errors (a bad EXIF or XMP key or value)
        raise OutputError(f"cannot write metadata to {target}: {' '.join(str(error).split())}") from error


def check_target(path: Path, options: OutputOptions) -> None:
    """Refuse an output that cannot be written (name too long, exists without overwrite, no folder), before any
    work is spent on it."""
    if len(os.fsencode(path.name)) > 255:
        raise OutputError(f"cannot write {path}: the name is {len(os.fsencode(path.name))} bytes, more than the "
                          "255 a file name may have (name the output with -o)")
    if path.exists() and not options.overwrite:
        raise OutputError(f"{path} exists; pass --overwrite to replace it")
    if not path.parent.is_dir():
        raise OutputError(f"cannot write {path}: folder {path.parent} does not exist")


def write_image(
    pixels: np.ndarray,
    path: str | Path,
    options: OutputOptions | None = None,
    *,
    exif: dict[str, str] | None = None,
    xmp: dict[str, str] | None = None,
) -> Path:
    """Write display-referred sRGB-encoded float pixels (H x W x 3) to ``path``; returns the path written.

    ``exif`` holds pyexiv2 EXIF keys and values (see :func:`engine.metadata.read_exif`); the orientation is
    written as 1. ``xmp`` holds fully qualified XMP keys such as 'Xmp.hostplug.recipe'. The file appears at
    ``path`` only once complete.
    """
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"expected H x W x 3 pixels, got shape {pixels.shape}")
    path = Path(path)
    options = options or OutputOptions()
    fmt, bits = resolve_format(path, options)
    space = SPACES.get(options.space)
    if space is None:
        raise OutputError(f"unknown colour space {options.space!r}; choose one of {', '.join(SPACES)}")
    check_target(path, options)
    data = output_pixels(pixels, space, options.long_edge, bits)
    profile = icc_profile(space)
    partial = path.with_name(partial_name(path.name))
    IN_PROGRESS.add(partial)
    try:
        _ENCODERS[fmt](partial, data, profile, options.quality)
        _write_metadata(partial, path, exif, xmp, space)
        os.replace(partial, path)
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error.strerror or error}") from error
    finally:
        partial.unlink(missing_ok=True)
        IN_PROGRESS.discard(partial)
    return path


# The partial files this process is writing: a watchdog that ends the process (the command line's --time-limit)
# deletes them first, since ``os._exit`` runs no ``finally``.
IN_PROGRESS: set[Path] = set()

_LONG_NAME = 240  # a longer name cannot take the ".NAME.xxxxxxxx.part" form within 255 bytes


def _stem(name: str) -> str:
    encoded = os.fsencode(name)
    return name if len(encoded) <= _LONG_NAME else f"hostplug-{hashlib.sha256(encoded).hexdigest()[:16]}"


def partial_name(name: str) -> str:
    """The hidden temporary name an output called ``name`` is written under: ``.NAME.xxxxxxxx.part``, or for a
    name over 240 bytes ``.hostplug-HHHHHHHHHHHHHHHH.xxxxxxxx.part``, whose H part is a hash of the name (so
    :func:`is_partial_of` still knows whose it is)."""
    return f".{_stem(name)}.{secrets.token_hex(4)}.part"


def is_partial_of(candidate: str, name: str) -> bool:
    """Whether ``candidate`` is a temporary name :func:`partial_name` gives an output called ``name``."""
    prefix, suffix = f".{_stem(name)}.", ".part"
    token = candidate[len(prefix):-len(suffix)]
    return (candidate.startswith(prefix) and candidate.endswith(suffix) and len(token) == 8
            and all(c in "0123456789abcdef" for c in token))
