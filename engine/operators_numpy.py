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
MOVE_INSET = 0.05  # a chroma move starts from its colour darkened by this share of its distance from white
# Oklab (Ottosson 2020) from linear sRGB: LMS cone responses, then, of their cube roots, lightness and two opponent
# axes. Its hue lines stay perceptually constant where CIELAB's bend (blues above all).
SRGB_TO_LMS = ((0.4122214708, 0.5363325363, 0.0514459929),
               (0.2119034982, 0.6806995451, 0.1073969566),
               (0.0883024619, 0.2817188376, 0.6299787005))
LMS_ROOT_TO_OKLAB = ((0.2104542553, 0.7936177850, -0.0040720468),
                     (1.9779984951, -2.4285922050, 0.4505937099),
                     (0.0259040371, 0.7827717662, -0.8086757660))
SATURATE_REACH = 2.0  # the Oklab chroma factor of the most saturation (+100), towards which every boost moves

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


def tone_curve_midpoint(a: Any, b: Any, pivot: float = 0.18) -> Any:
    """The ``c`` that makes :func:`tone_curve` map ``pivot`` onto itself (so contrast keeps mid-grey), of the type of
    ``a`` and ``b``: floats, numpy float32 values (float32 maths) or torch tensors (the networks' predictions)."""
    return ((pivot**a) * (1.0 - pivot) / pivot) ** (1.0 / b) / (1.0 - pivot)


def guide_coordinate(x: np.ndarray) -> np.ndarray:
    """Per-pixel intensity coordinate (H x W) in [0, 1] used to index bilateral grids."""
    y = np.log2(np.maximum(luminance(x), _F(2.0**-GUIDE_STOPS)))
    return np.clip((y + _F(GUIDE_STOPS)) / _F(GUIDE_STOPS), _F(0.0), _F(1.0))


def _cells(n: int, cells: int) -> tuple[np.ndarray, np.ndarray]:
    """For ``n`` evenly spaced positions whose first and last fall on the end nodes of ``cells`` grid nodes
    (``grid_sample`` with ``align_corners=True``): each one's lower node and its fraction of the way to the next."""
    pos = (np.linspace(-1.0, 1.0, n, dtype=np.float32) + _F(1.0)) / _F(2.0) * _F(cells - 1)
    lower = np.minimum(pos.astype(np.intp), max(cells - 2, 0))  # pos >= 0, so truncation is floor
    return lower, pos - lower.astype(np.float32)


def _two_nodes(table: np.ndarray, axes: int) -> np.ndarray:
    """``table`` with each of its last ``axes`` axes at least 2 long (a single node repeated: the same samples,
    since samples beyond the ends take the end node's value), so every sample has a node on either side."""
    short = [(0, max(0, 2 - n)) for n in table.shape[-axes:]]
    return np.pad(table, [(0, 0)] * (table.ndim - axes) + short, mode="edge") if any(p for _, p in short) else table


def slice_grid(grid: np.ndarray, guide: np.ndarray) -> np.ndarray:
    """Trilinearly sample a bilateral grid (D x GH x GW) at every pixel's (x, y, guide) position (H x W).

    Gathers from the grid (interpolated along x first, which is the same for every row) instead of matrix
    products: BLAS threads make those erratic on a busy machine."""
    grid = _two_nodes(grid.astype(np.float32), axes=3)
    depth, gh, gw = grid.shape
    h, w = guide.shape
    y0, fy = _cells(h, gh)
    x0, fx = _cells(w, gw)
    along_x = (grid[:, :, x0] * (_F(1.0) - fx) + grid[:, :, x0 + 1] * fx).ravel()  # D x GH x W, small
    z = np.clip(guide * _F(depth - 1), _F(0.0), _F(depth - 1))
    z0 = np.minimum(z.astype(np.intp), depth - 2)  # z >= 0, so truncation is floor
    fz = z - z0.astype(np.float32)
    index = (z0 * gh + y0[:, None]) * w + np.arange(w)  # (z0, y0, x) in along_x
    below_top, below_bottom = along_x.take(index), along_x.take(index + w)
    index += gh * w
    above_top, above_bottom = along_x.take(index), along_x.take(index + w)
    fy = fy[:, None]
    below = below_top + fy * (below_bottom - below_top)
    above = above_top + fy * (above_bottom - above_top)
    return below + fz * (above - below)


