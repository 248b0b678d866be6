"""Training one picture style's photofinishing network, end to end through the fixed operators.

Each step draws a batch of random crops of the training photographs (:mod:`engine.training.look_data`) at
:data:`CROP` px, with a random input exposure; the network sees the crop's thumbnail, its predicted parameters
run the differentiable operators on the crop, and the loss is the mean absolute difference to the style target
(:mod:`engine.training.style_targets`) in display-encoded sRGB, plus a small smoothness penalty on the local tone
grid and the chroma table (neighbouring cells should not disagree without reason; it also keeps the parts of the
chroma table that no training colour reaches close to their neighbours) and a small L2 penalty on the local tone
grid's gains (global tone belongs to the tone curve, which generalises better from few photographs), and an
*adaptivity* penalty: the variance across the batch of the raw parameter outputs (:data:`ADAPTIVITY`), so a
parameter changes from picture to picture only where that clearly pays (with four photographs, unchecked
adaptivity memorises them). AdamW (weight decay :data:`WEIGHT_DECAY`) with a cosine-decayed learning rate.
Everything is seeded, and runs on one CPU thread by default, so a given number of steps reproduces the same
weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from engine.models.photofinish_net import THUMB, PhotofinishNet, run_operators
from engine.training.look_data import TRAIN_PHOTOS, load_photos, training_batch
from engine.training.loop import run_steps
from engine.training.style_targets import style_target

CROP = 64
ARCHITECTURES: dict[str, dict[str, float]] = {"monochrome": {"chroma_limit": 3.0}}  # else the defaults
SMOOTHNESS = 0.02
LOCAL_TONE_L2 = 0.05
ADAPTIVITY = 1.0
WEIGHT_DECAY = 1e-4


@dataclass(frozen=True)
class TrainConfig:
    """One training run's settings (recorded in the manifest)."""

    style: str
    steps: int = 1500
    batch: int = 12
    lr: float = 3e-3
    seed: int = 0
    minutes: float | None = None  # stop early when this wall time is spent (then not bit-reproducible)
    device: str = "cpu"
    threads: int = 1


@dataclass
class TrainResult:
    """The trained network and what happened."""

    net: PhotofinishNet
    steps: int
    seconds: float
    losses: list[float] = field(default_factory=list)  # mean loss of each block of 50 steps


def tv(t: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbours along the last two dimensions."""
    return (t[..., 1:, :] - t[..., :-1, :]).abs().mean() + (t[..., :, 1:] - t[..., :, :-1]).abs().mean()


def loss_fn(net: PhotofinishNet, linear: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 to the target in display sRGB plus the smoothness penalty."""
    thumb = F.interpolate(linear, size=(THUMB, THUMB), mode="area")
    params = net(thumb)
    out = run_operators(linear, params)
    grid = params["local_tone"]
    spread = params["raw"].var(dim=0).mean() + grid.var(dim=0).mean() if linear.shape[0] > 1 else 0.0
    return (F.l1_loss(out, target) + SMOOTHNESS * (tv(grid) + tv(params["chroma"]))
            + LOCAL_TONE_L2 * grid.pow(2).mean() + ADAPTIVITY * spread)


def train(config: TrainConfig, progress: Callable[[int, float], None] | None = None) -> TrainResult:
    """Train one style from scratch with ``config``; ``progress(step, loss)`` is called every 50 steps."""
    torch.manual_seed(config.seed)
    if config.device == "cpu":
        torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed)
    photos = load_photos(TRAIN_PHOTOS)
    net = PhotofinishNet(**ARCHITECTURES.get(config.style, {})).to(config.device)
    optimiser = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=WEIGHT_DECAY)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, config.steps) / config.steps))
    )

    def next_loss() -> torch.Tensor:
        linear, natural = training_batch(photos, config.batch, CROP, rng)
        target = style_target(natural, config.style)
        return loss_fn(net, linear.to(config.device), target.to(config.device))

    steps, seconds, losses = run_steps(optimiser, schedule, config.steps, config.minutes, next_loss, progress)
    net.eval()
    return TrainResult(net=net.cpu(), steps=steps, seconds=seconds, losses=losses)
