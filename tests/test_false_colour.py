"""The demosaic's false-colour medians (engine.false_colour): fringes go, edges and green stay, old recipes keep
the demosaic they were made with."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import engine
from engine import false_colour
from engine.recipe import Recipe
from engine.training.raw_noise import demosaic, mosaic

NEUTRAL = np.array([0.5, 1.0, 0.7])  # a camera's as-shot neutral: red and blue weaker than green
BALANCE = (1.0 / NEUTRAL).astype(np.float32)


def _zone_plate(size: int = 256) -> np.ndarray:
    """A grey scene of rings whose frequency rises towards the corners, up to the limit of the red and blue
    samples (a quarter cycle a pixel, beyond which no demosaic can tell colour from detail): camera RGB (the
    neutral times grey)."""
    y, x = np.mgrid[:size, :size] / size
    grey = 0.3 + 0.25 * np.cos(np.pi * size * 0.125 * (x**2 + y**2))
    return (grey[..., None] * NEUTRAL).astype(np.float32)


def _false_colour(rgb: np.ndarray) -> float:
    """RMS of the white-balanced colour differences: 0 for the grey scene, whatever the demosaic made of it."""
    balanced = rgb * BALANCE
    return float(np.sqrt(np.mean(np.square(balanced[..., [0, 2]] - balanced[..., 1:2]))))


def test_two_passes_take_out_most_of_a_demosaics_false_colour() -> None:
    scene = _zone_plate()
    rgb = demosaic(mosaic(scene), NEUTRAL, false_colour_passes=0)  # the medians come below
    before = _false_colour(rgb)
    cleaned = false_colour.suppress(rgb.copy(), BALANCE, 2)
    assert before > 0.01  # the finest rings come out coloured
    assert _false_colour(cleaned) < 0.4 * before  # measured: 0.018 -> 0.0045 (one pass: 0.0057)
    np.testing.assert_array_equal(cleaned[..., 1], rgb[..., 1])  # green, and with it the detail, untouched


def test_an_edge_between_two_colours_is_kept() -> None:
    rgb = np.zeros((40, 40, 3), np.float32)
    rgb[:, :20] = (0.6, 0.2, 0.1)  # red beside blue: a real colour edge, which a blur would smear
    rgb[:, 20:] = (0.1, 0.2, 0.6)
    np.testing.assert_allclose(false_colour.suppress(rgb.copy(), np.ones(3, np.float32), 2), rgb, atol=1e-6)


def test_a_one_pixel_fringe_goes() -> None:
    rgb = np.full((9, 9, 3), 0.4, np.float32)
    rgb[4, 4, 0] = 0.9  # a lone red pixel on grey
    out = false_colour.suppress(rgb.copy(), np.ones(3, np.float32), 1)
    assert out[4, 4, 0] == pytest.approx(0.4)


def test_bands_and_the_torch_path_give_the_bits_of_one_pass() -> None:
    import cv2
    import torch

    rng = np.random.default_rng(3)
    rgb = rng.random((1100, 300, 3), dtype=np.float32)  # taller than a band (engine.tiling.TILE_ROWS)
    scale = BALANCE / BALANCE[1]
    expected = rgb.copy()
    for c in (0, 2):
        difference = expected[..., c] * scale[c] - expected[..., 1]
        for _ in range(2):
            difference = cv2.medianBlur(difference, 3)
        expected[..., c] = (difference + expected[..., 1]) / scale[c]
    np.testing.assert_array_equal(false_colour.suppress(rgb.copy(), BALANCE, 2), expected)
    on_torch = false_colour.suppress_torch(torch.from_numpy(rgb.copy()), BALANCE, 2).numpy()
    np.testing.assert_array_equal(on_torch, expected)


def test_recipes_from_before_keep_their_demosaic(sample_dng: Path) -> None:
    off = {name: engine.StageSettings(enabled=False) for name in ("denoise", "photofinish", "detail")}
    source = engine.open(sample_dng)
    old = engine.render(source, Recipe.from_dict({"version": 7, "stages": {n: {"enabled": False} for n in off}}))
    without = engine.render(source, Recipe(stages={**off, "demosaic": engine.StageSettings(
        params={"false_colour_passes": 0}), "colour": engine.StageSettings(params={"gamut": "unbounded"})}))
    now = engine.render(source, Recipe(stages=off))
    np.testing.assert_array_equal(np.asarray(old.pixels), np.asarray(without.pixels))
    assert not np.array_equal(np.asarray(now.pixels), np.asarray(without.pixels))
    # an empty params object, as a hand-written recipe may hold, says nothing either
    empty = Recipe.from_dict({"version": 7, "stages": {"demosaic": {"params": {}}}})
    assert empty.stage("demosaic").params == {"version": 3}
