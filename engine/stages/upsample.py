"""Stage 5: bring the low-resolution photofinished image back to full resolution.

Bilateral guided upsampling (Chen et al. 2016): fit, in each cell of a grid over position and intensity, the
3x4 affine colour transform that maps the low-resolution input to the low-resolution output, then apply the
sliced transforms to every full-resolution input pixel. The expensive stages never see full resolution, yet
edges stay sharp because the transforms follow the full-resolution intensity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import cv2
import numpy as np

from engine import kernels
from engine.colour import LUMA
from engine.stages.base import Context, Pixels, Stage


@dataclass(frozen=True)
class UpsampleParams:
    """Grid size: cells along the long side, intensity bins; ``smoothness`` regularises sparse cells."""

    VERSION: ClassVar[int] = 1
    cells: int = field(default=24, metadata={"range": (1, 512)})
    bins: int = field(default=8, metadata={"range": (2, 256)})  # a linear model per bin needs two to span
    smoothness: float = field(default=1e-3, metadata={"range": (0.0, 1e3)})


def fit_grid(low_in: np.ndarray, low_out: np.ndarray, params: UpsampleParams,
             device: str = "cpu") -> tuple[np.ndarray, float]:
    """Per-cell affine models (gh, gw, gd, 12) and the intensity scale the grid's bins span (the normal equations
    summed on ``device``)."""
    h, w = low_in.shape[:2]
    long_side = max(h, w)
    gh = max(2, round(params.cells * h / long_side) + 1)
    gw = max(2, round(params.cells * w / long_side) + 1)
    lum = np.sqrt(np.maximum(low_in, 0)) @ np.array(LUMA, dtype=np.float32)
    zmax = float(np.percentile(lum, 99.9))
    zmax = zmax if math.isfinite(zmax) and zmax > 1e-3 else 1e-3  # max(nan, 1e-3) would stay NaN
    if kernels.on_torch(device):
        ata, atb = kernels.bgu_accumulate_torch(low_in.astype(np.float32), low_out.astype(np.float32),
                                                gh, gw, params.bins, zmax, device)
    else:
        ata, atb = kernels.bgu_accumulate(low_in.astype(np.float32), low_out.astype(np.float32),
                                          gh, gw, params.bins, zmax)
    # Sparse cells borrow from the affine model of their whole intensity bin, itself regularised towards
    # a global fit, so that no cell is left undetermined.
    eye = np.eye(4)
    global_x = np.linalg.solve(ata.sum(axis=(0, 1, 2)) + 1e-6 * eye, atb.sum(axis=(0, 1, 2)))
    bin_ata, bin_atb = ata.sum(axis=(0, 1)), atb.sum(axis=(0, 1))
    bin_x = np.linalg.solve(bin_ata + 1e-3 * eye, bin_atb + 1e-3 * global_x)
    weight = params.smoothness * max(h * w / (gh * gw * params.bins), 1.0)
    cell_x = np.linalg.solve(ata + weight * eye, atb + weight * bin_x[None, None])
    return np.ascontiguousarray(cell_x.transpose(0, 1, 2, 4, 3).reshape(gh, gw, params.bins, 12),
                                dtype=np.float32), zmax


def _pipeline_input(image: Pixels | None) -> Pixels:
    """The low- or full-resolution input the pipeline keeps for this stage (before the first low stage ran)."""
    if image is None:
        raise RuntimeError("upsampling needs the pipeline's low- and full-resolution inputs")
    return image


class BilateralGuidedUpsample(Stage):
    """Fit on the low-resolution pair, apply at full resolution."""

    name = "upsample"
    implementation = "bilateral"
    Params = UpsampleParams
    can_disable = False
    encoding = "display"  # it brings the display-encoded photofinish result back to full resolution

    def prepare(self, params: UpsampleParams, ctx: Context) -> dict[str, Any]:
        return {"params": params}

    def process(self, image: Pixels, data: dict[str, Any], ctx: Context) -> Pixels:
        grid, zmax = fit_grid(_pipeline_input(ctx.low_input), image, data["params"], ctx.device)
        # Each pixel reads only itself, so the result can overwrite the full-resolution input, which no later
        # stage needs (a fresh 18 MP buffer costs more in page faults than the slicing).
        full, ctx.full_input = _pipeline_input(ctx.full_input), None
        if kernels.on_torch(ctx.device):
            return kernels.bgu_apply_torch(full, grid, zmax)
        kernels.bgu_apply(full, grid, zmax, full)
        return full


class BilinearUpsample(Stage):
    """Plain resize of the low-resolution result: for comparison and for debugging the guided one."""

    name = "upsample"
    implementation = "bilinear"
    Params = UpsampleParams
    can_disable = False
    encoding = "display"

    def prepare(self, params: UpsampleParams, ctx: Context) -> dict[str, Any]:
        return {}

    def process(self, image: Pixels, data: dict[str, Any], ctx: Context) -> Pixels:
        h, w = _pipeline_input(ctx.full_input).shape[:2]
        return cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
