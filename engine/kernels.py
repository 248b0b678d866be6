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

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

# numba's error messages, when colorama is installed, are coloured inside colorama's init() and deinit(), which
# replace sys.stdout and sys.stderr process-wide. Compiling in the kernels' thread (the first render on a
# machine) then puts back a stream that the main thread had since replaced: a host that captures a command's
# output (a test's CliRunner, an embedding program) lost the command's error line to the old stream.
os.environ.setdefault("NUMBA_DISABLE_ERROR_MESSAGE_HIGHLIGHTING", "1")

import numba  # noqa: E402 - after the setting above, which numba reads when it is imported
import numpy as np  # noqa: E402
from numba import njit, prange  # noqa: E402

from engine.colour import LUMA

if TYPE_CHECKING:  # torch loads only when a torch version runs
    import torch

# Compiled code is cached per user rather than beside the installed modules: a cache written into site-packages
# outlives `pip uninstall`, and its leftover folder then shadows a later editable install of the package.
if not os.environ.get("NUMBA_CACHE_DIR"):
    _cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    numba.config.CACHE_DIR = os.path.join(_cache_home, "hostplug", "numba")

DEBUG_KERNELS = os.environ.get("HOSTPLUG_DEBUG_KERNELS", "") == "1"


def _save_if_there_is_room(save: Callable[..., None]) -> Callable[..., None]:
    """numba's cache writer, made to give up quietly when the cache's disk is full or failing: the compiled code
    is only a saving of time (the kernel runs, compiled again next time), and a full home disk made every render
    fail with numba's traceback while the output's disk had room. (numba already passes over a cache folder it
    cannot write to; a full one it finds out only when it writes.) It is numba's class that changes, so other
    libraries' cached kernels in this process are saved the same way: if there is room."""
    def save_overload(self: Any, sig: Any, data: Any) -> None:
        with contextlib.suppress(OSError):
            save(self, sig, data)

    return save_overload


from numba.core import caching  # noqa: E402 - after numba, as above

caching.Cache.save_overload = _save_if_there_is_room(caching.Cache.save_overload)

_JIT: dict[str, bool] = {"parallel": True, "fastmath": True, "cache": True, "nogil": True}
_PLAIN: dict[str, bool] = {"cache": True}
# parallel without fastmath: IEEE arithmetic, so that a process that compiled the kernel and one that loaded it from
# the cache give the same bits (with fastmath the render service's saturation differed by 1/65535 in 207 pixels)
_EXACT: dict[str, bool] = {"parallel": True, "cache": True, "nogil": True}
if DEBUG_KERNELS:
    _JIT.update(cache=False, boundscheck=True)
    _PLAIN.update(cache=False, boundscheck=True)
    _EXACT.update(cache=False, boundscheck=True)


def set_threads(threads: int) -> None:
    """Run the kernels on at most ``threads`` threads (no more than numba's pool has)."""
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


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
    """Slice the affine grid (gh, gw, gd, 12) at every full-resolution pixel and apply it to that pixel.

    The grid is interpolated between its two rows once per image row, so a pixel reads 4 cells, not 8."""
    h, w = img.shape[0], img.shape[1]
    gh, gw, gd = grid.shape[0], grid.shape[1], grid.shape[2]
    sy = (gh - 1) / max(h - 1, 1)
    sx = (gw - 1) / max(w - 1, 1)
    for y in prange(h):
        fy = y * sy
        y0 = min(int(fy), gh - 2)
        wy = fy - y0
        row = (1.0 - wy) * grid[y0] + wy * grid[y0 + 1]
        for x in range(w):
            fx = x * sx
            x0 = min(int(fx), gw - 2)
            wx = fx - x0
            er, eg, eb, lum = _guide_features(img[y, x, 0], img[y, x, 1], img[y, x, 2])
            fz = min(max(lum / zmax, 0.0), 1.0) * (gd - 1)
            z0 = _cell(fz, gd - 2)
            wz = fz - z0
            o0 = o1 = o2 = 0.0
            for dx in range(2):
                wxx = wx if dx else 1.0 - wx
                for dz in range(2):
                    wt = wxx * (wz if dz else 1.0 - wz)
                    c = row[x0 + dx, z0 + dz]
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


