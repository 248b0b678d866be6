"""A typical camera's rendering of its raw, and its inverse: how an image that is already a rendering (a camera
JPEG, an editor's TIFF) becomes the linear, raw-like picture a style renders.

A camera renders its raw roughly as: linear sensor signal times a rendering gain ``2**gain_ev``; a highlight
shoulder from the knee up; sRGB encoding; an S-shaped contrast curve about encoded mid-grey; a saturation boost
(the steps and why: :mod:`engine.training.camera_photos`). :func:`unprocess` undoes them. The styles learn from
camera JPEGs unprocessed with parameters drawn per sample from the ranges below (:meth:`CameraLook.draw`); a
render unprocesses an image input with the ranges' middle (:class:`CameraLook`'s defaults), so that the natural
style gives an image back at about its own exposure and contrast, and every style renders it as it renders a
raw (demosaic params version 6, :mod:`engine.stages.demosaic`).

numpy only: a render imports no torch for it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from engine.colour import LUMA, srgb_decode, srgb_encode

PIVOT = 0.46  # sRGB-encoded mid-grey (linear 0.18)
CONTRAST_RANGE = (1.0, 1.35)
KNEE_RANGE = (0.6, 0.85)
Y_CAP = 0.995
# a render's cap: an 8-bit input's top levels lie where the inverse shoulder is steepest, and 0.995 spread 254 and
# 255 a fifth of a stop apart (a JPEG's one-level wobble in a white wall became speckle at -1 EV); at 0.95 its top
# four levels are one highlight, and natural gives 42 held-out camera JPEGs back at 39.3 dB (39.9 at 0.995)
IMAGE_Y_CAP = 0.95
SATURATION_RANGE = (1.0, 1.3)
RENDER_EV = 1.5
GAIN_RANGE = (RENDER_EV - 0.75, RENDER_EV + 0.75)


@dataclass(frozen=True)
class CameraLook:
    """One draw of the camera rendering that :func:`unprocess` inverts."""

    contrast: float = 1.175
    knee: float = 0.725
    saturation: float = 1.15
    gain_ev: float = RENDER_EV

    @staticmethod
    def draw(rng: np.random.Generator) -> CameraLook:
        """A random camera rendering (uniform in the documented ranges)."""
        return CameraLook(contrast=float(rng.uniform(*CONTRAST_RANGE)), knee=float(rng.uniform(*KNEE_RANGE)),
                          saturation=float(rng.uniform(*SATURATION_RANGE)), gain_ev=float(rng.uniform(*GAIN_RANGE)))


_LUMA_W = np.array(LUMA, dtype=np.float32)


def _pivot(e: np.ndarray, k: float, p: float = PIVOT) -> np.ndarray:
    e = np.clip(e, 1e-6, 1.0 - 1e-6)
    low = p * (e / p) ** k
    high = 1.0 - (1.0 - p) * ((1.0 - e) / (1.0 - p)) ** k
    return np.where(e < p, low, high).astype(np.float32)


def _scale_chroma(x: np.ndarray, s: float) -> np.ndarray:
    """Scale log-chromaticities by ``s`` keeping Rec.709 luminance."""
    x = np.maximum(x, 1e-6)
    y = x @ _LUMA_W
    logs = np.log(x)
    logs = logs - logs[..., 1:2]  # log(R/G), 0, log(B/G)
    ratios = np.exp(s * logs)
    g = y / (ratios @ _LUMA_W)
    return (ratios * g[..., None]).astype(np.float32)


def _channel_curve(srgb: np.ndarray, look: CameraLook, cap: float) -> np.ndarray:
    """Steps 1-3, which act on each channel alone: the contrast undone, decoded, the highlights expanded by the
    inverse shoulder up to where ``cap`` stops it."""
    e = _pivot(srgb.astype(np.float32), 1.0 / look.contrast)
    y = np.minimum(srgb_decode(e), cap)
    k = look.knee
    t = np.clip((y - k) / (1.0 - k), 0.0, cap)
    return np.where(y > k, k + (1.0 - k) * np.arctanh(t), y).astype(np.float32)


def scene_linear(srgb: np.ndarray, look: CameraLook = CameraLook(), cap: float = Y_CAP) -> np.ndarray:
    """Steps 1-4: the camera JPEG's scene-linear sRGB before the rendering gain (1 = the camera's display
    white before its highlight shoulder; highlights above it, up to where ``cap`` stops the inverse shoulder)."""
    return _scale_chroma(_channel_curve(srgb, look, cap), 1.0 / look.saturation)


def unprocess(srgb: np.ndarray, look: CameraLook = CameraLook(), cap: float = Y_CAP) -> np.ndarray:
    """A camera JPEG (encoded sRGB) -> the linear raw-like sRGB the photofinish stage receives (all steps)."""
    return np.minimum(scene_linear(srgb, look, cap) * np.float32(2.0 ** -look.gain_ev), 1.0).astype(np.float32)


_TABLE_STEPS = 65535  # the per-channel curve's table: one entry per 16-bit level, within 1e-5 of the curve


@functools.cache
def _channel_table(look: CameraLook) -> np.ndarray:
    """:func:`_channel_curve` at every 16-bit level, capped at :data:`IMAGE_Y_CAP`: it acts on each channel
    alone, so a render looks it up instead of computing powers and an arctanh."""
    table = _channel_curve(np.linspace(0.0, 1.0, _TABLE_STEPS + 1, dtype=np.float32), look, IMAGE_Y_CAP)
    return np.append(table, table[-1])  # so that 1.0 interpolates with a neighbour


def unprocessed_white(look: CameraLook = CameraLook()) -> float:
    """What an image's white (255) becomes in :func:`unprocess_image`: where its clipped highlights lie."""
    return float(_channel_table(look)[-1]) * 2.0 ** -look.gain_ev


def unprocess_image(srgb: np.ndarray, look: CameraLook = CameraLook()) -> np.ndarray:
    """:func:`unprocess` as a render runs it, capped at :data:`IMAGE_Y_CAP` (within 1e-4 of ``unprocess(srgb,
    look, IMAGE_Y_CAP)``): the per-channel steps read from a table."""
    table = _channel_table(look)
    position = np.clip(srgb, 0.0, 1.0) * np.float32(_TABLE_STEPS)
    index = position.astype(np.int32)
    position -= index  # the fraction between two levels
    low = table[index]
    linear = low + position * (table[index + 1] - low)
    out = _scale_chroma(linear, 1.0 / look.saturation) * np.float32(2.0 ** -look.gain_ev)
    return np.minimum(out, 1.0, out=out)


def process(linear: np.ndarray, look: CameraLook = CameraLook()) -> np.ndarray:
    """The camera rendering :func:`unprocess` inverts (for tests and as a reference renderer)."""
    x = _scale_chroma(np.maximum(linear, 0.0) * np.float32(2.0**look.gain_ev), look.saturation)
    k = look.knee
    x = np.where(x > k, k + (1.0 - k) * np.tanh((x - k) / (1.0 - k)), x).astype(np.float32)
    out = _pivot(srgb_encode(np.clip(x, 0.0, 1.0)), look.contrast)
    return np.clip(out, 0.0, 1.0).astype(np.float32)
