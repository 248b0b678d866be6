"""Stage 3b: white-balanced camera RGB to the linear working space (linear sRGB primaries, D65).

The matrix follows the DNG specification: colour matrices (or forward matrices) interpolated in inverse colour
temperature at the white the previous stage chose. Values above 1 are kept: the tone stage decides what to do
with highlight headroom. A raw's colours beyond the working space's gamut (negative components: a blue LED, a
neon sign) are compressed into it (:mod:`engine.gamut`) since params version 3.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import cv2
import numpy as np

from engine import gamut, kernels, tiling
from engine.calibration import balanced_camera_to_linear_srgb
from engine.stages.base import Context, Pixels, Stage
from engine.stages.white_balance import calibration_of


@dataclass(frozen=True)
class ColourParams:
    """``matrix`` (3x3, row-major) pins the camera-to-working-space matrix instead of deriving it; ``adaptation``
    is how the chromatic adaptation from the white to D50 treats a white far off the daylight locus: "pinned" as
    the DNG SDK pins it (version 2), "unbounded" as version 1 did (see :func:`engine.colour.bradford_adaptation`);
    ``gamut`` "compressed" brings colours beyond the working space's gamut inside it (version 3,
    :mod:`engine.gamut`), "unbounded" leaves them to be clipped later, as versions 1 and 2 did."""

    VERSION: ClassVar[int] = 3
    matrix: tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]] | None = None
    adaptation: Literal["pinned", "unbounded"] = "pinned"
    gamut: Literal["compressed", "unbounded"] = "compressed"


class ColourMatrix(Stage):
    """Apply the interpolated camera matrix; the baseline exposure of DNGs is applied here too."""

    name = "colour"
    implementation = "dng"
    Params = ColourParams

    @classmethod
    def migrate(cls, params: dict[str, Any], version: int) -> dict[str, Any]:
        """Version 1 adapted every white without bounds, and versions 1 and 2 left colours beyond the gamut
        uncompressed: their recipes render as they did."""
        if version < 2:
            params = {"adaptation": "unbounded", **params}
        if version < 3:
            params = {"gamut": "unbounded", **params}
        return params

    def prepare(self, params: ColourParams, ctx: Context) -> dict[str, Any]:
        return {"params": params}

    def process(self, image: Pixels, data: dict[str, Any], ctx: Context) -> Pixels:
        params: ColourParams = data["params"]
        if params.matrix is not None:
            matrix = np.asarray(params.matrix, dtype=np.float64)
        else:
            if ctx.white is None:
                # Only a caller running stages out of order gets here: the pipeline runs white balance first.
                raise RuntimeError("the colour stage needs the white balance stage's white, or a pinned matrix")
            matrix = balanced_camera_to_linear_srgb(
                calibration_of(ctx), np.asarray(ctx.white.neutral), np.asarray(ctx.white.white_xy),
                pinned_adaptation=params.adaptation == "pinned",
            )
        # an image's colours were brought into sRGB when it was read: only a raw's can lie beyond the gamut (the
        # compression also desaturates a little the most saturated colours inside it, which an image should keep)
        raw = ctx.source.kind == "raw"
        ctx.notes["colour"] = {
            "matrix": [[round(float(v), 6) for v in row] for row in matrix],
            "origin": calibration_of(ctx).origin,
            "baseline_exposure": ctx.source.baseline_exposure,
            "gamut": params.gamut if raw else "image: inside sRGB already",
        }
        matrix = (matrix * 2.0 ** ctx.source.baseline_exposure).astype(np.float32)
        compressing = params.gamut == "compressed" and raw
        if kernels.on_torch(ctx.device):
            linear = image @ kernels.to_device(matrix.T, str(image.device))
            return gamut.compress_torch(linear) if compressing else linear

        def band(rows: np.ndarray) -> np.ndarray:
            linear = cv2.transform(rows, matrix)
            if compressing:
                gamut.compress_in_place(linear)  # while the band is in the cache
            return linear

        # In place, a band at a time: OpenCV's own in-place transform copies the whole image first.
        return tiling.per_pixel(image, band)
