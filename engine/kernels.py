"""Compiled per-pixel loops for the full-resolution stages (numba).

Full-resolution work dominates a render's time. These loops do in one pass what would take many numpy passes,
and run on all cores. Each kernel is plain maths on arrays; the stages decide what to feed them.
Compiled code is cached on disk, so only the very first render on a machine pays for compilation.

Compiled code does not check array bounds, so nothing a file holds may become an index out of range: each
kernel's Python entry checks the shapes and lookup tables it is given (``ValueError`` otherwise), and every
index computed from pixel values inside a kernel is clamped as an integer (:func:`_cell`), so NaN or infinite
pixels give NaN pixels, never a write outside an array.

Debug builds: ``HOSTPLUG_DEBUG_KERNELS=1`` in the environment compiles the kernels with numba's
``boundscheck`` (an ``IndexError`` instead of memory corruption) and without the on-disk cache, so that a
cached build without the checks is not reused. They run several times slower; use them to chase a suspected
out-of-bounds access.
"""

from __future__ import annotations

import os

import numpy as np
from numba import njit, prange

from engine.colour import LUMA

DEBUG_KERNELS = os.environ.get("HOSTPLUG_DEBUG_KERNELS", "") == "1"

_JIT: dict[str, bool] = {"parallel": True, "fastmath": True, "cache": True, "nogil": True}
_PLAIN: dict[str, bool] = {"cache": True}
if DEBUG_KERNELS:
    _JIT.update(cache=False, boundscheck=True)
    _PLAIN.update(cache=False, boundscheck=True)


def _check(condition: bool, kernel: str, what: str) -> None:
    if not condition:
        raise ValueError(f"kernels.{kernel}: {what}")


@njit(cache=not DEBUG_KERNELS, fastmath=False, inline="never")
def _cell(f, top):  # pragma: no cover - compiled
    """``floor(f)`` clamped to ``0..top``, and 0 for NaN: the lower grid cell of a coordinate computed from pixel
    values. Compiled without fastmath, so the NaN test stays, and clamped again as an integer."""
    if not f > 0.0:
        return 0
    if f >= top:
        return top
    i = int(f)
    return min(max(i, 0), top)


@njit(**_JIT)
def _normalize_mosaic(raw, cfa, black, scale, top, out):  # pragma: no cover - compiled
    """Black-subtract and scale mosaic rows ``top - 2`` on into ``out``, which has a 2-pixel border each side.

    The border mirrors the image without repeating the edge (reflect-101), which keeps the CFA phase.
    """
    h, w = raw.shape
    for y in prange(out.shape[0]):
        sy = top + y - 2
        sy = -sy if sy < 0 else (2 * (h - 1) - sy if sy >= h else sy)
        for x in range(w + 4):
            sx = x - 2
            sx = -sx if sx < 0 else (2 * (w - 1) - sx if sx >= w else sx)
            c = cfa[sy & 1, sx & 1]
            out[y, x] = (np.float32(raw[sy, sx]) - black[c]) * scale[c]


@njit(**_JIT)
def _demosaic_mhc(m, cfa, gains, out):  # pragma: no cover - compiled
    """Malvar-He-Cutler (2004) gradient-corrected demosaic of a padded, normalised Bayer mosaic ``m``.

    ``out`` (H x W x 3) receives RGB multiplied per channel by ``gains``.
    """
    h, w = out.shape[0], out.shape[1]
    for y in prange(h):
        py = y + 2
        for x in range(w):
            px = x + 2
            c = cfa[y & 1, x & 1]
            v = m[py, px]
            cross = m[py - 1, px] + m[py + 1, px] + m[py, px - 1] + m[py, px + 1]
            far = m[py - 2, px] + m[py + 2, px] + m[py, px - 2] + m[py, px + 2]
            diag = m[py - 1, px - 1] + m[py - 1, px + 1] + m[py + 1, px - 1] + m[py + 1, px + 1]
            r = g = b = v
            if c == 1:
                far_h = m[py, px - 2] + m[py, px + 2]
                far_v = m[py - 2, px] + m[py + 2, px]
                horiz = m[py, px - 1] + m[py, px + 1]
                vert = m[py - 1, px] + m[py + 1, px]
                # the colour of the horizontal neighbours is interpolated along the row, the other along columns
                along_row = (5.0 * v + 4.0 * horiz - far_h - diag + 0.5 * far_v) * 0.125
                along_col = (5.0 * v + 4.0 * vert - far_v - diag + 0.5 * far_h) * 0.125
                if cfa[y & 1, (x + 1) & 1] == 0:
                    r, b = along_row, along_col
                else:
                    r, b = along_col, along_row
            else:
                g = (4.0 * v + 2.0 * cross - far) * 0.125
                other = (6.0 * v + 2.0 * diag - 1.5 * far) * 0.125
                if c == 0:
                    b = other
                else:
                    r = other
            out[y, x, 0] = r * gains[0]
            out[y, x, 1] = g * gains[1]
            out[y, x, 2] = b * gains[2]


