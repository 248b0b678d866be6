"""DNG WarpRectilinear opcodes: the lens-distortion (and lateral colour) correction that phones, drones and Adobe's
DNG Converter store in OpcodeList3, which LibRaw ignores.

A phone's wide lens bends straight lines; its DNG carries, per colour plane, a radial polynomial and two
tangential terms that say where each corrected pixel's light fell on the sensor. The mapping follows the DNG
SDK (``dng_filter_warp::GetSrcPixelPosition``): pixel ``(row, col)`` at integer coordinates, the optical centre
at ``cx``, ``cy`` of the image's bounds, distances normalised by the centre's distance to the farthest corner,
``r^2`` capped at 1::

    ratio = kr0 + kr1 r^2 + kr2 r^4 + kr3 r^6
    tangential (normalised): dv' = kt0 (r^2 + 2 dv^2) + 2 kt1 dh dv,  dh' = kt1 (r^2 + 2 dh^2) + 2 kt0 dh dv
    source = centre + R (d ratio + d')

and the image is resampled there (bicubic, clamped at the edges). Unlike the SDK, the result is not pinned to
0..1: the denoiser comes after, and clipping the noise about black would lift it.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np

RATIO_RANGE = (0.2, 5.0)  # the DNG SDK's safe radial ratios: a warp outside them is damage, not a lens


@dataclass(frozen=True)
class RectilinearWarp:
    """One WarpRectilinear opcode: per plane (kr0, kr1, kr2, kr3, kt0, kt1), and the optical centre."""

    coefficients: tuple[tuple[float, ...], ...]  # one 6-tuple per plane (1 plane: the same for every plane)
    centre: tuple[float, float]  # (horizontal, vertical), as fractions of the image's width and height

    def source_positions(self, rows: range, size: tuple[int, int], plane: int) -> tuple[np.ndarray, np.ndarray]:
        """Where the light of each pixel of ``rows`` (every column) of an image of ``size`` (H, W) fell: the
        (x, y) source coordinates, float32 (len(rows), W) each.

        The formula is worked out every :data:`POSITION_STEP` pixels and the shift it makes interpolated
        linearly between (the mapping is smooth): on a 1000 x 1500 picture within 0.003 px of the formula at
        every pixel for a phone-like distortion, 0.02 px for a strong one; a 12 MP picture's positions for three
        planes took 0.62 s instead of 1.05 s (same run).
        """
        step, width = POSITION_STEP, size[1]
        y = rows.start + step * np.arange(-(-len(rows) // step) + 1, dtype=np.float64)
        x = step * np.arange(-(-width // step) + 1, dtype=np.float64)
        source_x, source_y = self.source_of(x[None, :], y[:, None], size, plane, outside=True)
        return (_enlarged(source_x - x[None, :], len(rows), width) + np.arange(width, dtype=np.float32)[None, :],
                _enlarged(source_y - y[:, None], len(rows), width)
                + np.arange(rows.start, rows.stop, dtype=np.float32)[:, None])

    def source_of(self, x: np.ndarray, y: np.ndarray, size: tuple[int, int], plane: int,
                  outside: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The source coordinates (x, y) of corrected positions ``x``, ``y`` (arrays that broadcast) on
        ``plane``, in their precision. The SDK caps ``r^2`` at 1, which no pixel of the image passes;
        ``outside`` lifts the cap, for positions beyond the image that only steer an interpolation."""
        height, width = size
        kr0, kr1, kr2, kr3, kt0, kt1 = self.coefficients[min(plane, len(self.coefficients) - 1)]
        cx, cy = self.centre[0] * width, self.centre[1] * height
        radius = math.hypot(max(cx, width - cx), max(cy, height - cy))  # to the farthest corner
        dh, dv = (x - cx) / radius, (y - cy) / radius
        r2 = dv * dv + dh * dh if outside else np.minimum(dv * dv + dh * dh, 1.0)
        ratio = kr0 + r2 * (kr1 + r2 * (kr2 + r2 * kr3))
        source_x = cx + radius * (dh * ratio + kt1 * (r2 + 2 * dh * dh) + 2 * kt0 * dh * dv)
        source_y = cy + radius * (dv * ratio + kt0 * (r2 + 2 * dv * dv) + 2 * kt1 * dh * dv)
        return source_x, source_y

    def apply(self, image: np.ndarray, band_rows: int = 256) -> np.ndarray:
        """The corrected image (a new H x W x C float32 array), resampled a band of rows at a time."""
        import cv2  # here: opening a file (``hostplug info``) needs no OpenCV

        height, width = image.shape[:2]
        out = np.empty_like(image)
        # planes with the same coefficients (all of them, for a one-plane warp) share their positions
        groups: dict[tuple[float, ...], list[int]] = {}
        for plane in range(image.shape[2]):
            groups.setdefault(self.coefficients[min(plane, len(self.coefficients) - 1)], []).append(plane)
        for start in range(0, height, band_rows):
            rows = range(start, min(start + band_rows, height))
            for planes in groups.values():
                x, y = self.source_positions(rows, (height, width), planes[0])
                top = max(int(np.floor(y.min())) - 2, 0)  # the source rows this band reads, with bicubic's reach
                bottom = max(min(int(np.ceil(y.max())) + 3, height), top + 1)
                source = np.ascontiguousarray(image[top:bottom][..., planes])
                resampled = cv2.remap(source, np.ascontiguousarray(x), y - np.float32(top), cv2.INTER_CUBIC,
                                      borderMode=cv2.BORDER_REPLICATE)
                out[rows.start : rows.stop][..., planes] = resampled.reshape(len(rows), width, len(planes))
        return out


