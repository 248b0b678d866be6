"""``hostplug train photofinish|detail`` and ``hostplug eval pipeline|looks``: the look models.

``hostplug train photofinish --style vivid`` retrains one picture style's network from scratch (``--style all``:
every style in turn) with the shipped settings and writes ``photofinish-vivid.safetensors`` and its manifest entry
into the installed ``engine/weights`` (it says so), or into ``--weights-dir``. The manifest entry's
``training.command`` replays a run bit for bit (seed, step count, one CPU thread); ``--minutes`` stops early by
wall time instead, which no command replays.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from hostplug.commands.common import FiniteRange, check_device, device_option, json_option

PHOTOFINISH_STEPS = 1500
DETAIL_STEPS = 1000


def _progress(label: str):
    def report(step: int, loss: float) -> None:
        if step % 200 == 0:
            click.echo(f"  {label}: step {step}, loss {loss:.4f}")

    return report


def destination(weights_dir: Path | None) -> str:
    """Where trained weights go, said before a run: the installed ones are replaced unless --weights-dir."""
    if weights_dir is not None:
        return f"{weights_dir} (render with them: HOSTPLUG_WEIGHTS={weights_dir} hostplug render ...)"
    from engine.models import WEIGHTS_DIR

    return f"{WEIGHTS_DIR} (the installed weights; --weights-dir DIR writes elsewhere)"


_weights_dir = click.option("--weights-dir", type=click.Path(file_okay=False, path_type=Path),
                            help="Write weights and manifest here instead of the installed engine/weights.")


def train_one_style(style: str, steps: int, minutes: float | None, device: str, seed: int, data: str,
                    correction: float, noise_iso: tuple[float, float] | None = None, part: str = "train",
                    weights_dir: Path | None = None) -> None:
    """Train and ship one style (``engine.training.train_photofinish.train_and_ship``)."""
    from engine.training.train_photofinish import TrainConfig, train_and_ship

    config = TrainConfig(style=style, steps=steps, minutes=minutes, device=device, seed=seed, data=data,
                         correction=correction, noise_iso=noise_iso, part=part)
    click.echo(f"photofinish-{style}: training {steps} steps on {device} ({data} data) into "
               f"{destination(weights_dir)}")
    result = train_and_ship(config, str(weights_dir) if weights_dir else None, progress=_progress(style))
    loss = f", last loss {result.losses[-1]:.4f}" if result.losses else ""
    click.echo(f"photofinish-{style}: {result.steps} steps in {result.seconds:.0f} s{loss}; measure it with "
               "'hostplug eval looks'")


@click.command("photofinish")
@click.option("--style", "style_name", required=True, help="A picture style, or 'all'.")
@click.option("--steps", type=click.IntRange(1, None), default=PHOTOFINISH_STEPS, show_default=True)
@click.option("--minutes", type=FiniteRange(0.01, None), help="Stop after this wall time (not reproducible).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--data", type=click.Choice(["cameras", "wheels"]), default="cameras", show_default=True,
              help="cameras: the camera JPEGs of ../shared/photos (the shipped styles); wheels: the photographs "
                   "in installed wheels (the styles shipped before).")
@click.option("--correction", type=FiniteRange(0.0, 6.0), default=0.5, show_default=True,
              help="Stops the network may move the raw's exposure (cameras data).")
@click.option("--noise-iso", type=(FiniteRange(25, 409600), FiniteRange(25, 409600)), default=None,
              metavar="LOW HIGH", help="Train on inputs carrying the sensor noise of an ISO drawn in LOW..HIGH "
                                       "(cameras data).")
@click.option("--part", type=click.Choice(["train", "fit"]), default="train", show_default=True,
              help="fit: leave the validation cameras out, for choosing between candidates (cameras data).")
@device_option
@_weights_dir
def train_photofinish(style_name: str, steps: int, minutes: float | None, seed: int, data: str, correction: float,
                      noise_iso: tuple[float, float] | None, part: str, device: str,
                      weights_dir: Path | None) -> None:
    """Train a picture style's photofinishing network from scratch and ship it."""
    from engine.styles import STYLES, known_styles
    from engine.training.loop import weights_destination

    name = style_name.lower()
    if name != "all" and name not in STYLES:  # a wrong option value, as on every other command (exit 2)
        raise click.UsageError(f"unknown style {style_name!r}; known styles: {known_styles()}, or 'all'")
    if noise_iso is not None and noise_iso[0] > noise_iso[1]:
        raise click.BadParameter(f"LOW {noise_iso[0]:g} is above HIGH {noise_iso[1]:g}", param_hint="--noise-iso")
    if data == "wheels" and (noise_iso is not None or part != "train"):
        raise click.UsageError("--noise-iso and --part apply to the cameras data only")
    weights_destination(weights_dir)  # before the training, not after it
    for style in (STYLES if name == "all" else [name]):
        train_one_style(style, steps, minutes, check_device(device), seed, data, correction, noise_iso, part,
                        weights_dir)