@njit(inline="always")
def _guide_features(r, g, b):  # pragma: no cover - compiled
    """The domain in which guided upsampling fits its affine models: square-root encoded linear RGB."""
    er = np.sqrt(max(r, 0.0))
    eg = np.sqrt(max(g, 0.0))
    eb = np.sqrt(max(b, 0.0))
    return er, eg, eb, LUMA[0] * er + LUMA[1] * eg + LUMA[2] * eb  # numba freezes the global tuple


@njit(**_PLAIN)
def _bgu_accumulate(low_in, low_out, gh, gw, gd, zmax):  # pragma: no cover - compiled
    """Normal equations of a bilateral grid of 3x4 affine models (Chen et al. 2016), splatted trilinearly.

    Returns per-cell A^T A (gh, gw, gd, 4, 4) and A^T B (gh, gw, gd, 4, 3).
    """
    h, w = low_in.shape[0], low_in.shape[1]
    ata = np.zeros((gh, gw, gd, 4, 4))
    atb = np.zeros((gh, gw, gd, 4, 3))
    sy = (gh - 1) / max(h - 1, 1)
    sx = (gw - 1) / max(w - 1, 1)
    feat = np.empty(4)
    for y in range(h):
        fy = y * sy
        y0 = min(int(fy), gh - 2)
        wy = fy - y0
        for x in range(w):
            fx = x * sx
            x0 = min(int(fx), gw - 2)
            wx = fx - x0
            er, eg, eb, lum = _guide_features(low_in[y, x, 0], low_in[y, x, 1], low_in[y, x, 2])
            fz = min(max(lum / zmax, 0.0), 1.0) * (gd - 1)
            z0 = _cell(fz, gd - 2)
            wz = fz - z0
            feat[0] = er
            feat[1] = eg
            feat[2] = eb
            feat[3] = 1.0
            for dy in range(2):
                wyy = wy if dy else 1.0 - wy
                for dx in range(2):
                    wxx = wx if dx else 1.0 - wx
                    for dz in range(2):
                        wt = wyy * wxx * (wz if dz else 1.0 - wz)
                        if wt <= 0.0:
                            continue
                        cy, cx, cz = y0 + dy, x0 + dx, z0 + dz
                        for i in range(4):
                            fi = wt * feat[i]
                            for j in range(4):
                                ata[cy, cx, cz, i, j] += fi * feat[j]
                            for k in range(3):
                                atb[cy, cx, cz, i, k] += fi * low_out[y, x, k]
    return ata, atb


@njit(**_JIT)
def _bgu_apply(img, grid, zmax, out):  # pragma: no cover - compiled
    """Slice the affine grid (gh, gw, gd, 12) at every full-resolution pixel and apply it to that pixel."""
    h, w = img.shape[0], img.shape[1]
    gh, gw, gd = grid.shape[0], grid.shape[1], grid.shape[2]
    sy = (gh - 1) / max(h - 1, 1)
    sx = (gw - 1) / max(w - 1, 1)
    for y in prange(h):
        fy = y * sy
        y0 = min(int(fy), gh - 2)
        wy = fy - y0
        for x in range(w):
            fx = x * sx
            x0 = min(int(fx), gw - 2)
            wx = fx - x0
            er, eg, eb, lum = _guide_features(img[y, x, 0], img[y, x, 1], img[y, x, 2])
            fz = min(max(lum / zmax, 0.0), 1.0) * (gd - 1)
            z0 = _cell(fz, gd - 2)
            wz = fz - z0
            o0 = o1 = o2 = 0.0
            for dy in range(2):
                wyy = wy if dy else 1.0 - wy
                for dx in range(2):
                    wxx = wx if dx else 1.0 - wx
                    for dz in range(2):
                        wt = wyy * wxx * (wz if dz else 1.0 - wz)
                        c = grid[y0 + dy, x0 + dx, z0 + dz]
                        o0 += wt * (c[0] * er + c[1] * eg + c[2] * eb + c[3])
                        o1 += wt * (c[4] * er + c[5] * eg + c[6] * eb + c[7])
                        o2 += wt * (c[8] * er + c[9] * eg + c[10] * eb + c[11])
            out[y, x, 0] = o0
            out[y, x, 1] = o1
            out[y, x, 2] = o2