def local_tone_map(x: np.ndarray, grid: np.ndarray, below_white: bool = False) -> np.ndarray:
    """Multiply each pixel by ``2**g``, where ``g`` is sliced from a bilateral grid of log2 gains (D x GH x GW);
    ``below_white``: each lift is held below white (:func:`lift_below_white`)."""
    lifted = x * np.exp2(slice_grid(grid, guide_coordinate(x)))[..., None]
    return lift_below_white(x, lifted) if below_white else lifted


def _brightest(x: np.ndarray) -> np.ndarray:
    """Each pixel's largest channel, H x W x 1 (a reduction over an axis of 3 is 20x slower in numpy)."""
    return np.maximum(np.maximum(x[..., 0:1], x[..., 1:2]), x[..., 2:3])


def lift_below_white(before: np.ndarray, lifted: np.ndarray) -> np.ndarray:
    """``lifted`` (``before`` times a gain per pixel) with each lift of a pixel's brightest channel by a factor G
    held to shrinking its distance from white by G (``1 - (1 - b) / G``) where that lifts less: dark tones take
    the whole gain, upper tones brighten and keep their gradation, white stays white. The pixel is scaled as a
    whole, keeping its hue and saturation; a pixel already past white (where a style's own grid put it) is not
    lifted further.

    The local tone map runs after the tone curve, on values within [0, 1]: lifted past white by the Highlights or
    Shadows slider, a bright yellow was pulled towards grey by the gamut step (Highlights +50 turned it nearly
    white) and upper tones clipped flat. Since photofinish params 4 the sliders' lifts are held (the operators'
    ``local_tone_held`` grid); a style's own grid is not, as its network learned it (``local_tone``)."""
    top = _brightest(before)
    gain = _brightest(lifted) / np.maximum(top, _F(EPS))
    held = np.minimum(top * gain, _F(1.0) - (_F(1.0) - np.minimum(top, _F(1.0))) / np.maximum(gain, _F(EPS)))
    held = np.where(top >= _F(1.0), top, held)  # past white already (the style's grid put it there): not lifted
    return lifted * np.where(gain > _F(1.0), held / np.maximum(top * gain, _F(EPS)), _F(1.0))


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
    """Sample a C x TH x TW table bilinearly at coordinates in [-1, 1] (the ends on the end nodes, clamped beyond);
    returns C x H x W."""
    table = _two_nodes(table.astype(np.float32), axes=2)
    th, tw = table.shape[-2:]
    r = np.clip((rows + _F(1.0)) / _F(2.0) * _F(th - 1), _F(0.0), _F(th - 1))
    c = np.clip((cols + _F(1.0)) / _F(2.0) * _F(tw - 1), _F(0.0), _F(tw - 1))
    r0 = np.minimum(r.astype(np.intp), th - 2)  # r >= 0, so truncation is floor
    c0 = np.minimum(c.astype(np.intp), tw - 2)
    fr, fc = r - r0.astype(np.float32), c - c0.astype(np.float32)
    corner = r0 * tw + c0  # the flat index of each pixel's upper-left node
    out = []
    for channel in table.reshape(table.shape[0], -1):
        top_left, top_right = channel.take(corner), channel.take(corner + 1)
        bottom_left, bottom_right = channel.take(corner + tw), channel.take(corner + tw + 1)
        top = top_left + fc * (top_right - top_left)
        out.append(top + fr * (bottom_left + fc * (bottom_right - bottom_left) - top))
    return np.stack(out)