@click.command("detail")
@click.option("--size", type=click.Choice(["fast", "lite"]), default="fast", show_default=True)
@click.option("--steps", type=click.IntRange(1, None), default=DETAIL_STEPS, show_default=True)
@click.option("--minutes", type=FiniteRange(0.01, None), help="Stop after this wall time (not reproducible).")
@click.option("--seed", type=int, default=0, show_default=True)
@device_option
@_weights_dir
def train_detail_command(size: str, steps: int, minutes: float | None, seed: int, device: str,
                         weights_dir: Path | None) -> None:
    """Train the detail-enhancement network from scratch and ship it."""
    from engine.models.detail_net import SIZES
    from engine.stages.detail_learned import DETAIL_MODELS
    from engine.training.loop import machine, ship, weights_destination
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
    weights_destination(weights_dir)  # before the training, not after it
    name = DETAIL_MODELS[size]
    click.echo(f"{name}: training {steps} steps on {device} into {destination(weights_dir)}")
    result = train_detail(config, _progress("detail"))
    command = f"hostplug train detail --size {size} --steps {steps} --seed {seed}"
    if minutes is not None:
        command = f"(stopped by --minutes {minutes:g} after {result.steps} steps; not replayable) {command}"
    training = {
        "command": command, "config": asdict(config),
        "steps_run": result.steps, "wall_seconds": round(result.seconds, 1), "machine": machine(),
        "data": {"train": list(DETAIL_PHOTOS), "long_edge": DETAIL_LONG_EDGE, "patch": PATCH,
                 "blur_sigma": list(SIGMA_RANGE), "noise_std": list(NOISE_RANGE)},
        "loss": {"first_50": round(result.losses[0], 5) if result.losses else None,
                 "last_50": round(result.losses[-1], 5) if result.losses else None},
    }
    ship(name, result.net.state_dict(), SIZES[size], training, weights_dir)
    click.echo(f"{name}: {result.steps} steps in {result.seconds:.0f} s")


@click.command("pipeline")
@click.option("--raws", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of real raws with embedded camera renderings (default: ../shared/rawsamples).")
@json_option("Print the results as JSON.")
@click.option("--record/--no-record", default=False, show_default=True,
              help="Also store the figures in the manifest of the weights measured (the installed one: the "
                   "published figures; $HOSTPLUG_WEIGHTS's for the models it holds).")
@click.option("--sheets", type=click.Path(file_okay=False, path_type=Path),
              help="Also write contact sheets (PNG) of the renders into this folder.")
def eval_pipeline(raws: Path | None, as_json: bool, record: bool, sheets: Path | None) -> None:
    """Whole-pipeline quality of the picture styles and the detail network, with speed."""
    from engine.training import pipeline_eval

    report = pipeline_eval.run(raws, sheets, progress=lambda m: click.echo(m, err=True))
    if record:
        pipeline_eval.store(report)
    click.echo(json.dumps(report, indent=2) if as_json else pipeline_eval.tables(report))


@click.command("looks")
@click.option("--raws", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of real raws with embedded camera renderings (default: ../shared/rawsamples).")
@click.option("--weights", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Measure candidate weights from this folder (its manifest.json) instead of the installed ones.")
@click.option("--limit", type=click.IntRange(1, None), help="Only the first N held-out camera JPEGs (a quick run).")
@click.option("--draws", type=click.IntRange(1, 12), default=1, show_default=True,
              help="Raws made of each held-out camera JPEG, each through another sensor and camera rendering: "
                   "a steadier share of images on which natural beats LibRaw (slower).")
@json_option("Print the results as JSON.")
def eval_looks(raws: Path | None, weights: Path | None, limit: int | None, draws: int, as_json: bool) -> None:
    """Each style vs held-out cameras' own JPEGs and real raws' camera renderings, next to LibRaw."""
    from engine.training import eval_looks as run

    report = run.run(raws, weights, progress=lambda m: click.echo(m, err=True), limit=limit, draws=draws)
    click.echo(json.dumps(report, indent=2) if as_json else run.tables(report))


TRAIN_COMMANDS = (train_photofinish, train_detail_command)
EVAL_COMMANDS = (eval_pipeline, eval_looks)