POSITION_STEP = 8  # pixels between the positions a warp works out exactly (RectilinearWarp.source_positions)


def _enlarged(coarse: np.ndarray, height: int, width: int) -> np.ndarray:
    """Values at every :data:`POSITION_STEP`-th row and column (one more each way than they cover) linearly
    interpolated to each of ``height`` x ``width`` pixels: float32."""
    step = POSITION_STEP
    coarse = coarse.astype(np.float32)
    cols = np.arange(width)
    along = ((cols % step) / step).astype(np.float32)
    across = coarse[:, cols // step] * (1 - along) + coarse[:, cols // step + 1] * along  # (coarse rows, width)
    down = (np.arange(step, dtype=np.float32) / step)[None, :, None]
    blocks = across[:-1, None, :] + down * (across[1:] - across[:-1])[:, None, :]  # (coarse rows - 1, step, width)
    return blocks.reshape(-1, width)[:height]


def parse(params: bytes) -> RectilinearWarp:
    """A WarpRectilinear opcode's parameters (DNG 1.3, big-endian); ValueError says what is wrong with them."""
    if len(params) < 4:
        raise ValueError(f"a WarpRectilinear opcode of {len(params)} bytes")
    (planes,) = struct.unpack_from(">I", params)
    if not 1 <= planes <= 4 or len(params) != 4 + 48 * planes + 16:
        raise ValueError(f"a WarpRectilinear of {planes} planes in {len(params)} bytes (1 to 4 planes, "
                         "48 bytes each and 20 more)")
    values = struct.unpack_from(f">{6 * planes + 2}d", params, 4)
    coefficients = tuple(tuple(values[6 * p : 6 * p + 6]) for p in range(planes))
    centre = (values[-2], values[-1])
    if not all(math.isfinite(v) and abs(v) <= 1e3 for v in values) or not all(0 <= c <= 1 for c in centre):
        raise ValueError(f"WarpRectilinear coefficients {_show(values)} (finite; the centre within the image)")
    for kr0, kr1, kr2, kr3, *_ in coefficients:
        r2 = np.linspace(0.0, 1.0, 101)
        ratio = kr0 + r2 * (kr1 + r2 * (kr2 + r2 * kr3))
        if not (RATIO_RANGE[0] <= ratio.min() and ratio.max() <= RATIO_RANGE[1]):
            raise ValueError(f"a WarpRectilinear whose radial ratio reaches {ratio.min():.3g}..{ratio.max():.3g} "
                             f"(a lens stays within {RATIO_RANGE[0]:g}..{RATIO_RANGE[1]:g})")
    return RectilinearWarp(coefficients, centre)


def encode(warp: RectilinearWarp) -> bytes:
    """The opcode parameters of ``warp`` (the inverse of :func:`parse`; tests and the synthetic DNG writer)."""
    values = [v for plane in warp.coefficients for v in plane] + list(warp.centre)
    return struct.pack(f">I{len(values)}d", len(warp.coefficients), *values)


def _show(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in values[:8]) + (", ...)" if len(values) > 8 else ")")
