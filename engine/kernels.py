"""Compiled per-pixel loops for the full-resolution stages (numba).

Full-resolution work dominates a render's time. These loops do in one pass what would take many numpy passes,
and run on all cores. Each kernel is plain maths on arrays; the stages decide what to feed them.
Compiled code is cached on disk, so only the very first render on a machine pays for compilation.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from engine.colour import LUMA

_JIT = {"parallel": True, "fastmath": True, "cache": True, "nogil": True}


@njit(**_JIT)
def normalize_mosaic(raw, cfa, black, scale, out):  # pragma: no cover - compiled
    """Black-subtract and scale a Bayer mosaic into ``out``, which has a 2-pixel border on each side.

    The border mirrors the image without repeating the edge (reflect-101), which keeps the CFA phase.
    """
    h, w = raw.shape
    for y in prange(h + 4):
        sy = y - 2
        sy = -sy if sy < 0 else (2 * (h - 1) - sy if sy >= h else sy)
        for x in range(w + 4):
            sx = x - 2
            sx = -sx if sx < 0 else (2 * (w - 1) - sx if sx >= w else sx)
            c = cfa[sy & 1, sx & 1]
            out[y, x] = (np.float32(raw[sy, sx]) - black[c]) * scale[c]


@njit(**_JIT)
def demosaic_mhc(m, cfa, gains, out):  # pragma: no cover - compiled
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


@njit(cache=True)
def bgu_accumulate(low_in, low_out, gh, gw, gd, zmax):  # pragma: no cover - compiled
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
            z0 = min(int(fz), gd - 2)
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
def bgu_apply(img, grid, zmax, out):  # pragma: no cover - compiled
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
            z0 = min(int(fz), gd - 2)
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
def denoise_opponent(img, gains, chroma_small, inverse, luma_mix, out):  # pragma: no cover - compiled
    """Rebuild each pixel from a lightly blurred luminance and smooth chroma sampled from a small map.

    Pixels are white balanced by ``gains`` on the way in and un-balanced on the way out, so that a luminance
    edge carries no chroma. ``chroma_small`` holds two colour-difference channels (of balanced RGB) at reduced
    size; ``inverse`` maps (luminance, c1, c2) back to RGB; ``luma_mix`` (0..1) blends a 3x3 binomial blur
    into luminance.
    """
    h, w = img.shape[0], img.shape[1]
    sh, sw = chroma_small.shape[0], chroma_small.shape[1]
    fy_scale = sh / h
    fx_scale = sw / w
    for y in prange(h):
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
                out[y, x, k] = (inverse[k, 0] * luma + inverse[k, 1] * c1 + inverse[k, 2] * c2) / gains[k]
