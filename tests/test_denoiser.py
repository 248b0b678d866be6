"""Tests of the learned denoiser: sizes, noise conditioning, exact tiling, training, shipped weights, bad weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import engine
from engine import models
from engine.errors import ModelError
from engine.io import noise_level
from engine.models import denoiser
from engine.recipe import Recipe, StageSettings
from engine.training import raw_noise, synthetic

LEARNED = Recipe(stages={"denoise": StageSettings(implementation="learned")})


def _randomised(config: denoiser.DenoiserConfig, seed: int = 0) -> denoiser.Denoiser:
    """A model whose every block contributes (NAFNet initialises the branch scales to zero)."""
    torch.manual_seed(seed)
    model = denoiser.Denoiser(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("beta", "gamma")):
                p.normal_(0.0, 0.5)
    return model.eval()


@pytest.mark.parametrize(("size", "low", "high"), [("lite", 200_000, 300_000), ("base", 750_000, 1_000_000)])
def test_parameter_counts_match_the_issue_sizes(size: str, low: int, high: int) -> None:
    assert low <= denoiser.parameter_count(denoiser.Denoiser(denoiser.SIZES[size])) <= high


def test_output_has_the_input_shape_for_any_size() -> None:
    model = _randomised(denoiser.SIZES["lite"])
    rgb = torch.rand(1, 3, 37, 50) * 0.3
    out = denoiser.denoise_tensor(model, rgb, torch.full_like(rgb, 0.01), 0.3)
    assert out.shape == rgb.shape and torch.isfinite(out).all()


def test_tiled_inference_equals_whole_image_inference() -> None:
    model = _randomised(denoiser.SIZES["lite"])
    rng = np.random.default_rng(0)
    rgb = (rng.random((90, 150, 3)) * 0.5).astype(np.float32)
    sigma = np.full_like(rgb, 0.02)
    whole = denoiser.denoise_image(model, rgb, sigma, tile=1024)
    tiled = denoiser.denoise_image(model, rgb, sigma, tile=64)  # 2 x 3 tiles, each with its margin of context
    assert np.abs(whole - tiled).max() < 1e-5


def test_receptive_field_is_within_the_tile_margin() -> None:
    model = _randomised(denoiser.SIZES["base"], seed=1)
    size = 2 * denoiser.RECEPTIVE_MARGIN + 16
    x = torch.rand(1, 3, size, size) * 0.2
    y = x.clone()
    centre = size // 2
    y[..., centre, centre] += 0.5
    with torch.no_grad():
        diff = (denoiser.denoise_tensor(model, y, torch.full_like(y, 0.01), 0.5)
                - denoiser.denoise_tensor(model, x, torch.full_like(x, 0.01), 0.5)).abs()[0].amax(0)
    changed = torch.nonzero(diff > 1e-6)
    assert len(changed) > 0
    assert (changed - centre).abs().max() < denoiser.RECEPTIVE_MARGIN


def test_image_scale_ignores_a_few_hot_pixels() -> None:
    rgb = np.full((100, 100, 3), 0.05, np.float32)
    rgb[:3, :3] = 1.0
    assert denoiser.image_scale(rgb) == pytest.approx(0.05)


def test_a_tiny_training_run_lowers_the_loss_and_ships(tmp_path: Path) -> None:
    pytest.importorskip("skimage")
    if not (synthetic.SPECTRAL_DIR / "camera").is_dir():
        pytest.skip("shared spectral data absent")
    from engine.training import denoise_data, train_denoiser

    torch.manual_seed(0)
    model = denoiser.Denoiser(denoiser.SIZES["lite"])
    batch = denoise_data.make_batch(np.random.default_rng(0), 2, 32)
    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(8):
        loss = train_denoiser.loss_on(model, batch, torch.device("cpu"))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    config = train_denoiser.DenoiseTrainConfig(size="lite", steps=2, batch=2, patch=32)
    trained, record = train_denoiser.train(config, log=lambda _m: None)
    entry = train_denoiser.ship(trained, record, tmp_path)
    assert (tmp_path / entry.file).is_file() and record["steps"] == 2
    assert models.read_manifest(tmp_path / "manifest.json")["denoise-lite"].sha256 == entry.sha256


# --- the shipped weights -------------------------------------------------------------------------------------------

def _shipped(size: str) -> None:
    if f"denoise-{size}" not in models.read_manifest():
        pytest.skip(f"denoise-{size} is not shipped in this checkout")


@pytest.mark.parametrize("size", ["lite", "base"])
def test_shipped_weights_load_and_verify(size: str) -> None:
    _shipped(size)
    model = denoiser.load(size)
    assert isinstance(model, denoiser.Denoiser)
    entry = models.entry(f"denoise-{size}")
    assert models.file_sha256(entry.path) == entry.sha256
    assert entry.training["steps"] > 0 and "command" in entry.training


def _noisy_flat(iso: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rgb = np.zeros((96, 96, 3), np.float32) + np.array([0.05, 0.1, 0.07], np.float32)
    rgb[:, 48:] *= 2.0
    return raw_noise.noisy_pair(rgb, np.array([0.5, 1.0, 0.7]), *synthetic.noise_profile(iso),
                                np.random.default_rng(seed))


def test_the_noise_level_conditions_how_much_is_removed() -> None:
    _shipped("lite")
    model = denoiser.load("lite")
    noisy, clean = _noisy_flat(6400)
    removed = []
    for iso in (100, 6400):
        sigma = noise_level.from_iso(iso).sigma(noisy)
        out = denoiser.denoise_image(model, noisy, sigma)
        removed.append(float(np.abs(out - noisy).mean()))
        if iso == 6400:
            assert np.mean((out - clean) ** 2) < 0.5 * np.mean((noisy - clean) ** 2)
    assert removed[1] > 2.0 * removed[0]


def test_learned_stage_denoises_a_render(sample_dng: Path) -> None:
    _shipped("lite")
    source = engine.open(sample_dng)
    rendered = engine.render(source, LEARNED.replace(denoise=60.0))
    notes = rendered.notes["denoise"]
    assert notes["model"] == "denoise-lite" and notes["strength"] == 60.0
    assert notes["noise_origin"] == "DNG NoiseProfile"
    assert rendered.pixels.shape == (600, 900, 3)


def test_classical_stays_the_default_denoiser(sample_dng: Path) -> None:
    from engine.pipeline import stage_for

    assert stage_for("denoise", Recipe()).implementation == "classical"
    assert stage_for("denoise", LEARNED).implementation == "learned"


@pytest.fixture
def private_weights(weights_copy: Path) -> Path:
    """The lite denoiser's weights file in a scratch copy of the weights folder."""
    _shipped("lite")
    return weights_copy / models.read_manifest()["denoise-lite"].file


def test_corrupted_weights_give_a_clear_error(private_weights: Path, sample_dng: Path) -> None:
    data = bytearray(private_weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    private_weights.write_bytes(bytes(data))
    expected = models.read_manifest()["denoise-lite"].sha256
    with pytest.raises(ModelError) as error:
        engine.render(engine.open(sample_dng), LEARNED)
    assert str(private_weights) in str(error.value) and expected in str(error.value)


def test_missing_weights_give_a_clear_error(private_weights: Path, sample_dng: Path) -> None:
    private_weights.unlink()
    with pytest.raises(ModelError, match="missing") as error:
        engine.render(engine.open(sample_dng), LEARNED)
    assert str(private_weights) in str(error.value)
    assert models.read_manifest()["denoise-lite"].sha256 in str(error.value)
