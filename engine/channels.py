"""Per-channel arithmetic on (..., 3) images, in place, at numpy's full speed.

numpy broadcasts three per-channel values over an (H, W, 3) array with an inner loop of three elements, which
runs several times slower than a loop along a row: white-balancing an 18 MP image took 182 ms that way and 22 ms
as rows of R, G, B values against the values repeated along a row (one tile's noise map: 22 against 6.5 ms).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _along_rows(values: Sequence[float] | np.ndarray, rows: np.ndarray) -> np.ndarray:
    channels = np.asarray(values, dtype=rows.dtype).ravel()
    return np.tile(channels, rows.shape[1] // len(channels))


def scale_channels(image: np.ndarray, factors: Sequence[float] | np.ndarray,
                   offsets: Sequence[float] | np.ndarray | None = None) -> np.ndarray:
    """``image * factors + offsets`` per channel (the last axis), in place; returns ``image``."""
    if not image.flags.c_contiguous or image.ndim < 2:  # a view that rows would copy: broadcast instead
        image *= np.asarray(factors, dtype=image.dtype)
        if offsets is not None:
            image += np.asarray(offsets, dtype=image.dtype)
        return image
    rows = image.reshape(len(image), -1)
    rows *= _along_rows(factors, rows)
    if offsets is not None:
        rows += _along_rows(offsets, rows)
    return image
