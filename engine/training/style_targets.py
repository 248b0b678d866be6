"""The style targets: what each picture style should make of a photograph.

``natural`` is the photograph itself (its own look). Every other style is a documented, *content-adaptive*
grading of that natural rendering, so a network has to read the picture to predict its parameters (a constant
would not do). Each grading is built from what the operators can express, applied to the natural image's
linear luminance ``Y`` and log-chromaticity ``c = (u, v) = (log B/G, log R/G)``:

- a *luminance curve* on ``e`` = sRGB-encoded ``Y``: a power ``e ** g`` (brighter for g < 1) and a pivoted
  contrast curve ``P(e; p, k)`` (``p * (e / p) ** k`` below the pivot ``p``, mirrored above, so 0, ``p`` and 1
  stay put; ``k`` > 1 adds contrast);
- a *chroma map*: a saturation scale, a vibrance term (scale more where chroma is low), a shift (a white-balance
  change) or a pull of hues towards an axis;
- then the linear result is brought into the gamut (a chroma move stops at the gamut's edge, from the natural
  colour at the new luminance, as the chroma operator's does) and sRGB-encoded.

Image statistics (all over the natural image): ``med``, ``q05``, ``q95`` of ``e``; ``chroma`` = mean ``|c|``
and ``warmth`` = mean of ``(v - u) / 2`` over pixels with ``Y`` > 0.02.

============  ===========================================================================================
style         grading
============  ===========================================================================================
natural       none: the photograph
vivid         contrast ``k = clip(1.5 - 0.6 (q95 - q05), 1.1, 1.4)`` about ``p = clip(med, 0.25, 0.6)``;
              saturation ``s = clip(0.45 / (chroma + 0.15), 1.25, 1.7)`` (dull pictures gain more) with
              vibrance 0.3 (``c *= s (1 + 0.3 exp(-|c| / 0.5))``)
warm          white balance shift ``w = clip(0.2 - 0.5 warmth, 0.08, 0.25)`` (less on a warm picture):
              ``v += 0.5 w``, ``u -= 0.9 w``; brightness ``g = 0.92``; saturation 1.1
moody         darker: ``g = clip(log min(0.75 med, 0.3) / log med, 1.15, 2.0)``; opened shadows
              ``P(e; 0.25, 0.85)``; saturation 0.55; cool shift ``u += 0.07``, ``v -= 0.06``
cinematic     filmic: ``g = clip(log 0.36 / log med, 0.8, 1.5)``, contrast ``P(e; 0.36, 1.2)``, shoulder
              ``e -> 0.95 e``; hues pulled towards the teal/orange axis ``d = (-0.6, 0.8)``: with
              ``a = c.d + 0.05``, ``c -> 1.3 a d + 0.35 (c - a d)``
monochrome    no chroma (Rec.709 luminance); contrast ``k = clip(1.6 - 0.8 (q95 - q05), 1.05, 1.5)`` about
              ``p = clip(med, 0.25, 0.6)``
============  ===========================================================================================
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from engine import operators as ops

Grade = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]],
                 tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
TEAL_ORANGE = (-0.6, 0.8)  # unit (u, v) direction of orange; its opposite is teal


def srgb_encode(x: torch.Tensor) -> torch.Tensor:
    """sRGB transfer curve (linear to encoded) on values clipped to [0, 1]."""
    x = x.clamp(0.0, 1.0)
    return torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.clamp(min=0.0031308) ** (1 / 2.4) - 0.055)


def srgb_decode(v: torch.Tensor) -> torch.Tensor:
    """Inverse sRGB transfer curve (encoded to linear)."""
    v = v.clamp(0.0, 1.0)
    return torch.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def pivot_curve(e: torch.Tensor, p: torch.Tensor, k: torch.Tensor | float) -> torch.Tensor:
    """Contrast curve on [0, 1] fixing 0, ``p`` and 1: ``p (e/p)^k`` below ``p``, mirrored above."""
    e = e.clamp(1e-6, 1.0 - 1e-6)
    low = p * (e / p) ** k
    high = 1.0 - (1.0 - p) * ((1.0 - e) / (1.0 - p)) ** k
    return torch.where(e < p, low, high)


def image_stats(y: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image statistics (each N x 1 x 1 x 1) of the natural rendering (see the module docstring)."""
    n = y.shape[0]
    e = srgb_encode(y).reshape(n, -1)
    q = torch.quantile(e, torch.tensor([0.05, 0.5, 0.95]), dim=1)  # 3 x N
    lit = (y > 0.02).float().reshape(n, -1)
    count = lit.sum(dim=1).clamp(min=1.0)
    chroma = (torch.sqrt(u**2 + v**2).reshape(n, -1) * lit).sum(dim=1) / count
    warmth = (((v - u) / 2).reshape(n, -1) * lit).sum(dim=1) / count

    def shaped(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(n, 1, 1, 1)

    return {"q05": shaped(q[0]), "med": shaped(q[1]), "q95": shaped(q[2]), "chroma": shaped(chroma),
            "warmth": shaped(warmth)}


def _luma_power(y: torch.Tensor, g: torch.Tensor | float) -> torch.Tensor:
    return srgb_encode(y).clamp(min=1e-6) ** g


def _vivid(y, u, v, s):
    k = (1.5 - 0.6 * (s["q95"] - s["q05"])).clamp(1.1, 1.4)
    e = pivot_curve(srgb_encode(y), s["med"].clamp(0.25, 0.6), k)
    sat = (0.45 / (s["chroma"] + 0.15)).clamp(1.25, 1.7)
    scale = sat * (1.0 + 0.3 * torch.exp(-torch.sqrt(u**2 + v**2) / 0.5))
    return srgb_decode(e), u * scale, v * scale


def _warm(y, u, v, s):
    w = (0.2 - 0.5 * s["warmth"]).clamp(0.08, 0.25)
    e = _luma_power(y, 0.92)
    return srgb_decode(e), 1.1 * u - 0.9 * w, 1.1 * v + 0.5 * w


def _moody(y, u, v, s):
    med = s["med"].clamp(0.02, 0.98)
    g = (torch.log(torch.minimum(0.75 * med, torch.tensor(0.3))) / torch.log(med)).clamp(1.15, 2.0)
    e = pivot_curve(_luma_power(y, g), torch.tensor(0.25), 0.85)
    return srgb_decode(e), 0.55 * u + 0.07, 0.55 * v - 0.06


def _cinematic(y, u, v, s):
    g = (math.log(0.36) / torch.log(s["med"].clamp(0.02, 0.98))).clamp(0.8, 1.5)
    e = 0.95 * pivot_curve(_luma_power(y, g), torch.tensor(0.36), 1.2)
    du, dv = TEAL_ORANGE
    along = u * du + v * dv + 0.05  # a slight orange bias: warm highlights and skin, teal elsewhere
    across_u, across_v = u - along * du, v - along * dv
    return srgb_decode(e), 1.3 * along * du + 0.35 * across_u, 1.3 * along * dv + 0.35 * across_v


def _monochrome(y, u, v, s):
    k = (1.6 - 0.8 * (s["q95"] - s["q05"])).clamp(1.05, 1.5)
    e = pivot_curve(srgb_encode(y), s["med"].clamp(0.25, 0.6), k)
    return srgb_decode(e), torch.zeros_like(u), torch.zeros_like(v)


GRADES: dict[str, Grade] = {
    "vivid": _vivid,
    "warm": _warm,
    "moody": _moody,
    "cinematic": _cinematic,
    "monochrome": _monochrome,
}


def style_target(natural: torch.Tensor, style: str) -> torch.Tensor:
    """The target of ``style`` (N x 3 x H x W, sRGB-encoded) from the natural rendering of the same pictures."""
    if style == "natural":
        return natural
    linear = srgb_decode(natural)
    y, u, v = ops.log_chroma(linear)
    y2, u2, v2 = GRADES[style](y, u, v, image_stats(y, u, v))
    # the grade's chroma move, from the natural colour at the new luminance, stops at the gamut's edge as the
    # chroma operator's does: a vivid bright orange stays about as saturated as natural's, not paler
    start = ops.start_of_move(ops.from_log_chroma(y2, u, v))
    return srgb_encode(ops.towards_within_gamut(start, ops.from_log_chroma(y2, u2, v2)))
