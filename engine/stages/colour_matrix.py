"""Stage 3b: white-balanced camera RGB to the linear working space (linear sRGB primaries, D65).

The matrix follows the DNG specification: colour matrices (or forward matrices) interpolated in inverse colour
temperature at the white the previous stage chose. Values outside [0, 1] are kept: the tone stage decides
what to do with highlight headroom.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import cv2
import numpy as np

from engine import kernels, tiling
from engine.calibration import balanced_camera_to_linear_srgb
from engine.stages.base import Context, Pixels, Stage
from engine.stages.white_balance import calibration_of


@dataclass(frozen=True)
class ColourParams:
    """``matrix`` (3x3, row-major) pins the camera-to-working-space matrix instead of deriving it; ``adaptation``
    is how the chromatic adaptation from the white to D50 treats a white far off the daylight locus: "pinned" as
    the DNG SDK pins it (version 2), "unbounded" as version 1 did (see :func:`engine.colour.bradford_adaptation`)."""

    VERSION: ClassVar[int] = 2
    matrix: tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]] | None = None
    adaptation: Literal["pinned", "unbounded"] = "pinned"


class ColourMatrix(Stage):
    """Apply the interpolated camera matrix; the baseline exposure of DNGs is applied here too."""

    name = "colour"
    implementation = "dng"
    Params = ColourParams

    @classmethod
    def migrate(cls, params: dict[str, Any], version: int) -> dict[str, Any]:
        """Version 1 adapted every white without bounds: its recipes render as they did."""
        return {"adaptation": "unbounded", **params} if version < 2 else params

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
        ctx.notes["colour"] = {
            "matrix": [[round(float(v), 6) for v in row] for row in matrix],
            "origin": calibration_of(ctx).origin,
            "baseline_exposure": ctx.source.baseline_exposure,
        }
        matrix = (matrix * 2.0 ** ctx.source.baseline_exposure).astype(np.float32)
        if kernels.on_torch(ctx.device):
            return image @ kernels.to_device(matrix.T, str(image.device))
        # In place, a band at a time: OpenCV's own in-place transform copies the whole image first.
        return tiling.per_pixel(image, lambda rows: cv2.transform(rows, matrix))
