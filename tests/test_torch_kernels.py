"""The torch path of the full-resolution stages (what ``--device cuda`` runs), checked on the CPU against the
compiled loops and OpenCV: the same maths, so the same pixels to float rounding, and renders within 1/255."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

import engine
from engine import Recipe, StageSettings, kernels
from engine.stages.base import Context
from engine.stages.demosaic import bayer_to_rgb
from engine.stages.denoise import ClassicalDenoise, DenoiseParams
from tests.conftest import colorchecker_dng


@pytest.fixture(scope="module")
def noisy_dng(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return colorchecker_dng(tmp_path_factory.mktemp("torch") / "noisy.dng", 120, 182, iso=3200, seed=2,
                            model="Torch")


def image(h: int = 61, w: int = 47, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 1.2, (h, w, 3)).astype(np.float32)


def test_demosaic(noisy_dng: Path) -> None:
    source = engine.open(noisy_dng)
    with kernels.torch_everywhere():
        torch_rgb = bayer_to_rgb(source, "cpu")
    assert np.allclose(torch_rgb, bayer_to_rgb(source, "cpu"), atol=1e-5)


@pytest.mark.parametrize("size", [(60, 48), (61, 47)])  # even sizes average 2 x 2; odd ones resize by area
def test_classical_denoise(noisy_dng: Path, size: tuple[int, int]) -> None:
    stage = ClassicalDenoise()
    ctx = Context(source=engine.open(noisy_dng), recipe=Recipe())
    data = stage.prepare(DenoiseParams(strength=70.0), ctx)
    x = image(*size)
    with kernels.torch_everywhere():
        on_torch = stage.process(x.copy(), data, ctx)
    compiled = stage.process(x.copy(), data, ctx)
    assert np.abs(on_torch - compiled).max() < (1e-4 if size[0] % 2 == 0 else 1.0 / 255.0)


def test_guided_upsampling_fit() -> None:
    low_in, low_out = image(40, 57, seed=4), image(40, 57, seed=5)
    expected = kernels.bgu_accumulate(low_in, low_out, 4, 6, 8, 0.8)
    for got, want in zip(kernels.bgu_accumulate_torch(low_in, low_out, 4, 6, 8, 0.8, "cpu"), expected, strict=True):
        assert got.shape == want.shape and np.allclose(got, want, rtol=1e-9, atol=1e-9)


def test_guided_upsampling_slice() -> None:
    x = image(53, 71)
    x[3, 4] = np.nan  # a NaN pixel stays a NaN pixel, never an index out of range
    grid = np.random.default_rng(3).normal(0.0, 1.0, (5, 7, 8, 12)).astype(np.float32)
    compiled = np.empty_like(x)
    kernels.bgu_apply(x, grid, 0.9, compiled)
    on_torch = kernels.bgu_apply_torch(x, grid, 0.9, "cpu")
    finite = np.isfinite(compiled)
    assert np.array_equal(finite, np.isfinite(on_torch)) or finite.all()
    assert np.allclose(on_torch[finite], compiled[finite], atol=1e-4)


@pytest.mark.parametrize("sigma", [0.7, 1.0, 3.0])
def test_unsharp_mask(sigma: float) -> None:
    x = image()
    expected = cv2.addWeighted(x, 1.8, cv2.GaussianBlur(x, (0, 0), sigma), -0.8, 0.0)
    assert np.allclose(kernels.unsharp_torch(x, 0.8, sigma, "cpu"), expected, atol=1e-5)


@pytest.mark.parametrize("learned", [False, True], ids=["classical", "learned"])
def test_render_on_torch_agrees_within_1_in_255(noisy_dng: Path, learned: bool) -> None:
    """Every stage on its torch path (learned: the learned denoiser and detail too) against the CPU render."""
    implementation = "learned" if learned else "classical"
    denoise = {"strength": 60.0, **({"model": "lite"} if learned else {})}
    recipe = Recipe(sharpening=60, stages={"denoise": StageSettings(implementation=implementation, params=denoise),
                                           "detail": StageSettings(implementation=implementation)})
    source = engine.open(noisy_dng)
    cpu = engine.render(source, recipe).pixels
    with kernels.torch_everywhere():
        on_torch = engine.render(source, recipe).pixels
    assert float(np.abs(cpu - on_torch).max()) <= 1.0 / 255.0
