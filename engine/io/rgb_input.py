"""Reading display-referred inputs (JPEG, PNG, TIFF) so styles and adjustments apply to them too."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, UnidentifiedImageError

from engine.errors import CorruptInputError, UnsupportedInputError


def read_rgb_image(path: Path) -> tuple[np.ndarray, int]:
    """Encoded sRGB float32 pixels in [0, 1] (H x W x 3) and the EXIF orientation of an image file.

    8-bit images with an embedded ICC profile are converted to sRGB; 16-bit TIFF and PNG files are read at
    full precision and taken as sRGB.
    """
    try:
        with Image.open(path) as im:
            orientation = int(im.getexif().get(0x0112, 1) or 1)
            high = _read_16bit(path)
            if high is not None:
                return high, orientation
            icc = im.info.get("icc_profile")
            rgb = im.convert("RGB")
            if icc:
                srgb = ImageCms.createProfile("sRGB")
                rgb = ImageCms.profileToProfile(rgb, ImageCms.ImageCmsProfile(io.BytesIO(icc)), srgb) or rgb
            return np.asarray(rgb, dtype=np.float32) / 255.0, orientation
    except UnidentifiedImageError as e:
        raise UnsupportedInputError(f"{path}: not an image format hostplug reads") from e
    except (OSError, SyntaxError, ValueError, ImageCms.PyCMSError) as e:
        raise CorruptInputError(f"{path}: the image data cannot be read ({e}); the file may be damaged") from e


def _read_16bit(path: Path) -> np.ndarray | None:
    """16-bit TIFF or PNG pixels as float32, or None when the file holds 8-bit data (Pillow reads those)."""
    suffix = path.suffix.lower()
    data: np.ndarray | None
    if suffix in (".tif", ".tiff"):
        import tifffile

        data = tifffile.imread(path)
    elif suffix == ".png":
        import cv2

        data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
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
