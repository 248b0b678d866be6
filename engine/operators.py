"""The fixed, differentiable photofinishing operators (after Afifi et al., "Modular Neural ISP").

Each operator is a pure torch function of an image batch ``x`` (N x 3 x H x W, linear RGB unless noted) and
its parameters (tensors with a leading batch dimension), so the same code serves training, where a network
predicts them and gradients flow back through the operators, and rendering with ``--device cuda``.

A render on the CPU runs the same maths in numpy (:mod:`engine.operators_numpy`, which says why there are two
forms and declares the constants both share), so that it never imports torch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.colour import LUMA
from engine.operators_numpy import (
    CHROMA_RANGE,
    EPS,
    GUIDE_STOPS,
    LMS_ROOT_TO_OKLAB,
    MOVE_INSET,
    SATURATE_REACH,
    SRGB_TO_LMS,
)
from engine.operators_numpy import tone_curve_midpoint as tone_curve_midpoint  # any number type: one copy


def _per_image(p: torch.Tensor) -> torch.Tensor:
    """Shape a per-image parameter (N,) for broadcasting over N x C x H x W."""
    return p.reshape(-1, 1, 1, 1)


def luminance(x: torch.Tensor) -> torch.Tensor:
    """Rec.709 luminance, N x 1 x H x W."""
    w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).reshape(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


def digital_gain(x: torch.Tensor, ev: torch.Tensor) -> torch.Tensor:
    """Multiply by ``2**ev`` (exposure in stops)."""
    return x * torch.exp2(_per_image(ev))


def highlight_shoulder(x: torch.Tensor, knee: torch.Tensor) -> torch.Tensor:
    """Compress [0, inf) into [0, 1): identity below ``knee``, a smooth tanh roll-off above it.

    This is where scene highlights above the sensor's white (kept as headroom so far) are finally decided.
    """
    k = _per_image(knee).clamp(0.05, 0.99)
    x = x.clamp(min=0.0)
    over = (x - k).clamp(min=0.0)
    return torch.where(x < k, x, k + (1.0 - k) * torch.tanh(over / (1.0 - k)))


def tone_curve(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Global tone curve ``y = x^a / (x^a + (c (1 - x))^b)`` on [0, 1].

    ``a`` sets the toe (shadow contrast), ``b`` the shoulder, ``c`` where the curve crosses 0.5.
    """
    x = x.clamp(EPS, 1.0 - EPS)
    xa = x ** _per_image(a)
    return xa / (xa + (_per_image(c) * (1.0 - x)) ** _per_image(b))


def guide_coordinate(x: torch.Tensor) -> torch.Tensor:
    """Per-pixel intensity coordinate in [0, 1] used to index bilateral grids: log2 luminance over 12 stops."""
    return ((torch.log2(luminance(x).clamp(min=2.0**-GUIDE_STOPS)) + GUIDE_STOPS) / GUIDE_STOPS).clamp(0.0, 1.0)