@njit(**_JIT)
def _denoise_opponent(img, gains, chroma_small, inverse, luma_mix, top, out):  # pragma: no cover - compiled
    """Rebuild each pixel from a lightly blurred luminance and smooth chroma sampled from a small map.

    Pixels are white balanced by ``gains`` on the way in and un-balanced on the way out, so that a luminance
    edge carries no chroma. ``chroma_small`` holds two colour-difference channels (of balanced RGB) at reduced
    size; ``inverse`` maps (luminance, c1, c2) back to RGB; ``luma_mix`` (0..1) blends a 3x3 binomial blur
    into luminance. ``out`` receives image rows ``top`` to ``top + out.shape[0]``.
    """
    h, w = img.shape[0], img.shape[1]
    sh, sw = chroma_small.shape[0], chroma_small.shape[1]
    fy_scale = sh / h
    fx_scale = sw / w
    for yo in prange(out.shape[0]):
        y = top + yo
        fy = min(max((y + 0.5) * fy_scale - 0.5, 0.0), sh - 1.0)
        y0 = min(int(fy), sh - 2) if sh > 1 else 0
        wy = fy - y0 if sh > 1 else 0.0
        y1 = min(y0 + 1, sh - 1)
        for x in range(w):
            fx = min(max((x + 0.5) * fx_scale - 0.5, 0.0), sw - 1.0)
            x0 = min(int(fx), sw - 2) if sw > 1 else 0
            wx = fx - x0 if sw > 1 else 0.0
            x1 = min(x0 + 1, sw - 1)
            blur = 0.0
            for dy in range(-1, 2):
                yy = min(max(y + dy, 0), h - 1)
                ky = 2.0 if dy == 0 else 1.0
                for dx in range(-1, 2):
                    xx = min(max(x + dx, 0), w - 1)
                    kx = 2.0 if dx == 0 else 1.0
                    blur += ky * kx * (img[yy, xx, 0] * gains[0] + img[yy, xx, 1] * gains[1]
                                       + img[yy, xx, 2] * gains[2])
            luma = (img[y, x, 0] * gains[0] + img[y, x, 1] * gains[1] + img[y, x, 2] * gains[2]) / 3.0
            luma = luma + luma_mix * (blur / 48.0 - luma)
            w00 = (1.0 - wy) * (1.0 - wx)
            w01 = (1.0 - wy) * wx
            w10 = wy * (1.0 - wx)
            w11 = wy * wx
            c1 = (w00 * chroma_small[y0, x0, 0] + w01 * chroma_small[y0, x1, 0]
                  + w10 * chroma_small[y1, x0, 0] + w11 * chroma_small[y1, x1, 0])
            c2 = (w00 * chroma_small[y0, x0, 1] + w01 * chroma_small[y0, x1, 1]
                  + w10 * chroma_small[y1, x0, 1] + w11 * chroma_small[y1, x1, 1])
            for k in range(3):
                out[yo, x, k] = (inverse[k, 0] * luma + inverse[k, 1] * c1 + inverse[k, 2] * c2) / gains[k]


def normalize_mosaic(raw: np.ndarray, cfa: np.ndarray, black: np.ndarray, scale: np.ndarray,
                     out: np.ndarray, top: int = 0) -> None:
    """Black-subtract and scale a Bayer mosaic into ``out``, which has a 2-pixel border on each side.

    The border mirrors the image without repeating the edge (reflect-101), which keeps the CFA phase. ``out``
    may hold a band: its ``out.shape[0] - 4`` rows from row ``top`` (even), with the rows around them as border.
    """
    name = "normalize_mosaic"
    _check(raw.ndim == 2 and raw.shape[0] >= 3 and raw.shape[1] >= 3, name, f"mosaic of shape {raw.shape}")
    _check(out.ndim == 2 and out.shape[1] == raw.shape[1] + 4 and top >= 0 and top % 2 == 0
           and 4 < out.shape[0] <= raw.shape[0] + 4 - top, name,
           f"out {out.shape} from row {top} for mosaic {raw.shape}")
    _check_cfa(cfa, min(black.size, scale.size), name)
    _normalize_mosaic(raw, cfa, black, scale, top, out)


