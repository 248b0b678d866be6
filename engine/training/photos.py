"""The photographs the denoiser learns from: sRGB images shipped inside the scikit-image wheel.

They are read straight from the installed package folder (``skimage/data``), never through scikit-image's
downloader, so nothing is fetched. Colour photographs are used as they are; greyscale ones (textures, scanned
scenes) are tinted by a random colour per use (:func:`engine.training.denoise_data`), so they add fine texture.

Split (whole images; :data:`TEST_PHOTOS` never reach training):
- training, colour: astronaut, coffee, rocket, hubble_deep_field, ihc, retina, color;
- training, greyscale: brick, grass, camera, moon, coins, cell, clock_motion, text, page;
- held out for measuring: chelsea (a cat: fur and whiskers), motorcycle_left (an indoor scene with metal and
  shelves), gravel (a greyscale texture, tinted by a fixed colour when measured). motorcycle_right shows the
  same scene as motorcycle_left, so it is used by neither side.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

TRAIN_COLOUR = ("astronaut.png", "coffee.png", "rocket.jpg", "hubble_deep_field.jpg", "ihc.png", "retina.jpg",
                "color.png")
TRAIN_GREY = ("brick.png", "grass.png", "camera.png", "moon.png", "coins.png", "cell.png", "clock_motion.png",
              "text.png", "page.png")
TRAIN_PHOTOS = TRAIN_COLOUR + TRAIN_GREY
TEST_PHOTOS = ("chelsea.png", "motorcycle_left.png", "gravel.png")
UNUSED_PHOTOS = ("motorcycle_right.png",)  # the same scene as a held-out one


def data_dir() -> Path:
    """The ``skimage/data`` folder of the installed scikit-image wheel."""
    try:
        import skimage
    except ImportError as e:
        from engine.errors import InputNotFoundError

        raise InputNotFoundError("training needs the photographs of scikit-image's wheel: pip install "
                                 "'hostplug[train]' (or pip install scikit-image)") from e
    return Path(skimage.__file__).resolve().parent / "data"


@cache
def load(name: str) -> np.ndarray:
    """A photograph as sRGB-encoded float32 in [0, 1], (H, W, 3); greyscale ones repeated on three channels."""
    from PIL import Image

    path = data_dir() / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not in the installed scikit-image wheel (scikit-image >= 0.19 ships it)")
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return np.ascontiguousarray(pixels)


def is_grey(name: str) -> bool:
    """Whether the photograph has no colour of its own."""
    return name in TRAIN_GREY or name == "gravel.png"
