"""A raw's embedded preview as a small JPEG, fast: for file browsers and GIMP's thumbnail loader.

This module imports only rawpy, Pillow and, for a DNG, the engine's tag reader (not torch), so ``python -m
hostplug.thumbnail RAW OUT SIZE`` answers in a fraction of a second; ``hostplug thumbnail`` is the same from the
command line. When a raw has no embedded preview, LibRaw's quick half-size render stands in. The JSON line printed
gives the size of the picture a render makes (a DNG's DefaultCrop applied), which thumbnail consumers show next
to the preview. A rotation set in Lightroom or darktable (the raw's sidecar, or a DNG's own XMP) turns the
thumbnail as it turns a render; the XMP reader loads only for a raw that has a sidecar or a packet of its own.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any, cast

# EXIF orientation -> Pillow transpose operations that turn the image upright.
_UPRIGHT = {2: ("FLIP_LEFT_RIGHT",), 3: ("ROTATE_180",), 4: ("FLIP_TOP_BOTTOM",), 5: ("TRANSPOSE",),
            6: ("ROTATE_270",), 7: ("TRANSVERSE",), 8: ("ROTATE_90",)}


class ThumbnailError(Exception):
    """The raw is missing (``kind`` "missing"), cannot be read or has nothing to preview ("input"), or the JPEG
    cannot be written ("output"); the message is one line for the user."""

    def __init__(self, message: str, kind: str = "input") -> None:
        super().__init__(message)
        self.kind = kind


def _unsupported(raw_path: Path) -> str:
    """Why LibRaw cannot read ``raw_path``, in the words a render uses (a GoPro GPR's VC-5 compression, say)."""
    from engine.errors import HostplugError
    from engine.io.probe import check_renderable_file

    try:
        check_renderable_file(raw_path)
    except HostplugError as e:
        return str(e)
    return f"{raw_path}: not a camera raw LibRaw can read"


def _preview(raw_path: Path):
    """(Pillow image, full width, full height, orientation) of the raw's embedded preview, or of a quick render,
    as stored (not turned), with the picture's size as stored and the orientation that shows it upright: an
    embedded JPEG's own EXIF orientation when it has one, else the raw's."""
    import numpy as np
    import rawpy
    from PIL import Image

    from engine.errors import HostplugError
    from engine.io.bounded import pinned
    from engine.io.limits import quiet_stderr
    from engine.io.probe import LIBRAW_FLIP

    if not raw_path.is_file():
        raise ThumbnailError(f"{raw_path}: " + ("is a folder" if raw_path.is_dir() else "no such file"), "missing")
    try:
        # quiet: libjpeg's "Corrupt JPEG data" lines about a damaged tile went to stderr as render's do not
        with pinned(raw_path, "raw") as file, quiet_stderr(), rawpy.imread(str(file)) as raw:  # any bytes in the name
            sizes = raw.sizes
            orientation = LIBRAW_FLIP.get(sizes.flip, 1)
            height, width = _picture_size(raw_path, sizes)
            try:
                thumb = raw.extract_thumb()
            except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
                thumb = None
            if thumb is not None and thumb.format == rawpy.ThumbFormat.JPEG:
                image = Image.open(io.BytesIO(cast(bytes, thumb.data)))  # a JPEG's data is bytes (a bitmap's an array)
                image.load()
                own = image.getexif().get(0x0112)  # the preview's own orientation, when it has a valid one
                return image, width, height, own if own in range(1, 9) else orientation
            if thumb is not None and thumb.format == rawpy.ThumbFormat.BITMAP:
                return Image.fromarray(np.asarray(thumb.data)), width, height, orientation
            rgb = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8, user_flip=0)
            return Image.fromarray(rgb), width, height, orientation
    except FileNotFoundError as e:
        raise ThumbnailError(f"{raw_path}: no such file", "missing") from e
    except HostplugError as e:  # not a regular file, or unreadable
        raise ThumbnailError(str(e)) from e
    except rawpy.LibRawFileUnsupportedError as e:
        raise ThumbnailError(_unsupported(raw_path)) from e
    except (rawpy.LibRawError, OSError) as e:
        text = e.args[0].decode(errors="replace") if e.args and isinstance(e.args[0], bytes) else str(e)
        raise ThumbnailError(f"{raw_path}: cannot read a preview ({text}); the file may be damaged") from e


