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

Data (``TrainConfig.data``): ``cameras`` (issue 11; what :func:`main` trains): the camera JPEGs of ``../shared/photos``
unprocessed into raws (:mod:`engine.training.camera_photos`, its seeded split holds whole cameras out), the
target of ``natural`` being each camera's own JPEG; the networks follow the raw's exposure (``exposure="raw"``:
a fixed rendering gain :data:`engine.training.camera_photos.RENDER_EV` plus a correction of at most
``TrainConfig.correction`` stops, chosen from the bracket evidence in :mod:`engine.training.eval_looks`), with
the adaptivity penalty lowered to :data:`CAMERA_ADAPTIVITY` (136 photographs, not eight, to learn from) and
the gain out of it: the gain is supervised by the camera gain each input was drawn with
(:data:`EXPOSURE_SUPERVISION`, :func:`loss_fn`).
``wheels`` (still ``TrainConfig``'s default, so the ``hostplug train photofinish`` command keeps working until it
records :meth:`PhotofinishNet.architecture` and :func:`training_record`): the eight photographs of the
installed wheels (:mod:`engine.training.look_data`) and white-point exposure, as the weights shipped before
issue 11 were trained.

How much of the exposure a style may correct (``correction``), decided on the evidence (natural style, photofinishing
alone, the 42 held-out photographs at 384 px each under one drawn camera rendering; and the 8 rawio bracket series,
each unprocessed under one common rendering, :func:`engine.training.eval_looks.brackets`):

==========================================  ===========  ==========  ==============  =========================
exposure of the natural style               PSNR (dB)    CIEDE2000   bracket spacing  bracket PSNR / order kept
==========================================  ===========  ==========  ==============  =========================
candidate, its correction removed (1.5 EV)    29.17        3.59        -                -
raw + at most 0.5 EV (candidate; 1500 steps)  30.87        2.89        0.853            29.93 / 8 of 8
raw + at most 1.0 EV (800 steps)              30.78        2.86        0.869            29.05 / -
raw + at most 3.0 EV (800 steps)              30.64        2.85        0.850            29.07 / -
candidate with ``auto_exposure``              26.67        5.30        0.790            26.12 / 7 of 8
candidate, 99th-percentile metered gain       24.75        6.43        -                -
candidate given the true drawn gain           32.63        2.21        -                -
==========================================  ===========  ==========  ==============  =========================

