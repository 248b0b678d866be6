"""``hostplug train denoise|wb`` and ``hostplug eval denoise|wb``: the raw-side learned stages.

Training writes ``engine/weights/<name>.safetensors`` and its manifest entry (or into ``--weights-dir``).
A run is fixed by ``--seed`` and its step count: ``--minutes`` fits the step count to a time budget and records
it, and the manifest's ``training.command`` (with ``--steps``) replays the shipped run.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

from hostplug.commands.common import FiniteRange, check_device, device_option, json_option
from hostplug.commands.models_look import destination


def _budget(minutes: float | None, steps: int | None, default_minutes: float) -> tuple[float | None, int | None]:
    if minutes is not None and steps is not None:
        raise click.UsageError("give --minutes or --steps, not both")
    return (default_minutes if minutes is None and steps is None else minutes), steps


_weights_dir = click.option("--weights-dir", type=click.Path(file_okay=False, path_type=Path),
                            help="Write weights and manifest here instead of the installed engine/weights.")
_threads = click.option("--threads", type=click.IntRange(1, 256), default=1, show_default=True,
                        help="CPU threads for torch and numba (1 is fastest on a busy shared machine).")
_false_colour_passes = click.option(
    "--false-colour-passes", type=click.IntRange(0, 5),
    help="The demosaic's median passes the training data get (default: the render's; 0 replays the models "
         "trained before recipe version 8's passes: the denoisers before mid3, wb-c5 up to v4).")


def measured_weights(names: list[str]) -> dict[str, dict[str, str]]:
    """Where the weights of each model measured come from: its folder and SHA-256 (printed with the figures)."""
    from engine import models

    return {name: {"folder": str(e.folder), "sha256": e.sha256} for name in names for e in [models.entry(name)]}


def weights_text(weights: dict[str, dict[str, str]]) -> str:
    """``measured_weights`` as one line: each folder with its models' hashes (16 hex digits)."""
    by_folder: dict[str, list[str]] = {}
    for name, w in weights.items():
        by_folder.setdefault(w["folder"], []).append(f"{name} sha256 {w['sha256'][:16]}...")
    return "; ".join(f"{folder} ({', '.join(found)})" for folder, found in by_folder.items())


def _where_it_pays(found: dict[str, dict]) -> str:
    """``eval denoise --by-iso`` as a table: the gain over the classical denoiser by ISO, and where it pays."""
    isos = list(next(iter(found.values()))["by_iso"])
    lines = ["| model | " + " | ".join(f"ISO {iso}" for iso in isos) + " | learned from ISO |",
             "|---" * (len(isos) + 2) + "|"]
    for name, where in found.items():
        gains = " | ".join(f"{where['by_iso'][iso]['learned_over_classical_db']:+.2f} dB" for iso in isos)
        lines.append(f"| {name} | {gains} | {where['learned_from_iso'] or 'never'} |")
    return "\n".join(lines)


@click.command(name="denoise")
@click.option("--size", type=click.Choice(["fast", "mid", "mid2", "mid3", "lite", "base"]), default="lite",
              show_default=True, help="The network (mid3 is the one renders use).")
@click.option("--minutes", type=FiniteRange(0.1, None), help="Time budget (default 15 minutes).")
@click.option("--steps", type=click.IntRange(1, None), help="Exact number of steps (replays a recorded run).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--batch", type=click.IntRange(1, None), default=8, show_default=True)
@click.option("--patch", type=click.IntRange(16, None), default=64, show_default=True,
              help="Training crop size in pixels (a multiple of 8).")
@click.option("--reuse", type=click.IntRange(1, 2), default=1, show_default=True,
              help="Steps per generated batch (the second sees it transposed).")
@_false_colour_passes
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path),
              help="Save the run here every 250 steps; the same run given an existing checkpoint resumes from it "
                   "(it is removed once the weights are written).")