def slice_grid(grid: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
    """Trilinearly sample a bilateral grid (N x C x D x GH x GW) at every pixel's (x, y, guide) position."""
    n, _, h, w = guide.shape
    ys = torch.linspace(-1.0, 1.0, h, device=guide.device, dtype=guide.dtype)
    xs = torch.linspace(-1.0, 1.0, w, device=guide.device, dtype=guide.dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    coords = torch.stack(
        [gx.expand(n, h, w), gy.expand(n, h, w), guide[:, 0] * 2.0 - 1.0], dim=-1
    ).unsqueeze(1)
    return F.grid_sample(grid, coords, mode="bilinear", padding_mode="border", align_corners=True)[:, :, 0]


def local_tone_map(x: torch.Tensor, grid: torch.Tensor, below_white: bool = False) -> torch.Tensor:
    """Multiply each pixel by ``2**g``, where ``g`` is sliced from a bilateral grid of log2 gains (N x 1 x D x GH x GW).

    Because the grid is indexed by intensity as well as position, gains follow edges without halos.
    ``below_white``: each lift is held below white (:func:`lift_below_white`).
    """
    lifted = x * torch.exp2(slice_grid(grid, guide_coordinate(x)))
    return lift_below_white(x, lifted) if below_white else lifted


def lift_below_white(before: torch.Tensor, lifted: torch.Tensor) -> torch.Tensor:
    """``lifted`` (``before`` times a gain per pixel) with each lift held below white:
    :func:`engine.operators_numpy.lift_below_white`, which says how and why."""
    top = before.amax(dim=1, keepdim=True)
    gain = lifted.amax(dim=1, keepdim=True) / top.clamp(min=EPS)
    held = torch.minimum(top * gain, 1.0 - (1.0 - top.clamp(max=1.0)) / gain.clamp(min=EPS))
    held = torch.where(top >= 1.0, top, held)  # past white already: not lifted
    return lifted * torch.where(gain > 1.0, held / (top * gain).clamp(min=EPS), torch.ones_like(gain))


def log_chroma(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split linear RGB into luminance and log-chromaticities u = log(B/G), v = log(R/G)."""
    x = x.clamp(min=EPS)
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return luminance(x), torch.log(b / g), torch.log(r / g)


def from_log_chroma(y: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`log_chroma`: RGB with luminance ``y`` and the given chromaticities."""
    rg, bg = torch.exp(v), torch.exp(u)
    g = y / (LUMA[0] * rg + LUMA[1] + LUMA[2] * bg)
    return torch.cat([rg * g, g, bg * g], dim=1)


def chroma_map(x: torch.Tensor, table: torch.Tensor, stop_at_gamut: bool = False) -> torch.Tensor:
    """Remap chromaticity through a table of offsets (N x 2 x T x T over u, v in +-CHROMA_RANGE), keeping luminance.

    A zero table is the identity; saturation, vibrance, hue shifts and colour grades are all such tables.
    ``stop_at_gamut``: a move that would leave [0, 1] stops at its edge (:func:`towards_within_gamut`); without
    it (photofinish params before version 4) the moved colour is pulled back towards grey (:func:`compress_gamut`).
    """
    y, u, v = log_chroma(x)
    coords = torch.cat([v, u], dim=1).permute(0, 2, 3, 1) / CHROMA_RANGE  # grid_sample wants (x=v, y=u)
    offsets = F.grid_sample(table, coords, mode="bilinear", padding_mode="border", align_corners=True)
    moved = from_log_chroma(y, u + offsets[:, 0:1], v + offsets[:, 1:2])
    return towards_within_gamut(start_of_move(x), moved) if stop_at_gamut else compress_gamut(moved)


def keep_colour(x: torch.Tensor, amount: torch.Tensor) -> torch.Tensor:
    """Keep ``amount`` (0..1) of each pixel's colour around its luminance: 0 is black and white, 1 the identity.

    A chroma table cannot remove colours beyond its range (its border offsets are clamped), so a monochrome
    style says so here instead of relying on the table.
    """
    y = luminance(x)
    return y + _per_image(amount) * (x - y)


def compress_gamut(x: torch.Tensor) -> torch.Tensor:
    """Pull colours that leave [0, 1] towards their own luminance, keeping hue, instead of clipping channels.

    Per-channel clipping turns a saturated stage light into a flat primary; desaturating keeps its hue and
    the gradation inside it, as cameras do.
    """
    y = luminance(x).clamp(0.0, 1.0)
    chroma = x - y
    high = (x.amax(dim=1, keepdim=True) - y).clamp(min=EPS)
    low = (y - x.amin(dim=1, keepdim=True)).clamp(min=EPS)
    scale = torch.minimum((1.0 - y) / high, y / low).clamp(max=1.0)
    return y + chroma * scale


def start_of_move(x: torch.Tensor) -> torch.Tensor:
    """Where a chroma move of ``x`` starts: :func:`engine.operators_numpy.start_of_move`, which says how and why."""
    y = luminance(x)
    scaled = compress_gamut(x / x.amax(dim=1, keepdim=True).clamp(min=1.0))
    start = scaled + ((y - 0.9) / 0.1).clamp(0.0, 1.0) * (compress_gamut(x) - scaled)
    return start * (1.0 - MOVE_INSET * (1.0 - luminance(start).clamp(max=1.0)))


def towards_within_gamut(start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """The colour furthest from ``start`` (within [0, 1]) towards ``end`` that stays within [0, 1].

    A saturation boost of a bright orange already at the gamut's edge then leaves it as it was, where pulling the
    boosted colour back towards grey (:func:`compress_gamut`) made it paler than before the boost.
    """
    room = torch.where(end > 1.0, (1.0 - start) / (end - start).clamp(min=EPS), torch.ones_like(start))
    room = torch.minimum(room, torch.where(end < 0.0, start / (start - end).clamp(min=EPS), torch.ones_like(start)))
    return start + room.amin(dim=1, keepdim=True).clamp(min=0.0) * (end - start)


def saturate(x: torch.Tensor, amount: torch.Tensor) -> torch.Tensor:
    """Saturation, less or more, at each colour's own hue: :func:`engine.operators_numpy.saturate`, which says how
    and why."""
    to_lms = torch.tensor(SRGB_TO_LMS, dtype=torch.float64, device=x.device)
    to_lab = torch.tensor(LMS_ROOT_TO_OKLAB, dtype=torch.float64, device=x.device)
    to_rgb, from_lab = torch.linalg.inv(to_lms).to(x.dtype), torch.linalg.inv(to_lab).to(x.dtype)
    x = x.clamp(0.0, 1.0)
    lab = torch.einsum("ij,njhw->nihw", to_lab.to(x.dtype),
                       torch.einsum("ij,njhw->nihw", to_lms.to(x.dtype), x).pow(1 / 3))
    more = _per_image(amount) > 1.0
    factor = torch.where(more, torch.full_like(_per_image(amount), SATURATE_REACH), _per_image(amount))
    lab = torch.cat([lab[:, :1], lab[:, 1:] * factor], dim=1)
    end = torch.einsum("ij,njhw->nihw", to_rgb, torch.einsum("ij,njhw->nihw", from_lab, lab) ** 3)
    end = end * (luminance(x) / luminance(end).clamp(min=EPS))  # the same luminance all along the line
    share = _per_image((amount - 1.0) / (SATURATE_REACH - 1.0))
    return torch.where(more, towards_within_gamut(x, x + share * (end - x)), end).clamp(0.0, 1.0)


def gamma(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Display encoding: the sRGB transfer curve, then a power ``2.2 / g`` (``g = 2.2`` is exactly sRGB)."""
    x = x.clamp(0.0, 1.0)
    encoded = torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.clamp(min=0.0031308) ** (1 / 2.4) - 0.055)
    return encoded.clamp(min=EPS) ** (2.2 / _per_image(g))