A network free to move the exposure by 3 EV learned to move it little (metering predicts a camera's exposure worse
than a constant does: the 99th percentile misses the drawn gain by 1.0 EV standard deviation); the bound buys
nothing in quality beyond 0.5 EV and only costs series consistency, so 0.5 EV it is. (The 1.0 and 3.0 EV runs
were shorter and trained before the D800's ``align`` series joined the held-out camera; "-": not measured.)

``python -m engine.training.train_photofinish --style all --weights-dir DIR`` trains and writes weights with
their manifest entries (data, split, seed, settings) into DIR (``engine/weights`` ships them).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from engine.models.photofinish_net import THUMB, PhotofinishNet, run_operators
from engine.training.look_data import TRAIN_PHOTOS, load_photos, training_batch
from engine.training.loop import run_steps
from engine.training.style_targets import style_target

CROP = 64
ARCHITECTURES: dict[str, dict[str, Any]] = {"monochrome": {"chroma_limit": 3.0}}  # else the defaults
SMOOTHNESS = 0.02
LOCAL_TONE_L2 = 0.05
ADAPTIVITY = 1.0
CAMERA_ADAPTIVITY = 0.1
WEIGHT_DECAY = 1e-4
# cameras data: weight of the squared error (EV^2) of the network's gain against the drawn camera gain (clipped to
# the gain it may reach); the gain is then not in the adaptivity penalty (see loss_fn)
EXPOSURE_SUPERVISION = 0.1
CAMERA_ARCHITECTURE: dict[str, Any] = {"width": 16, "features": 64, "hidden": 32}


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
    data: str = "wheels"  # "cameras": issue 11's data (what main() trains); "wheels": the weights shipped before
    correction: float = 0.5  # stops the network may move the raw's exposure (cameras data only; see above)
    part: str = "train"  # cameras data: "train", or "fit" (train less the validation cameras) for model selection
    noise_iso: tuple[float, float] | None = None  # cameras data: sensor noise of an ISO drawn in this range


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


def loss_fn(net: PhotofinishNet, linear: torch.Tensor, target: torch.Tensor,
            adaptivity: float = ADAPTIVITY, gains: torch.Tensor | None = None) -> torch.Tensor:
    """L1 to the target in display sRGB plus the smoothness, local-tone and adaptivity penalties.

    ``gains`` (cameras data: the drawn camera gain of each input, EV) supervise the network's gain directly
    (:data:`EXPOSURE_SUPERVISION`), and the gain leaves the adaptivity penalty: how many stops a camera lifted
    its raw differs from picture to picture by construction, and the penalty held the network's estimate of it
    towards the batch's mean. On the validation cameras (two seeds, 45 raws each through the whole pipeline)
    this gained 0.37-0.40 dB and 0.08-0.09 CIEDE2000 (docs/models.md)."""
    thumb = F.interpolate(linear, size=(THUMB, THUMB), mode="area")
    params = net(thumb)
    out = run_operators(linear, params)
    grid = params["local_tone"]
    varying = params["raw"] if gains is None else params["raw"][:, 1:]  # column 0: the gain's pre-activation
    spread = varying.var(dim=0).mean() + grid.var(dim=0).mean() if linear.shape[0] > 1 else 0.0
    loss = (F.l1_loss(out, target) + SMOOTHNESS * (tv(grid) + tv(params["chroma"]))
            + LOCAL_TONE_L2 * grid.pow(2).mean() + adaptivity * spread)
    if gains is not None:
        reachable = gains.clamp(net.render_ev - net.correction, net.render_ev + net.correction)
        loss = loss + EXPOSURE_SUPERVISION * (params["gain_ev"] - reachable).pow(2).mean()
    return loss


def train(config: TrainConfig, progress: Callable[[int, float], None] | None = None) -> TrainResult:
    """Train one style from scratch with ``config``; ``progress(step, loss)`` is called every 50 steps."""
    torch.manual_seed(config.seed)
    if config.device == "cpu":
        torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed)
    if config.data == "cameras":
        from engine.training import camera_photos

        pictures = camera_photos.load(config.part)
        net = PhotofinishNet(**CAMERA_ARCHITECTURE, **ARCHITECTURES.get(config.style, {}), exposure="raw",
                             render_ev=camera_photos.RENDER_EV, correction=config.correction).to(config.device)
        adaptivity = CAMERA_ADAPTIVITY

        def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
            return camera_photos.training_batch(pictures, config.batch, CROP, rng, config.noise_iso)
    else:
        photos = load_photos(TRAIN_PHOTOS)
        net = PhotofinishNet(**ARCHITECTURES.get(config.style, {})).to(config.device)
        adaptivity = ADAPTIVITY

        def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
            return (*training_batch(photos, config.batch, CROP, rng), None)
    optimiser = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=WEIGHT_DECAY)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, config.steps) / config.steps))
    )

    def next_loss() -> torch.Tensor:
        linear, natural, gains = batch()
        target = style_target(natural, config.style)
        return loss_fn(net, linear.to(config.device), target.to(config.device), adaptivity,
                       None if gains is None else gains.to(config.device))

    steps, seconds, losses = run_steps(optimiser, schedule, config.steps, config.minutes, next_loss, progress)
    net.eval()
    net = net.cpu()
    if config.data == "cameras":
        calibrate_auto_exposure(net, config.seed, config.part)
    return TrainResult(net=net, steps=steps, seconds=seconds, losses=losses)


def calibrate_auto_exposure(net: PhotofinishNet, seed: int, part: str = "train") -> float:
    """Set ``net.auto_offset``: the median, over the training photographs (whole, each under one drawn camera
    rendering), of the network's own exposure minus the white-point estimate; so ``--auto-exposure`` meters
    the white point as the old styles did and places it where this style places whites on average."""
    from engine.models.photofinish_net import THUMB, white_exposure
    from engine.training import camera_photos

    rng = np.random.default_rng(seed + 1)
    gaps = []
    with torch.no_grad():
        for photo in camera_photos.load(part):
            linear = camera_photos.to_batch([camera_photos.unprocess(photo.srgb, camera_photos.CameraLook.draw(rng))])
            thumb = F.interpolate(linear, size=(THUMB, THUMB), mode="area")
            gaps.append(float(net(thumb)["gain_ev"][0] - white_exposure(thumb)[0]))
    net.auto_offset.fill_(float(np.median(gaps)))
    return float(net.auto_offset)