@device_option
@_threads
@_weights_dir
def train_denoise(size: str, minutes: float | None, steps: int | None, seed: int, batch: int, patch: int,
                  reuse: int, false_colour_passes: int | None, checkpoint: Path | None, device: str, threads: int,
                  weights_dir: Path | None) -> None:
    """Train the learned denoiser from scratch (un-processed photographs and computed raws)."""
    from engine.training import loop, train_denoiser

    check_device(device)
    if patch % 8:
        raise click.UsageError("--patch must be a multiple of 8")
    if checkpoint is not None and not checkpoint.absolute().parent.is_dir():
        raise click.BadParameter(f"{checkpoint}: no folder {checkpoint.absolute().parent} to save it in",
                                 param_hint="--checkpoint")
    minutes, steps = _budget(minutes, steps, 15.0)
    config = train_denoiser.DenoiseTrainConfig(size=size, seed=seed, steps=steps, minutes=minutes, batch=batch,
                                               patch=patch, reuse=reuse, device=device, threads=threads,
                                               checkpoint=str(checkpoint) if checkpoint else None)
    if false_colour_passes is not None:
        config = dataclasses.replace(config, false_colour_passes=false_colour_passes)
    loop.weights_destination(weights_dir)  # before the training, not after it
    click.echo(f"denoise-{size}: into {destination(weights_dir)}")
    model, record = train_denoiser.train(config, log=click.echo)
    entry = train_denoiser.ship(model, record, weights_dir)
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)  # the run is shipped: running the command again starts afresh
    click.echo(f"wrote {entry.name}: {weights_dir or entry.path.parent}/{entry.file} (sha256 {entry.sha256[:16]}...)")


@click.command(name="wb")
@click.option("--minutes", type=FiniteRange(0.1, None), help="Time budget for the steps (default 14 minutes).")
@click.option("--steps", type=click.IntRange(1, None), help="Exact number of steps (replays a recorded run).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--scenes", type=click.IntRange(10, None), default=3000, show_default=True,
              help="Computed scenes (4 renders each) in the training set.")
@click.option("--photo-renders", type=click.IntRange(0, None), default=0, show_default=True,
              help="Lights per training photograph of ../shared/photos (0: computed scenes only).")
@click.option("--neutral-photos", is_flag=True,
              help="Only the photographs whose own neutral is grey (not those that kept a warm light warm).")
@click.option("--two-light-renders", type=click.IntRange(0, None), default=0, show_default=True,
              help="Per neutral training photograph, renders of a subject under one light before surroundings "
                   "under another (the target: the subject's light).")
@click.option("--inputs", type=click.IntRange(2, 4), default=2, show_default=True,
              help="Histograms read: 2 (pixels, edges), 3 (and the brightest pixels) or 4 (and the pixels weighted "
                   "towards the middle, where the subject mostly is).")
@click.option("--init", type=click.Path(exists=True, dir_okay=False), help="Weights to start from (fine-tuning).")
@click.option("--lr", type=FiniteRange(1e-6, 1.0), default=2e-3, show_default=True, help="Peak learning rate.")
@click.option("--init-weight", type=FiniteRange(0.0, 1.0), default=0.0, show_default=True,
              help="Share of the --init weights in the result (WiSE-FT interpolation).")
@_false_colour_passes
@device_option
@_threads
@_weights_dir
def train_wb(minutes: float | None, steps: int | None, seed: int, scenes: int, photo_renders: int,
             neutral_photos: bool, two_light_renders: int, inputs: int, init: str | None, lr: float,
             init_weight: float, false_colour_passes: int | None, device: str, threads: int,
             weights_dir: Path | None) -> None:
    """Train the cross-camera white-balance estimator (computed raws and, with --photo-renders, photographs under
    random lights; held-out cameras excluded)."""
    from engine.training import loop, train_illuminant

    check_device(device)
    minutes, steps = _budget(minutes, steps, 14.0)
    config = train_illuminant.WBTrainConfig(seed=seed, scenes=scenes, steps=steps, minutes=minutes, device=device,
                                            threads=threads, photo_renders=photo_renders,
                                            neutral_photos=neutral_photos, two_light_renders=two_light_renders,
                                            inputs=inputs, init=init, lr=lr, init_weight=init_weight)
    if false_colour_passes is not None:
        config = dataclasses.replace(config, false_colour_passes=false_colour_passes)
    loop.weights_destination(weights_dir)  # before the training, not after it
    click.echo(f"wb-c5: into {destination(weights_dir)}")
    model, record = train_illuminant.train(config, log=click.echo)
    entry = train_illuminant.ship(model, record, weights_dir)
    click.echo(f"wrote {entry.name}: {weights_dir or entry.path.parent}/{entry.file} (sha256 {entry.sha256[:16]}...)")


@click.command(name="denoise")
@click.option("--sizes", default="mid3,mid2,mid,fast,lite,base", show_default=True,
              help="Shipped denoiser sizes to measure, comma-separated.")