def demosaic_mhc(m: np.ndarray, cfa: np.ndarray, gains: np.ndarray, out: np.ndarray) -> None:
    """Malvar-He-Cutler (2004) gradient-corrected demosaic of a padded, normalised Bayer mosaic ``m``.

    ``out`` (H x W x 3) receives RGB multiplied per channel by ``gains``.
    """
    name = "demosaic_mhc"
    _check(out.ndim == 3 and out.shape[2] == 3 and m.shape == (out.shape[0] + 4, out.shape[1] + 4), name,
           f"padded mosaic {m.shape} for out {out.shape}")
    _check(gains.size >= 3, name, f"{gains.size} gains")
    _check_cfa(cfa, 3, name)
    _demosaic_mhc(m, cfa, gains, out)


def bgu_accumulate(low_in: np.ndarray, low_out: np.ndarray, gh: int, gw: int, gd: int,
                   zmax: float) -> tuple[np.ndarray, np.ndarray]:
    """Normal equations of a bilateral grid of 3x4 affine models (Chen et al. 2016), splatted trilinearly.

    Returns per-cell A^T A (gh, gw, gd, 4, 4) and A^T B (gh, gw, gd, 4, 3).
    """
    name = "bgu_accumulate"
    _check(gh >= 2 and gw >= 2 and gd >= 2, name, f"grid {gh} x {gw} x {gd}")
    _check(low_in.ndim == 3 and low_in.shape[2] >= 3 and low_out.ndim == 3 and low_out.shape[2] >= 3
           and low_out.shape[:2] == low_in.shape[:2], name, f"images {low_in.shape} and {low_out.shape}")
    _check(bool(np.isfinite(zmax)) and zmax > 0, name, f"zmax {zmax}")
    return _bgu_accumulate(low_in, low_out, gh, gw, gd, zmax)


def bgu_apply(img: np.ndarray, grid: np.ndarray, zmax: float, out: np.ndarray) -> None:
    """Slice the affine grid (gh, gw, gd, 12) at every full-resolution pixel and apply it to that pixel."""
    name = "bgu_apply"
    _check(grid.ndim == 4 and grid.shape[0] >= 2 and grid.shape[1] >= 2 and grid.shape[2] >= 2
           and grid.shape[3] == 12, name, f"grid of shape {grid.shape}")
    _check(img.ndim == 3 and img.shape[2] >= 3 and out.ndim == 3 and out.shape[:2] == img.shape[:2]
           and out.shape[2] >= 3, name, f"image {img.shape} and out {out.shape}")
    _check(bool(np.isfinite(zmax)) and zmax > 0, name, f"zmax {zmax}")
    _bgu_apply(img, grid, zmax, out)


def denoise_opponent(img: np.ndarray, gains: np.ndarray, chroma_small: np.ndarray, inverse: np.ndarray,
                     luma_mix: float, out: np.ndarray, top: int = 0) -> None:
    """Rebuild each pixel from a lightly blurred luminance and smooth chroma sampled from a small map.

    Pixels are white balanced by ``gains`` on the way in and un-balanced on the way out, so that a luminance
    edge carries no chroma. ``chroma_small`` holds two colour-difference channels (of balanced RGB) at reduced
    size; ``inverse`` maps (luminance, c1, c2) back to RGB; ``luma_mix`` (0..1) blends a 3x3 binomial blur
    into luminance. ``out`` may hold a band: the image's rows ``top`` to ``top + out.shape[0]``.
    """
    name = "denoise_opponent"
    _check(img.ndim == 3 and img.shape[2] >= 3 and img.shape[0] >= 1 and img.shape[1] >= 1 and out.ndim == 3
           and out.shape[1] == img.shape[1] and top >= 0 and 0 < out.shape[0] <= img.shape[0] - top
           and out.shape[2] >= 3, name, f"image {img.shape} and out {out.shape} from row {top}")
    _check(chroma_small.ndim == 3 and chroma_small.shape[0] >= 1 and chroma_small.shape[1] >= 1
           and chroma_small.shape[2] >= 2, name, f"chroma map {chroma_small.shape}")
    _check(gains.size >= 3 and inverse.shape[0] >= 3 and inverse.shape[1] >= 3, name,
           f"{gains.size} gains, inverse {inverse.shape}")
    _denoise_opponent(img, gains, chroma_small, inverse, luma_mix, top, out)


def _check_cfa(cfa: np.ndarray, channels: int, name: str) -> None:
    """A 2x2 pattern of channel indices, each one a valid index into per-channel tables of ``channels``."""
    _check(cfa.shape == (2, 2) and int(cfa.min()) >= 0 and int(cfa.max()) < channels, name,
           f"CFA pattern {cfa.tolist()} for {channels} channels")