@njit(**_JIT)
def _channel_norm(x, out, eps):  # pragma: no cover - compiled
    """Each row of ``x`` (pixels x channels) less its mean, divided by its standard deviation (``eps`` added to
    the variance), into ``out``: a layer norm without its scale and shift, in one pass over memory."""
    n, c = x.shape
    inv = np.float32(1.0 / c)
    for i in prange(n):
        total = np.float32(0.0)
        for k in range(c):
            total += x[i, k]
        mean = total * inv
        squares = np.float32(0.0)
        for k in range(c):
            d = x[i, k] - mean
            squares += d * d
        r = np.float32(1.0) / np.sqrt(squares * inv + eps)
        for k in range(c):
            out[i, k] = (x[i, k] - mean) * r


def channel_norm(x: np.ndarray, out: np.ndarray, eps: float) -> None:
    """Normalise each row of ``x`` (pixels x channels, float32) over its channels into ``out``: a layer norm
    without its affine part (the learned denoiser's, :class:`engine.models.denoiser_fused.CentredNorm`)."""
    _check(x.ndim == 2 and x.dtype == np.float32 and out.shape == x.shape and out.dtype == np.float32,
           "channel_norm", f"rows {x.shape} {x.dtype} into {out.shape} {out.dtype}")
    _channel_norm(x, out, np.float32(eps))