def _picture_size(raw_path: Path, sizes: Any) -> tuple[int, int]:
    """(height, width) of the picture a render of ``raw_path`` makes from its sensor of LibRaw's ``sizes``: a DNG's
    DefaultCrop, or the picture area LibRaw reads from another raw, applied as the render applies them."""
    from engine.io.picture_area import camera_crop

    size = (int(sizes.height), int(sizes.width))
    if raw_path.suffix.lower() != ".dng":
        crop = camera_crop(sizes, size)
        return crop[2:] if crop else size
    from engine.errors import HostplugError
    from engine.io.dng import read_dng_tags
    from engine.io.source import picture_crop

    try:
        crop = picture_crop(raw_path, read_dng_tags(raw_path), size)
    except HostplugError as e:
        raise ThumbnailError(str(e)) from e
    return crop[2:] if crop else size


def _turned(image, orientation: int):
    """``image`` turned as EXIF ``orientation`` says to show it."""
    from PIL import Image

    for name in _UPRIGHT.get(orientation, ()):
        image = image.transpose(getattr(Image.Transpose, name))
    return image


def _sidecar_orientation(raw_path: Path) -> int | None:
    """The orientation a sidecar of the raw (Lightroom, darktable) or a DNG's own XMP sets, which a render applies
    instead of the raw's; None when none does, or when the packet cannot be read (a render says what is wrong with
    it, a file browser cannot). The XMP reader loads only for a raw that has a sidecar or a packet of its own."""
    from engine.errors import HostplugError
    from engine.xmp.embedded import embedded_packet
    from engine.xmp.sidecar_files import find_sidecars

    try:
        if not find_sidecars(raw_path) and embedded_packet(raw_path) is None:
            return None
        from engine.xmp.sidecar import sidecar_orientation  # only now: it loads the XMP reader

        chosen = sidecar_orientation(raw_path)
    except HostplugError:
        return None
    return chosen.value if chosen else None


def write_thumbnail(raw_path: Path, output: Path, size: int = 256, overwrite: bool = True) -> dict[str, int | str]:
    """Write the preview of ``raw_path`` as a JPEG fitting ``size`` x ``size`` to ``output`` (atomically; an
    existing ``output`` is replaced only with ``overwrite``, and never when it is ``raw_path`` itself).

    Returns {"output", "width", "height"} where width and height are the full image's. Raises
    :class:`ThumbnailError`.
    """
    raw_path, output = Path(raw_path), Path(output)
    _check_output(raw_path, output, overwrite)
    from engine.output.publish import discard, partial_name, publish

    image, width, height, orientation = _preview(raw_path)
    orientation = _sidecar_orientation(raw_path) or orientation
    image = _turned(image, orientation)
    width, height = (height, width) if orientation >= 5 else (width, height)
    image = image.convert("RGB")
    image.thumbnail((size, size))
    partial = output.with_name(partial_name(output.name))
    try:
        image.save(partial, format="JPEG", quality=90)
        publish(partial, output, overwrite)  # without overwrite, never replaces a file that appeared meanwhile
    except FileExistsError as e:
        raise ThumbnailError(f"{output} exists; pass --overwrite to replace it", "output") from e
    except OSError as e:
        raise ThumbnailError(f"cannot write {output}: {e.strerror or e}", "output") from e
    finally:
        discard(partial)
    return {"output": str(output), "width": int(width), "height": int(height)}


def _check_output(raw_path: Path, output: Path, overwrite: bool) -> None:
    """Refuse an ``output`` that is the raw itself (whatever ``overwrite`` says), or that exists without it."""
    try:
        same = output.samefile(raw_path)
    except OSError:
        same = False
    if same:
        raise ThumbnailError(f"{output} is the raw itself; name another file for the thumbnail", "output")
    if output.is_dir():
        raise ThumbnailError(f"{output} is a folder; name the JPEG to write", "output")
    if not overwrite and (output.exists() or output.is_symlink()):
        raise ThumbnailError(f"{output} exists; pass --overwrite to replace it", "output")
    if not output.parent.is_dir():
        raise ThumbnailError(f"cannot write {output}: folder {output.parent} does not exist", "output")


def main(argv: list[str] | None = None) -> int:
    """``python -m hostplug.thumbnail RAW OUTPUT [SIZE]``: write the preview, print one JSON line."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (2, 3):
        print("usage: python -m hostplug.thumbnail RAW OUTPUT.jpg [SIZE]", file=sys.stderr)
        return 2
    try:
        result = write_thumbnail(Path(args[0]), Path(args[1]), int(args[2]) if len(args) == 3 else 256)
    except (ThumbnailError, ValueError) as e:
        print(f"hostplug: error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
