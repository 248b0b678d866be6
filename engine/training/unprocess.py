"""Un-processing sRGB photographs into camera raw (Brooks et al. 2019, "Unprocessing images for learned raw
denoising"), with real camera matrices and the engine's own colour path.

:func:`unprocess` inverts, step by step, what a render does to camera RGB (:func:`process` is the forward
direction, and the two round-trip exactly on unclipped values):

1. sRGB decoding (IEC 61966-2-1) to linear values;
2. the inverse of a global tone curve: Brooks et al.'s smoothstep ``3x^2 - 2x^3`` stands for the camera's tone
   curve, inverted as ``x = 0.5 - sin(asin(1 - 2y) / 3)``;
3. linear sRGB to white-balanced camera RGB: the inverse of
   :func:`engine.calibration.balanced_camera_to_linear_srgb` for the camera's DNG-style calibration (ColorMatrix1
   under A, ColorMatrix2 under D65, fitted to its measured sensitivities by
   :func:`engine.training.spectral_data.calibration`), at the scene light's white;
4. inverse white balance: multiplied by the camera neutral, the camera's exact (spectral) response to a perfect
   white under the drawn light;
5. exposure: divided by a gain so the image's brightest channel peaks at ``peak`` (1 = sensor white).

:func:`random_unprocess` draws the camera (a training camera unless told), the light
(:func:`engine.training.spectral_data.sample_illuminant`) and ``peak`` (log-uniform in 0.03..0.9), and clips
negative values (sRGB colours outside the camera's gamut) to 0 and values above 1 to 1, as a sensor would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.calibration import balanced_camera_to_linear_srgb
from engine.colour import srgb_decode, srgb_encode, xyz_to_xy
from engine.training import spectral_data, synthetic


@dataclass(frozen=True)
class Unprocessing:
    """Everything needed to go from sRGB to camera RGB and back for one photograph."""

    camera: str
    light: str
    neutral: np.ndarray  # camera response to the light's white, green = 1
    balanced_to_srgb: np.ndarray  # 3 x 3, white-balanced camera RGB -> linear sRGB (the render's matrix)
    gain: float  # camera RGB = unprocessed / gain


def smoothstep(x: np.ndarray) -> np.ndarray:
    """Brooks et al.'s stand-in for a camera tone curve."""
    x = np.clip(x, 0.0, 1.0)
    return (3.0 * x**2 - 2.0 * x**3).astype(np.float32)


def inverse_smoothstep(y: np.ndarray) -> np.ndarray:
    """Exact inverse of :func:`smoothstep` on [0, 1]."""
    y = np.clip(y, 0.0, 1.0)
    return (0.5 - np.sin(np.arcsin(1.0 - 2.0 * y) / 3.0)).astype(np.float32)


def plan(camera: str, spd: np.ndarray, light: str = "", peak: float = 1.0, srgb_peak: float = 1.0) -> Unprocessing:
    """The unprocessing of a photograph for ``camera`` under ``spd`` (see the module docstring).

    ``srgb_peak`` is the brightest channel value of the photograph after steps 1-4 with gain 1; the gain
    brings it to ``peak``.
    """
    cal = spectral_data.calibration(camera)
    neutral = spectral_data.camera_white(camera, spd)
    white_xy = xyz_to_xy(spd @ synthetic._cmfs())
    matrix = balanced_camera_to_linear_srgb(cal, neutral, white_xy)
    return Unprocessing(camera, light, neutral, matrix, srgb_peak / peak)


def to_camera(srgb: np.ndarray, u: Unprocessing) -> np.ndarray:
    """Steps 1-5 without clipping: sRGB-encoded (H, W, 3) to linear camera RGB in raw signal units."""
    linear = inverse_smoothstep(srgb_decode(srgb))
    balanced = linear @ np.linalg.inv(u.balanced_to_srgb).T
    return (balanced * (u.neutral / u.gain)).astype(np.float32)


def process(camera_rgb: np.ndarray, u: Unprocessing) -> np.ndarray:
    """The forward direction, as a render does it: white balance, colour matrix, tone curve, sRGB encoding."""
    balanced = camera_rgb * (u.gain / u.neutral)
    linear = balanced @ u.balanced_to_srgb.T
    return srgb_encode(smoothstep(linear))


def unprocess(srgb: np.ndarray, u: Unprocessing) -> np.ndarray:
    """Steps 1-5 with the sensor's limits: clipped to [0, 1]."""
    return np.clip(to_camera(srgb, u), 0.0, 1.0)


def random_plan(rng: np.random.Generator, srgb_thumbnail: np.ndarray,
                cameras: tuple[str, ...] = spectral_data.TRAINING_CAMERAS) -> Unprocessing:
    """A random unprocessing (module docstring); ``srgb_thumbnail`` (a small copy) sets the exposure gain."""
    camera = cameras[rng.integers(len(cameras))]
    light = spectral_data.sample_illuminant(rng)
    peak = float(np.exp(rng.uniform(np.log(0.03), np.log(0.9))))
    unit = plan(camera, light.spd, light.label)
    brightest = float(np.percentile(to_camera(srgb_thumbnail, unit).max(axis=-1), 99.5))
    return plan(camera, light.spd, light.label, peak, max(brightest, 1e-3))
