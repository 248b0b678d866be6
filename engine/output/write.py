"""Writing a rendered image: colour space conversion, resizing, quantising, encoding and metadata.

:func:`write_image` writes TIFF (tifffile), PNG (OpenCV, which unlike Pillow writes 16-bit RGB) or JPEG
(Pillow) with the output space's ICC profile, EXIF and XMP. A TIFF gets all of them in the one pass that writes
its pixels (exiv2 encodes the EXIF and XMP, :func:`engine.output.metadata.tiff_tags`); a PNG or JPEG gets its
EXIF and XMP from pyexiv2 after the encoder wrote it. Everything goes to a hidden ``.part`` file beside the
target that replaces the target only once it is complete, so a failure never leaves a half-written image behind.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import errno
import os
import shutil
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import tifffile
from PIL import Image

from engine import tiling
from engine.colour import SPACES, SRGB, RGBSpace, encode, srgb_decode, srgb_to_space_matrix
from engine.errors import OutputError, OutputTakenError
from engine.io.formats import JPEG_END, PNG_END
from engine.output import extended_xmp
from engine.output.formats import OutputOptions, checked_options, resolve_format
from engine.output.icc import icc_profile
from engine.output.metadata import (
    EXIF_IFD,
    EXIV2,
    GPS_IFD,
    TiffEntry,
    TiffTags,
    exiv2_image,
    exiv2_xmp,
    ifd_bytes,
    register_namespace,
    tiff_tags,
    writable_exif,
    xmp_packet,
)
from engine.output.publish import (
    FULL_DISK_BYTES,
    STALE_PARTIAL_S,
    discard,
    is_partial_of,
    partial_name,
    publish,
    remove_partials,
)

__all__ = ["OutputOptions", "is_partial_of", "partial_name", "resolve_format", "write_image"]


def to_output_space(pixels: np.ndarray, space: RGBSpace, long_edge: int | None = None) -> np.ndarray:
    """Display-referred sRGB-encoded pixels, resized in linear light and re-encoded in ``space``, in [0, 1].

    sRGB at full size is the pixels themselves, unclipped and uncopied: :func:`quantise` clips.
    """
    pixels = np.asarray(pixels, dtype=np.float32)
    height, width = pixels.shape[:2]
    scale = long_edge / max(height, width) if long_edge else 1.0
    if space == SRGB and scale >= 1.0:
        return pixels
    pixels = np.clip(pixels, 0.0, 1.0)
    linear = srgb_decode(pixels)
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        linear = cv2.resize(linear, size, interpolation=cv2.INTER_AREA)
    if space != SRGB:
        linear = linear @ srgb_to_space_matrix(space).T.astype(np.float32)
    return encode(linear, space.transfer)


def quantise(encoded: np.ndarray, bits: int, out: np.ndarray | None = None) -> np.ndarray:
    """Values in [0, 1] rounded (half to even) to 8- or 16-bit integers; values outside [0, 1] are clipped.

    One pass of OpenCV's saturating conversion: exactly ``np.round(np.clip(x, 0, 1) * top)`` for float32 ``x``
    (tests/test_output.py checks it), without its three full-size float temporaries. ``out``: an array of the
    right shape and type (a band of a bigger one) to write into.
    """
    top, depth = (65535.0, cv2.CV_16U) if bits == 16 else (255.0, cv2.CV_8U)
    encoded = np.ascontiguousarray(encoded, dtype=np.float32)
    return cv2.addWeighted(encoded, top, encoded, 0.0, 0.0, dst=out, dtype=depth)


def _resizes(pixels: np.ndarray, long_edge: int | None) -> bool:
    """Whether an output of ``long_edge`` pixels on its long side is smaller than ``pixels``."""
    return bool(long_edge and long_edge < max(pixels.shape[:2]))


def _quantised_bands(pixels: np.ndarray, space: RGBSpace, bits: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """``(start, end, band)``: :func:`quantise` of :func:`to_output_space` for each band of rows of ``pixels``,
    made one at a time (both are per pixel, so no full-size float temporary is needed).

    ``pixels`` may be a view turned upright (:func:`engine.pipeline.apply_orientation` does not copy): a band of
    a view turned by 90 degrees is a band of columns in memory, so it is converted in memory order and turned
    back as integers (half the bytes to move)."""
    turned = abs(pixels.strides[1]) > abs(pixels.strides[0])  # a column of the view is a row in memory
    for start, end in tiling.bands(pixels.shape[0]):
        if turned:
            yield start, end, quantise(to_output_space(pixels[start:end].transpose(1, 0, 2), space), bits).transpose(
                1, 0, 2)
        else:
            yield start, end, quantise(to_output_space(pixels[start:end], space), bits)


def output_pixels(pixels: np.ndarray, space: RGBSpace, long_edge: int | None, bits: int) -> np.ndarray:
    """:func:`quantise` of :func:`to_output_space`, a band at a time (:func:`_quantised_bands`) when nothing is
    resized, so a big image needs no full-size float temporaries besides ``pixels``."""
    if _resizes(pixels, long_edge):
        return quantise(to_output_space(pixels, space, long_edge), bits)
    data = np.empty(pixels.shape, dtype=np.uint16 if bits == 16 else np.uint8)
    for start, end, band in _quantised_bands(pixels, space, bits):
        data[start:end] = band
    return data


def output_strips(pixels: np.ndarray, space: RGBSpace, bits: int) -> tuple[int, Iterator[bytes]]:
    """:func:`output_pixels` at full size as rows per strip and the strips' bytes, each made only when the
    writer asks for it: an uncompressed TIFF is written without a full-size integer copy of the image (368 MB
    at 61 MP in 16 bits), the same bits as :func:`output_pixels` (the same bands)."""
    start, end = tiling.bands(pixels.shape[0])[0]
    return end - start, (band.tobytes() for _, _, band in _quantised_bands(pixels, space, bits))


# TIFF compressions (OutputOptions.compression) -> tifffile's arguments. Deflate at level 1 with the horizontal
# predictor: on the 18 MP render levels 3 and 6 took 1.2x and 1.5x as long for files no smaller
# (docs/rendering.md, "Speed").
_TIFF_COMPRESSION: dict[str, dict[str, object]] = {
    "none": {},
    "deflate": {"compression": "zlib", "compressionargs": {"level": 1}, "predictor": True},
}
_RESOLUTION_TAGS = (282, 283, 296, 305)  # X/YResolution, ResolutionUnit, Software: tifffile's own arguments


def _write_tiff(path: Path, data: np.ndarray | tuple[int, Iterator[bytes]], shape: tuple[int, ...], bits: int,
                profile: bytes, compression: str, tags: TiffTags) -> None:
    """RGB TIFF with the ICC profile (tag 34675), IFD0's EXIF and the XMP (tag 700) written by tifffile with the
    pixels (an array, or :func:`output_strips`' rows per strip and strips); then the Exif and GPS directories
    (:func:`_add_directories`)."""
    ifd0 = {tag: raw for tag, _kind, _count, raw in tags.ifd0}
    x, y = (struct.unpack("<II", ifd0[tag][:8]) if len(ifd0.get(tag, b"")) >= 8 else (0, 0) for tag in (282, 283))
    resolution = (x, y) if 0 not in x + y else None  # tifffile refuses a zero; it then writes 1/1
    unit = struct.unpack("<H", ifd0[296][:2])[0] if len(ifd0.get(296, b"")) >= 2 else None
    extratags: list[tuple[int, int, int, object, bool]] = []
    for tag, kind, count, raw in tags.ifd0:
        if tag in _RESOLUTION_TAGS:
            continue
        if kind in (5, 10):  # tifffile counts packed rationals wrongly; give it their numbers
            extratags.append((tag, kind, count, struct.unpack(f"<{2 * count}{'I' if kind == 5 else 'i'}", raw), True))
        else:
            extratags.append((tag, kind, count, raw, True))
    rows, pixels = (None, data) if isinstance(data, np.ndarray) else data
    tifffile.imwrite(
        path, pixels, shape=shape, dtype=np.uint16 if bits == 16 else np.uint8, rowsperstrip=rows,
        photometric="rgb", iccprofile=profile, metadata=None, extratags=extratags,
        resolution=resolution, resolutionunit=unit if unit in (1, 2, 3) else None,
        software=ifd0.get(305) or _software(), bigtiff=False, **_TIFF_COMPRESSION[compression],  # type: ignore[arg-type]
    )
    directories = {tag: entries for tag, entries in ((EXIF_IFD, tags.exif), (GPS_IFD, tags.gps)) if entries}
    if directories:
        _add_directories(path, directories)


def _add_directories(path: Path, directories: dict[int, tuple[TiffEntry, ...]]) -> None:
    """Give the little-endian, one-image TIFF at ``path`` the Exif and GPS directories.

    tifffile does not write the tags that point to them, so a copy of IFD0 with those pointers goes at the end
    of the file, followed by the directories, and the header points to the copy (the old IFD0 stays behind, a
    few hundred unused bytes; every value it points to is shared).
    """
    with path.open("r+b") as f:
        (first,) = struct.unpack("<I", f.read(8)[4:8])
        f.seek(first)
        (count,) = struct.unpack("<H", f.read(2))
        entries = {struct.unpack("<H", raw[:2])[0]: raw for raw in (f.read(12) for _ in range(count))}
        end = f.seek(0, os.SEEK_END)
        end += end % 2  # directories start on a word boundary
        position = end + 2 + 12 * (len(entries) + len(directories)) + 4
        blocks = []
        for tag, directory in directories.items():
            entries[tag] = struct.pack("<HHII", tag, 4, 1, position)
            blocks.append(ifd_bytes(directory, position))
            position += len(blocks[-1])
        f.seek(end)
        f.write(struct.pack("<H", len(entries)) + b"".join(entries[tag] for tag in sorted(entries))
                + struct.pack("<I", 0) + b"".join(blocks))
        f.seek(4)
        f.write(struct.pack("<I", end))


def _after_ihdr(png: bytes, kind: bytes, data: bytes) -> bytes:
    """PNG bytes with a chunk of ``kind`` holding ``data`` right after IHDR."""
    body = kind + data
    chunk = struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
    end_of_ihdr = 8 + 8 + 13 + 4  # signature, IHDR length and type, IHDR data, CRC
    return png[:end_of_ihdr] + chunk + png[end_of_ihdr:]


def _with_iccp(png: bytes, profile: bytes) -> bytes:
    """PNG bytes with an iCCP chunk (exiv2's own iCCP has an empty name, which libpng rejects)."""
    return _after_ihdr(png, b"iCCP", b"ICC profile\0\0" + zlib.compress(profile))


def _with_phys(png: bytes, density: tuple[float, float] | None) -> bytes:
    """PNG bytes with a pHYs chunk (pixels per metre), where a print size is stated."""
    if density is None:
        return png
    return _after_ihdr(png, b"pHYs", struct.pack(">IIB", *(round(d / 0.0254) for d in density), 1))


def _write_png(path: Path, data: np.ndarray, profile: bytes, quality: int,
               density: tuple[float, float] | None) -> None:
    """PNG via OpenCV (BGR order), with the ICC profile as iCCP and the print size as pHYs."""
    ok, buffer = cv2.imencode(".png", np.ascontiguousarray(data[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise OutputError(f"OpenCV could not encode {path.name} as PNG")
    path.write_bytes(_with_phys(_with_iccp(buffer.tobytes(), profile), density))


def _write_jpeg(path: Path, data: np.ndarray, profile: bytes, quality: int,
                density: tuple[float, float] | None) -> None:
    """Baseline JPEG; chroma is not subsampled from quality 90 up; the JFIF header states the EXIF's print size.

    No ``optimize``: Pillow then encodes into a buffer of one byte per pixel, which noisy 4:4:4 images overflow.
    """
    subsampling = 0 if quality >= 90 else 2  # 4:4:4 or 4:2:0
    dpi = {"dpi": tuple(round(d) for d in density)} if density else {}
    Image.fromarray(data).save(
        path, format="JPEG", quality=quality, subsampling=subsampling, icc_profile=profile, **dpi
    )


def _density(exif: dict[str, str] | None) -> tuple[float, float] | None:
    """The print size the output's EXIF states, in pixels per inch (x, y); None where it states none."""
    if not exif or "Exif.Image.XResolution" not in exif:
        return None
    per_unit = {"2": 1.0, "3": 2.54}.get(exif.get("Exif.Image.ResolutionUnit", "2"))
    try:
        ratios = [Fraction(exif[f"Exif.Image.{axis}Resolution"].replace(" ", "")) for axis in "XY"]
    except (KeyError, ValueError, ZeroDivisionError):
        return None
    if per_unit is None:
        return None
    density = (float(ratios[0]) * per_unit, float(ratios[1]) * per_unit)
    # what both headers can state: JFIF's 16-bit dots per inch (PNG's pixels per metre reach further)
    return density if all(1.0 <= d <= 65535.0 for d in density) else None


_ENCODERS: dict[str, Callable[[Path, np.ndarray, bytes, int, tuple[float, float] | None], None]] = {
    "png": _write_png,
    "jpeg": _write_jpeg,
}


def _output_exif(exif: dict[str, str] | None, shape: tuple[int, ...], space: RGBSpace, fmt: str,
                 written: int | None = None) -> dict[str, str] | None:
    """The source's EXIF as it holds for the output: upright, with the output's size and colour space (and, for
    a JPEG, its YCbCr layout, which Exif requires it to state), changed when it was written (``written``: the
    modification time it is given, else now)."""
    if exif is None:
        return None
    carried = {key: value for key, value in writable_exif(exif, fmt).items()
               if not (key == "Exif.Image.ImageDescription" and value.startswith('{"shape"'))  # tifffile's, no text
               and not (key in _UNKNOWN_WHEN_ZERO and _is_zero(value))}
    # the versions Exif requires, where a source (a DNG that keeps its Exif tags in IFD0) states none
    required = {"Exif.Photo.ExifVersion": "48 50 51 50", "Exif.Photo.FlashpixVersion": "48 49 48 48"}  # 0232, 0100
    if carried.get("Exif.Image.ResolutionUnit", "2") == "1":  # no unit: an aspect ratio, not a print size
        carried = {key: value for key, value in carried.items() if key not in _PRINT_RESOLUTION}
    required |= _PRINT_RESOLUTION  # where the source states none: a TIFF said 1 pixel per unit, a JPEG nothing
    carried = _capture_time_kept(carried)
    stated = required | carried | _when_written(written) | {
        "Exif.Image.Software": _software(),  # the program that made this file, not the camera's firmware
        "Exif.Image.Orientation": "1",  # the pixels are already turned upright
        "Exif.Photo.ColorSpace": "1" if space == SRGB else "65535",  # 65535: see the ICC profile
    }
    if fmt != "tiff":  # the size of compressed pixels; a TIFF's own tags give its size (Exif's is not allowed there)
        stated |= {"Exif.Photo.PixelXDimension": str(shape[1]), "Exif.Photo.PixelYDimension": str(shape[0])}
    if fmt == "jpeg":
        stated |= {"Exif.Photo.ComponentsConfiguration": "1 2 3 0", "Exif.Image.YCbCrPositioning": "1"}
    if any(key.startswith("Exif.Photo.OffsetTime") for key in stated) and _exif_version(stated) < "0231":
        stated["Exif.Photo.ExifVersion"] = required["Exif.Photo.ExifVersion"]  # the offsets are Exif 2.31's
    return stated


def _exif_version(exif: dict[str, str]) -> str:
    """The Exif version an EXIF states ("0221"; exiv2 gives its four bytes as numbers, "48 50 50 49")."""
    try:
        return bytes(int(n) for n in exif.get("Exif.Photo.ExifVersion", "").split()).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        return ""


# When the file was changed (Exif's DateTime, its offset and fraction): this file's, not the raw's (a tester read
# the capture time as the output's modification date beside "Software: hostplug")
_WHEN_CHANGED = frozenset(("Exif.Image.DateTime", "Exif.Photo.OffsetTime", "Exif.Photo.SubSecTime"))


def _capture_time_kept(exif: dict[str, str]) -> dict[str, str]:
    """``exif`` without its DateTime, OffsetTime and SubSecTime (the output states its own), the capture time
    they told kept as DateTimeOriginal's where they tell it (:func:`engine.io.source.datetime_is_capture`): a raw
    that dates itself by DateTime alone keeps its date, fraction and zone (a reviewer's Nikon gave its zone in
    OffsetTime only)."""
    from engine.io.source import datetime_is_capture

    kept = {key: value for key, value in exif.items() if key not in _WHEN_CHANGED}
    if not datetime_is_capture(exif):
        return kept
    has_original = "Exif.Photo.DateTimeOriginal" in exif
    for changed, original in (("Exif.Image.DateTime", "Exif.Photo.DateTimeOriginal"),
                              ("Exif.Photo.SubSecTime", "Exif.Photo.SubSecTimeOriginal"),
                              ("Exif.Photo.OffsetTime", "Exif.Photo.OffsetTimeOriginal")):
        if changed in exif and original not in exif and (not has_original or changed == "Exif.Photo.OffsetTime"):
            kept[original] = exif[changed]
    return kept


def _when_written(written: int | None = None) -> dict[str, str]:
    """Exif's DateTime and OffsetTime of ``written`` (seconds since the epoch; now when None), local time."""
    now = datetime.datetime.fromtimestamp(written if written is not None else time.time()).astimezone()
    offset = now.strftime("%z")
    return {"Exif.Image.DateTime": now.strftime("%Y:%m:%d %H:%M:%S"),
            "Exif.Photo.OffsetTime": f"{offset[:3]}:{offset[3:]}"}


# Shooting values that are 0 in a file that does not know them (a Magic Lantern DNG's ISO, aperture and shutter):
# carried, an editor shows "f/0" and "0 s"; left out, it shows none, as `hostplug info` does
_UNKNOWN_WHEN_ZERO = frozenset(f"Exif.Photo.{name}" for name in ("ExposureTime", "FNumber", "ISOSpeedRatings",
                                                                   "FocalLength"))


def _is_zero(value: str) -> bool:
    """Whether an EXIF number reads 0 ("0", "0/1", "0/0")."""
    numerator, _, _ = value.strip().partition("/")
    try:
        return float(numerator) == 0
    except ValueError:
        return False


# 300 pixels per inch, as darktable writes by default: what a print lab or layout program takes for the size
_PRINT_RESOLUTION = {"Exif.Image.XResolution": "300/1", "Exif.Image.YResolution": "300/1",
                     "Exif.Image.ResolutionUnit": "2"}


def _software() -> str:
    from engine import __version__

    return f"hostplug {__version__}"


def _metadata_error(target: Path, error: RuntimeError) -> OutputError:
    """pyexiv2's error (exiv2 refused an EXIF or XMP key or value) as one line naming the output."""
    said = " ".join(str(error).split())
    if _too_large(error):  # a segment of a JPEG or PNG (the XMP's own goes into Extended XMP where it can)
        return OutputError(f"cannot write metadata to {target}: it is more than the 64 KB a segment of this "
                           "format holds; render to TIFF, which holds it all")
    return OutputError(f"cannot write metadata to {target}: {said}")


def _write_metadata(path: Path, target: Path, fmt: str, exif: dict[str, str] | None,
                    xmp: dict[str, str] | None) -> None:
    """Add EXIF and XMP to the PNG or JPEG (``fmt``) at ``path`` in place (pyexiv2 keeps the embedded ICC
    profile); a JPEG's XMP beyond its segment's 64 KB goes partly into Extended XMP
    (:mod:`engine.output.extended_xmp`).

    ``target`` is the file's final name, for messages.
    """
    if exif is None and not xmp:
        return
    register_namespace()
    try:
        with EXIV2:
            try:
                _modify(path, exif, xmp)
            except RuntimeError as error:
                if not (xmp and _too_large(error) and fmt == "jpeg"):
                    raise
                _modify_with_extended_xmp(path, target, exif, xmp, error)
    except RuntimeError as error:  # how pyexiv2 reports exiv2's errors
        raise _metadata_error(target, error) from error


def _modify(path: Path, exif: dict[str, str] | None, xmp: dict[str, str] | None) -> None:
    with exiv2_image(path) as image:
        if exif is not None:
            image.modify_exif(exif)
        if xmp:
            image.modify_xmp(exiv2_xmp(xmp))


def _too_large(error: RuntimeError) -> bool:
    return "larger than 65535" in str(error)  # exiv2: the one APP1 segment a JPEG's XMP must fit in


def _modify_with_extended_xmp(path: Path, target: Path, exif: dict[str, str] | None, xmp: dict[str, str],
                              error: RuntimeError) -> None:
    """Write ``xmp`` as a standard packet with hostplug's record and what else fits, and the rest as Extended XMP
    (a catalogue's thousands of keywords made the JPEG output fail). OutputError when hostplug's own record alone
    does not fit; exiv2's ``error`` again when the XMP fits whole (what was too large is not the XMP)."""
    try:
        standard, rest = extended_xmp.split(xmp, xmp_packet)
    except ValueError:
        raise OutputError(f"cannot write metadata to {target}: its recipe record is more than the 64 KB a JPEG's "
                          "XMP holds; render to TIFF or PNG, which hold it all") from None
    if not rest:
        raise error
    body, guid = extended_xmp.extended_packet(xmp_packet(rest))
    _modify(path, exif, {**standard, extended_xmp.NOTE_KEY: guid})
    extended_xmp.insert(path, body, guid)


_ENDINGS = {"jpeg": JPEG_END, "png": PNG_END}  # how a complete file of each format ends


def _check_whole(path: Path, fmt: str) -> None:
    """OSError (ENOSPC) unless the JPEG or PNG at ``path`` ends as a complete file does: exiv2 rewrites the file to
    add the metadata and, on a full disk, leaves it cut short without an error, which was then published."""
    with path.open("rb") as f:
        f.seek(max(0, f.seek(0, os.SEEK_END) - len(_ENDINGS[fmt])))
        if f.read() == _ENDINGS[fmt]:
            return
    raise OSError(errno.ENOSPC, "the file was cut short while its metadata was written (is the disk full?)")


def check_target(path: Path, options: OutputOptions) -> None:
    """Refuse an output that cannot be written (name too long, exists without overwrite, no folder), before any
    work is spent on it."""
    if "\0" in os.fsdecode(path):
        raise OutputError(f"cannot write {os.fsdecode(path)!r}: a path cannot hold a NUL character")
    if len(os.fsencode(path.name)) > 255:  # first: asking the file system about such a name raises
        raise OutputError(f"cannot write {path}: the name is {len(os.fsencode(path.name))} bytes, more than the "
                          "255 a file name may have (name the output with -o)")
    if path.is_dir():
        raise OutputError(f"{path} is a folder; name the output file in it (a batch into a folder: --out-dir) "
                          "(in Python: a file's path)")
    if path.exists() and not path.is_file():  # a link is replaced, not followed, but one to /dev/stdout is no file
        raise OutputError(f"cannot write {path}: it is (or links to) a device, pipe or socket, not a file; name "
                          "another output")
    stream = _stream_linked(path)
    if stream is not None:
        raise OutputError(f"cannot write {path}: it links to {stream}, a stream, not a file; hostplug writes "
                          "outputs to files: name one")
    if path.name == "-":
        raise OutputError("cannot write '-': hostplug writes outputs to files, not to standard output; name one")
    if path.exists() and not options.overwrite:
        raise OutputError(f"{path} exists; pass --overwrite to replace it (in Python: "
                          "OutputOptions(overwrite=True))")
    if not path.parent.is_dir():
        missing = "is not a folder" if os.path.lexists(path.parent) else "does not exist"  # (a file of that name)
        raise OutputError(f"cannot write {path}: folder {path.parent} {missing}")


def _stream_linked(path: Path, hops: int = 40) -> str | None:
    """Where a chain of links at ``path`` reaches /proc or /dev (not /dev/shm): /dev/stdout -> /proc/self/fd/1,
    which may lead on to a file (standard output redirected) and so passes for one; None for any other path."""
    path = Path(os.path.abspath(path))
    for _ in range(hops):
        if not os.path.islink(path):
            return None
        path = Path(os.path.normpath(path.parent / os.readlink(path)))
        if str(path).startswith(("/proc/", "/dev/")) and not str(path).startswith("/dev/shm/"):
            return str(path)
    return None


def _with_errno(error: OSError, folder: Path) -> OSError:
    """``error``, or ENOSPC for a short write on a full disk: numpy's ``tofile`` (tifffile writing a whole array)
    reports "N requested and M written" with no errno, which callers (the watch daemon, which keeps a raw queued
    while its disk is full) could not tell from any other failure."""
    if error.errno is not None:
        return error
    try:
        full = shutil.disk_usage(folder).free < FULL_DISK_BYTES
    except OSError:
        return error
    return OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} ({error})") if full else error


def write_image(
    pixels: np.ndarray,
    path: str | Path,
    options: OutputOptions | None = None,
    *,
    exif: dict[str, str] | None = None,
    xmp: dict[str, str] | None = None,
    hold: bool = False,
) -> Path:
    """Write display-referred sRGB-encoded float pixels (H x W x 3) to ``path``; returns the path written.

    ``exif`` holds pyexiv2 EXIF keys and values (see :func:`engine.metadata.read_exif`); the orientation is
    written as 1. ``xmp`` holds fully qualified XMP keys such as 'Xmp.hostplug.recipe'. The file appears at
    ``path`` only once complete. With ``hold``, the complete file is left under its hidden partial name, which is
    returned: :func:`publish_held` names it, :func:`drop_held` removes it (a render's outputs are published
    together, once all are written).
    """
    if not isinstance(pixels, np.ndarray) or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise OutputError(f"the pixels to write must be an H x W x 3 array, not {getattr(pixels, 'shape', pixels)!r}")
    if pixels.dtype.kind != "f":  # 8-bit values as they are would be written almost white
        raise OutputError(f"the pixels to write must be floats from 0 to 1, not {pixels.dtype}")
    if 0 in pixels.shape:
        raise OutputError(f"the pixels to write are empty ({pixels.shape[0]} x {pixels.shape[1]})")
    if not (np.isfinite(pixels.min()) and np.isfinite(pixels.max())):  # NaN and -inf were written white
        raise OutputError(f"the pixels to write hold {np.count_nonzero(~np.isfinite(pixels))} values that are not "
                          "numbers (NaN) or infinite; nothing was written")
    path = Path(path)
    options = checked_options(options)
    check_target(path, options)
    fmt, bits = resolve_format(path, options)
    space = SPACES.get(options.space)
    if space is None:
        raise OutputError(f"unknown colour space {options.space!r}; choose one of {', '.join(SPACES)}")
    # tifffile compresses only whole arrays
    streamed = fmt == "tiff" and options.compression == "none" and not _resizes(pixels, options.long_edge)
    data = output_strips(pixels, space, bits) if streamed else output_pixels(pixels, space, options.long_edge, bits)
    shape = pixels.shape if isinstance(data, tuple) else data.shape
    profile = icc_profile(space)
    exif = _output_exif(exif, shape, space, fmt, options.modified)
    tags = None
    if fmt == "tiff":
        try:
            tags = tiff_tags(exif, xmp)  # before the file exists: a bad key leaves nothing behind
        except RuntimeError as error:
            raise _metadata_error(path, error) from error
    remove_partials(path, older_than=STALE_PARTIAL_S)  # what a write killed (or a power cut) left of an earlier try
    partial = path.with_name(partial_name(path.name))
    watcher = _WATCHER.get()
    if watcher is not None:
        watcher.started(partial)
    IN_PROGRESS.add(partial)
    try:
        try:
            if tags is not None:
                _write_tiff(partial, data, shape, bits, profile, options.compression, tags)
            else:
                assert isinstance(data, np.ndarray)
                _ENCODERS[fmt](partial, data, profile, options.quality, _density(exif))
                _write_metadata(partial, path, fmt, exif, xmp)
                _check_whole(partial, fmt)
            if options.modified is not None:  # before the name: a rename keeps it, so the file never shows another
                os.utime(partial, (options.modified, options.modified))
        except OSError as error:
            error = _with_errno(error, path.parent)
            raise OutputError(f"cannot write {path}: {error.strerror or error}") from error
        if hold:
            return partial
        publish_held(partial, path, options.overwrite)
    except BaseException:
        drop_held(partial)
        raise
    return path


def publish_held(partial: Path, path: Path, overwrite: bool) -> None:
    """Give the complete ``partial`` (from :func:`write_image` with ``hold``) its name ``path``; OutputError when
    it cannot (the partial is then still there, for :func:`drop_held`)."""
    watcher = _WATCHER.get()
    if watcher is not None:
        watcher.publishing()
    try:
        publish(partial, path, overwrite)
    except FileExistsError:
        raise OutputTakenError(f"{path} appeared while this render ran (another render of the same name?); pass "
                               "--overwrite to replace it (from Python: OutputOptions(overwrite=True))") from None
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error.strerror or error}") from error
    drop_held(partial)  # after a hard link the partial name is a second name of the output


def drop_held(partial: Path) -> None:
    """Remove a partial file that will not be published."""
    discard(partial)
    IN_PROGRESS.discard(partial)


# The partial files this process is writing: a watchdog that ends the process (the command line's --time-limit)
# deletes them first, since ``os._exit`` runs no ``finally``.
IN_PROGRESS: set[Path] = set()


@dataclass(frozen=True)
class WriteWatcher:
    """Who wants to know about the writes in a :func:`watching_writes` block (the render service)."""

    started: Callable[[Path], None]  # a partial file's path, before the file is created
    publishing: Callable[[], None]  # right before a complete file takes its name; may raise to keep it unpublished


_WATCHER: contextvars.ContextVar[WriteWatcher | None] = contextvars.ContextVar("write_watcher", default=None)


@contextlib.contextmanager
def watching_writes(started: Callable[[Path], None], publishing: Callable[[], None]) -> Iterator[None]:
    """Within the block, every :func:`write_image` of this thread tells ``started`` the path of its partial file
    before creating it (so that a process taking over after a crash removes exactly those), and calls
    ``publishing`` before the complete file takes its name (an exception there keeps it unpublished: the partial
    is deleted and the exception goes on)."""
    token = _WATCHER.set(WriteWatcher(started, publishing))
    try:
        yield
    finally:
        _WATCHER.reset(token)
