"""The picture's area within a raw's sensor where the file names one that is not all of it.

A DNG names it in its DefaultCrop (:func:`engine.io.source.picture_crop`); other raws in their maker's tags, which
LibRaw reads (:func:`camera_crop`). Kept apart from :mod:`engine.io.source` so that a thumbnail can give the size a
render makes without loading the decoder.
"""

from __future__ import annotations

from typing import Any

CROP_MIN = 16  # pixels a side: a crop that keeps less is damage, not a picture
# What a camera trims at the sensor's edges, which its JPEG leaves out (the Sony a7R III: 8 of 5184 pixels). An
# in-camera aspect ratio (a Canon's 1:1) cuts far more, from an origin LibRaw reads per maker and no sample here
# confirms: it is not applied.
BORDER_MAX = 0.02  # of a side, on each edge


def camera_crop(sizes: Any, size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """The picture area (top, left, height, width) that LibRaw reads from a raw's maker tags (its first
    ``raw_inset_crops``, rawpy's ``crop_*``), within the visible sensor of ``size``: the margins a camera leaves
    out of its own JPEG. LibRaw counts it from the whole raw, margins included. None when it names none (0, or
    65535 for unknown), keeps all of it, does not fit (a damaged or misread tag), or cuts more than a border
    (:data:`BORDER_MAX`)."""
    height, width = int(getattr(sizes, "crop_height", 0)), int(getattr(sizes, "crop_width", 0))
    top = int(getattr(sizes, "crop_top_margin", 0)) - int(getattr(sizes, "top_margin", 0))
    left = int(getattr(sizes, "crop_left_margin", 0)) - int(getattr(sizes, "left_margin", 0))
    if min(height, width) < CROP_MIN or top < 0 or left < 0 or top + height > size[0] or left + width > size[1]:
        return None
    trims = (top / size[0], (size[0] - top - height) / size[0], left / size[1], (size[1] - left - width) / size[1])
    if max(trims) > BORDER_MAX:
        return None
    return None if (height, width) == size else (top, left, height, width)
