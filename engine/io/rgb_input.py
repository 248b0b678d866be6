"""Reading display-referred inputs (JPEG, PNG, TIFF) so styles and adjustments apply to them too.

The pixel count an image's header claims is checked against :func:`engine.io.limits.max_pixels` before any
decoder (Pillow, tifffile, OpenCV) allocates for it: a 600-byte JPEG can claim 13000 x 13000 pixels.
"""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageCms, UnidentifiedImageError

from engine.errors import CorruptInputError, UnsupportedInputError
from engine.io.formats import PNG_START, starts_as_tiff
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
        if path.suffix.lower() in (".tif", ".tiff"):
            _refuse_tiff(path, file)
        raise UnsupportedInputError(f"{path}: not an image format hostplug reads") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise CorruptInputError(f"{path}: the image data cannot be read ({e}); the file may be damaged") from e
    try:
        with im:
            width, height = im.size
            check_pixels(path, width, height)
            check_density(path, width, height, file.stat().st_size)
            orientation = orientation_of(im)
            high = _read_16bit(path, file, im.format)  # by content: a JPEG named .tif is a JPEG (a re-tester's)
            icc = im.info.get("icc_profile")
            if high is not None:
                return (to_srgb(high, icc, str(path)) if icc else high), orientation
            rgb = im.convert("RGB")
            if icc:
                srgb = ImageCms.createProfile("sRGB")
                rgb = ImageCms.profileToProfile(rgb, ImageCms.ImageCmsProfile(io.BytesIO(icc)), srgb) or rgb
            pixels = np.asarray(rgb, dtype=np.float32)
            del rgb
            return np.divide(pixels, np.float32(255.0), out=pixels), orientation  # in place, as _read_16bit
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


_GREY = (0, 1)  # TIFF photometric interpretations: white is zero, black is zero
_READ_PHOTOMETRICS = {0: "grey", 1: "grey", 2: "RGB"}


def _check_tiff_layout(path: Path, page: Any) -> None:
    """UnsupportedInputError for a TIFF of more than 8 bits that is not 16-bit unsigned RGB or grey (CMYK, CIELab,
    YCbCr, a palette, floating point, 32-bit or signed integers): read as RGB, it would be a wrong picture, not an
    error."""
    photometric = int(page.photometric)
    if page.dtype is None:  # a sample format and bit depth numpy has no type for (tifffile gives None)
        raise CorruptInputError(f"{path}: the TIFF's samples ({page.bitspersample} bits) are of no type an image "
                                "has; the file may be damaged")
    if photometric not in _READ_PHOTOMETRICS or page.dtype != np.uint16:
        kind = {3: "palette", 5: "CMYK", 6: "YCbCr", 8: "CIELab", 9: "ICC Lab", 10: "ITU Lab",
                **_READ_PHOTOMETRICS}.get(photometric, "colour")
        number = {"f": "floating-point ", "i": "signed "}.get(page.dtype.kind, "")
        raise UnsupportedInputError(f"{path}: a {page.bitspersample}-bit {number}{kind} TIFF; hostplug reads 8- and "
                                    "16-bit RGB or grey TIFFs (save it as one in an image editor)")


def _refuse_tiff(path: Path, file: Path) -> None:
    """Say what a TIFF that Pillow does not open holds, when tifffile can tell (a floating-point one, say)."""
    import tifffile

    try:
        with quiet_tifffile(), tifffile.TiffFile(file) as tif:
            page = tif.pages.first
            _check_tiff_layout(path, page)
            layout = f"{page.bitspersample}-bit {_READ_PHOTOMETRICS[int(page.photometric)]}, " \
                     f"{page.samplesperpixel} samples a pixel"
    except UnsupportedInputError:
        raise
    except Exception as e:  # noqa: BLE001 - not a TIFF tifffile reads either
        if starts_as_tiff(file):  # a damaged TIFF, not another format
            raise CorruptInputError(f"{path}: damaged TIFF: its image directory cannot be read "
                                    f"({type(e).__name__}); the file may be truncated or damaged") from e
        return  # the caller's message stands
    raise UnsupportedInputError(f"{path}: a TIFF of a layout hostplug does not read ({layout}); save it as an 8- "
                                "or 16-bit RGB or grey TIFF")


def _read_16bit(path: Path, file: Path, kind: str | None) -> np.ndarray | None:
    """16-bit TIFF or PNG pixels of ``file`` (named ``path``; ``kind``: Pillow's name of its format) as float32,
    or None when it holds 8-bit data (Pillow reads those)."""
    data: np.ndarray | None
    if kind == "TIFF":
        import tifffile

        with quiet_tifffile(), tifffile.TiffFile(file) as tif:
            page = tif.pages.first
            check_pixels(path, int(page.imagewidth), int(page.imagelength))
            if page.dtype == np.uint8:
                return None
            _check_tiff_layout(path, page)
            data = page.asarray() if len(tif.pages) > 1 else tif.asarray()
            if int(page.planarconfig) == tifffile.PLANARCONFIG.SEPARATE and page.samplesperpixel > 1:
                data = np.moveaxis(data, -3, -1)  # planes of samples to pixels of samples
            if int(page.photometric) in _GREY and data.ndim == 3:
                data = data[..., 0]  # grey and its alpha
            if int(page.photometric) == tifffile.PHOTOMETRIC.MINISWHITE:
                data = np.iinfo(data.dtype).max - data  # (16-bit unsigned: _check_tiff_layout)
    elif kind == "PNG":
        import cv2

        with open(file, "rb") as f:  # IHDR's bit depth: an 8-bit PNG is Pillow's, not decoded here first
            head = f.read(25)
            if head.startswith(PNG_START) and head[24:25] in (b"\x01", b"\x02", b"\x04", b"\x08"):
                return None
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
    pixels = np.ascontiguousarray(data[..., :3], dtype=np.float32)
    del data
    return np.divide(pixels, np.float32(scale), out=pixels)  # in place: one float copy of a big image, not two
