"""Training the learned denoiser (:class:`engine.models.denoiser.Denoiser`) from scratch.

Data: fresh batches from :func:`engine.training.denoise_data.make_batch` every ``reuse`` steps (un-processed training
photographs and computed raws, training cameras only; nothing is stored). Loss: L1 between the denoised and the
clean demosaiced image, both divided by the image scale (so dark and bright images weigh alike). AdamW (weight
decay 1e-4), gradient norm clipped at 1, warm-up and cosine schedule (:mod:`engine.training.loop`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.errors import CorruptInputError, HostplugError
from engine.models import denoiser
from engine.stages.demosaic import FALSE_COLOUR_PASSES
from engine.training import denoise_data, loop

CHECKPOINT_EVERY = 250  # steps


@dataclass(frozen=True)
class DenoiseTrainConfig:
    """Everything that fixes a training run."""

    size: str = "lite"
    seed: int = 0
    steps: int | None = None
    minutes: float | None = None
    batch: int = 8
    patch: int = 64
    lr: float = 2e-3
    reuse: int = 1  # steps per generated batch (the repeats see it transposed); making batches costs the most
    device: str = "cpu"
    threads: int | None = 1
    checkpoint: str | None = None  # saved to every CHECKPOINT_EVERY steps; a run finds it there and resumes
    # the render's demosaic the network learns on (0: the one before recipe version 8, which mid2 learned on)
    false_colour_passes: int = FALSE_COLOUR_PASSES


def model_name(size: str) -> str:
    """Manifest name of a denoiser size."""
    return f"denoise-{size}"


def loss_on(model: denoiser.Denoiser, batch: denoise_data.Batch, device: torch.device) -> torch.Tensor:
    """Scale-normalised L1 of a batch."""
    noisy = torch.from_numpy(batch.noisy).to(device)
    clean = torch.from_numpy(batch.clean).to(device)
    sigma = torch.from_numpy(batch.sigma).to(device)
    scale = torch.from_numpy(batch.scale).to(device)
    out = denoiser.denoise_tensor(model, noisy, sigma, scale)
    return ((out - clean).abs() / scale.view(-1, 1, 1, 1)).mean()


def transposed(batch: denoise_data.Batch) -> denoise_data.Batch:
    """The batch's images mirrored about their diagonal (a Bayer mosaic's layout, and so its noise, stays one a
    camera could make)."""
    swap = lambda a: np.ascontiguousarray(a.transpose(0, 1, 3, 2))  # noqa: E731
    return denoise_data.Batch(swap(batch.noisy), swap(batch.clean), swap(batch.sigma), batch.scale)


def train(config: DenoiseTrainConfig, log: Callable[[str], None] = print) -> tuple[denoiser.Denoiser, dict[str, Any]]:
    """Train a fresh denoiser; returns it and the training record for the manifest."""
    loop.seed_everything(config.seed, config.threads if config.device == "cpu" else None)
    device = torch.device(config.device)
    model = denoiser.Denoiser(denoiser.SIZES[config.size]).to(device)
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # stubs lack it
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-4)
    rng = np.random.default_rng(config.seed)
    budget = loop.StepBudget(config.steps, config.minutes, default_steps=2000)
    step, losses = 0, list[float]()
    run = _run_settings(config, budget.total)
    if config.checkpoint and Path(config.checkpoint).is_file():
        step, losses, rng, budget.total = _resume(Path(config.checkpoint), model, optimiser, run)
        log(f"resumed {config.checkpoint} at step {step}/{budget.total}")
    elif config.checkpoint and not Path(config.checkpoint).parent.is_dir():
        raise HostplugError(f"--checkpoint {config.checkpoint}: folder {Path(config.checkpoint).parent} does not "
                            "exist")
    while step < budget.total:
        for group in optimiser.param_groups:
            group["lr"] = loop.learning_rate(step, budget.total, config.lr)
        if step % config.reuse == 0:
            batch = denoise_data.make_batch(rng, config.batch, config.patch, config.false_colour_passes)
        elif step % config.reuse == 1:
            batch = transposed(batch)
        loss = loss_on(model, batch, device)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        losses.append(loss.item())
        budget.after_step(step)
        step += 1
        if step % 50 == 0 or step == budget.total:
            log(f"step {step}/{budget.total}  L1 {np.mean(losses[-50:]):.5f}  {budget.elapsed():.0f} s")
        if config.checkpoint and step % CHECKPOINT_EVERY == 0 and step % config.reuse == 0:
            _save_checkpoint(Path(config.checkpoint), model, optimiser, step, losses, rng, budget.total, run)
    record = {
        "data": "engine.training.denoise_data.make_batch (un-processed training photographs + computed raws, "
                "training cameras only, fresh every step)",
        "config": {k: v for k, v in asdict(config).items() if k not in ("steps", "minutes", "checkpoint")},
        "steps": budget.total,
        "minutes_budget": config.minutes,
        "train_seconds": round(budget.elapsed(), 1),
        "final_loss": round(float(np.mean(losses[-50:])), 6),
        "machine": loop.machine(),
        "command": f"hostplug train denoise --size {config.size} --steps {budget.total} --seed {config.seed} "
                   f"--batch {config.batch} --patch {config.patch} --reuse {config.reuse} "
                   f"--false-colour-passes {config.false_colour_passes}",
    }
    return model.cpu().to(memory_format=torch.contiguous_format).eval(), record  # type: ignore[call-overload]


def _run_settings(config: DenoiseTrainConfig, total: int | None) -> dict[str, Any]:
    """What makes a run the run it is (a checkpoint resumes only its own): the settings, and the step count
    unless a time budget decides it."""
    settings = {k: v for k, v in asdict(config).items() if k not in ("steps", "minutes", "checkpoint", "threads")}
    return {**settings, "steps": None if config.minutes is not None else total}


def _save_checkpoint(path: Path, model: denoiser.Denoiser, optimiser: torch.optim.Optimizer, step: int,
                     losses: list[float], rng: np.random.Generator, total: int, run: dict[str, Any]) -> None:
    """Everything a resumed run needs to continue exactly (written atomically)."""
    part = path.with_name(path.name + ".part")
    torch.save({"model": model.state_dict(), "optimiser": optimiser.state_dict(), "step": step, "losses": losses,
                "rng": rng.bit_generator.state, "total": total, "run": json.dumps(run, sort_keys=True)}, part)
    part.replace(path)


def _resume(path: Path, model: denoiser.Denoiser, optimiser: torch.optim.Optimizer,
            run: dict[str, Any]) -> tuple[int, list[float], np.random.Generator, int]:
    """(step, losses, data generator, total steps) of a checkpoint of this ``run``; loads the model and optimiser
    state. HostplugError for a checkpoint of another run (size, batch, patch, seed, steps...)."""
    state = _read_checkpoint(path)
    if "run" not in state:
        raise HostplugError(f"{path}: a checkpoint written before checkpoints recorded their run's settings; delete "
                            "it, or give another --checkpoint")
    saved = json.loads(state["run"])
    if run["steps"] is None or saved.get("steps") is None:  # a time budget: the checkpoint's count stands
        run, saved = {**run, "steps": None}, {**saved, "steps": None}
    if saved != run:
        differ = sorted(k for k in set(saved) | set(run) if saved.get(k) != run.get(k))
        raise HostplugError(f"{path}: a checkpoint of another run ({', '.join(f'{k} {saved.get(k)}' for k in differ)}"
                            f"; this run: {', '.join(f'{k} {run.get(k)}' for k in differ)}); give the same settings, "
                            "or another --checkpoint")
    model.load_state_dict(state["model"])
    optimiser.load_state_dict(state["optimiser"])
    rng = np.random.default_rng()
    rng.bit_generator.state = state["rng"]
    return state["step"], list(state["losses"]), rng, state["total"]


def _read_checkpoint(path: Path) -> dict[str, Any]:
    """The saved state of ``path``; CorruptInputError in one line for a file that is no checkpoint this command
    wrote (torch's own error tells the user to unpickle it with weights_only=False, which would run its code)."""
    try:
        state = torch.load(path, weights_only=True)
    except Exception:  # noqa: BLE001 - the unpickler raises anything (UnpicklingError, KeyError, EOFError...)
        state = None
    if not isinstance(state, dict):
        raise CorruptInputError(f"--checkpoint {path}: not a checkpoint `hostplug train denoise` wrote (damaged, or "
                                "another kind of file); delete it, or give another --checkpoint")
    return state


def ship(model: denoiser.Denoiser, record: dict[str, Any], weights_dir: Path | None = None):
    """Write the weights and manifest entry ``denoise-<size>``."""
    size = record["config"]["size"]
    architecture = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(model.config).items()}
    return loop.ship(model_name(size), model.state_dict(), architecture, record, weights_dir)
