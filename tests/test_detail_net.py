"""The learned detail stage: a tiny network ("fast" on packed luminance, "lite" at full resolution), blended by
the sharpening strength; recipes of params version 1 keep "lite"."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from engine import models
from engine.errors import ModelError
from engine.models.detail_net import SIZES, DetailNet, degrade, enhance, enhance_image
from engine.pipeline import IMPLEMENTATIONS
from engine.stages.detail_learned import DETAIL_MODEL, DETAIL_MODELS, LearnedDetail, load_detail_network
from engine.stages.detail_learned import LearnedDetailParams as DetailParams


class _Ctx:
    """The little of a render context the detail stage reads."""

    def __init__(self) -> None:
        from engine import Recipe

        self.recipe = Recipe()
        self.notes: dict = {}
        self.device = "cpu"


def _edges(size: int = 96) -> np.ndarray:
    """A sharp test chart: bars and a disc, sRGB-encoded."""
    yy, xx = np.mgrid[0:size, 0:size]
    bars = ((xx // 6) % 2).astype(np.float32) * 0.6 + 0.2
    disc = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 4) ** 2).astype(np.float32)
    grey = np.where(disc > 0, 0.85, bars).astype(np.float32)
    return np.repeat(grey[..., None], 3, axis=2) * np.array([1.0, 0.9, 0.8], dtype=np.float32)


@pytest.mark.parametrize("size", list(SIZES))
def test_the_detail_network_is_tiny(size: str) -> None:
    assert sum(p.numel() for p in DetailNet(**SIZES[size]).parameters()) < 1_500
    assert models.entry(DETAIL_MODELS[size]).path.stat().st_size < 20_000
    assert {"pack": 1, **models.entry(DETAIL_MODELS[size]).architecture} == SIZES[size]  # lite predates pack


@pytest.mark.parametrize("size", list(SIZES))
def test_output_has_the_input_shape_and_is_deterministic(size: str) -> None:
    net = load_detail_network(size)
    image = np.random.default_rng(0).random((37, 51, 3), dtype=np.float32)
    out = enhance_image(net, image, 1.0)
    assert out.shape == image.shape and np.array_equal(out, enhance_image(net, image.copy(), 1.0))


def test_learned_detail_is_registered_and_classical_stays_the_default() -> None:
    choices = IMPLEMENTATIONS["detail"]
    assert "learned" in choices and next(iter(choices)) == "classical"


@pytest.mark.parametrize("size", list(SIZES))
def test_strips_give_the_same_pixels_as_one_pass(size: str) -> None:
    torch.manual_seed(0)
    net = DetailNet(**SIZES[size])
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.3)
    image = np.random.default_rng(0).random((601, 71, 3), dtype=np.float32)  # 3 strips, odd sides
    whole = enhance(net, torch.from_numpy(image.transpose(2, 0, 1))[None], 0.7)[0].permute(1, 2, 0)
    assert np.allclose(enhance_image(net, image, 0.7), whole.detach().numpy(), atol=1e-5)


def test_strength_follows_sharpening_and_zero_is_off() -> None:
    stage, image = LearnedDetail(), _edges()
    off = stage.prepare(DetailParams(amount=0.0), _Ctx())
    assert stage.process(image, off, _Ctx()) is image
    assert stage.prepare(DetailParams(amount=50.0), _Ctx())["strength"] == pytest.approx(2.0)


def test_fast_is_the_default_and_version_1_params_keep_lite() -> None:
    from engine import Recipe

    assert DetailParams().model == "fast" and DETAIL_MODELS["fast"] == DETAIL_MODEL
    old = Recipe.from_dict({"version": 1, "stages": {"detail": {"implementation": "learned",
                                                                "params": {"version": 1, "amount": 30}}}})
    params = LearnedDetail().resolve_params(old)
    assert (params.model, params.amount) == ("lite", 30.0)


@pytest.mark.parametrize("size", list(SIZES))
def test_the_shipped_network_restores_blurred_detail(size: str) -> None:
    sharp = torch.from_numpy(_edges().transpose(2, 0, 1))[None]
    soft = degrade(sharp, torch.tensor([0.9]), torch.tensor([0.0]), torch.Generator().manual_seed(0))
    with torch.no_grad():
        restored = enhance(load_detail_network(size), soft, 1.0)
    assert float((restored - sharp).abs().mean()) < 0.9 * float((soft - sharp).abs().mean())


def test_missing_detail_weights_are_an_error_naming_the_file(tmp_path: Path) -> None:
    shutil.copy(models.WEIGHTS_DIR / "manifest.json", tmp_path / "manifest.json")
    with models.using_weights(tmp_path), pytest.raises(ModelError) as info:
        LearnedDetail().prepare(DetailParams(amount=30.0), _Ctx())
    assert str(tmp_path / f"{DETAIL_MODEL}.safetensors") in str(info.value)
    assert models.entry(DETAIL_MODEL).sha256 in str(info.value)


def test_a_few_training_steps_lower_the_loss() -> None:
    from engine.training.train_detail import DetailConfig, train_detail

    sharp = torch.from_numpy(_edges(64).transpose(2, 0, 1))[None]
    soft = degrade(sharp, torch.tensor([1.0]), torch.tensor([0.0]), torch.Generator().manual_seed(0))
    before = float((soft - sharp).abs().mean())  # an untrained network adds nothing
    result = train_detail(DetailConfig(steps=40, batch=8, lr=1e-2))
    with torch.no_grad():
        after = float((enhance(result.net, soft, 1.0) - sharp).abs().mean())
    assert after < before
