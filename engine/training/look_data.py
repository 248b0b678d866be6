"""The photographs the look models (photofinishing styles, detail) learn from, inverted to linear inputs.

Where the photographs come from
-------------------------------
Only images that ship *inside installed wheels* are used (nothing is downloaded, nothing is committed):
scikit-image's ``skimage/data`` folder (files that need no download), scikit-learn's ``datasets/images``
(``china``: a pagoda over a lake; ``flower``: a dahlia on dark leaves), matplotlib's ``mpl-data/sample_data``
(``grace_hopper``: a portrait against a flag) and mahotas's ``demos/data`` (``luispedro``: a portrait by a
window). These four wheels are the ``train`` extra of ``pyproject.toml``.
The split is fixed by name; the held-out photographs are in no learned stage's training set (the denoiser's
split, :mod:`engine.training.photos`, holds out ``chelsea`` and ``motorcycle_left`` too and never reads the
other wheels), so no learned stage has seen the pictures the whole pipeline is measured on:

- photofinishing (:data:`TRAIN_PHOTOS`): ``astronaut`` (studio portrait), ``coffee`` (warm still life),
  ``rocket`` (launch pad at dusk: deep blue sky, point lights), ``grace_hopper`` and ``luispedro`` (portraits),
  ``china`` (bright hazy landscape), ``hubble_deep_field`` (points of light on black: a picture far darker than
  its white point, which without it the networks met first in real raws, such as a dark concert, and answered
  differently from one training seed to the next) and ``color`` (a saturated hue wheel on black, to teach the
  chroma tables colours the photographs lack). colour-science's ``CVG_Background`` (a bright pastel gradient)
  was tried and left out: as the only low-contrast picture it taught the networks that every low-contrast
  picture is a bright chart (the cat of the held-out set came out two stops too bright).
- detail (:data:`DETAIL_PHOTOS`): the three photographs plus ``hubble_deep_field`` (points of light on black);
  the smooth charts have no detail to learn from.
- held out (:data:`TEST_PHOTOS`): ``chelsea`` (a cat, soft daylight), ``motorcycle_left`` (an indoor garage)
  and ``flower`` (a bright subject on a dark background: a low-key picture, which none of the training
  photographs is).
  ``motorcycle_right`` is the same scene, so neither side uses it.

How a photograph becomes a training pair (after Brooks et al. 2019, "Unprocessing images for learned raw
denoising")
----------------------------------------------------------------------------------------------------------
The photograph itself (8-bit sRGB, scaled to a long edge of :data:`WORK_LONG_EDGE` px) is the *natural
target*: its own look. The network's *input* undoes the rendering: sRGB decoding, giving linear, scene-referred
sRGB (the working space the colour stage hands to photofinishing), then an exposure change drawn per sample,
uniform in :data:`EV_RANGE` stops: a raw is usually exposed darker than the photograph it becomes (cameras keep
highlight headroom, and a night scene is exposed far darker still), and the spread makes the network find the
exposure itself, while how bright the raw is still says something about the scene.

Brooks et al. also invert a generic camera tone curve (smoothstep ``3x^2 - 2x^3`` on linear values,
:func:`engine.training.unprocess.inverse_smoothstep`, which the denoiser's data keeps). For the *look* that curve
is the wrong stand-in: it pivots contrast about linear 0.5, so a natural style trained on it crushes the
shadows of dark scenes. Measured against the Sony a7R III's own JPEG of a dark concert, the natural style
scored 17.3 dB PSNR trained with it and 21.4 dB without it (LibRaw: 19.8 dB), so :data:`TONE_CURVE` is 0 (the
networks learn the tone curve from the photographs themselves); :func:`unprocess` can still mix it in.

Augmentation per sample, so a handful of photographs becomes many different pictures: a random crop (15-100 % of
the area, aspect 3:4 to 4:3), a random horizontal flip, and a random *re-grading of the photograph itself*
(:func:`regrade`: brightness, contrast, saturation and white), applied before unprocessing, so the natural
target (the re-graded photograph) and the input stay consistent; without it a network memorises the few
photographs' own brightness and colourfulness instead of learning how to read a picture.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import torch

from engine.colour import LUMA, srgb_decode
from engine.errors import CorruptInputError, InputNotFoundError
from engine.training.unprocess import inverse_smoothstep

TRAIN_PHOTOS = (
    "skimage:astronaut.png",
    "skimage:coffee.png",
    "skimage:rocket.jpg",
    "matplotlib:grace_hopper.jpg",
    "mahotas:luispedro.jpg",
    "sklearn:china.jpg",
    "skimage:hubble_deep_field.jpg",
    "skimage:color.png",
)
DETAIL_PHOTOS = ("skimage:astronaut.png", "skimage:coffee.png", "skimage:rocket.jpg", "skimage:hubble_deep_field.jpg")
TEST_PHOTOS = ("skimage:chelsea.png", "skimage:motorcycle_left.png", "sklearn:flower.jpg")
# where each package keeps its photographs, inside its installed folder
PHOTO_FOLDERS = {"skimage": "data", "sklearn": "datasets/images", "matplotlib": "mpl-data/sample_data",
                 "mahotas": "demos/data", "colour": ""}
WORK_LONG_EDGE = 512
TONE_CURVE = 0.0  # no inverse tone curve for the look models (see the module docstring)
EV_RANGE = (-4.0, 0.5)  # stops applied to the linear input (negative: under-exposed, as raws usually are)


@dataclass(frozen=True)
class Photo:
    """One photograph: its name, its sRGB pixels (the natural target) and the unprocessed linear input."""

    name: str
    target: np.ndarray  # H x W x 3 float32, display-encoded sRGB in [0, 1]
    linear: np.ndarray  # H x W x 3 float32, linear scene-referred sRGB at the photograph's own exposure


def photo_path(spec: str) -> Path:
    """The file of a photograph spec ``"package:relative/path"`` inside an installed package."""
    import importlib.util

    package, _, relative = spec.partition(":")
    found = importlib.util.find_spec(package) if package in PHOTO_FOLDERS else None
    if found is None or found.origin is None:
        raise InputNotFoundError(f"photograph {spec!r}: package {package!r} is not installed "
                                 "(pip install 'hostplug[train]')")
    folder = Path(found.origin).parent / PHOTO_FOLDERS[package]
    path = folder / relative
    if not path.is_file():
        raise InputNotFoundError(f"{path}: training photograph {spec!r} is missing from the installed "
                                 f"{package!r} package")
    return path


def unprocess(srgb: np.ndarray, tone_curve: float | None = None) -> np.ndarray:
    """Encoded sRGB (H x W x 3 in [0, 1]) to linear, scene-referred sRGB: inverse gamma, then the inverse tone
    curve mixed in by ``tone_curve`` (0: none, 1: Brooks et al.'s; default :data:`TONE_CURVE`)."""
    t = TONE_CURVE if tone_curve is None else tone_curve
    linear = srgb_decode(srgb)
    return linear if t == 0.0 else ((1.0 - t) * linear + t * inverse_smoothstep(linear)).astype(np.float32)


@cache
def load_photo(spec: str, long_edge: int = WORK_LONG_EDGE) -> Photo:
    """Read a photograph (RGB, alpha dropped), scale its long edge to ``long_edge`` and unprocess it."""
    bgr = cv2.imread(str(photo_path(spec)), cv2.IMREAD_COLOR)
    if bgr is None:
        raise CorruptInputError(f"{photo_path(spec)}: training photograph cannot be decoded")
    rgb: np.ndarray = bgr[..., ::-1].astype(np.float32) / 255.0
    h, w = rgb.shape[:2]
    scale = long_edge / max(h, w)
    if scale < 1.0:
        rgb = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    rgb = np.ascontiguousarray(np.clip(rgb, 0.0, 1.0))
    return Photo(name=Path(spec.partition(":")[2]).stem, target=rgb, linear=unprocess(rgb))


def load_photos(specs: tuple[str, ...], long_edge: int = WORK_LONG_EDGE) -> list[Photo]:
    """Several photographs, in order."""
    return [load_photo(spec, long_edge) for spec in specs]


def random_crop(photo: Photo, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random crop (area 15-100 %, aspect 3:4..4:3, maybe mirrored) of input and target, resized to
    ``size`` x ``size`` (area averaging)."""
    h, w = photo.target.shape[:2]
    area = rng.uniform(0.15, 1.0) * h * w
    aspect = np.exp(rng.uniform(np.log(0.75), np.log(4 / 3)))
    ch = int(min(h, max(16, round(np.sqrt(area / aspect)))))
    cw = int(min(w, max(16, round(np.sqrt(area * aspect)))))
    y0 = int(rng.integers(0, h - ch + 1))
    x0 = int(rng.integers(0, w - cw + 1))
    crops = [cv2.resize(image[y0:y0 + ch, x0:x0 + cw], (size, size), interpolation=cv2.INTER_AREA)
             for image in (photo.linear, photo.target)]
    if rng.random() < 0.5:
        crops = [c[:, ::-1] for c in crops]
    return crops[0], crops[1]


def regrade(srgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A plausible other grading of a photograph: on encoded values, a power ``e ** g`` (g log-uniform in
    0.6..1.6), a contrast curve about 0.5 (exponent 0.6..1.3), a saturation scale (0.6..1.35) and a white
    shift (R and B scaled by up to +-8 %)."""
    from engine.training.style_targets import pivot_curve

    g = float(np.exp(rng.uniform(np.log(0.6), np.log(1.6))))
    k = float(rng.uniform(0.6, 1.3))
    sat = float(rng.uniform(0.6, 1.35))
    white = np.array([1.0 + rng.uniform(-0.08, 0.08), 1.0, 1.0 + rng.uniform(-0.08, 0.08)], dtype=np.float32)
    e = np.clip(srgb, 1e-6, 1.0) ** np.float32(g)
    e = pivot_curve(torch.from_numpy(e), torch.tensor(0.5), k).numpy()
    grey = (e @ np.array(LUMA, dtype=np.float32))[..., None]
    return np.clip((grey + sat * (e - grey)) * white, 0.0, 1.0).astype(np.float32)


def to_batch(images: list[np.ndarray]) -> torch.Tensor:
    """H x W x 3 numpy images to an N x 3 x H x W float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(np.stack(images).transpose(0, 3, 1, 2))).float()


def training_batch(
    photos: list[Photo], batch: int, size: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(linear input, natural target) batches of random photos, crops, flips, re-gradings and input exposures."""
    inputs, targets = [], []
    for _ in range(batch):
        photo = photos[int(rng.integers(0, len(photos)))]
        _, target = random_crop(photo, size, rng)
        target = regrade(target, rng)
        inputs.append(unprocess(target) * np.float32(2.0 ** rng.uniform(*EV_RANGE)))
        targets.append(target)
    return to_batch(inputs), to_batch(targets)


def whole_image(photo: Photo, size: int, ev: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(linear input at ``ev`` stops, natural target) of a whole photograph, long edge ``size`` px."""
    h, w = photo.target.shape[:2]
    scale = size / max(h, w)
    dims = (max(1, round(w * scale)), max(1, round(h * scale)))
    linear = cv2.resize(photo.linear, dims, interpolation=cv2.INTER_AREA) * np.float32(2.0**ev)
    target = cv2.resize(photo.target, dims, interpolation=cv2.INTER_AREA)
    return to_batch([linear]), to_batch([target])
