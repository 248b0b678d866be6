"""Colours beyond the working space's gamut: compressed into it by the colour stage (recipe version 12)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import engine
from engine import gamut
from engine.recipe import Recipe
from tests.conftest import SONY, need


def test_the_compiled_compression_follows_the_curve_and_leaves_the_gamut_alone() -> None:
    import torch

    rng = np.random.default_rng(0)
    image = (rng.standard_normal((64, 80, 3)) * 0.6 + 0.3).astype(np.float32)
    image[0, :4] = [[-9.0, 0.2, 1.0], [0.5, 0.5, 0.5], [-0.1, -0.2, -0.05], [0.0, 0.0, 0.0]]
    largest = image.max(axis=2, keepdims=True)
    inside = ((largest - image) <= gamut.THRESHOLDS * largest) & (largest > 0)  # components within thresholds
    expected = gamut.compress_torch(torch.from_numpy(image.copy())).numpy()
    compressed = image.copy()
    gamut.compress_in_place(compressed)
    top = np.maximum(image.max(axis=2, keepdims=True), 1e-3)
    assert (np.abs(compressed - expected) / top).max() < 1e-5  # the compiled tables against the curve
    assert np.array_equal(compressed[inside], image[inside])  # within the thresholds: untouched
    assert np.array_equal(compressed[0, 1:4], image[0, 1:4])  # grey, all negative, black
    assert compressed[0, 0, 0] > image[0, 0, 0]  # far beyond the gamut: pulled towards it
    # the limit lands on the gamut's edge: a component at distance LIMITS from the largest becomes 0
    edge = np.array([[[1.0 - gamut.LIMITS[0], 1.0, 1.0], [1.0, 1.0 - gamut.LIMITS[1], 1.0]]], dtype=np.float32)
    gamut.compress_in_place(edge)
    assert edge[0, 0, 0] == pytest.approx(0.0, abs=1e-5) and edge[0, 1, 1] == pytest.approx(0.0, abs=1e-5)


def test_a_blue_stage_light_renders_as_the_camera_renders_it_and_old_recipes_as_they_did() -> None:
    # The Sony a7R III concert: a screen lit by blue LEDs, beyond linear sRGB. Left to the later clipping, it
    # rendered pure dark blue (red 0), where the camera's JPEG shows a lighter violet-blue.
    from engine.training import look_eval
    from engine.training.pipeline_eval import embedded_preview

    sony = need(SONY)
    preview = embedded_preview(sony)
    source = engine.open(sony)
    classical = {"denoise": {"implementation": "classical"}}
    now = engine.render(source, Recipe.from_dict({"stages": classical}), preview=1616)
    then = engine.render(source, Recipe.from_dict({"version": 11, "stages": classical}), preview=1616)
    assert now.notes["colour"]["gamut"] == "compressed" and then.notes["colour"]["gamut"] == "unbounded"
    closer, before = look_eval.scores(now.pixels, preview), look_eval.scores(then.pixels, preview)
    assert closer.psnr > before.psnr + 1.5 and closer.de2000 < before.de2000 - 0.3, (closer, before)
    screen = now.pixels[60:200, 500:900].reshape(-1, 3).mean(axis=0)  # the top of the screen
    assert screen[0] > 0.05 and screen[2] > screen[1]
    assert then.pixels[60:200, 500:900, 0].mean() < 0.01


def test_an_image_is_not_compressed(tmp_path: Path) -> None:
    # a JPEG, PNG or TIFF is inside sRGB once read: the compression only desaturated its most saturated colours
    # (a pure red (200, 0, 0) rendered (245, 65, 50))
    import cv2

    patches = np.zeros((32, 96, 3), np.uint8)
    patches[:, :32], patches[:, 32:64], patches[:, 64:] = (20, 60, 230), (200, 0, 0), (0, 0, 200)
    cv2.imwrite(str(tmp_path / "patches.png"), patches[..., ::-1])
    source = engine.open(tmp_path / "patches.png")
    now = engine.render(source, Recipe())
    unbounded = Recipe.from_dict({"stages": {"colour": {"params": {"gamut": "unbounded"}}}})
    assert np.array_equal(now.pixels, engine.render(source, unbounded).pixels)
    assert now.notes["colour"]["gamut"].startswith("image")
