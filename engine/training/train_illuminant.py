"""Training the white-balance estimator (:class:`engine.models.illuminant.IlluminantNet`).

Data (:func:`training_data`): :func:`engine.training.wb_data.training_set` (computed raws of the 10 training
cameras; the 3 held-out cameras never appear) and :func:`engine.training.wb_data.photo_training_set` (the
photographs of the 90 training photo cameras of ``../shared/photos`` under random lights, seen by the same 10
cameras; ``photo_renders`` lights per photograph, 0 leaves them out), generated at the start of the run from the
seed; ``neutral_photos`` keeps only the photographs whose own neutral is grey (the neutral references of
:mod:`engine.training.wb_data`, part 3: ``--wb auto`` serves a neutral rendering). From scratch, or (``init``)
from existing weights: :func:`warm_start` fits an earlier wb-c5 into a network of more inputs with the new input's
kernels at zero, so training starts from exactly the old estimator; ``init_weight`` then interpolates the
result back towards the start (WiSE-FT, Wortsman et al. 2022). The defaults replay the first wb-c5 (computed
scenes only, 2 histograms, from scratch); the shipped one's manifest entry records its exact command.
Loss: the mean angular error between the predicted and the exact camera neutral, in camera RGB (the measure
reported). AdamW (weight decay 1e-4), batch 64 drawn with replacement from the set, warm-up and cosine schedule
(:mod:`engine.training.loop`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.errors import CorruptInputError, UnsupportedInputError
from engine.models import illuminant
from engine.stages.demosaic import FALSE_COLOUR_PASSES
from engine.training import loop, spectral_data, wb_data

MODEL_NAME = "wb-c5"


@dataclass(frozen=True)
class WBTrainConfig:
    """Everything that fixes a training run."""

    seed: int = 0
    scenes: int = 3000  # x 4 renders = training samples
    steps: int | None = None
    minutes: float | None = None
    batch: int = 64
    lr: float = 2e-3
    width: int = 16
    # The defaults replay the first wb-c5 (computed scenes only, 2 histograms), but for the demosaic's median
    # passes, which it learned without; the shipped one fine-tunes it on the neutral photographs too (its manifest
    # entry records the exact command).
    inputs: int = 2  # histograms read: 2 = pixels and edges, 3 = and the brightest pixels, 4 = and central pixels
    photo_renders: int = 0  # lights per training photograph (134 of them); 0 = computed scenes only
    neutral_photos: bool = False  # only the photographs whose own neutral is grey (wb_data.is_neutral_reference)
    two_light_renders: int = 0  # two-light samples per neutral training photograph (wb_data part 4); 0 = none
    init: str | None = None  # a weights file to start from (None: from scratch); see :func:`warm_start`
    # WiSE-FT: the shipped weights are init_weight * the starting ones + (1 - init_weight) * the trained ones,
    # which keeps what the start did well (the real Canon chart) while taking part of the fine-tuning's gain
    init_weight: float = 0.0
    # the demosaic's median passes on the computed raws: a render's (recipe version 8); wb-c5 up to v4 learned
    # without them (0)
    false_colour_passes: int = FALSE_COLOUR_PASSES
    device: str = "cpu"
    threads: int | None = 1


def train(config: WBTrainConfig, log: Callable[[str], None] = print,
          data: wb_data.WBSet | None = None) -> tuple[illuminant.IlluminantNet, dict[str, Any]]:
    """Train a fresh estimator; returns it and the training record for the manifest."""
    if config.init:  # a wrong --init file is refused now, not after the minutes the training data take
        warm_start(illuminant.IlluminantNet(config.width, config.inputs), config.init)
    loop.seed_everything(config.seed, config.threads if config.device == "cpu" else None)
    start = time.perf_counter()
    if data is None:
        data = training_data(config, log)
    data_seconds = time.perf_counter() - start
    device = torch.device(config.device)
    hist = torch.from_numpy(np.ascontiguousarray(data.hist[:, : config.inputs])).to(device)
    neutral = torch.from_numpy(data.neutral).float().to(device)
    working = torch.from_numpy(data.to_working).float().to(device)
    model = illuminant.IlluminantNet(config.width, config.inputs)
    start_state = None
    if config.init:
        warm_start(model, config.init)
        start_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        log(f"starting from {config.init}")
    model = model.to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-4)
    budget = loop.StepBudget(config.steps, config.minutes, default_steps=3000)
    generator = torch.Generator().manual_seed(config.seed)
    step, losses = 0, []
    while step < budget.total:
        for group in optimiser.param_groups:
            group["lr"] = loop.learning_rate(step, budget.total, config.lr)
        idx = torch.randint(len(hist), (config.batch,), generator=generator).to(device)
        uv = model(hist[idx])
        loss = illuminant.angular_error(illuminant.to_camera_neutral(uv, working[idx]), neutral[idx]).mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
        budget.after_step(step)
        step += 1
        if step % 100 == 0 or step == budget.total:
            log(f"step {step}/{budget.total}  angular error {np.mean(losses[-100:]):.2f} deg  "
                f"{budget.elapsed():.0f} s")
    if start_state is not None and config.init_weight:
        trained = model.state_dict()
        model.load_state_dict({k: config.init_weight * start_state[k].to(device) + (1.0 - config.init_weight) * v
                               for k, v in trained.items()})
    photo_train, photo_held = wb_data.photo_split() if config.photo_renders else ((), ())
    record = {
        "data": "engine.training.wb_data.training_set (computed raws, training cameras only)"
                + (" + engine.training.wb_data.photo_training_set (../shared/photos of the training photo cameras, "
                   "unprocessed for the training cameras under random lights)" if config.photo_renders else ""),
        "training_cameras": list(spectral_data.TRAINING_CAMERAS),
        "held_out_cameras": list(spectral_data.HELD_OUT_CAMERAS),
        **({"photo_split": {"seed": wb_data.PHOTO_SPLIT_SEED, "held_out_fraction": wb_data.PHOTO_HELD_OUT_FRACTION,
                            "training_photo_cameras": len(photo_train),
                            "held_out_photo_cameras": list(photo_held)}} if config.photo_renders else {}),
        **({"neutral_photos": f"only photographs whose own neutral is within C*ab {wb_data.NEUTRAL_CAST} of grey "
                              "(engine.training.wb_data.is_neutral_reference)"}
           if config.photo_renders and config.neutral_photos else {}),
        **({"two_light_renders": "engine.training.wb_data.two_light_training_set: each neutral training "
                                 "photograph's subject under one light, its surroundings under another; target: "
                                 "the subject's light"} if config.photo_renders and config.two_light_renders else {}),
        "samples": len(hist),
        "config": {k: v for k, v in asdict(config).items() if k not in ("steps", "minutes")},
        **({"init_sha256": _sha256(config.init)} if config.init else {}),
        "steps": budget.total,
        "minutes_budget": config.minutes,
        "data_seconds": round(data_seconds, 1),
        "train_seconds": round(budget.elapsed(), 1),
        "first_loss_deg": round(float(np.mean(losses[:10])), 3),
        "final_loss_deg": round(float(np.mean(losses[-min(100, max(10, len(losses) // 10)):])), 3),
        "machine": loop.machine(),
        "command": _command(config, budget.total),
    }
    return model.cpu().eval(), record


def _command(config: WBTrainConfig, steps: int) -> str:
    """The command that replays this run (settings the CLI does not offer as the Python call)."""
    command = f"hostplug train wb --steps {steps} --seed {config.seed} --scenes {config.scenes}"
    default = WBTrainConfig()
    if (config.width, config.batch) == (default.width, default.batch):
        options = {"--inputs": config.inputs, "--photo-renders": config.photo_renders,
                   "--two-light-renders": config.two_light_renders, "--lr": config.lr, "--init": config.init,
                   "--init-weight": config.init_weight}
        command += "".join(f" {k} {v}" for k, v in options.items()
                           if v != getattr(default, k[2:].replace("-", "_")))
        # always written out: its default is the render's, which a later recipe version may change
        command += f" --false-colour-passes {config.false_colour_passes}"
        return command + (" --neutral-photos" if config.neutral_photos else "")
    keys = ("inputs", "photo_renders", "neutral_photos", "two_light_renders", "init", "init_weight", "width",
            "batch", "lr", "false_colour_passes")
    args = ", ".join(f"{k}={v!r}" for k, v in {"seed": config.seed, "scenes": config.scenes, "steps": steps,
                                                 **{k: getattr(config, k) for k in keys}}.items())
    return (f'python -c "from engine.training import train_illuminant as t; '
            f't.ship(*t.train(t.WBTrainConfig({args})), weights_dir=...)"')


def _sha256(path: str | Path) -> str:
    from engine.models import file_sha256

    return file_sha256(Path(path))


def warm_start(model: illuminant.IlluminantNet, path: str | Path) -> None:
    """Load weights from ``path`` into ``model``; weights of a network with fewer input histograms (an earlier
    wb-c5) fit with the extra inputs' kernels at zero, so the network starts out as exactly the old one.

    CorruptInputError for a file that is no safetensors file, UnsupportedInputError for the weights of another
    network (another model, or a wb-c5 of another width or more inputs): one line naming the file."""
    state = _read_weights(Path(path))
    first = "enc1.0.weight"
    own = model.state_dict()[first]
    if first not in state:
        raise UnsupportedInputError(f"--init {path}: not wb-c5 weights (it holds no {first}, so it is another "
                                    "model's); give a wb-c5 .safetensors, such as engine/weights/wb-c5.safetensors")
    if state[first].ndim == own.ndim and state[first].shape[1] < own.shape[1]:
        padded = torch.zeros_like(own)
        padded[:, : state[first].shape[1]] = state[first]
        state[first] = padded
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError:  # missing or extra tensors, or shapes of another width or more inputs
        raise UnsupportedInputError(
            f"--init {path}: weights of another network shape ({first} is {tuple(state[first].shape)}, this "
            f"run's is {tuple(own.shape)}); give the --inputs it was trained with") from None


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file; CorruptInputError in one line for a file that is none."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise CorruptInputError(f"--init {path}: not a safetensors weights file ({e}); give the .safetensors "
                                "of a wb-c5 (such as engine/weights/wb-c5.safetensors)") from None


def training_data(config: WBTrainConfig, log: Callable[[str], None] = print) -> wb_data.WBSet:
    """The computed scenes and, unless ``photo_renders`` is 0, the training photographs under random lights."""
    log(f"generating {config.scenes * 4} training samples from {len(spectral_data.TRAINING_CAMERAS)} cameras")
    def scenes_made(done: int, total: int) -> None:
        if done % 250 == 0 or done == total:
            log(f"  scenes {done}/{total}")

    data = wb_data.training_set(config.seed, config.scenes, progress=scenes_made,
                                false_colour_passes=config.false_colour_passes)
    if not config.photo_renders:
        return data
    photos = wb_data.photo_training_set(config.seed, config.photo_renders, neutral_only=config.neutral_photos)
    log(f"and {len(photos.neutral)} from the training photographs ({config.photo_renders} lights each)")
    if not config.two_light_renders:
        return wb_data.concatenate(data, photos)
    two_lights = wb_data.two_light_training_set(config.seed, config.two_light_renders)
    log(f"and {len(two_lights.neutral)} of them lit by two lights ({config.two_light_renders} each)")
    return wb_data.concatenate(data, photos, two_lights)


def ship(model: illuminant.IlluminantNet, record: dict[str, Any], weights_dir: Path | None = None):
    """Write the weights and manifest entry ``wb-c5``."""
    architecture: dict[str, Any] = {"width": model.enc1[0].out_channels}
    if illuminant.inputs_of(model) != 2:  # entries written before the third histogram name no inputs
        architecture["inputs"] = illuminant.inputs_of(model)
    return loop.ship(MODEL_NAME, model.state_dict(), architecture, record, weights_dir)