def chroma_map(x: np.ndarray, table: np.ndarray, stop_at_gamut: bool = False) -> np.ndarray:
    """Remap chromaticity through a table of offsets (2 x T x T over u, v in +-CHROMA_RANGE), keeping luminance.

    ``stop_at_gamut``: a move that would leave [0, 1] stops at its edge (:func:`towards_within_gamut`); without
    it (photofinish params before version 4) the moved colour is pulled back towards grey (:func:`compress_gamut`).
    """
    y, u, v = log_chroma(x)
    offsets = _bilinear(table, u / _F(CHROMA_RANGE), v / _F(CHROMA_RANGE))
    moved = from_log_chroma(y, u + offsets[0], v + offsets[1])
    return towards_within_gamut(start_of_move(x), moved) if stop_at_gamut else compress_gamut(moved)


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


def start_of_move(x: np.ndarray) -> np.ndarray:
    """Where a chroma move of ``x`` starts: ``x`` made displayable, then darkened by MOVE_INSET of its luminance's
    distance from white, so that it lies strictly inside the gamut (white excepted). From a colour on the gamut's
    edge a move outward would stop dead, and a smooth gradient crossing the edge would jump; from just inside, it
    fades. Darkening keeps the colour's saturation, as moving it towards grey would not.

    A colour a little past white in one channel (a style's local tone map lifts a bright yellow 1 % past it) is
    scaled down by that channel, keeping its saturation: pulled towards grey (:func:`compress_gamut`), its blue
    rose from 0 to 47 of 255. Towards a luminance of white it turns into that pull, which takes it to white."""
    y = luminance(x)[..., None]
    scaled = compress_gamut(x / np.maximum(_brightest(x), _F(1.0)))
    near_white = np.clip((y - _F(0.9)) / _F(0.1), _F(0.0), _F(1.0))
    start = scaled + near_white * (compress_gamut(x) - scaled)
    inside = np.minimum(luminance(start), _F(1.0))[..., None]
    return start * (_F(1.0) - _F(MOVE_INSET) * (_F(1.0) - inside))


