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
        torch_rgb = kernels.to_host(bayer_to_rgb(source, "cpu"))
    assert np.allclose(torch_rgb, bayer_to_rgb(source, "cpu"), atol=1e-5)


@pytest.mark.parametrize("size", [(60, 48), (61, 47)])  # even sizes average 2 x 2; odd ones resize by area
def test_classical_denoise(noisy_dng: Path, size: tuple[int, int]) -> None:
    stage = ClassicalDenoise()
    ctx = Context(source=engine.open(noisy_dng), recipe=Recipe())
    data = stage.prepare(DenoiseParams(strength=70.0), ctx)
    x = image(*size)
    with kernels.torch_everywhere():
        on_torch = kernels.to_host(stage.process(kernels.to_device(x, "cpu"), data, ctx))
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
    on_torch = kernels.to_host(kernels.bgu_apply_torch(kernels.to_device(x, "cpu"), grid, 0.9))
    finite = np.isfinite(compiled)
    assert np.array_equal(finite, np.isfinite(on_torch)) or finite.all()
    assert np.allclose(on_torch[finite], compiled[finite], atol=1e-4)


@pytest.mark.parametrize("sigma", [0.7, 1.0, 3.0])
def test_unsharp_mask(sigma: float) -> None:
    x = image()
    expected = cv2.addWeighted(x, 1.8, cv2.GaussianBlur(x, (0, 0), sigma), -0.8, 0.0)
    on_torch = kernels.to_host(kernels.unsharp_torch(kernels.to_device(x, "cpu"), 0.8, sigma))
    assert np.allclose(on_torch, expected, atol=1e-5)


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


@pytest.fixture(scope="module")
def large_dng(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Larger than the white balance's and the pipeline's 1024 px reductions, so copies to the host show."""
    return colorchecker_dng(tmp_path_factory.mktemp("torch") / "large.dng", 1100, 1400, iso=3200, seed=4,
                            model="Torch")


def test_the_image_stays_on_the_device_from_demosaic_to_detail(large_dng: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """On the torch path every full-resolution stage hands the next a tensor, and the only full-size copy to the
    host is the finished image: the white balance estimate, the reduced-resolution stages and the denoiser's
    image scale read small copies. The render still agrees with the CPU's within 1/255."""
    from engine import tiling
    from engine.models import denoise_tiles

    outputs: dict[str, str] = {}
    process = tiling.process

    def spy_process(stage, image, data, ctx):
        result = process(stage, image, data, ctx)
        outputs[stage.name] = type(result).__name__
        return result

    copied: list[tuple[int, ...]] = []
    to_host = kernels.to_host

    def spy_to_host(image):
        if not isinstance(image, np.ndarray):
            copied.append(tuple(image.shape))
        return to_host(image)

    recipe = Recipe(wb="auto", sharpening=60,
                    stages={"denoise": StageSettings(implementation="learned"),
                            "detail": StageSettings(implementation="learned")})
    source = engine.open(large_dng)
    with denoise_tiles.float32_only():  # bfloat16 rounds differently along two code paths (see there)
        cpu = engine.render(source, recipe).pixels
        monkeypatch.setattr(tiling, "process", spy_process)
        monkeypatch.setattr(kernels, "to_host", spy_to_host)
        with kernels.torch_everywhere():
            on_torch = engine.render(source, recipe).pixels
    full = ("demosaic", "denoise", "white_balance", "colour", "upsample", "detail")
    assert {name: outputs[name] for name in full} == dict.fromkeys(full, "Tensor")
    assert outputs["photofinish"] == "ndarray"
    assert copied[-1] == (1100, 1400, 3)
    assert all(max(shape[:2]) <= 1024 for shape in copied[:-1]), copied
    assert float(np.abs(cpu - on_torch).max()) <= 1.0 / 255.0


def test_stage_cache_keeps_device_images(noisy_dng: Path) -> None:
    """On the torch path checkpoints hold tensors; a re-render after an exposure change resumes from them and
    gives what a render from scratch gives."""
    from engine.stage_cache import StageCache

    cache = StageCache()
    source = engine.open(noisy_dng)
    with kernels.torch_everywhere():
        engine.render(source, Recipe(), cache=cache)
        resumed = engine.render(source, Recipe(exposure=0.5), cache=cache)
        fresh = engine.render(engine.open(noisy_dng), Recipe(exposure=0.5))
    assert cache.hits == 1 and "demosaic" not in resumed.timings
    assert np.array_equal(resumed.pixels, fresh.pixels)


def test_learned_denoiser_falls_back_to_tiles_when_the_device_is_full(noisy_dng: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A GPU too small for the whole image in one pass denoises in tiles instead, with the same result."""
    import torch

    from engine.models import denoise_tiles

    recipe = Recipe(stages={"denoise": StageSettings(implementation="learned")})
    source = engine.open(noisy_dng)
    with denoise_tiles.float32_only(), kernels.torch_everywhere():
        whole = engine.render(source, recipe).pixels

        def out_of_memory(*args, **kwargs):
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

        monkeypatch.setattr(denoise_tiles, "_residual_on_device", out_of_memory)
        tiled = engine.render(source, recipe).pixels
    assert float(np.abs(whole - tiled).max()) <= 1e-4


@pytest.mark.parametrize("shape", [(1100, 1400), (1400, 1100), (200, 300), (4000, 6000)])
def test_white_balance_shrinks_on_the_device_to_the_estimators_own_sizes(shape: tuple[int, int]) -> None:
    """The torch path hands each estimator an image already at the size it would shrink to itself (the learned
    estimator's thumbnail, the classical one's 256 px width), so both see the same pixels as on the CPU."""
    from engine.models import illuminant
    from engine.stages.white_balance import classical_size, learned_size

    h, w = shape
    image = np.zeros((h, w, 3), np.float32)
    assert learned_size(image)[::-1] == illuminant.thumbnail(image).shape[:2]
    assert classical_size(image) == (256, round(256 * h / w))  # what estimate_neutral resizes to