@njit(**_EXACT)
def _position_means(image, period, block, out):  # pragma: no cover - compiled
    """The means of each of the ``period`` x ``period`` positions of each ``block`` x ``block`` block of
    ``image`` (H, W, 3), the positions one after the other along ``out``'s last axis (rows, then columns)."""
    rows, cols = out.shape[0], out.shape[1]
    inv = np.float32(1.0 / ((block // period) * (block // period)))
    for by in prange(rows):
        for bx in range(cols):
            for k in range(out.shape[2]):
                out[by, bx, k] = np.float32(0.0)
            for y in range(by * block, by * block + block):
                for x in range(bx * block, bx * block + block):
                    k = ((y % period) * period + x % period) * 3
                    for c in range(3):
                        out[by, bx, k + c] += image[y, x, c]
            for k in range(out.shape[2]):
                out[by, bx, k] *= inv


def position_means(image: np.ndarray, blocks_h: int, blocks_w: int, period: int, block: int) -> np.ndarray:
    """The means of each position of a ``period`` x ``period`` packing within the first ``blocks_h`` x
    ``blocks_w`` blocks of ``block`` pixels a side of ``image`` (H, W, 3, float32): (blocks_h, blocks_w,
    3 * period**2), float32 (the learned denoiser's local means, :func:`engine.models.denoise_tiles.denoise_image`)."""
    _check(image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.float32 and period >= 1
           and block % period == 0 and blocks_h * block <= image.shape[0] and blocks_w * block <= image.shape[1],
           "position_means", f"{blocks_h} x {blocks_w} blocks of {block} (period {period}) in {image.shape}")
    out = np.empty((blocks_h, blocks_w, 3 * period * period), np.float32)
    _position_means(image, period, block, out)
    return out


@njit(**_EXACT)
def _add_per_position(part, cells, period):  # pragma: no cover - compiled
    """Add to each pixel of ``part`` (H, W, 3) its cell's values for its position (:func:`add_per_position`)."""
    for y in prange(part.shape[0]):
        cy, dy = y // period, y % period
        for x in range(part.shape[1]):
            k = (dy * period + x % period) * 3
            cx = x // period
            for c in range(3):
                part[y, x, c] += cells[cy, cx, k + c]


def add_per_position(part: np.ndarray, cells: np.ndarray, period: int) -> None:
    """Add ``cells`` (one row and column per ``period`` x ``period`` cell of ``part``, 3 values per position of a
    cell, as :func:`position_means` orders them) to ``part`` (H, W, 3, float32, starting on the cells' grid), in
    place: each pixel takes its own position's values."""
    _check(part.ndim == 3 and part.shape[2] == 3 and part.dtype == np.float32 and cells.dtype == np.float32
           and cells.ndim == 3 and cells.shape[0] * period >= part.shape[0]
           and cells.shape[1] * period >= part.shape[1] and cells.shape[2] == 3 * period * period,
           "add_per_position", f"cells {cells.shape} (period {period}) onto {part.shape}")
    _add_per_position(part, cells, period)


@njit(**_JIT)
def _compress_gamut(img, thresholds, curves, step, scales, power):  # pragma: no cover - compiled
    """:mod:`engine.gamut`'s compression in place, a pixel at a time: a component beyond its threshold reads its
    compressed distance from ``curves`` (per channel, sampled every ``step`` from the threshold), interpolated;
    the rare one beyond the table's end (a component several times the largest below zero) computes it."""
    h, w = img.shape[0], img.shape[1]
    last = curves.shape[1] - 1
    inverse_step = np.float32(1.0) / step
    for y in prange(h):
        for x in range(w):
            top = max(img[y, x, 0], max(img[y, x, 1], img[y, x, 2]))
            if not top > 0.0:
                continue
            for k in range(3):
                distance = (top - img[y, x, k]) / top
                if distance > thresholds[k]:
                    position = (distance - thresholds[k]) * inverse_step
                    if position < last:
                        i = int(position)
                        f = position - i
                        distance = curves[k, i] + f * (curves[k, i + 1] - curves[k, i])
                    else:
                        over = position * step / scales[k]
                        distance = thresholds[k] + scales[k] * over / (np.float32(1.0) + over**power) ** (
                            np.float32(1.0) / power)
                    img[y, x, k] = top - distance * top


def compress_gamut(img: np.ndarray, thresholds: np.ndarray, curves: np.ndarray, step: float, scales: np.ndarray,
                   power: float) -> None:
    """Compress the gamut of ``img`` (H x W x 3 float32) in place with :func:`engine.gamut.curves` (and beyond
    their end the curve itself, of ``scales`` and ``power``)."""
    _check(img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.float32, "compress_gamut",
           f"image {img.shape} {img.dtype}")
    _check(thresholds.dtype == np.float32 and curves.dtype == np.float32 and thresholds.size == 3
           and curves.ndim == 2 and curves.shape[0] == 3 and curves.shape[1] >= 2, "compress_gamut",
           f"thresholds {thresholds.shape} {thresholds.dtype} and curves {curves.shape} {curves.dtype}")
    _compress_gamut(img, thresholds, curves, np.float32(step), scales.astype(np.float32), np.float32(power))


@njit(**_EXACT)
def _saturate(img, amount, reach, to_lms, to_lab, from_lab, to_rgb, out):  # pragma: no cover - compiled
    """:func:`engine.operators_numpy.saturate`, a pixel at a time: each colour's Oklab chroma times ``amount`` (below
    1), or part of the way to its chroma times ``reach`` (above), at its luminance and within the gamut."""
    more = amount > 1.0
    share = (amount - np.float32(1.0)) / (reach - np.float32(1.0))
    factor = reach if more else amount
    h, w = img.shape[0], img.shape[1]
    for y in prange(h):
        x = np.empty(3, np.float32)
        root = np.empty(3, np.float32)
        end = np.empty(3, np.float32)
        for col in range(w):
            for c in range(3):
                x[c] = min(max(img[y, col, c], np.float32(0.0)), np.float32(1.0))
            for c in range(3):
                root[c] = (to_lms[c, 0] * x[0] + to_lms[c, 1] * x[1] + to_lms[c, 2] * x[2]) ** np.float32(1.0 / 3.0)
            lightness = to_lab[0, 0] * root[0] + to_lab[0, 1] * root[1] + to_lab[0, 2] * root[2]
            a = (to_lab[1, 0] * root[0] + to_lab[1, 1] * root[1] + to_lab[1, 2] * root[2]) * factor
            b = (to_lab[2, 0] * root[0] + to_lab[2, 1] * root[1] + to_lab[2, 2] * root[2]) * factor
            for c in range(3):
                root[c] = (from_lab[c, 0] * lightness + from_lab[c, 1] * a + from_lab[c, 2] * b) ** 3
            for c in range(3):
                end[c] = to_rgb[c, 0] * root[0] + to_rgb[c, 1] * root[1] + to_rgb[c, 2] * root[2]
            luminance = x[0] * np.float32(LUMA[0]) + x[1] * np.float32(LUMA[1]) + x[2] * np.float32(LUMA[2])
            at_end = end[0] * np.float32(LUMA[0]) + end[1] * np.float32(LUMA[1]) + end[2] * np.float32(LUMA[2])
            scale = luminance / max(at_end, np.float32(1e-6))
            if not more:  # less: the point itself (inside the gamut but for rounding: 0.0006 at most)
                for c in range(3):
                    out[y, col, c] = min(max(end[c] * scale, np.float32(0.0)), np.float32(1.0))
                continue
            room = np.float32(1.0)  # of the move to x + share (end - x): where a channel would cross 0 or 1
            for c in range(3):
                move = share * (end[c] * scale - x[c])
                if x[c] + move > 1.0:
                    room = min(room, (np.float32(1.0) - x[c]) / move)
                elif x[c] + move < 0.0:
                    room = min(room, x[c] / -move)
            for c in range(3):
                moved = x[c] + max(room, np.float32(0.0)) * share * (end[c] * scale - x[c])
                out[y, col, c] = min(max(moved, np.float32(0.0)), np.float32(1.0))


def saturate(img: np.ndarray, amount: float, reach: float, to_lms: np.ndarray, to_lab: np.ndarray) -> np.ndarray:
    """:func:`engine.operators_numpy.saturate` of ``img`` (H x W x 3 float32) by ``amount`` (0 to ``reach``), with
    the colour space's matrices (linear RGB to cone responses, their cube roots to Oklab)."""
    _check(img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.float32, "saturate",
           f"image {img.shape} {img.dtype}")
    _check(to_lms.shape == (3, 3) and to_lab.shape == (3, 3), "saturate", "matrices not 3 x 3")
    out = np.empty_like(img)
    f32 = np.float32
    _saturate(img, f32(amount), f32(reach), to_lms.astype(f32), to_lab.astype(f32), np.linalg.inv(to_lab).astype(f32),
              np.linalg.inv(to_lms).astype(f32), out)
    return out


def load_compiled() -> None:
    """Load every kernel's compiled code for the argument types a render passes, without running it.

    The code comes from numba's on-disk cache (it is compiled by the machine's first render). The first kernel a
    process calls otherwise pays about 0.7 s for numba to set up its compiler target and load the code. A render
    calls this first (:func:`engine.pipeline.render`; at once when it is done), and
    :func:`engine.output.export.render_files` calls it in a thread while LibRaw decodes the raw.
    ``tests/test_startup.py`` checks that a render then loads nothing more.
    """
    if DEBUG_KERNELS:  # nothing cached to load: each kernel compiles, with its checks, when first called
        return
    f32 = np.float32
    mosaic, cfa, table = np.zeros((1, 1), np.uint16), np.zeros((2, 2), np.int64), np.zeros(3, f32)
    plane, rgb, grid = np.zeros((1, 1), f32), np.zeros((1, 1, 3), f32), np.zeros((1, 1, 1, 12), f32)
    with _without_scipy_blas():
        for kernel, args in (
            (_normalize_mosaic, (mosaic, cfa, table, table, 0, plane)),
            (_demosaic_mhc, (plane, cfa, table, rgb)),
            (_denoise_opponent, (rgb, table, rgb, np.zeros((3, 3), f32), 0.0, 0, rgb)),
            (_bgu_accumulate, (rgb, rgb, 0, 0, 0, 0.0)),
            (_bgu_apply, (rgb, grid, 0.0, rgb)),
            (_channel_norm, (plane, plane, f32(0.0))),
            (_compress_gamut, (rgb, table, plane, f32(0.0), table, f32(0.0))),
            (_position_means, (rgb, 0, 0, rgb)),
            (_add_per_position, (rgb, rgb, 0)),
        ):
            kernel.compile(tuple(numba.typeof(a) for a in args))


@contextlib.contextmanager
def _without_scipy_blas() -> Iterator[None]:
    """Refuse ``import scipy.linalg.cython_blas`` inside the block, unless scipy's BLAS is already loaded.

    numba's CPU target, when it starts, imports scipy.linalg for one purpose: to learn whether compiled code may
    call scipy's BLAS (``np.dot`` and the like). No kernel here does, and that import costs 0.3-0.8 s, because
    scipy then imports numpy.f2py, numpy.testing and unittest. Refused, it leaves numba compiling ``np.dot``'s
    inner products without BLAS; numba's linear algebra (``np.linalg``) still imports scipy when it is first
    compiled, after this block.
    """
    name = "scipy.linalg.cython_blas"
    if name in sys.modules:
        yield
        return
    sys.modules[name] = None  # type: ignore[assignment]  # Python's marker for "this import fails"
    try:
        yield
    finally:
        if name in sys.modules and sys.modules[name] is None:
            del sys.modules[name]


def _check_cfa(cfa: np.ndarray, channels: int, name: str) -> None:
    """A 2x2 pattern of channel indices, each one a valid index into per-channel tables of ``channels``."""
    _check(cfa.shape == (2, 2) and int(cfa.min()) >= 0 and int(cfa.max()) < channels, name,
           f"CFA pattern {cfa.tolist()} for {channels} channels")


# --- The same maths as torch operations, for ``--device cuda`` ----------------------------------------------------
# On the torch path the pipeline's full-resolution image is a H x W x 3 float32 tensor that stays on the device from
# demosaic to detail (:func:`to_device` once, :func:`to_host` once). Each function takes and returns such tensors,
# except where an input is small or comes from the file (a mosaic, a grid). They agree with the compiled loops above
# to float rounding (tests/test_torch_kernels.py runs both on the CPU).

TORCH_ON_CPU = False  # set by :func:`torch_everywhere`


def on_torch(device: str) -> bool:
    """Whether the full-resolution stages use the torch versions: on any device but the CPU, and on the CPU too
    while :func:`torch_everywhere` is in force (how tests and ``benchmarks/bench_gpu.py --device cpu`` compare)."""
    return device != "cpu" or TORCH_ON_CPU


@contextlib.contextmanager
def torch_everywhere() -> Iterator[None]:
    """Use the torch versions of the kernels on the CPU as well, inside the block."""
    global TORCH_ON_CPU
    saved, TORCH_ON_CPU = TORCH_ON_CPU, True
    try:
        yield
    finally:
        TORCH_ON_CPU = saved


@contextlib.contextmanager
def _float32_convolutions() -> Iterator[None]:
    """cuDNN convolutions in true float32 inside the block: by default they may round their inputs to TF32 (a
    10-bit mantissa) on recent GPUs, which is more than the 1/255 these versions are held to would allow."""
    import torch

    cudnn = torch.backends.cudnn
    with cudnn.flags(enabled=cudnn.enabled, benchmark=cudnn.benchmark, deterministic=cudnn.deterministic,
                     allow_tf32=False):
        yield


def synchronize(device: str) -> None:
    """Wait until ``device`` has done the work queued on it (CUDA runs asynchronously: without this a stage's
    seconds would be the time to queue its work, and the next stage would be charged for it)."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)


def to_device(image: np.ndarray, device: str) -> torch.Tensor:
    """H x W x C numpy to the same layout, float32, on ``device``."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).to(device)


def to_host(image: np.ndarray | torch.Tensor) -> np.ndarray:
    """A device image as contiguous float32 numpy on the CPU (numpy passes through)."""
    if isinstance(image, np.ndarray):
        return image
    return np.ascontiguousarray(image.detach().float().cpu().numpy())


def _nchw(image: torch.Tensor) -> torch.Tensor:
    """H x W x C to 1 x C x H x W (a view)."""
    return image.permute(2, 0, 1)[None]


def _hwc(t: torch.Tensor) -> torch.Tensor:
    """1 x C x H x W to contiguous H x W x C."""
    return t[0].permute(1, 2, 0).contiguous()


def area_resize_torch(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``cv2.resize(image, size, interpolation=cv2.INTER_AREA)`` of a H x W x C tensor, for shrinking: each output
    pixel averages the source area it covers, as two small matrix products."""
    import torch

    h, w = image.shape[:2]
    width, height = size
    rows, cols = (torch.from_numpy(_area_matrix(n, out)).to(image.device) for n, out in ((h, height), (w, width)))
    return torch.einsum("ih,hjc->ijc", rows, torch.einsum("jw,hwc->hjc", cols, image))


def pad_torch(t: torch.Tensor, top: int, bottom: int, left: int, right: int, mode: str) -> torch.Tensor:
    """Pad H and W; OpenCV's reflect-101 border is torch's "reflect" (which needs the side longer than the pad)."""
    import torch.nn.functional as F

    if mode == "reflect" and (max(top, bottom) >= t.shape[-2] or max(left, right) >= t.shape[-1]):
        mode = "replicate"  # an image smaller than the filter: OpenCV's border keeps reflecting, close enough
    return F.pad(t, (left, right, top, bottom), mode=mode)


def gaussian_blur_torch(t: torch.Tensor, sigma: float) -> torch.Tensor:
    """``cv2.GaussianBlur(x, (0, 0), sigma)`` of N x C x H x W float32: OpenCV's kernel size (4 sigma each side)
    and reflect-101 border, as two separable convolutions."""
    import cv2
    import torch
    import torch.nn.functional as F

    size = int(round(sigma * 8.0 + 1.0)) | 1
    taps = torch.from_numpy(cv2.getGaussianKernel(size, sigma).astype(np.float32).ravel()).to(t.device)
    c, r = t.shape[1], size // 2
    t = F.conv2d(pad_torch(t, r, r, 0, 0, "reflect"), taps.view(1, 1, size, 1).expand(c, 1, size, 1), groups=c)
    return F.conv2d(pad_torch(t, 0, 0, r, r, "reflect"), taps.view(1, 1, 1, size).expand(c, 1, 1, size), groups=c)


def _mhc_weights() -> np.ndarray:
    """The four Malvar-He-Cutler estimates as 5 x 5 filters: green at red/blue, blue at red (red at blue), the
    colour along the row at green, the colour along the column at green (each already divided by 8)."""
    def taps(*offsets_and_weights: tuple[int, int, float]) -> np.ndarray:
        k = np.zeros((5, 5), dtype=np.float32)
        for dy, dx, value in offsets_and_weights:
            k[2 + dy, 2 + dx] += value
        return k

    v = [(0, 0, 1.0)]
    cross = [(-1, 0, 1.0), (1, 0, 1.0), (0, -1, 1.0), (0, 1, 1.0)]
    far_h, far_v = [(0, -2, 1.0), (0, 2, 1.0)], [(-2, 0, 1.0), (2, 0, 1.0)]
    diag = [(-1, -1, 1.0), (-1, 1, 1.0), (1, -1, 1.0), (1, 1, 1.0)]
    horiz, vert = cross[2:], cross[:2]

    def scaled(parts: list[tuple[int, int, float]], s: float) -> list[tuple[int, int, float]]:
        return [(dy, dx, s * w) for dy, dx, w in parts]

    green = taps(*scaled(v, 4), *scaled(cross, 2), *scaled(far_h + far_v, -1))
    other = taps(*scaled(v, 6), *scaled(diag, 2), *scaled(far_h + far_v, -1.5))
    along_row = taps(*scaled(v, 5), *scaled(horiz, 4), *scaled(far_h, -1), *scaled(diag, -1), *scaled(far_v, 0.5))
    along_col = taps(*scaled(v, 5), *scaled(vert, 4), *scaled(far_v, -1), *scaled(diag, -1), *scaled(far_h, 0.5))
    return np.stack([green, other, along_row, along_col])[:, None] / np.float32(8.0)


@_float32_convolutions()
def demosaic_mhc_torch(raw: np.ndarray, cfa: np.ndarray, black: np.ndarray, scale: np.ndarray, gains: np.ndarray,
                       device: str, shading: np.ndarray | None = None) -> torch.Tensor:
    """:func:`normalize_mosaic` then :func:`demosaic_mhc` on ``device``: H x W x 3 RGB from a Bayer mosaic (the
    mosaic goes up as 16-bit integers, half the bytes of the float image made of it there). ``shading``: a gain
    per mosaic pixel (a DNG GainMap) applied to the normalised mosaic, which is then clipped at white."""
    import torch
    import torch.nn.functional as F

    _check(raw.ndim == 2 and raw.shape[0] >= 3 and raw.shape[1] >= 3, "demosaic_mhc_torch", f"mosaic {raw.shape}")
    _check_cfa(cfa, 3, "demosaic_mhc_torch")
    h, w = raw.shape
    reps = ((h + 1) // 2, (w + 1) // 2)
    black_map = torch.from_numpy(np.tile(black.astype(np.float32)[cfa], reps)[:h, :w]).to(device)
    scale_map = torch.from_numpy(np.tile(scale.astype(np.float32)[cfa], reps)[:h, :w]).to(device)
    m = (torch.from_numpy(np.ascontiguousarray(raw)).to(device).float() - black_map) * scale_map  # 16 bits up
    if shading is not None:  # white is 1 / gains in the mosaic's white-balance scaling
        white = torch.from_numpy(np.tile((1.0 / gains.astype(np.float32))[cfa], reps)[:h, :w]).to(device)
        m = torch.minimum(m * torch.from_numpy(shading).to(device), white)
    padded = F.pad(m[None, None], (2, 2, 2, 2), mode="reflect")
    est = F.conv2d(padded, torch.from_numpy(_mhc_weights()).to(device))[0]  # green, other, along row, along col
    rgb = m[None].repeat(3, 1, 1)
    for py in range(2):
        for px in range(2):
            at = (slice(py, None, 2), slice(px, None, 2))
            c = int(cfa[py, px])
            if c == 1:
                row_is_red = int(cfa[py, (px + 1) % 2]) == 0
                rgb[(0, *at)] = est[(2 if row_is_red else 3, *at)]
                rgb[(2, *at)] = est[(3 if row_is_red else 2, *at)]
            else:
                rgb[(1, *at)] = est[(0, *at)]
                rgb[(2 - c, *at)] = est[(1, *at)]  # blue at a red site, red at a blue one
    rgb *= torch.from_numpy(gains.astype(np.float32)).to(device).view(3, 1, 1)
    return _hwc(rgb[None])


def _area_matrix(size: int, out: int) -> np.ndarray:
    """(out, size) weights of an area-averaging resize: the overlap of each source pixel with each output pixel's
    span of ``size / out`` source pixels, divided by that span."""
    edges = np.arange(out + 1) * (size / out)
    left, right = np.arange(size), np.arange(size) + 1.0
    overlap = np.minimum(right[None], edges[1:, None]) - np.maximum(left[None], edges[:-1, None])
    return (np.clip(overlap, 0.0, None) * (out / size)).astype(np.float32)


@_float32_convolutions()
def denoise_torch(image: torch.Tensor, gains: np.ndarray, to_opponent: np.ndarray, from_opponent: np.ndarray,
                  chroma_sigma: float, luma_mix: float) -> torch.Tensor:
    """The classical denoiser (:class:`engine.stages.denoise.ClassicalDenoise`) on ``device``: chroma from a
    blurred half-size opponent map, luminance lightly blurred, as :func:`denoise_opponent` rebuilds it."""
    import torch
    import torch.nn.functional as F

    device = image.device
    x = _nchw(image)
    h, w = x.shape[-2:]
    g = torch.from_numpy(gains.astype(np.float32)).to(device).view(1, 3, 1, 1)
    if h % 2 == 0 and w % 2 == 0:
        small = F.avg_pool2d(x, 2)
    else:  # OpenCV's INTER_AREA at a fractional scale: each output pixel averages the source area it covers
        rows, cols = (torch.from_numpy(_area_matrix(n, max(1, n // 2))).to(device) for n in (h, w))
        small = torch.einsum("ih,nchw,jw->ncij", rows, x, cols)
    opponent = torch.einsum("ij,njhw->nihw", torch.from_numpy(to_opponent[1:]).to(device), small * g)
    chroma = F.interpolate(gaussian_blur_torch(opponent, chroma_sigma), size=(h, w), mode="bilinear",
                           align_corners=False)
    balanced = x * g
    del x
    luma = balanced.sum(dim=1, keepdim=True) / 3.0
    binomial = torch.tensor([1.0, 2.0, 1.0], device=device)
    binomial = (binomial[:, None] * binomial[None]).view(1, 1, 3, 3) / 16.0
    blurred = F.conv2d(pad_torch(luma, 1, 1, 1, 1, "replicate"), binomial)
    luma = luma + luma_mix * (blurred - luma)
    basis = torch.cat([luma, chroma], dim=1)
    out = torch.einsum("ij,njhw->nihw", torch.from_numpy(from_opponent).to(device), basis) / g
    return _hwc(out)


def bgu_accumulate_torch(low_in: np.ndarray, low_out: np.ndarray, gh: int, gw: int, gd: int, zmax: float,
                         device: str, rows: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """:func:`bgu_accumulate` on ``device`` (float64), without scattered adds: the splat is separable, so each band
    of ``rows`` rows spreads its pixels' products over the intensity bins (two non-zero weights per pixel) and
    two small matrix products sum them into grid rows and columns. Returns A^T A (gh, gw, gd, 4, 4) and A^T B
    (gh, gw, gd, 4, 3) as numpy."""
    import torch

    _check(gh >= 2 and gw >= 2 and gd >= 2, "bgu_accumulate_torch", f"grid {gh} x {gw} x {gd}")
    h, w = low_in.shape[:2]
    f64 = torch.float64

    def splat(n: int, cells: int) -> torch.Tensor:
        """(n, cells) linear-interpolation weights of positions 0..n-1 spread over ``cells`` grid nodes."""
        f = torch.arange(n, device=device, dtype=f64) * ((cells - 1) / max(n - 1, 1))
        lower = torch.clamp(f.long(), max=cells - 2)
        weights = torch.zeros(n, cells, dtype=f64, device=device)
        weights[torch.arange(n, device=device), lower] = 1.0 - (f - lower)
        weights[torch.arange(n, device=device), lower + 1] += f - lower
        return weights

    along_y, along_x = splat(h, gh), splat(w, gw)
    luma = torch.tensor(LUMA, dtype=f64, device=device)
    sums = torch.zeros(gh, gw, gd, 28, dtype=f64, device=device)
    for top in range(0, h, rows):
        x = torch.from_numpy(np.ascontiguousarray(low_in[top:top + rows, :, :3])).to(device, f64)
        b = torch.from_numpy(np.ascontiguousarray(low_out[top:top + rows, :, :3])).to(device, f64)
        e = torch.sqrt(torch.clamp(x, min=0.0))
        fz = torch.clamp(e @ luma / zmax, 0.0, 1.0) * (gd - 1)
        z0 = torch.clamp(torch.nan_to_num(fz, nan=0.0).long(), 0, gd - 2)  # as _cell: NaN to cell 0
        wz = fz - z0
        bins = torch.zeros(*fz.shape, gd, dtype=f64, device=device)
        bins.scatter_(-1, z0[..., None], (1.0 - wz)[..., None])
        bins.scatter_add_(-1, (z0 + 1)[..., None], wz[..., None])
        feat = torch.cat([e, torch.ones_like(e[..., :1])], dim=-1)
        products = torch.cat([(feat[..., :, None] * feat[..., None, :]).flatten(-2),
                              (feat[..., :, None] * b[..., None, :]).flatten(-2)], dim=-1)  # rows, w, 28
        spread = (bins[..., None] * products[..., None, :]).flatten(-2)  # rows, w, gd * 28
        by_column = torch.matmul(along_x.T, spread)  # rows, gw, gd * 28: summed over the pixels of each row
        sums += (along_y[top:top + rows].T @ by_column.flatten(1)).view(gh, gw, gd, 28)
    out = sums.cpu().numpy()
    return out[..., :16].reshape(gh, gw, gd, 4, 4), out[..., 16:].reshape(gh, gw, gd, 4, 3)


def bgu_apply_torch(img: torch.Tensor, grid: np.ndarray, zmax: float) -> torch.Tensor:
    """:func:`bgu_apply` on ``device``: the affine grid sliced trilinearly (``grid_sample``) at every pixel."""
    import torch
    import torch.nn.functional as F

    _check(grid.ndim == 4 and min(grid.shape[:3]) >= 2 and grid.shape[3] == 12, "bgu_apply_torch",
           f"grid of shape {grid.shape}")
    device = img.device
    x = img.permute(2, 0, 1)
    h, w = x.shape[-2:]
    e = torch.sqrt(torch.clamp(x, min=0.0))
    del x
    lum = torch.einsum("c,chw->hw", torch.tensor(LUMA, dtype=torch.float32, device=device), e)
    z = torch.nan_to_num(torch.clamp(lum / zmax, 0.0, 1.0), nan=0.0) * 2.0 - 1.0
    gy = torch.linspace(-1.0, 1.0, h, device=device) if h > 1 else torch.full((1,), -1.0, device=device)
    gx = torch.linspace(-1.0, 1.0, w, device=device) if w > 1 else torch.full((1,), -1.0, device=device)
    where = torch.stack([gx[None].expand(h, w), gy[:, None].expand(h, w), z], dim=-1)[None, None]  # x, y, z
    volume = torch.from_numpy(np.ascontiguousarray(grid.transpose(3, 2, 0, 1))).to(device)[None]  # 12 x D x H x W
    coef = F.grid_sample(volume, where, mode="bilinear", padding_mode="border", align_corners=True)[0, :, 0]
    coef = coef.view(3, 4, h, w)
    out = (coef[:, :3] * e[None]).sum(dim=1) + coef[:, 3]
    return _hwc(out[None])


@_float32_convolutions()
def unsharp_torch(image: torch.Tensor, amount: float, sigma: float) -> torch.Tensor:
    """``x + amount * (x - GaussianBlur(x, sigma))`` on the image's device (the classical detail stage)."""
    x = _nchw(image)
    return _hwc(x * (1.0 + amount) - amount * gaussian_blur_torch(x, sigma))
