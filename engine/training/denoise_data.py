"""Training and test pairs for the denoiser: (noisy, clean) demosaiced camera RGB with its noise sigma map.

Each sample is drawn from a ``numpy`` generator seeded by the caller (same seed, same batch):

- with probability 0.6 an **un-processed photograph** (:mod:`engine.training.photos`, training split): one of the
  photographs, at full size or area-halved (halving also halves the JPEG/sensor noise the photograph carries),
  a random crop, flipped and turned by multiples of 90 degrees, greyscale ones tinted by a random colour
  (linear sRGB gains in 0.3..1, largest 1), then un-processed (:func:`engine.training.unprocess.random_plan`:
  a training camera, a drawn light, the brightest channel at 0.03..0.9 of sensor white);
- otherwise a **computed raw** (:mod:`engine.training.scenes`): a dead-leaves scene of measured reflectances
  under a drawn light, seen by a training camera (:func:`engine.synthetic.render_raw`, noiseless camera RGB),
  scaled by 2^EV with EV uniform in -4..0.

Noise is then added as :func:`engine.training.raw_noise.noisy_pair` describes. The sigma map is the noise
model applied to a 3 x 3 box-blurred copy of the noisy image, exactly as the denoise stage computes it, and the
image scale (:func:`engine.models.denoiser.image_scale`) is measured on the whole photograph or scene before
cropping, as the stage measures it on the whole image before tiling.

The test set (:func:`test_images`) is fixed: the held-out photographs (whole images, area-halved) un-processed
for the held-out cameras under daylight D55, tungsten 2856 K (CIE A) and FL11, at a fixed exposure.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

from engine.io.noise_level import NoiseModel
from engine.models.denoiser import image_scale
from engine.training import photos, raw_noise, scenes, spectral_data, synthetic, unprocess

PHOTO_PROBABILITY = 0.6


@dataclass
class Batch:
    """Network-ready arrays, (N, 3, P, P) float32 each, and the per-sample image scale (N,)."""

    noisy: np.ndarray
    clean: np.ndarray
    sigma: np.ndarray
    scale: np.ndarray


def sigma_map(noisy: np.ndarray, shot: float, read: float) -> np.ndarray:
    """Per-pixel noise sigma, as the stage computes it (on a 3 x 3 box blur of the noisy image)."""
    model = NoiseModel((shot,) * 3, (read,) * 3, "training")
    return model.sigma(cv2.blur(noisy, (3, 3), borderType=cv2.BORDER_REFLECT_101))


@cache
def _photo(name: str, half: bool) -> np.ndarray:
    image = photos.load(name)
    if half:
        h, w = image.shape[:2]
        image = cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    return image


def _augment(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Random flip and quarter turn."""
    if rng.random() < 0.5:
        image = image[:, ::-1]
    return np.ascontiguousarray(np.rot90(image, int(rng.integers(4))))


def _tint(rng: np.random.Generator) -> np.ndarray:
    gains = rng.uniform(0.3, 1.0, 3)
    return (gains / gains.max()).astype(np.float32)


def photo_sample(rng: np.random.Generator, patch: int, names: tuple[str, ...] = photos.TRAIN_PHOTOS,
                 cameras: tuple[str, ...] = spectral_data.TRAINING_CAMERAS) -> tuple[np.ndarray, np.ndarray, float]:
    """(clean camera RGB crop, camera neutral, image scale) from an un-processed photograph."""
    name = names[rng.integers(len(names))]
    image = _photo(name, bool(rng.random() < 0.5))
    if min(image.shape[:2]) < patch:
        image = _photo(name, False)
    if photos.is_grey(name):
        from engine.colour import srgb_decode, srgb_encode

        image = srgb_encode(srgb_decode(image) * _tint(rng))
    plan = unprocess.random_plan(rng, image[::4, ::4], cameras)
    scale = image_scale(unprocess.unprocess(image[::4, ::4], plan))
    h, w = image.shape[:2]
    y, x = int(rng.integers(h - patch + 1)), int(rng.integers(w - patch + 1))
    crop = _augment(rng, image[y : y + patch, x : x + patch])
    return unprocess.unprocess(crop, plan), plan.neutral, scale


def scene_sample(rng: np.random.Generator, patch: int,
                 cameras: tuple[str, ...] = spectral_data.TRAINING_CAMERAS) -> tuple[np.ndarray, np.ndarray, float]:
    """(clean camera RGB, camera neutral, image scale) of a computed dead-leaves raw."""
    camera = spectral_data.camera(cameras[rng.integers(len(cameras))])
    light = spectral_data.sample_illuminant(rng)
    raw = synthetic.render_raw(camera, light.spd, scenes.dead_leaves_scene(rng, patch, patch), noise=False)
    rgb = np.clip(raw.camera_rgb * 2.0 ** rng.uniform(-4.0, 0.0), 0.0, 1.0).astype(np.float32)
    return rgb, raw.camera_neutral, image_scale(rgb)


def make_batch(rng: np.random.Generator, size: int, patch: int,
               false_colour_passes: int = raw_noise.FALSE_COLOUR_PASSES) -> Batch:
    """A training batch of ``size`` samples of ``patch`` x ``patch`` pixels (module docstring), demosaiced with
    ``false_colour_passes`` median passes (:func:`engine.training.raw_noise.noisy_pair`)."""
    noisy, clean, sigma, scale = [], [], [], []
    for _ in range(size):
        if rng.random() < PHOTO_PROBABILITY:
            rgb, neutral, s = photo_sample(rng, patch)
        else:
            rgb, neutral, s = scene_sample(rng, patch)
        _iso, shot, read = raw_noise.sample_noise(rng)
        n, c = raw_noise.noisy_pair(rgb, neutral, shot, read, rng, false_colour_passes)
        noisy.append(n)
        clean.append(c)
        sigma.append(sigma_map(n, shot, read))
        scale.append(s)
    stack = lambda xs: np.ascontiguousarray(np.stack(xs).transpose(0, 3, 1, 2))  # noqa: E731
    return Batch(stack(noisy), stack(clean), stack(sigma), np.array(scale, dtype=np.float32))


@dataclass(frozen=True)
class TestImage:
    """One clean test image and how it was made."""

    name: str
    rgb: np.ndarray  # clean camera RGB (H, W, 3)
    plan: unprocess.Unprocessing  # how it was made; ``unprocess.process`` renders it back


TEST_LIGHTS = ("D55", "A", "FL11")


def test_images() -> list[TestImage]:
    """The fixed test set (module docstring): 3 photographs x 3 held-out cameras x 3 lights, one each."""
    from engine.colour import srgb_decode, srgb_encode

    out = []
    for i, name in enumerate(photos.TEST_PHOTOS):
        image = _photo(name, True)
        h, w = (image.shape[0] // 2) * 2, (image.shape[1] // 2) * 2
        image = image[:h, :w]
        if photos.is_grey(name):
            image = srgb_encode(srgb_decode(image) * np.array([1.0, 0.8, 0.55], dtype=np.float32))
        for j, camera in enumerate(spectral_data.HELD_OUT_CAMERAS):
            light = TEST_LIGHTS[(i + j) % len(TEST_LIGHTS)]
            spd = synthetic.illuminant(light)
            unit = unprocess.plan(camera, spd, light)
            peak = float(np.percentile(unprocess.to_camera(image, unit).max(axis=-1), 99.5))
            plan = unprocess.plan(camera, spd, light, 0.5, peak)
            out.append(TestImage(f"{name.split('.')[0]}/{camera}/{light}", unprocess.unprocess(image, plan), plan))
    return out
