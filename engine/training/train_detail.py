"""Training the detail network: restore the sharpness a render loses, without sharpening noise.

Each step cuts random 64 x 64 patches, at the photographs' own resolution (long edge up to
:data:`DETAIL_LONG_EDGE` px, no resampling of the patch), from the training photographs of
:mod:`engine.training.look_data` (the sRGB originals are the sharp targets), with random flips; the input is the
patch blurred by a Gaussian of sigma uniform in :data:`SIGMA_RANGE` px plus Gaussian noise of std uniform in
:data:`NOISE_RANGE` (:func:`engine.models.detail_net.degrade`). Loss: mean absolute error of the enhanced patch to
the sharp one. Adam with a cosine-decayed learning rate; seeded, one CPU thread by default, so a given number of
steps reproduces the same weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from engine.models.detail_net import SIZES, DetailNet, degrade, enhance
from engine.training.look_data import DETAIL_PHOTOS, Photo, load_photos, to_batch
from engine.training.loop import run_steps

PATCH = 64
DETAIL_LONG_EDGE = 1024
SIGMA_RANGE = (0.5, 1.3)
NOISE_RANGE = (0.0, 0.012)


@dataclass(frozen=True)
class DetailConfig:
    """One training run's settings (recorded in the manifest)."""

    size: str = "fast"  # a key of engine.models.detail_net.SIZES
    steps: int = 1500
    batch: int = 16
    lr: float = 2e-3
    seed: int = 0
    minutes: float | None = None
    device: str = "cpu"
    threads: int = 1


@dataclass
class DetailResult:
    """The trained network and what happened."""

    net: DetailNet
    steps: int
    seconds: float
    losses: list[float] = field(default_factory=list)


def patches(photos: list[Photo], batch: int, rng: np.random.Generator) -> torch.Tensor:
    """Random sharp sRGB patches (N x 3 x PATCH x PATCH), maybe mirrored."""
    out = []
    for _ in range(batch):
        image = photos[int(rng.integers(0, len(photos)))].target
        h, w = image.shape[:2]
        y0, x0 = int(rng.integers(0, h - PATCH + 1)), int(rng.integers(0, w - PATCH + 1))
        patch = image[y0:y0 + PATCH, x0:x0 + PATCH]
        out.append(patch[:, ::-1] if rng.random() < 0.5 else patch)
    return to_batch(out)


def train_detail(config: DetailConfig, progress: Callable[[int, float], None] | None = None) -> DetailResult:
    """Train the detail network from scratch; ``progress(step, loss)`` every 50 steps."""
    torch.manual_seed(config.seed)
    if config.device == "cpu":
        torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    photos = load_photos(DETAIL_PHOTOS, DETAIL_LONG_EDGE)
    net = DetailNet(**SIZES[config.size]).to(config.device)
    optimiser = torch.optim.Adam(net.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, config.steps) / config.steps))
    )

    def next_loss() -> torch.Tensor:
        sharp = patches(photos, config.batch, rng)
        sigma = torch.from_numpy(rng.uniform(*SIGMA_RANGE, config.batch)).float()
        noise = torch.from_numpy(rng.uniform(*NOISE_RANGE, config.batch)).float()
        soft = degrade(sharp, sigma, noise, generator)
        return F.l1_loss(enhance(net, soft.to(config.device)), sharp.to(config.device))

    steps, seconds, losses = run_steps(optimiser, schedule, config.steps, config.minutes, next_loss, progress)
    net.eval()
    return DetailResult(net=net.cpu(), steps=steps, seconds=seconds, losses=losses)
