"""From clean linear camera RGB to what the denoise stage sees: Bayer mosaic, sensor noise, the engine's demosaic.

How a noisy/clean pair is made (:func:`noisy_pair`):

1. The clean camera RGB (raw signal units, 1 = sensor white, not white balanced) is sampled on an RGGB mosaic.
2. Noise follows :mod:`engine.training.synthetic` exactly: photo-electrons are Poisson with mean ``s / S`` and scaled
   back by ``S``, plus Gaussian read noise of variance ``O``; the result is quantised to 14-bit DN (black 512,
   white 16383) and clipped to the DN range, as a real raw is.
3. Both mosaics, clean and noisy, are demosaiced by the engine's own Malvar-He-Cutler kernels, pre-scaled by the
   camera neutral as :func:`engine.stages.demosaic.bayer_to_rgb` does, and lose their false colour to the median
   passes a render makes (:mod:`engine.false_colour`; the demosaic's default since recipe version 8, 0 for the
   denoisers trained before it). The denoiser's target is the demosaic of the *clean* mosaic, so it learns to remove
   noise (spatially correlated by the demosaic, as in a render) and nothing else, and "no denoising" is a fair
   baseline.

Noise levels (:func:`sample_noise`): ISO log-uniform in 50..25600 through the per-ISO model of
:func:`engine.synthetic.noise_profile`, with the read-noise variance scaled by a factor log-uniform in 0.25..4
so that sensors with other read/shot ratios are covered.
"""

from __future__ import annotations

import numpy as np

from engine import false_colour, kernels
from engine.stages.demosaic import FALSE_COLOUR_PASSES
from engine.training import synthetic

RGGB = np.array([[0, 1], [1, 2]], dtype=np.int64)
_RANGE = float(synthetic.WHITE_LEVEL - synthetic.BLACK_LEVEL)


def mosaic(rgb: np.ndarray, pattern: np.ndarray = RGGB) -> np.ndarray:
    """The colour filter array's samples (H, W) of an (H, W, 3) image: RGGB Bayer unless ``pattern`` (channel
    indices) says otherwise; H and W are multiples of the pattern's size."""
    h, w = rgb.shape[:2]
    channels = np.tile(pattern, (h // pattern.shape[0], w // pattern.shape[1]))
    return np.take_along_axis(rgb, channels[..., None], axis=2)[..., 0]


def add_noise(signal: np.ndarray, shot: float, read: float, rng: np.random.Generator) -> np.ndarray:
    """Poisson-Gaussian noise, 14-bit quantisation and clipping, as :func:`engine.synthetic.render_raw` makes."""
    noisy = rng.poisson(np.maximum(signal, 0.0) / shot) * shot + rng.normal(0.0, np.sqrt(read), signal.shape)
    dn = np.clip(np.round(synthetic.BLACK_LEVEL + noisy * _RANGE), 0, synthetic.WHITE_LEVEL)
    return ((dn - synthetic.BLACK_LEVEL) / _RANGE).astype(np.float32)


def quantise(signal: np.ndarray) -> np.ndarray:
    """The clean signal as the sensor would store it without noise (14-bit DN, clipped)."""
    dn = np.clip(np.round(synthetic.BLACK_LEVEL + signal * _RANGE), 0, synthetic.WHITE_LEVEL)
    return ((dn - synthetic.BLACK_LEVEL) / _RANGE).astype(np.float32)


def demosaic(cfa_signal: np.ndarray, neutral: np.ndarray, false_colour_passes: int = FALSE_COLOUR_PASSES) -> np.ndarray:
    """The engine's demosaic of a normalised RGGB mosaic (float), pre-scaled by ``neutral`` and with its false
    colour taken out by ``false_colour_passes`` median passes, like a render."""
    h, w = cfa_signal.shape
    wb = (1.0 / np.asarray(neutral, dtype=np.float64)).astype(np.float32)
    padded = np.empty((h + 4, w + 4), dtype=np.float32)
    kernels.normalize_mosaic(np.ascontiguousarray(cfa_signal, dtype=np.float32), RGGB, np.zeros(3, np.float32),
                             wb, padded)
    rgb = np.empty((h, w, 3), dtype=np.float32)
    kernels.demosaic_mhc(padded, RGGB, (1.0 / wb).astype(np.float32), rgb)
    return false_colour.suppress(rgb, wb, false_colour_passes)


def sample_noise(rng: np.random.Generator) -> tuple[float, float, float]:
    """(ISO, S, O) of a training sample (module docstring)."""
    iso = float(np.exp(rng.uniform(np.log(50.0), np.log(25600.0))))
    shot, read = synthetic.noise_profile(iso)
    return iso, shot, read * float(np.exp(rng.uniform(np.log(0.25), np.log(4.0))))


def noisy_pair(clean_rgb: np.ndarray, neutral: np.ndarray, shot: float, read: float, rng: np.random.Generator,
               false_colour_passes: int = FALSE_COLOUR_PASSES) -> tuple[np.ndarray, np.ndarray]:
    """(noisy, clean) demosaiced camera RGB of a clean image at noise (S, O) (module docstring)."""
    cfa = mosaic(clean_rgb)
    return (demosaic(add_noise(cfa, shot, read, rng), neutral, false_colour_passes),
            demosaic(quantise(cfa), neutral, false_colour_passes))
