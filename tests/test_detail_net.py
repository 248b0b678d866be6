"""The learned detail stage: a tiny full-resolution network, blended by the sharpening strength."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from engine import models
from engine.errors import ModelError
from engine.models.detail_net import DetailNet, degrade, enhance, enhance_image
from engine.pipeline import IMPLEMENTATIONS
from engine.stages.detail import DetailParams
from engine.stages.detail_learned import DETAIL_MODEL, LearnedDetail, load_detail_network


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


def test_the_detail_network_is_tiny() -> None:
    assert sum(p.numel() for p in DetailNet().parameters()) < 1_000
    assert models.entry(DETAIL_MODEL).path.stat().st_size < 20_000


def test_learned_detail_is_registered_and_classical_stays_the_default() -> None:
    choices = IMPLEMENTATIONS["detail"]
    assert "learned" in choices and next(iter(choices)) == "classical"


def test_strips_give_the_same_pixels_as_one_pass() -> None:
    torch.manual_seed(0)
    net = DetailNet()
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.3)
    image = np.random.default_rng(0).random((300, 70, 3), dtype=np.float32)
    whole = enhance(net, torch.from_numpy(image.transpose(2, 0, 1))[None], 0.7)[0].permute(1, 2, 0)
    assert np.allclose(enhance_image(net, image, 0.7), whole.detach().numpy(), atol=1e-5)


def test_strength_follows_sharpening_and_zero_is_off() -> None:
    stage, image = LearnedDetail(), _edges()
    off = stage.prepare(DetailParams(amount=0.0), _Ctx())
    assert stage.process(image, off, _Ctx()) is image
    assert stage.prepare(DetailParams(amount=50.0), _Ctx())["strength"] == pytest.approx(2.0)


def test_the_shipped_network_restores_blurred_detail() -> None:
    sharp = torch.from_numpy(_edges().transpose(2, 0, 1))[None]
    soft = degrade(sharp, torch.tensor([0.9]), torch.tensor([0.0]), torch.Generator().manual_seed(0))
    with torch.no_grad():
        restored = enhance(load_detail_network(), soft, 1.0)
    assert float((restored - sharp).abs().mean()) < 0.9 * float((soft - sharp).abs().mean())


def test_missing_detail_weights_are_an_error_naming_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(models.WEIGHTS_DIR / "manifest.json", tmp_path / "manifest.json")
    monkeypatch.setattr(models, "WEIGHTS_DIR", tmp_path)
    models.clear_cache()
    try:
        with pytest.raises(ModelError) as info:
            LearnedDetail().prepare(DetailParams(amount=30.0), _Ctx())
        assert f"{DETAIL_MODEL}.safetensors" in str(info.value)
        assert models.entry(DETAIL_MODEL).sha256 in str(info.value)
    finally:
        models.clear_cache()


def test_a_few_training_steps_lower_the_loss() -> None:
    from engine.training.train_detail import DetailConfig, train_detail

    sharp = torch.from_numpy(_edges(64).transpose(2, 0, 1))[None]
    soft = degrade(sharp, torch.tensor([1.0]), torch.tensor([0.0]), torch.Generator().manual_seed(0))
    before = float((soft - sharp).abs().mean())  # an untrained network adds nothing
    result = train_detail(DetailConfig(steps=40, batch=8, lr=1e-2))
    with torch.no_grad():
        after = float((enhance(result.net, soft, 1.0) - sharp).abs().mean())
    assert after < before