def towards_within_gamut(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """The colour furthest from ``start`` (within [0, 1]) towards ``end`` that stays within [0, 1].

    A saturation boost of a bright orange already at the gamut's edge then leaves it as it was, where pulling the
    boosted colour back towards grey (:func:`compress_gamut`) made it paler than before the boost.
    """
    room = np.ones(start.shape[:-1] + (1,), dtype=start.dtype)
    for c in range(3):  # (a reduction over an axis of 3 is 20x slower in numpy)
        s, e = start[..., c:c + 1], end[..., c:c + 1]
        room = np.minimum(room, np.where(e > _F(1.0), (_F(1.0) - s) / np.maximum(e - s, _F(EPS)), _F(1.0)))
        room = np.minimum(room, np.where(e < _F(0.0), s / np.maximum(s - e, _F(EPS)), _F(1.0)))
    return start + np.maximum(room, _F(0.0)) * (end - start)


def saturate(x: np.ndarray, amount: float) -> np.ndarray:
    """Saturation at each colour's own hue and luminance: ``amount`` from 0 (black and white) through 1 (the
    identity) to SATURATE_REACH.

    Less saturation multiplies each colour's Oklab chroma by ``amount``, brought back to its luminance; mixing it
    with its grey in linear RGB instead (photofinish params 2 to 4) turned an orange 11 degrees (Oklab) towards red
    and a blue stage light 9 towards purple at -60. More moves each colour along the straight line (in linear RGB)
    from itself to its Oklab chroma times SATURATE_REACH at its own hue, brought back to its luminance; ``amount``
    says how far along (SATURATE_REACH: the whole way), and the move stops at the gamut's edge. Luminance is the
    same all along the line, hue nearly so (within 3 degrees, Oklab). Scaling log-chromaticities instead (the
    chroma table, photofinish params before version 5) raises each channel ratio to a power, which bends hues
    towards the primaries: at +100 a sky-cyan turned 11 degrees (CIELAB) towards blue, an orange 9 towards red. One
    line for every amount, and the gamut convex along it, make more saturation never give colour back, and
    neighbouring colours move alike: a path of constant hue in Oklab is curved, and a deep blue's touched the
    gamut's edge and came back in, so where it stopped jumped between neighbours (a reviewer's ramp).
    """
    from engine import kernels  # loaded by the pipeline already; here, so importing this module loads no numba

    return kernels.saturate(np.ascontiguousarray(x, dtype=_F), amount, SATURATE_REACH, np.asarray(SRGB_TO_LMS),
                            np.asarray(LMS_ROOT_TO_OKLAB))


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


# Each pinned operator parameter: its shape (None: any size there), and the range its values must lie in.
PINNED_SHAPES: dict[str, tuple[tuple[int | None, ...], tuple[float, float]]] = {
    "gain_ev": ((), (-16.0, 16.0)), "knee": ((), (0.0, 1.0)), "tone": ((3,), (-100.0, 100.0)),
    "local_tone": ((1, 1, None, None, None), (-16.0, 16.0)), "chroma": ((1, 2, None, None), (-16.0, 16.0)),
    "gamma": ((), (0.05, 20.0)),
}


def check_pinned(operators: Any) -> None:
    """Raise :class:`engine.errors.RecipeError` unless ``operators`` (parameters pinned in a recipe, as the
    photofinish stage notes them), when an object, has every operator's parameters, of the right shape, finite
    and in range."""
    from engine.errors import RecipeError

    if not isinstance(operators, dict):
        return  # not an object at all: engine.stages.params.check_params says so, as for every parameter
    if not isinstance(operators.get("stop_at_gamut", False), bool):
        raise RecipeError("photofinish operator 'stop_at_gamut' is not true or false")
    checks = {**PINNED_SHAPES, **({"colour": ((), (0.0, 1.0))} if "colour" in operators else {}),
              **({"saturation": ((), (0.0, SATURATE_REACH))} if "saturation" in operators else {}),
              **({"local_tone_held": PINNED_SHAPES["local_tone"]} if "local_tone_held" in operators else {})}
    for name, (shape, (low, high)) in checks.items():
        if name not in operators:
            raise RecipeError(f"photofinish operators lack {name!r} (they need {', '.join(PINNED_SHAPES)})")
        try:
            value = np.asarray(operators[name], dtype=np.float64)
        except (TypeError, ValueError):
            raise RecipeError(f"photofinish operator {name!r} is not numbers") from None
        fits = value.ndim == len(shape) and all(want in (None, got) for want, got in
                                                 zip(shape, value.shape, strict=False))
        if not fits or 0 in value.shape:
            raise RecipeError(f"photofinish operator {name!r} has shape {value.shape}, not {shape}")
        if not np.all(np.isfinite(value)) or value.min() < low or value.max() > high:
            raise RecipeError(f"photofinish operator {name!r} has values outside {low:g}..{high:g}")


def apply(x: np.ndarray, operators: dict[str, Any]) -> np.ndarray:
    """The operator chain on H x W x 3 linear RGB with one set of JSON-form parameters (the photofinish stage's)."""
    a, b, c = operators["tone"]
    x = np.asarray(x, dtype=np.float32)
    x = digital_gain(x, operators["gain_ev"])
    x = highlight_shoulder(x, operators["knee"])
    x = tone_curve(x, a, b, c)
    x = local_tone_map(x, np.asarray(operators["local_tone"], dtype=np.float32)[0, 0])  # 1 x 1 x D x GH x GW
    if "local_tone_held" in operators:  # the user's shadows and highlights (photofinish params 4)
        x = local_tone_map(x, np.asarray(operators["local_tone_held"], dtype=np.float32)[0, 0], below_white=True)
    x = chroma_map(x, np.asarray(operators["chroma"], dtype=np.float32)[0], operators.get("stop_at_gamut", False))
    if "saturation" in operators:  # the slider, less or more, at each colour's hue (photofinish params 5)
        x = saturate(x, operators["saturation"])
    if operators.get("colour", 1.0) != 1.0:  # absent in parameters pinned before it existed: all colour kept
        x = keep_colour(x, operators["colour"])
    return gamma(x, operators["gamma"])

