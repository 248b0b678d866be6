"""Full-resolution work in bands of rows, so that a big raw never needs a second full-size float image.

A 61 MP image is 737 MB as float32 RGB. The pipeline keeps one such image, and every full-resolution stage
rewrites it in place, or band by band (:data:`TILE_ROWS` rows at a time) with only band-sized buffers:

* per-pixel work needs no overlap: white balance and guided upsampling's slicing write in place, the colour
  matrix goes through :func:`per_pixel` (OpenCV's own in-place transform copies the image), and the output
  writer converts to integers a band at a time;
* neighbourhood work (demosaic, classical denoise, the detail stages) reads ``halo`` rows above and below each
  band. :func:`rewrite_in_bands` computes band *k* before it writes band *k - 1* back, so every band still reads
  the original rows of its neighbours; the result equals one pass over the whole image.

The learned denoiser bands itself (:func:`engine.models.denoise_tiles.denoise_image`: network tiles in bands written
back in place, since its low-frequency restore reaches into the next band). Not tiled: the LibRaw demosaic of
X-Trans and 4-colour sensors.

Stages that need the whole image for a decision (a white-balance estimate, the denoiser's chroma map) make it
first, then apply it in bands. :func:`process` is the pipeline's hook: it runs a stage that :data:`BAND_HALOS`
knows is band-safe on overlapping bands (bit for bit what one pass gives, or within float rounding for the
networks), and any other stage on the whole image. On a GPU (:func:`engine.kernels.on_torch`) stages take the
whole image in one pass.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # kept out of the import, so the output writer can use bands without loading the stages
    from engine.stages.base import Context, Stage

TILE_ROWS = 512  # rows per band: 9600 px wide, a float32 RGB band is 59 MB


def bands(height: int, rows: int | None = None) -> list[tuple[int, int]]:
    """``(start, end)`` row spans of about ``rows`` (default :data:`TILE_ROWS`) covering ``height``.

    ``rows`` is rounded up to a multiple of 16: a Bayer mosaic keeps its phase in every band, and each band starts
    where OpenCV's and numpy's vector loops over the whole image would start a vector, so per-pixel work gives the
    same bits in bands as in one pass.
    """
    rows = -(-(rows or TILE_ROWS) // 16) * 16
    return [(start, min(start + rows, height)) for start in range(0, height, rows)]


def per_pixel(image: np.ndarray, operation: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Replace ``image`` (in place) by ``operation`` (per pixel, returning a new array) applied band by band.

    Each band is given one row more than it keeps, so the end of the vector loop, whose scalar code may round
    differently, falls where it falls in one pass over the whole image: on the last pixels.
    """
    height = image.shape[0]
    return rewrite_in_bands(image, lambda start, end: operation(image[start:min(end + 1, height)])[:end - start],
                            halo=1)


@contextlib.contextmanager
def tile_rows(rows: int) -> Iterator[None]:
    """Use bands of ``rows`` rows inside the block (tests force small tiles on small images with it)."""
    global TILE_ROWS
    saved, TILE_ROWS = TILE_ROWS, rows
    try:
        yield
    finally:
        TILE_ROWS = saved


def rewrite_in_bands(image: np.ndarray, band: Callable[[int, int], np.ndarray], halo: int) -> np.ndarray:
    """Replace ``image`` (in place) by ``band(start, end)`` for each span of :func:`bands`; returns ``image``.

    ``band`` may read rows ``start - halo`` to ``end + halo`` of ``image`` and must return new rows
    ``start:end``; it sees only original rows, because each band is written back only after the next one is
    computed (``halo`` must not exceed a band's height, so bands are made at least that high).
    """
    spans = bands(image.shape[0], max(TILE_ROWS, halo))
    pending: tuple[int, int, np.ndarray] | None = None
    for start, end in spans:
        rows = band(start, end)
        if pending is not None:
            image[pending[0]:pending[1]] = pending[2]
        pending = (start, end, rows)
    if pending is not None:
        image[pending[0]:pending[1]] = pending[2]
    return image


def _detail_halo(data: dict[str, Any]) -> int:
    """Rows of context the detail stages need: OpenCV's Gaussian reaches 4 sigma, a network its ``halo``. Rounded
    up to a multiple of 8, so a band read from ``start - halo`` keeps a packing network's 2 x 2 (up to 8 x 8) grid."""
    rows = max(math.ceil(4.0 * data.get("radius", 1.0)) + 2, int(data.get("halo", 0)))
    return -(-rows // 8) * 8


# Stages that give the same pixels run on overlapping bands as on the whole image, with the halo each needs
# (from its prepared data). The classical detail stage blurs band copies; the learned one gives its network's.
BAND_HALOS: dict[tuple[str, str], Callable[[Any], int]] = {
    ("detail", "classical"): _detail_halo,
    ("detail", "learned"): lambda data: data["halo"],  # the network's own (engine.models.detail_net)
}


def process(stage: Stage, image: np.ndarray, data: Any, ctx: Context) -> np.ndarray:
    """``stage.process`` on overlapping bands when :data:`BAND_HALOS` lists it and the image is taller than a
    band; otherwise on the whole image."""
    from engine import kernels  # here, not at the top: writing a file bands its work too, and needs no numba

    halo_of = BAND_HALOS.get((stage.name, stage.implementation))
    if halo_of is None or image.ndim != 3 or image.shape[0] <= TILE_ROWS or kernels.on_torch(ctx.device):
        return stage.process(image, data, ctx)  # a GPU takes the whole image in one pass
    halo = halo_of(data)
    height = image.shape[0]

    def band(start: int, end: int) -> np.ndarray:
        top, bottom = max(0, start - halo), min(height, end + halo)
        # A copy: stages may work in place on what they are given, and the next band reads these rows.
        result = stage.process(image[top:bottom].copy(), data, ctx)
        return result[start - top:end - top]

    return rewrite_in_bands(image, band, halo)
