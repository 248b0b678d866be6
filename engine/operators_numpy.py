"""The photofinishing operators in numpy, for rendering on the CPU without importing torch.

Why two forms of the same maths: :mod:`engine.operators` is torch, batched and differentiable, because training
sends gradients back through the operators into the network that predicts their parameters, and because
``--device cuda`` runs them on the GPU. A render on the CPU needs neither, and ``import torch`` alone costs about
1.6 s, more than the rest of a default render's start-up. So the CPU path runs this module, and the constants both
forms share are declared here (torch-free), once. ``tests/test_photofinish_numpy.py`` checks, for every shipped
style and a blend, that the two agree.

Images here are single H x W x 3 float32 arrays (the pipeline's layout), not batches; parameters are plain numbers
and arrays in the JSON form the photofinish stage pins (:func:`apply`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.colour import LUMA

EPS = 1e-6
CHROMA_RANGE = 2.5  # chroma tables cover log-chromaticities in [-2.5, 2.5]
GUIDE_STOPS = 12.0  # bilateral grids index intensity by log2 luminance over this many stops below 1

_F = np.float32


def luminance(x: np.ndarray) -> np.ndarray:
    """Rec.709 luminance (H x W) of H x W x 3 linear RGB."""
    return x[..., 0] * _F(LUMA[0]) + x[..., 1] * _F(LUMA[1]) + x[..., 2] * _F(LUMA[2])


def digital_gain(x: np.ndarray, ev: float) -> np.ndarray:
    """Multiply by ``2**ev`` (exposure in stops)."""
    return x * np.exp2(_F(ev))


def highlight_shoulder(x: np.ndarray, knee: float) -> np.ndarray:
    """Compress [0, inf) into [0, 1): identity below ``knee``, a smooth tanh roll-off above it."""
    k = np.clip(_F(knee), _F(0.05), _F(0.99))
    x = np.maximum(x, _F(0.0))
    over = np.maximum(x - k, _F(0.0))
    return np.where(x < k, x, k + (_F(1.0) - k) * np.tanh(over / (_F(1.0) - k)))


def tone_curve(x: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    """Global tone curve ``y = x^a / (x^a + (c (1 - x))^b)`` on [0, 1]."""
    x = np.clip(x, _F(EPS), _F(1.0 - EPS))
    xa = x ** _F(a)
    return xa / (xa + (_F(c) * (_F(1.0) - x)) ** _F(b))


def tone_curve_midpoint(a: float, b: float, pivot: float = 0.18) -> float:
    """The ``c`` that makes :func:`tone_curve` map ``pivot`` onto itself (so contrast keeps mid-grey)."""
    return ((pivot**a) * (1.0 - pivot) / pivot) ** (1.0 / b) / (1.0 - pivot)


def guide_coordinate(x: np.ndarray) -> np.ndarray:
    """Per-pixel intensity coordinate (H x W) in [0, 1] used to index bilateral grids."""
    y = np.log2(np.maximum(luminance(x), _F(2.0**-GUIDE_STOPS)))
    return np.clip((y + _F(GUIDE_STOPS)) / _F(GUIDE_STOPS), _F(0.0), _F(1.0))


def _linear_weights(n: int, cells: int) -> np.ndarray:
    """n x cells weights that sample ``cells`` nodes linearly at ``n`` evenly spaced positions, the first and the
    last on the end nodes (``grid_sample`` with ``align_corners=True``)."""
    pos = (np.linspace(-1.0, 1.0, n, dtype=np.float32) + _F(1.0)) / _F(2.0) * _F(cells - 1)
    lower = np.minimum(pos.astype(np.intp), max(cells - 2, 0))  # pos >= 0, so truncation is floor
    frac = pos - lower.astype(np.float32)
    weights = np.zeros((n, cells), dtype=np.float32)
    rows = np.arange(n)
    weights[rows, lower] = _F(1.0) - frac
    if cells > 1:
        weights[rows, lower + 1] += frac
    return weights


def slice_grid(grid: np.ndarray, guide: np.ndarray) -> np.ndarray:
    """Trilinearly sample a bilateral grid (D x GH x GW) at every pixel's (x, y, guide) position (H x W)."""
    depth, gh, gw = grid.shape
    h, w = guide.shape
    wy, wx = _linear_weights(h, gh), _linear_weights(w, gw)
    planes = np.einsum("yi,dij,xj->dyx", wy, grid.astype(np.float32), wx, optimize=True)  # each level, full size
    z = np.clip(guide * _F(depth - 1), _F(0.0), _F(depth - 1))
    lower = np.minimum(z.astype(np.intp), max(depth - 2, 0))  # z >= 0, so truncation is floor
    frac = z - lower.astype(np.float32)
    flat = lower.ravel() * (h * w) + np.arange(h * w)  # the lower level's node under each pixel
    below = planes.take(flat).reshape(h, w)
    above = planes.take(flat + h * w if depth > 1 else flat).reshape(h, w)
    return below + frac * (above - below)


