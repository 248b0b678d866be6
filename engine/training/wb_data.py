"""The white-balance data set: physically computed raws with their exact illuminant, cameras held out whole.

How a sample is made (:func:`make_set`, seeded):

1. A dead-leaves scene of measured reflectances, 128 x 128 px (:mod:`engine.training.scenes`).
2. The same scene is rendered ``renders_per_scene`` times, each by a camera drawn from the set's cameras and
   under a light drawn by :func:`engine.training.spectral_data.sample_illuminant`, at an ISO log-uniform in
   100..6400 and an exposure of -2..+0.5 EV around auto exposure (:func:`engine.synthetic.render_raw`: Poisson-
   Gaussian noise, 14-bit, clipping), then demosaiced by the engine's own kernels
   (:func:`engine.training.raw_noise.demosaic`, pre-scaled by a grey-world guess, as the true neutral is
   unknown to a real raw converter at this point).
3. Kept: the network input (:func:`engine.models.illuminant.histograms` with the camera's working matrix), the
   exact camera neutral (the camera's response to a perfect white under the light), the working matrix, and
   (test sets only) a 64 x 64 thumbnail of the camera RGB for the classical baselines.

The training set uses :data:`~engine.training.spectral_data.TRAINING_CAMERAS` only (10 cameras); the test set
uses :data:`~engine.training.spectral_data.HELD_OUT_CAMERAS` only (3 cameras) and scenes from another seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.models import illuminant
from engine.training import raw_noise, scenes, spectral_data, synthetic

SCENE_SIZE = 128


@dataclass
class WBSet:
    """Arrays of a white-balance set, one row per sample."""

    hist: np.ndarray  # (N, 2, 64, 64) float32
    neutral: np.ndarray  # (N, 3) exact camera neutral, green = 1
    to_working: np.ndarray  # (N, 3, 3) camera -> working space
    images: np.ndarray | None  # (N, 64, 64, 3) float32 camera RGB thumbnails (test sets: classical baselines)
    cameras: list[str]
    lights: list[str]


def render_sample(rng: np.random.Generator, scene: synthetic.Scene, camera: str) -> tuple[np.ndarray, str, np.ndarray]:
    """(demosaiced camera RGB, light label, exact neutral) of ``scene`` seen by ``camera`` (module docstring)."""
    light = spectral_data.sample_illuminant(rng)
    iso = float(np.exp(rng.uniform(np.log(100.0), np.log(6400.0))))
    raw = synthetic.render_raw(spectral_data.camera(camera), light.spd, scene, iso=iso,
                               exposure=float(rng.uniform(-2.0, 0.5)), seed=int(rng.integers(2**31)))
    signal = (raw.cfa.astype(np.float32) - raw.black_level) / (raw.white_level - raw.black_level)
    guess = np.array([signal[0::2, 0::2].mean(), 0.5 * (signal[0::2, 1::2].mean() + signal[1::2, 0::2].mean()),
                      signal[1::2, 1::2].mean()])
    guess = np.maximum(guess, 1e-4) / max(guess[1], 1e-4)
    return raw_noise.demosaic(signal, guess), light.label, raw.camera_neutral


def make_set(seed: int, scenes_count: int, cameras: tuple[str, ...], renders_per_scene: int = 4,
             keep_images: bool = False, progress=None) -> WBSet:
    """A data set of ``scenes_count * renders_per_scene`` samples (module docstring)."""
    rng = np.random.default_rng(seed)
    hist, neutral, working, images, cams, lights = [], [], [], [], [], []
    matrices = {c: illuminant.working_matrix(spectral_data.calibration(c)) for c in cameras}
    for i in range(scenes_count):
        scene = scenes.dead_leaves_scene(rng, SCENE_SIZE, SCENE_SIZE)
        for _ in range(renders_per_scene):
            camera = cameras[rng.integers(len(cameras))]
            rgb, label, exact = render_sample(rng, scene, camera)
            hist.append(illuminant.histograms(rgb, matrices[camera]))
            neutral.append(exact)
            working.append(matrices[camera])
            if keep_images:
                images.append(illuminant.thumbnail(rgb, 64))
            cams.append(camera)
            lights.append(label)
        if progress:
            progress(i + 1, scenes_count)
    return WBSet(np.stack(hist), np.array(neutral), np.array(working), np.stack(images) if images else None, cams,
                 lights)


def training_set(seed: int, scenes_count: int, progress=None) -> WBSet:
    """Training samples: training cameras only."""
    return make_set(seed, scenes_count, spectral_data.TRAINING_CAMERAS, progress=progress)


def test_set(scenes_count: int = 400, progress=None) -> WBSet:
    """The fixed test set: held-out cameras only, scenes from seed 1_000_003 (never a training seed)."""
    return make_set(1_000_003, scenes_count, spectral_data.HELD_OUT_CAMERAS, renders_per_scene=3, keep_images=True,
                    progress=progress)
