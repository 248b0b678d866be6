"""Stage 2: raw enhancement (noise reduction) on linear camera RGB.

The classical implementation smooths chroma strongly (noise there is ugly and detail carries little colour)
and luminance lightly, at a strength that follows the file's noise level. The learned denoiser is another
implementation of this same stage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import cv2
import numpy as np

from engine import kernels, tiling
from engine.recipe import RANGES, Recipe
from engine.stages.base import Context, Pixels, Stage

# Camera RGB to a luminance / two colour-difference basis, and back.
_TO_OPPONENT = np.array([[1 / 3, 1 / 3, 1 / 3], [0.5, 0.0, -0.5], [-0.25, 0.5, -0.25]], dtype=np.float32)
_FROM_OPPONENT = np.linalg.inv(_TO_OPPONENT).astype(np.float32)


@dataclass(frozen=True)
class DenoiseParams:
    """Noise reduction strength 0..100; ``None`` picks it from the file's ISO or DNG noise profile, for the noise
    left at the render's size (``follow_scale``; False: the full-size image's strength at any size, as recipes
    before recipe version 7 rendered, :func:`engine.stages.catalogue.pin_former_defaults`)."""

    VERSION: ClassVar[int] = 2
    strength: float | None = field(default=None, metadata={"range": RANGES["denoise"]})
    follow_scale: bool = True


def gain_stops(iso: float, noise_profile: np.ndarray | None) -> float:
    """Stops of gain above ISO 100: from the DNG NoiseProfile when the file has one, else from the ISO (0 when
    neither says)."""
    if noise_profile is not None and noise_profile.size >= 2 and noise_profile[0] > 0:
        # NoiseProfile S is the shot-noise scale per unit signal; ISO 100 on a typical sensor is ~4e-5.
        return math.log2(max(float(noise_profile[0]) / 4e-5, 1.0))
    return math.log2(max(iso / 100.0, 1.0)) if iso > 0 else 0.0


def auto_strength(iso: float, noise_profile: np.ndarray | None, binning: float = 1.0) -> float:
    """A strength (0..100) for the file's noise: none up to ISO 800, rising with each stop of gain above.

    An image scaled down ``binning`` times after demosaicing (a small output rendered small) has averaged away
    part of its noise: its variance fell by ``binning^2 / 2`` (green, :meth:`engine.io.noise_level.NoiseModel.
    binned`), as if the gain were that many stops lower."""
    averaged = math.log2(max(1.0, binning * binning / 2.0))
    return float(np.clip((gain_stops(iso, noise_profile) - averaged - 3.0) * 20.0, 0.0, 100.0))


class ClassicalDenoise(Stage):
    """Chroma smoothing at reduced resolution plus a light luminance blur, in camera RGB."""

    name = "denoise"
    implementation = "classical"
    Params = DenoiseParams

    def params_from(self, recipe: Recipe) -> DenoiseParams:
        return DenoiseParams(strength=recipe.denoise)

    def prepare(self, params: DenoiseParams, ctx: Context) -> dict[str, Any]:
        source = ctx.source
        strength = params.strength
        if strength is None:
            binning = ctx.binning if params.follow_scale else 1.0
            strength = 0.0 if source.kind == "rgb" else auto_strength(source.camera.iso, source.noise_profile, binning)
        ctx.notes["denoise"] = {"strength": round(strength, 1)}
        return {"strength": strength / 100.0, "neutral": source.as_shot_neutral}

    def process(self, image: Pixels, data: dict[str, Any], ctx: Context) -> Pixels:
        s = data["strength"]
        if s <= 0.0:
            return image
        h, w = image.shape[:2]
        # Colour differences are taken after an as-shot white balance: in raw camera RGB a grey edge would
        # show up as a chroma edge, and blurring chroma would smear it.
        gains = (1.0 / np.asarray(data["neutral"])).astype(np.float32)
        if kernels.on_torch(ctx.device):
            return kernels.denoise_torch(image, gains, _TO_OPPONENT, _FROM_OPPONENT, 0.5 + 2.0 * s, 0.5 * s)
        # Chroma: a blur of a half-size copy (cheap), sampled back per pixel by the kernel.
        small = cv2.resize(image, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
        np.multiply(small, gains, out=small)
        opponent = cv2.transform(small, _TO_OPPONENT)
        del small
        chroma = np.ascontiguousarray(cv2.GaussianBlur(opponent, (0, 0), 0.5 + 2.0 * s)[..., 1:])
        del opponent

        def band(start: int, end: int) -> np.ndarray:
            out = np.empty((end - start, w, 3), dtype=np.float32)
            kernels.denoise_opponent(image, gains, chroma, _FROM_OPPONENT, 0.5 * s, out, top=start)
            return out

        # The kernel reads a 3 x 3 neighbourhood: one row of halo, and the input is rewritten in place.
        return tiling.rewrite_in_bands(image, band, halo=1)
