"""Random scenes of measured reflectances: a "dead leaves" mosaic with smooth lighting and highlights.

How a scene is made (:func:`dead_leaves_scene`, everything drawn from the caller's ``numpy`` generator):

1. **Palette.** ``k`` reflectances (``k`` uniform in 3..40) drawn without replacement from the 214 measured
   spectra of :func:`engine.training.spectral_data.reflectance_pool`. With probability 0.5 one of them is
   replaced by a flat grey (reflectance uniform in 0.2..0.9), as real scenes often hold something neutral.
   A perfect white reflector is appended as the last entry: specular highlights reflect the light itself.
2. **Leaves.** Starting from one palette entry as background, 40-400 discs and axis-aligned rectangles are
   painted on top of each other, each of one palette entry, centred uniformly, with a size drawn from a power
   law (density ~ r^-3 between 2 px and a third of the image side): the "dead leaves" model, whose edge and
   size statistics resemble those of natural images.
3. **Shading.** Per leaf a brightness factor uniform in 0.25..1 (surfaces facing away from the light), times a
   smooth field over the image (a random linear ramp plus a low-frequency cosine, between 0.35 and 1), times
   a fine multiplicative texture ``1 + a * n`` with ``n`` unit Gaussian noise blurred by sigma 0.7-2 px and
   ``a`` uniform in 0..0.15.
4. **Highlights.** With probability 0.4, 1-3 small discs of the perfect white reflector with a Gaussian
   shading bump peaking at 1.5-4 (left out of auto exposure by :func:`engine.synthetic.render_raw`, so they
   may clip like real highlights).
"""

from __future__ import annotations

import cv2
import numpy as np

from engine.training import synthetic
from engine.training.spectral_data import reflectance_pool


def _palette(rng: np.random.Generator) -> np.ndarray:
    """Reflectances of one scene (k, 81), the perfect white reflector last."""
    pool = reflectance_pool()
    k = int(rng.integers(3, 41))
    table = pool[rng.choice(len(pool), size=k, replace=False)]
    if rng.random() < 0.5:
        table[rng.integers(k)] = rng.uniform(0.2, 0.9)
    return np.concatenate([table, np.ones((1, table.shape[1]))])


def _leaf_sizes(rng: np.random.Generator, count: int, largest: float) -> np.ndarray:
    """Leaf radii with density ~ r^-3 between 2 px and ``largest`` (inverse-CDF sampling)."""
    lo, hi = 2.0, max(largest, 3.0)
    u = rng.random(count)
    return 1.0 / np.sqrt(u / lo**2 + (1.0 - u) / hi**2)


def _paint_leaves(rng: np.random.Generator, height: int, width: int, entries: int) -> tuple[np.ndarray, np.ndarray]:
    """Index map and per-pixel leaf brightness of a dead-leaves mosaic over ``entries`` palette entries."""
    index = np.full((height, width), rng.integers(entries), dtype=np.uint8)
    brightness = np.full((height, width), rng.uniform(0.25, 1.0), dtype=np.float32)
    count = int(rng.integers(40, 401))
    radii = _leaf_sizes(rng, count, min(height, width) / 3.0)
    for r in radii:
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        y0, y1 = max(int(cy - r), 0), min(int(cy + r) + 1, height)
        x0, x1 = max(int(cx - r), 0), min(int(cx + r) + 1, width)
        if y0 >= y1 or x0 >= x1:
            continue
        yy, xx = np.ogrid[y0:y1, x0:x1]
        if rng.random() < 0.5:
            inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        else:
            aspect = rng.uniform(0.3, 1.0)
            inside = (np.abs(yy - cy) <= r * aspect) & (np.abs(xx - cx) <= r)
        index[y0:y1, x0:x1][inside] = rng.integers(entries)
        brightness[y0:y1, x0:x1][inside] = rng.uniform(0.25, 1.0)
    return index, brightness


def _lighting(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Smooth illumination falloff between 0.35 and 1 with a fine multiplicative texture."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    y, x = y / height, x / width
    angle, freq = rng.uniform(0, 2 * np.pi), rng.uniform(0.5, 2.0)
    ramp = np.cos(angle) * x + np.sin(angle) * y
    wave = np.cos(2 * np.pi * freq * (np.sin(angle) * x - np.cos(angle) * y) + rng.uniform(0, 2 * np.pi))
    field = ramp + rng.uniform(0.0, 0.5) * wave
    field = (field - field.min()) / max(float(np.ptp(field)), 1e-6)
    light = 1.0 - rng.uniform(0.0, 0.65) * field
    blurred = cv2.GaussianBlur(rng.standard_normal((height, width)).astype(np.float32), (0, 0), rng.uniform(0.7, 2.0))
    noise = blurred / max(float(blurred.std()), 1e-6)
    return (light * np.clip(1.0 + rng.uniform(0.0, 0.15) * noise, 0.5, 1.5)).astype(np.float32)


def _highlights(rng: np.random.Generator, index: np.ndarray, shading: np.ndarray, white: int) -> None:
    """Paint 1-3 specular discs of palette entry ``white`` in place."""
    height, width = index.shape
    for _ in range(int(rng.integers(1, 4))):
        r = rng.uniform(1.5, max(2.0, min(height, width) / 16))
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        y, x = np.ogrid[0:height, 0:width]
        d2 = (y - cy) ** 2 + (x - cx) ** 2
        disc = d2 < r * r
        index[disc] = white
        shading[disc] = (1.0 + rng.uniform(0.5, 3.0) * np.exp(-d2[disc] / (0.5 * r * r))).astype(np.float32)


def dead_leaves_scene(rng: np.random.Generator, height: int, width: int) -> synthetic.Scene:
    """A random scene as the module docstring describes, ready for :func:`engine.synthetic.render_raw`."""
    table = _palette(rng)
    white = len(table) - 1
    index, brightness = _paint_leaves(rng, height, width, white)
    shading = brightness * _lighting(rng, height, width)
    if rng.random() < 0.4:
        _highlights(rng, index, shading, white)
    names = tuple(f"r{i}" for i in range(white)) + ("specular",)
    specular = tuple(i == white for i in range(len(table)))
    return synthetic.Scene(table, names, specular, index, shading.astype(np.float32))
