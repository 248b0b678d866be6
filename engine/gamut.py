"""Gamut compression: scene colours beyond the working space's gamut brought inside it, smoothly.

A camera sees colours that linear sRGB cannot hold: a blue LED stage light, a neon sign, some flowers. The
colour matrix maps them to negative components, which every later step used to clip, so such a light kept the
hue of the clip and the luminance of its one positive channel: the Sony concert's blue screen rendered pure,
dark blue where the camera's own JPEG shows a lighter, paler violet-blue. Cameras compress these colours towards
grey before their picture style; the styles here learned from camera JPEGs, whose colours are already inside
the gamut, so they never learned to.

The compression is the one the ACES Reference Gamut Compression specifies (Academy Color Encoding System,
``LMT.Academy.GamutCompress``): per channel, the distance of the component from the pixel's largest one,
``d = (max - c) / max`` (0 on the grey axis, 1 on the gamut's edge, above 1 outside), is left alone up to a
threshold and compressed above it, ``d' = t + s x / (1 + x^p)^(1/p)`` with ``x = (d - t) / s``, so that the
distance ``limit`` lands on the edge. Its published thresholds and limits are used unchanged: chosen by the
ACES working group on footage of real scenes, not fitted to ours. Colours within the thresholds and greys are
untouched; a pixel whose largest component is not positive (black, noise below it) too.

:func:`compress_in_place` is the colour stage's call on the CPU, a compiled loop
(:func:`engine.kernels.compress_gamut`); a torch device runs :func:`compress_torch`.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

# Per channel (red, green, blue): the distance from which a component is compressed, and the one mapped onto
# the gamut's edge (ACES RGC: cyan, magenta and yellow thresholds and limits), and the curve's power.
THRESHOLDS = np.array([0.815, 0.803, 0.880], dtype=np.float32)
LIMITS = np.array([1.147, 1.264, 1.312], dtype=np.float32)
POWER = 1.2


def scales() -> np.ndarray:
    """The curve's scale ``s`` per channel (float32): the one for which distance ``limit`` compresses to 1."""
    t, lim = THRESHOLDS.astype(np.float64), LIMITS.astype(np.float64)
    return ((lim - t) / (((1.0 - t) / (lim - t)) ** -POWER - 1.0) ** (1.0 / POWER)).astype(np.float32)


CURVE_STEP = 1 / 1024  # the compiled loop's tables: a sample every 1/1024 of distance, over 4 beyond each threshold
CURVE_SAMPLES = 4 * 1024 + 1


def compressed_distance(distance: np.ndarray, channel: int) -> np.ndarray:
    """The compressed distance (float64) for distances of one channel's components beyond its threshold."""
    t, s = float(THRESHOLDS[channel]), float(scales()[channel])
    over = (np.asarray(distance, dtype=np.float64) - t) / s
    return t + s * over / (1.0 + over**POWER) ** (1.0 / POWER)


@functools.cache
def curves() -> np.ndarray:
    """3 x CURVE_SAMPLES: each channel's compressed distance at its threshold plus 0, CURVE_STEP, 2 CURVE_STEP, ..."""
    offsets = np.arange(CURVE_SAMPLES, dtype=np.float64) * CURVE_STEP
    return np.stack([compressed_distance(THRESHOLDS[k] + offsets, k) for k in range(3)]).astype(np.float32)


def compress_in_place(image: np.ndarray) -> None:
    """Compress the gamut of H x W x 3 linear RGB (float32) in place, with the compiled loop."""
    from engine import kernels

    kernels.compress_gamut(image, THRESHOLDS, curves(), CURVE_STEP, scales(), POWER)


def compress_torch(image: torch.Tensor) -> torch.Tensor:
    """The same compression in torch (a GPU's stages, and the reference the compiled loop is tested against)."""
    import torch

    t = torch.as_tensor(THRESHOLDS, device=image.device, dtype=image.dtype)
    s = torch.as_tensor(scales(), device=image.device, dtype=image.dtype)
    top = image.amax(dim=-1, keepdim=True)
    positive = top > 0
    safe = torch.where(positive, top, torch.ones_like(top))
    distance = (safe - image) / safe
    over = ((distance - t) / s).clamp_min(0.0)
    compressed = t + s * over / (1.0 + over**POWER) ** (1.0 / POWER)
    distance = torch.where(distance > t, compressed, distance)
    return torch.where(positive, safe - distance * safe, image)
