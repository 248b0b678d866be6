"""Reading display-referred inputs (JPEG, PNG, TIFF) so styles and adjustments apply to them too.

The pixel count an image's header claims is checked against :func:`engine.io.limits.max_pixels` before any
decoder (Pillow, tifffile, OpenCV) allocates for it: a 600-byte JPEG can claim 13000 x 13000 pixels.
"""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, UnidentifiedImageError

from engine.errors import CorruptInputError, UnsupportedInputError
from engine.io.icc_input import to_srgb
from engine.io.limits import check_density, check_pixels, quiet_stderr, quiet_tifffile


def read_rgb_image(path: Path, file: Path | None = None) -> tuple[np.ndarray, int]:
    """Encoded sRGB float32 pixels in [0, 1] (H x W x 3) and the EXIF orientation of an image file, read from
    ``file`` when given (the open file, see :func:`engine.io.bounded.pinned`); messages name ``path``.

    Images with an embedded ICC profile are converted to sRGB: 8-bit ones by LittleCMS, 16-bit TIFF and PNG
    files at full precision (:mod:`engine.io.icc_input`); without a profile an image is taken as sRGB. A damaged
    file is one :class:`CorruptInputError`: the decoders' warnings (Pillow's Python warnings, tifffile's log,
    what libpng prints) are kept off stderr.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _read(path, file or path)


def _read(path: Path, file: Path) -> tuple[np.ndarray, int]:
    try:
        with warnings.catch_warnings():
            # Pillow warns above 89 MP and refuses above 179 MP; the engine's own limit is checked instead.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(file)
    except Image.DecompressionBombError as e:
        size = _claimed_size(file)
        if size is not None:
            check_pixels(path, *size)
        claim = f"{size[0]} x {size[1]} pixels" if size else "more pixels"
        raise UnsupportedInputError(f"{path}: the image claims {claim}, more than Pillow decodes (over "
                                    f"{2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6:.0f} MP)") from e
    except UnidentifiedImageError as e:
        raise UnsupportedInputError(f"{path}: not an image format hostplug reads") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise CorruptInputError(f"{path}: the image data cannot be read ({e}); the file may be damaged") from e
    try:
        with im:
            width, height = im.size
            check_pixels(path, width, height)
            check_density(path, width, height, file.stat().st_size)
            orientation = orientation_of(im)
            high = _read_16bit(path, file)
            icc = im.info.get("icc_profile")
            if high is not None:
                return (to_srgb(high, icc, str(path)) if icc else high), orientation
            rgb = im.convert("RGB")
            if icc:
                srgb = ImageCms.createProfile("sRGB")
                rgb = ImageCms.profileToProfile(rgb, ImageCms.ImageCmsProfile(io.BytesIO(icc)), srgb) or rgb
            return np.asarray(rgb, dtype=np.float32) / 255.0, orientation
    except (OSError, SyntaxError, ValueError, ArithmeticError, ImageCms.PyCMSError, Image.DecompressionBombError,
            struct.error, IndexError, KeyError, TypeError, MemoryError,
            RuntimeError) as e:  # imagecodecs' errors: RuntimeError
        message = " ".join(str(e).split())[:200] or type(e).__name__
        raise CorruptInputError(f"{path}: the image data cannot be read ({message}); the file may be "
                                "damaged") from e


def _claimed_size(path: Path) -> tuple[int, int] | None:
    """Width and height from the header of a JPEG, PNG or TIFF, read by Pillow's format plug-ins without the
    check ``Image.open`` makes (which gives no size when it refuses)."""
    try:
        with path.open("rb") as fp:
            prefix = fp.read(16)
            for name in ("JPEG", "PNG", "TIFF"):
                factory, accept = Image.OPEN[name]
                if accept is None or accept(prefix):
                    fp.seek(0)
                    width, height = factory(fp, str(path)).size
                    return int(width), int(height)
    except Exception:  # noqa: BLE001 - only for the message; without a size it says "more pixels"
        return None
    return None


def orientation_of(im: Image.Image) -> int:
    """The EXIF orientation, 1 (as stored) when the file has none or a value outside 1..8."""
    try:
        value = int(im.getexif().get(0x0112, 1) or 1)
    except (TypeError, ValueError, OverflowError, OSError, SyntaxError, struct.error):
        return 1
    return value if 1 <= value <= 8 else 1


def _read_16bit(path: Path, file: Path) -> np.ndarray | None:
    """16-bit TIFF or PNG pixels of ``file`` (named ``path``) as float32, or None when it holds 8-bit data
    (Pillow reads those)."""
    suffix = path.suffix.lower()
    data: np.ndarray | None
    if suffix in (".tif", ".tiff"):
        import tifffile

        with quiet_tifffile(), tifffile.TiffFile(file) as tif:
            page = tif.pages.first
            check_pixels(path, int(page.imagewidth), int(page.imagelength))
            data = page.asarray() if len(tif.pages) > 1 else tif.asarray()
    elif suffix == ".png":
        import cv2

        with quiet_stderr():  # libpng prints its errors itself
            data = cv2.imread(str(file), cv2.IMREAD_UNCHANGED)
        if data is None:
            return None
        data = data[..., 2::-1] if data.ndim == 3 else data
    else:
        return None
    if data.dtype == np.uint8:
        return None
    if data.ndim == 2:
        data = np.repeat(data[..., None], 3, axis=2)
    scale = 65535.0 if data.dtype == np.uint16 else 1.0
    return np.ascontiguousarray(data[..., :3], dtype=np.float32) / scale
