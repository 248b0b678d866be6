"""Shipping a trained model: its safetensors file in ``engine/weights/`` and its manifest entry."""

from __future__ import annotations

import platform
from typing import Any

import torch
from safetensors.torch import save_file

from engine.models import WEIGHTS_DIR, ModelEntry, file_sha256, read_manifest, write_manifest


def machine() -> str:
    """A short description of the machine that trained or measured a model."""
    threads = torch.get_num_threads()
    return f"{platform.machine()} CPU, {threads} torch thread(s), torch {torch.__version__}"


def ship(name: str, net: torch.nn.Module, architecture: dict[str, Any], training: dict[str, Any],
         metrics: dict[str, Any] | None = None) -> ModelEntry:
    """Write ``net``'s weights as ``engine/weights/NAME.safetensors`` and add (or replace) its manifest entry.

    The manifest's other entries (other engineers' models) are kept as they are.
    """
    WEIGHTS_DIR.mkdir(parents=True, exist_ok=True)
    path = WEIGHTS_DIR / f"{name}.safetensors"
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(path))
    path.chmod(0o644)  # package data: readable by everyone
    entries = read_manifest()
    old = entries.get(name)
    entries[name] = ModelEntry(name=name, file=path.name, sha256=file_sha256(path), architecture=architecture,
                               training=training, metrics=metrics if metrics is not None else {})
    if old is not None and metrics is None and old.sha256 == entries[name].sha256:
        entries[name] = ModelEntry(**{**entries[name].__dict__, "metrics": old.metrics})
    write_manifest(entries)
    _forget_cached(name)
    return entries[name]


def set_metrics(name: str, metrics: dict[str, Any]) -> None:
    """Merge measured metrics into a shipped model's manifest entry."""
    entries = read_manifest()
    e = entries[name]
    entries[name] = ModelEntry(**{**e.__dict__, "metrics": {**e.metrics, **metrics}})
    write_manifest(entries)


def _forget_cached(name: str) -> None:
    """Drop cached copies of a model that was just replaced (this process may render with it next)."""
    from engine.models import load_state

    load_state.cache_clear()
    from engine.stages import detail_learned, photofinish_learned

    photofinish_learned.load_network.cache_clear()
    detail_learned.load_detail_network.cache_clear()