def training_record(config: TrainConfig, result: TrainResult) -> dict:
    """The manifest's ``training`` entry of a run: command, settings, data and split, losses."""
    from dataclasses import asdict

    from engine.training import camera_photos
    from engine.training.loop import machine

    command = (f"hostplug train photofinish --style {config.style} --steps {config.steps} --seed {config.seed} "
               f"--data {config.data} --correction {config.correction}"
               + (f" --part {config.part}" if config.part != "train" else "")
               + (" --noise-iso {:g} {:g}".format(*config.noise_iso) if config.noise_iso else ""))
    if config.minutes is not None:  # the learning-rate schedule was planned for config.steps: no replay
        command = f"(stopped by --minutes {config.minutes:g} after {result.steps} steps; not replayable) {command}"
    record: dict = {"command": command,
                    "config": asdict(config), "steps_run": result.steps, "wall_seconds": round(result.seconds, 1),
                    "machine": machine(),
                    "loss": {"first_50": round(result.losses[0], 4) if result.losses else None,
                             "last_50": round(result.losses[-1], 4) if result.losses else None},
                    "regularisers": {"smoothness": SMOOTHNESS, "local_tone_l2": LOCAL_TONE_L2,
                                     "adaptivity": CAMERA_ADAPTIVITY if config.data == "cameras" else ADAPTIVITY,
                                     **({"exposure_supervision": EXPOSURE_SUPERVISION,
                                         "adaptivity_leaves_out": "gain"} if config.data == "cameras" else {}),
                                     "weight_decay": WEIGHT_DECAY}}
    if config.data == "cameras":
        record["data"] = {
            "source": "../shared/photos (cameras/, kodak/, rawio/; see its PROVENANCE.md)",
            "unprocessing": "engine.training.camera_photos (inverse camera contrast, shoulder, saturation; "
                            "raw exposure drawn)",
            "split_seed": camera_photos.SPLIT_SEED, "held_out_cameras": list(camera_photos.HELD_OUT_CAMERAS),
            "held_out_series": list(camera_photos.HELD_OUT_SERIES),
            "held_out_kodak": list(camera_photos.HELD_OUT_KODAK),
            "validation_cameras": list(camera_photos.validation_cameras()),
            "train_images": len(camera_photos.load(config.part)), "long_edge": camera_photos.LONG_EDGE, "crop": CROP,
            "contrast_range": list(camera_photos.CONTRAST_RANGE), "knee_range": list(camera_photos.KNEE_RANGE),
            "saturation_range": list(camera_photos.SATURATION_RANGE),
            "gain_range_ev": list(camera_photos.GAIN_RANGE), "targets": "engine.training.style_targets",
            "noise_iso": list(config.noise_iso) if config.noise_iso else None,
            "auto_exposure_offset": round(float(result.net.auto_offset), 4)}
    return record


def train_and_ship(config: TrainConfig, weights_dir: str | None = None,
                   progress: Callable[[int, float], None] | None = None) -> TrainResult:
    """Train one style and write its weights and manifest entry into ``weights_dir`` (default: the
    installed weights)."""
    from pathlib import Path

    from engine.styles import STYLES
    from engine.training.loop import ship

    result = train(config, progress)
    metrics = {"parameters": sum(p.numel() for p in result.net.parameters())}
    ship(STYLES[config.style].model, result.net.state_dict(), result.net.architecture(),
         training_record(config, result), Path(weights_dir) if weights_dir else None, metrics)
    return result


def main(argv: list[str] | None = None) -> None:
    """``python -m engine.training.train_photofinish --style all --weights-dir DIR [--steps N --seed S]``."""
    import argparse

    from engine.styles import STYLES

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--style", required=True)
    parser.add_argument("--steps", type=int, default=TrainConfig.steps)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=TrainConfig.batch)
    parser.add_argument("--correction", type=float, default=TrainConfig.correction)
    parser.add_argument("--data", choices=("cameras", "wheels"), default="cameras")
    parser.add_argument("--part", choices=("train", "fit"), default="train",
                        help="fit: leave the validation cameras out (model selection)")
    parser.add_argument("--noise-iso", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                        help="cameras data: train on inputs with the sensor noise of an ISO in LOW..HIGH")
    parser.add_argument("--weights-dir", default=None)
    args = parser.parse_args(argv)
    for style in (list(STYLES) if args.style == "all" else [args.style]):
        config = TrainConfig(style=style, steps=args.steps, seed=args.seed, batch=args.batch,
                             correction=args.correction, data=args.data, part=args.part,
                             noise_iso=tuple(args.noise_iso) if args.noise_iso else None)

        def report(step: int, loss: float, s: str = style) -> None:
            print(f"{s}: step {step} loss {loss:.4f}", flush=True)

        result = train_and_ship(config, args.weights_dir, report)
        print(f"{style}: {result.steps} steps, {result.seconds:.0f} s, last loss {result.losses[-1]:.4f}", flush=True)


if __name__ == "__main__":
    main()