def local_tone_map(x: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Multiply each pixel by ``2**g``, where ``g`` is sliced from a bilateral grid of log2 gains (D x GH x GW)."""
    return x * np.exp2(slice_grid(grid, guide_coordinate(x)))[..., None]


def log_chroma(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split linear RGB into luminance and log-chromaticities u = log(B/G), v = log(R/G)."""
    x = np.maximum(x, _F(EPS))
    return luminance(x), np.log(x[..., 2] / x[..., 1]), np.log(x[..., 0] / x[..., 1])


def from_log_chroma(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inverse of :func:`log_chroma`: RGB with luminance ``y`` and the given chromaticities."""
    rg, bg = np.exp(v), np.exp(u)
    g = y / (_F(LUMA[0]) * rg + _F(LUMA[1]) + _F(LUMA[2]) * bg)
    return np.stack([rg * g, g, bg * g], axis=-1)


def _bilinear(table: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Sample a C x T x T table bilinearly at coordinates in [-1, 1] (the ends on the end nodes, clamped beyond);
    returns C x H x W."""
    size = table.shape[-1]
    top = _F(size - 1)
    r = np.clip((rows + _F(1.0)) / _F(2.0) * top, _F(0.0), top)
    c = np.clip((cols + _F(1.0)) / _F(2.0) * top, _F(0.0), top)
    r0 = np.minimum(r.astype(np.intp), size - 2)  # r >= 0, so truncation is floor
    c0 = np.minimum(c.astype(np.intp), size - 2)
    fr, fc = r - r0.astype(np.float32), c - c0.astype(np.float32)
    corner = r0 * size + c0  # the flat index of each pixel's upper-left node
    out = []
    for channel in table.astype(np.float32).reshape(table.shape[0], -1):
        a, b = channel.take(corner), channel.take(corner + 1)
        c_, d = channel.take(corner + size), channel.take(corner + size + 1)
        upper = a + fc * (b - a)
        out.append(upper + fr * (c_ + fc * (d - c_) - upper))
    return np.stack(out)


def chroma_map(x: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Remap chromaticity through a table of offsets (2 x T x T over u, v in +-CHROMA_RANGE), keeping luminance."""
    y, u, v = log_chroma(x)
    offsets = _bilinear(table, u / _F(CHROMA_RANGE), v / _F(CHROMA_RANGE))
    return compress_gamut(from_log_chroma(y, u + offsets[0], v + offsets[1]))


def keep_colour(x: np.ndarray, amount: float) -> np.ndarray:
    """Keep ``amount`` (0..1) of each pixel's colour around its luminance: 0 is black and white, 1 the identity."""
    y = luminance(x)[..., None]
    return y + _F(amount) * (x - y)


def compress_gamut(x: np.ndarray) -> np.ndarray:
    """Pull colours that leave [0, 1] towards their own luminance, keeping hue, instead of clipping channels."""
    y = np.clip(luminance(x), _F(0.0), _F(1.0))[..., None]
    r, g, b = x[..., 0:1], x[..., 1:2], x[..., 2:3]  # (a reduction over an axis of 3 is 20x slower in numpy)
    high = np.maximum(np.maximum(np.maximum(r, g), b) - y, _F(EPS))
    low = np.maximum(y - np.minimum(np.minimum(r, g), b), _F(EPS))
    scale = np.minimum(np.minimum((_F(1.0) - y) / high, y / low), _F(1.0))
    return y + (x - y) * scale


def chroma_table_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """The (u, v) log-chromaticity at each node of a ``size`` x ``size`` chroma table (float32)."""
    axis = np.linspace(-CHROMA_RANGE, CHROMA_RANGE, size, dtype=np.float32)
    u, v = np.meshgrid(axis, axis, indexing="ij")
    return u, v


def gamma(x: np.ndarray, g: float) -> np.ndarray:
    """Display encoding: the sRGB transfer curve, then a power ``2.2 / g`` (``g = 2.2`` is exactly sRGB)."""
    x = np.clip(x, _F(0.0), _F(1.0))
    encoded = np.where(x <= _F(0.0031308), _F(12.92) * x,
                       _F(1.055) * np.maximum(x, _F(0.0031308)) ** _F(1 / 2.4) - _F(0.055))
    return np.maximum(encoded, _F(EPS)) ** (_F(2.2) / _F(g))


def apply(x: np.ndarray, operators: dict[str, Any]) -> np.ndarray:
    """The operator chain on H x W x 3 linear RGB with one set of JSON-form parameters (the photofinish stage's)."""
    a, b, c = operators["tone"]
    x = np.asarray(x, dtype=np.float32)
    x = digital_gain(x, operators["gain_ev"])
    x = highlight_shoulder(x, operators["knee"])
    x = tone_curve(x, a, b, c)
    x = local_tone_map(x, np.asarray(operators["local_tone"], dtype=np.float32)[0, 0])  # 1 x 1 x D x GH x GW
    x = chroma_map(x, np.asarray(operators["chroma"], dtype=np.float32)[0])
    if operators.get("colour", 1.0) != 1.0:  # absent in parameters pinned before it existed: all colour kept
        x = keep_colour(x, operators["colour"])
    return gamma(x, operators["gamma"])

