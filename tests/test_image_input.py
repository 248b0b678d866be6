"""An image input (JPEG, PNG, TIFF) is already a camera's rendering: the default look gives it back at about its
own exposure, where it was lifted as a raw is (about 1.5 EV too bright) before recipe version 13."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

import engine
from engine.camera_look import CameraLook, process, unprocess, unprocess_image

SAMPLE = Path(__file__).resolve().parents[1] / "engine" / "samples" / "hostplug_colorchecker.dng"


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((a.astype(float) - b.astype(float)) ** 2)))


def test_unprocess_inverts_the_typical_camera_rendering() -> None:
    linear = np.random.default_rng(0).uniform(0.0, 0.3, (8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(unprocess(process(linear, CameraLook()), CameraLook()), linear, atol=2e-3)


def test_a_render_reads_the_channel_curve_from_a_table_within_1e_4_of_it() -> None:
    pixels = np.random.default_rng(1).uniform(0.0, 1.0, (64, 64, 3)).astype(np.float32)
    pixels[0], pixels[1] = 0.0, 1.0  # black and white ends
    np.testing.assert_allclose(unprocess_image(pixels), unprocess(pixels), atol=1e-4)


def test_a_rendered_jpeg_comes_back_at_its_own_exposure_and_old_recipes_keep_theirs(tmp_path: Path) -> None:
    jpeg = tmp_path / "rendered.jpg"
    engine.render_file(SAMPLE, jpeg)  # a finished picture, as a camera or an editor writes one
    again, before = tmp_path / "again.png", tmp_path / "v12.png"
    options = engine.OutputOptions(bits=8)
    engine.render_file(jpeg, again, options=options)
    given = np.asarray(Image.open(jpeg), dtype=np.float64)
    back = np.asarray(Image.open(again), dtype=np.float64)
    assert abs(back.mean() - given.mean()) < 20 and _psnr(back, given) > 22
    old = engine.Recipe.from_dict({"version": 12})  # what such a recipe meant: sRGB decoded, then lifted as a raw
    engine.render_file(jpeg, before, old, options=options)
    lifted = np.asarray(Image.open(before), dtype=np.float64)
    assert lifted.mean() > given.mean() + 30
