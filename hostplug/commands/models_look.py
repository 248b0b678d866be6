"""``hostplug train photofinish|detail`` and ``hostplug eval pipeline|looks``: the look models.

``hostplug train photofinish --style vivid`` retrains one picture style's network from scratch (``--style all``:
every style in turn) with the shipped settings, writes ``engine/weights/photofinish-vivid.safetensors`` and its
manifest entry, and measures it on the held-out photographs. With the defaults (seed 0, the shipped step count,
one CPU thread) the weights are identical to the shipped ones (trained on the camera JPEGs of ``../shared/photos``);
``--minutes`` stops early by wall time instead.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from hostplug.commands.common import check_device, device_option, json_option

PHOTOFINISH_STEPS = 1500
DETAIL_STEPS = 1000


def _progress(label: str):
    def report(step: int, loss: float) -> None:
        if step % 200 == 0:
            click.echo(f"  {label}: step {step}, loss {loss:.4f}")

    return report


def train_one_style(style: str, steps: int, minutes: float | None, device: str, seed: int, data: str,
                    correction: float, noise_iso: tuple[float, float] | None = None) -> None:
    """Train and ship one style (``engine.training.train_photofinish.train_and_ship``)."""
    from engine.training.train_photofinish import TrainConfig, train_and_ship

    config = TrainConfig(style=style, steps=steps, minutes=minutes, device=device, seed=seed, data=data,
                         correction=correction, noise_iso=noise_iso)
    click.echo(f"photofinish-{style}: training {steps} steps on {device} ({data} data)")
    result = train_and_ship(config, progress=_progress(style))
    click.echo(f"photofinish-{style}: {result.steps} steps in {result.seconds:.0f} s, last loss "
               f"{result.losses[-1]:.4f}; measure it with 'hostplug eval looks'")


@click.command("photofinish")
@click.option("--style", "style_name", required=True, help="A picture style, or 'all'.")
@click.option("--steps", type=click.IntRange(1, None), default=PHOTOFINISH_STEPS, show_default=True)
@click.option("--minutes", type=click.FloatRange(0.01, None), help="Stop after this wall time (not reproducible).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--data", type=click.Choice(["cameras", "wheels"]), default="cameras", show_default=True,
              help="cameras: the camera JPEGs of ../shared/photos (the shipped styles); wheels: the photographs "
                   "in installed wheels (the styles shipped before).")
@click.option("--correction", type=click.FloatRange(0.0, 6.0), default=0.5, show_default=True,
              help="Stops the network may move the raw's exposure (cameras data).")
@click.option("--noise-iso", type=(float, float), default=None, metavar="LOW HIGH",
              help="Train on inputs carrying the sensor noise of an ISO drawn in LOW..HIGH (cameras data).")
@device_option
def train_photofinish(style_name: str, steps: int, minutes: float | None, seed: int, data: str, correction: float,
                      noise_iso: tuple[float, float] | None, device: str) -> None:
    """Train a picture style's photofinishing network from scratch and ship it."""
    from engine.styles import STYLES, UnknownStyleError, known_styles

    name = style_name.lower()
    if name != "all" and name not in STYLES:
        raise UnknownStyleError(f"unknown style {style_name!r}; known styles: {known_styles()}, or 'all'")
    for style in (STYLES if name == "all" else [name]):
        train_one_style(style, steps, minutes, check_device(device), seed, data, correction, noise_iso)


@click.command("detail")
@click.option("--size", type=click.Choice(["fast", "lite"]), default="fast", show_default=True)
@click.option("--steps", type=click.IntRange(1, None), default=DETAIL_STEPS, show_default=True)
@click.option("--minutes", type=click.FloatRange(0.01, None), help="Stop after this wall time (not reproducible).")
@click.option("--seed", type=int, default=0, show_default=True)
@device_option
def train_detail_command(size: str, steps: int, minutes: float | None, seed: int, device: str) -> None:
    """Train the detail-enhancement network from scratch and ship it."""
    from engine.models.detail_net import SIZES
    from engine.stages.detail_learned import DETAIL_MODELS
    from engine.training.loop import machine, ship
    from engine.training.train_detail import (
        DETAIL_LONG_EDGE,
        DETAIL_PHOTOS,
        NOISE_RANGE,
        PATCH,
        SIGMA_RANGE,
        DetailConfig,
        train_detail,
    )

    config = DetailConfig(size=size, steps=steps, minutes=minutes, device=check_device(device), seed=seed)
    name = DETAIL_MODELS[size]
    click.echo(f"{name}: training {steps} steps on {device}")
    result = train_detail(config, _progress("detail"))
    training = {
        "command": f"hostplug train detail --size {size} --steps {steps} --seed {seed}", "config": asdict(config),
        "steps_run": result.steps, "wall_seconds": round(result.seconds, 1), "machine": machine(),
        "data": {"train": list(DETAIL_PHOTOS), "long_edge": DETAIL_LONG_EDGE, "patch": PATCH,
                 "blur_sigma": list(SIGMA_RANGE), "noise_std": list(NOISE_RANGE)},
        "loss": {"first_50": round(result.losses[0], 5) if result.losses else None,
                 "last_50": round(result.losses[-1], 5) if result.losses else None},
    }
    ship(name, result.net.state_dict(), SIZES[size], training)
    click.echo(f"{name}: {result.steps} steps in {result.seconds:.0f} s")


@click.command("pipeline")
@click.option("--raws", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of real raws with embedded camera renderings (default: ../shared/rawsamples).")
@json_option("Print the results as JSON.")
@click.option("--no-store", is_flag=True, help="Do not write the figures into the model manifest.")
@click.option("--sheets", type=click.Path(file_okay=False, path_type=Path),
              help="Also write contact sheets (PNG) of the renders into this folder.")
def eval_pipeline(raws: Path | None, as_json: bool, no_store: bool, sheets: Path | None) -> None:
    """Whole-pipeline quality of the picture styles and the detail network, with speed."""
    from engine.training import pipeline_eval

    report = pipeline_eval.run(raws, sheets, progress=lambda m: click.echo(m, err=True))
    if not no_store:
        pipeline_eval.store(report)
    click.echo(json.dumps(report, indent=2) if as_json else pipeline_eval.tables(report))


@click.command("looks")
@click.option("--raws", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of real raws with embedded camera renderings (default: ../shared/rawsamples).")
@click.option("--weights", type=click.Path(file_okay=False, path_type=Path),
              help="Measure candidate weights from this folder (its manifest.json) instead of the installed ones.")
@click.option("--draws", type=click.IntRange(1, 12), default=1, show_default=True,
              help="Raws made of each held-out camera JPEG, each through another sensor and camera rendering: "
                   "a steadier share of images on which natural beats LibRaw (slower).")
@json_option("Print the results as JSON.")
def eval_looks(raws: Path | None, weights: Path | None, draws: int, as_json: bool) -> None:
    """Each style vs held-out cameras' own JPEGs and real raws' camera renderings, next to LibRaw."""
    from engine.training import eval_looks as run

    report = run.run(raws, weights, progress=lambda m: click.echo(m, err=True), draws=draws)
    click.echo(json.dumps(report, indent=2) if as_json else run.tables(report))


TRAIN_COMMANDS = (train_photofinish, train_detail_command)
EVAL_COMMANDS = (eval_pipeline, eval_looks)