@click.option("--by-iso", is_flag=True,
              help="Instead: the gain over the classical denoiser from ISO 100 to 12800, and the ISO from which "
                   "the learned one pays.")
@device_option
@click.option("--record/--no-record", default=False, show_default=True,
              help="Also store the measured metrics in the manifest of the weights measured (the installed one: "
                   "the published figures; $HOSTPLUG_WEIGHTS's for the models it holds).")
@json_option("Print the results as JSON.")
def eval_denoise(sizes: str, device: str, record: bool, as_json: bool, by_iso: bool) -> None:
    """PSNR gain at ISO 800, 3200, 12800 on held-out images, next to no denoising, classical and OpenCV NLM."""
    from engine.models import denoiser
    from engine.training import eval_denoiser, loop

    check_device(device)
    names = [s.strip() for s in sizes.split(",") if s.strip()]
    if not names:
        raise click.BadParameter("name at least one size", param_hint="--sizes")
    unknown = [s for s in names if s not in denoiser.SIZES]
    if unknown:
        raise click.BadParameter(f"unknown size {', '.join(map(repr, unknown))}; the sizes: "
                                 f"{', '.join(denoiser.SIZES)}", param_hint="--sizes")
    models = {f"learned-{s}": denoiser.load(s) for s in names}
    weights = measured_weights([f"denoise-{s}" for s in names])
    header = {"weights": weights, "seed": eval_denoiser.NOISE_SEED, "test_set": eval_denoiser.TEST_SET}
    heading = f"Weights: {weights_text(weights)}; noise seed {header['seed']}; test set: {header['test_set']}\n"
    if by_iso:
        found = {}
        for s in names:
            found[f"denoise-{s}"] = where = eval_denoiser.gain_by_iso(models[f"learned-{s}"], f"learned-{s}", device,
                                                                    log=lambda m: click.echo(m, err=True))
            if record:  # into the manifest of the weights measured
                loop.record_metrics(f"denoise-{s}", {"where_it_pays": where}, Path(weights[f"denoise-{s}"]["folder"]))
        if as_json:
            click.echo(json.dumps({name: {**where, **header, "weights": weights[name]}
                                   for name, where in found.items()}, indent=2))
        else:
            click.echo(heading + "\n" + _where_it_pays(found))
        return
    result = eval_denoiser.evaluate(models, device=device, log=lambda m: click.echo(m, err=True))
    if record:
        for s in names:
            loop.record_metrics(f"denoise-{s}", eval_denoiser.metrics_of(result, f"learned-{s}", device),
                                Path(weights[f"denoise-{s}"]["folder"]))
    if as_json:
        click.echo(json.dumps({**header, **result.__dict__}, indent=2))
    else:
        click.echo(heading + "\n" + eval_denoiser.table(result))


@click.command(name="wb")
@click.option("--scenes", type=click.IntRange(10, None), default=400, show_default=True,
              help="Held-out-camera scenes (3 renders each).")
@click.option("--record/--no-record", default=False, show_default=True,
              help="Also store the measured metrics in the manifest of the weights measured (the installed one: "
                   "the published figures; $HOSTPLUG_WEIGHTS's when it holds wb-c5).")
@json_option("Print the results as JSON.")
def eval_wb(scenes: int, record: bool, as_json: bool) -> None:
    """Angular error on held-out cameras next to gray-world and white-patch; the Canon 550D chart's greys."""
    from engine.models import illuminant
    from engine.training import eval_wb as ev
    from engine.training import loop, wb_data

    model = illuminant.load()
    weights = measured_weights(["wb-c5"])
    result = ev.evaluate(scenes, log=lambda m: click.echo(m, err=True), model=model)
    if record:
        loop.record_metrics("wb-c5", ev.metrics_of(result), Path(weights["wb-c5"]["folder"]))  # the ones measured
    header = {"weights": weights, "seed": wb_data.TEST_SEED}
    if as_json:
        click.echo(json.dumps({**header, **ev.metrics_of(result)}, indent=2))
    else:
        click.echo(f"Weights: {weights_text(weights)}; test set seed {header['seed']} (photo test set "
                   f"{wb_data.PHOTO_TEST_SEED}, two-light {wb_data.TWO_LIGHT_TEST_SEED})\n")
        click.echo(ev.table(result))


TRAIN_COMMANDS = (train_denoise, train_wb)
EVAL_COMMANDS = (eval_denoise, eval_wb)
