"""What the training commands share: seeding, a step budget from wall time, the learning-rate schedule, and
shipping weights with their manifest entry.

Reproducibility: a run is fixed by its seed and its number of steps. A time budget (``--minutes``) is turned
into a number of steps once :data:`PROBE_STEPS` steps have run, from the speed of the steps after the first
:data:`PROBE_SKIP` (which pay one-time costs: loading photographs, fitting camera matrices), and that number
is recorded in the manifest, so ``--steps N`` replays the same run (bit-identical on the same machine and
thread count; floating-point summation order may differ elsewhere).
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine import models
from engine.errors import HostplugError, OutputError

PROBE_STEPS = 40
PROBE_SKIP = 10
WARMUP_STEPS = 50  # linear warm-up; longer than the probe, so the schedule never depends on the budget early


def seed_everything(seed: int, threads: int | None) -> None:
    """Seed Python, numpy and torch; pin torch (and numba) to ``threads`` threads when given."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if threads:
        torch.set_num_threads(threads)
        from engine import kernels

        kernels.set_threads(threads)


def learning_rate(step: int, total: int, peak: float) -> float:
    """Linear warm-up over :data:`WARMUP_STEPS`, then cosine decay to 2 % of ``peak`` at ``total``."""
    if step < WARMUP_STEPS:
        return peak * (step + 1) / WARMUP_STEPS
    progress = min(1.0, (step - WARMUP_STEPS) / max(1, total - WARMUP_STEPS))
    return peak * (0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * progress)))


class StepBudget:
    """How many steps a run makes: fixed (``steps``) or fitted to ``minutes`` of wall time after a probe."""

    def __init__(self, steps: int | None, minutes: float | None, default_steps: int) -> None:
        self.fixed = steps
        self.minutes = minutes
        self.total = steps or default_steps
        self.start = time.perf_counter()
        self._probe_start = self.start

    def after_step(self, step: int) -> None:
        """Call after each step (0-based); fits the total to the time budget once the probe is done."""
        if self.fixed is not None or self.minutes is None:
            return
        if step + 1 == PROBE_SKIP:
            self._probe_start = time.perf_counter()
        elif step + 1 == PROBE_STEPS:
            now = time.perf_counter()
            per_step = (now - self._probe_start) / (PROBE_STEPS - PROBE_SKIP)
            left = self.minutes * 60.0 - (now - self.start)
            self.total = max(PROBE_STEPS, PROBE_STEPS + int(left / per_step))

    def elapsed(self) -> float:
        """Seconds since the budget started."""
        return time.perf_counter() - self.start


def run_steps(optimiser: torch.optim.Optimizer, schedule: Any, steps: int, minutes: float | None,
              next_loss: Any, progress: Any = None) -> tuple[int, float, list[float]]:
    """Optimise ``next_loss()`` (which draws a batch and returns its loss) for ``steps`` steps or ``minutes``.

    Returns the steps made, the seconds taken and the mean loss of every 50 steps (also passed to ``progress``).
    """
    start, block, losses, step = time.perf_counter(), [], [], 0
    for step in range(1, steps + 1):
        loss = next_loss()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        block.append(float(loss.detach()))
        if step % 50 == 0:
            losses.append(float(np.mean(block)))
            block = []
            if progress:
                progress(step, losses[-1])
        if minutes is not None and time.perf_counter() - start > 60.0 * minutes:
            break
    return step, time.perf_counter() - start, losses


def machine() -> str:
    """A short description of where training ran."""
    if torch.cuda.is_available() and torch.cuda.current_device() is not None:
        return f"cuda: {torch.cuda.get_device_name()}"
    return f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"


def weights_destination(weights_dir: Path | None = None) -> Path:
    """The folder a training writes into (``weights_dir``, else the installed :data:`engine.models.WEIGHTS_DIR`),
    checked before the training starts: its manifest (if any) readable, and the folder writable, made if need be
    (and removed again: a command that fails later leaves nothing behind; shipping makes it). OutputError (exit 5)
    when it cannot be written, ModelError (exit 6) when its manifest is damaged."""
    folder = Path(weights_dir) if weights_dir is not None else models.WEIGHTS_DIR
    if folder.is_dir():
        models.read_manifest(folder / "manifest.json")
    made = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):  # what the permissions say is not all: a read-only file system
            pass
    except OSError as e:
        raise OutputError(f"{folder}: the weights cannot be written there ({e.strerror or e}); "
                          "give another --weights-dir") from None
    finally:
        for p in made:
            with contextlib.suppress(OSError):
                p.rmdir()
    return folder


def ship(name: str, state: dict[str, torch.Tensor], architecture: dict[str, Any], training: dict[str, Any],
         weights_dir: Path | None = None, metrics: dict[str, Any] | None = None) -> models.ModelEntry:
    """Write ``state`` as ``<name>.safetensors`` and its manifest entry (other models' entries are kept).

    ``weights_dir`` defaults to the installed :data:`engine.models.WEIGHTS_DIR`; tests pass a temporary folder.
    OutputError (exit 5) when they cannot be written; the weights and manifest already there are then kept.
    """
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    broken = sum(int((~torch.isfinite(v)).sum()) for v in state.values() if v.is_floating_point())
    if broken:  # a diverged training never replaces working weights (a tester's --correction nan shipped NaN)
        raise HostplugError(f"the training of {name} diverged: {broken} of its weights are not numbers; nothing "
                            "was written (try a lower learning rate, or other settings)")
    folder = Path(weights_dir) if weights_dir is not None else models.WEIGHTS_DIR
    path = folder / f"{name}.safetensors"
    tmp = path.with_suffix(".safetensors.part")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp))
        os.chmod(tmp, 0o644)  # readable by every user of an installed copy
        entry = models.ModelEntry(name=name, file=path.name, sha256=models.file_sha256(tmp),
                                  architecture=architecture, training=training,
                                  metrics=metrics if metrics is not None else {}, folder=folder)
        # the weights change only with the manifest's record of them: under its lock, Ctrl-C held until both are
        with models.updating_manifest(folder / "manifest.json") as entries:
            os.replace(tmp, path)
            old = entries.get(name)
            if old is not None and metrics is None and old.sha256 == entry.sha256:
                entry = models.ModelEntry(**{**entry.__dict__, "metrics": old.metrics})
            entries[name] = entry
    except (OSError, SafetensorError) as e:
        raise OutputError(f"{path}: the trained weights of {name} cannot be written ({e})") from None
    finally:
        with contextlib.suppress(OSError):  # never hides what went wrong: there may be no partial file to remove
            tmp.unlink(missing_ok=True)  # stopped before the weights were replaced: the old ones stay, whole
    models.clear_cache()  # this process may render with the new weights next
    return entry


def record_metrics(name: str, metrics: dict[str, Any], weights_dir: Path | None = None) -> None:
    """Merge measured metrics into a shipped model's manifest entry (the weights and their hash are left alone):
    by default in the manifest the model in use was read from (``$HOSTPLUG_WEIGHTS``'s when it holds it), the
    one whose weights were measured."""
    folder = Path(weights_dir) if weights_dir is not None else models.entry(name).folder
    try:
        with models.updating_manifest(folder / "manifest.json") as entries:
            if name in entries:
                entries[name] = models.ModelEntry(**{**entries[name].__dict__,
                                                     "metrics": {**entries[name].metrics, **metrics}})
    except OSError as e:
        raise OutputError(f"{folder / 'manifest.json'}: the figures of {name} cannot be recorded ({e})") from None
