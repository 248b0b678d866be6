"""Learned models: their weights files, manifest and safe loading.

Weights live in ``engine/weights/`` as safetensors files (tensors only: loading never unpickles code and never
downloads anything). ``engine/weights/manifest.json`` lists each model with its file, SHA-256, architecture
settings, training recipe and measured metrics. A missing or altered file is an error naming the file and its
expected hash, never a silent fallback to random weights.

Another folder of weights with its own ``manifest.json`` (what ``hostplug train ... --weights-dir DIR`` writes)
is used where ``$HOSTPLUG_WEIGHTS`` names it, or inside :func:`using_weights`: its models replace the installed
ones of the same name, the others stay. A folder named so without a ``manifest.json`` is an error, not a silent
fall-back to the installed weights.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import ModelError
from engine.filehash import file_identity, file_sha256

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"  # the installed weights
MANIFEST = WEIGHTS_DIR / "manifest.json"
WEIGHTS_ENV = "HOSTPLUG_WEIGHTS"

_chosen: Path | None = None  # set by using_weights


def weights_folder() -> Path:
    """The folder models are read from: the one :func:`using_weights` chose, else ``$HOSTPLUG_WEIGHTS``, else the
    installed weights (:data:`WEIGHTS_DIR`)."""
    if _chosen is not None:
        return _chosen
    named = os.environ.get(WEIGHTS_ENV)
    # absolute: the caches are keyed by it, and the render service serves clients working in other folders
    return Path(named).expanduser().absolute() if named else WEIGHTS_DIR


@contextmanager
def using_weights(folder: str | Path | None) -> Iterator[None]:
    """Read models from ``folder`` (weights and their ``manifest.json``) inside the block, for this process; None
    keeps the current choice. Loaded networks are forgotten on the way in and out."""
    global _chosen
    if folder is None:
        yield
        return
    saved, _chosen = _chosen, Path(folder).absolute()
    clear_cache()
    try:
        yield
    finally:
        _chosen = saved
        clear_cache()


@dataclass(frozen=True)
class ModelEntry:
    """One model in the manifest."""

    name: str  # e.g. "denoise-lite", "wb-c5", "photofinish-natural"
    file: str  # relative to the manifest's folder
    sha256: str
    architecture: dict[str, Any] = field(default_factory=dict)  # constructor arguments
    training: dict[str, Any] = field(default_factory=dict)  # how it was trained (data, steps, seed, command)
    metrics: dict[str, Any] = field(default_factory=dict)  # measured on held-out data
    folder: Path = WEIGHTS_DIR  # the folder of the manifest it was read from

    @property
    def path(self) -> Path:
        """Where the weights file lives."""
        return self.folder / self.file


def read_manifest(path: Path | None = None) -> dict[str, ModelEntry]:
    """All models in the manifest at ``path``, by name; empty when no model has been shipped. By default, the
    models in use: those of :func:`weights_folder`, and where that is another folder (which may hold only the
    models retrained into it), the installed ones it does not replace."""
    if path is None:
        folder = weights_folder()
        if folder == WEIGHTS_DIR:
            return read_manifest(MANIFEST)
        if folder.is_dir() and not (folder / "manifest.json").is_file():  # a folder named by mistake
            raise ModelError(f"no manifest.json in {folder}: not a folder that hostplug train --weights-dir wrote "
                             f"(${WEIGHTS_ENV} or --weights names it)")
        return read_manifest(MANIFEST) | read_manifest(folder / "manifest.json")
    if not path.is_file():
        if path.parent != WEIGHTS_DIR and not path.parent.is_dir():
            raise ModelError(f"{path.parent}: no such weights folder (${WEIGHTS_ENV} or --weights names it)")
        return {}
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
            raise ValueError('not an object with a "models" object')
        return {name: _manifest_entry(name, entry, path.parent) for name, entry in data["models"].items()}
    except (OSError, ValueError, KeyError, TypeError) as e:
        advice = ("reinstall hostplug" if path.parent == WEIGHTS_DIR else
                  f"fix or delete it, or name another weights folder than {path.parent}")
        raise ModelError(f"{path}: the model manifest cannot be read ({e}); {advice}") from e


def _manifest_entry(name: str, entry: Any, folder: Path) -> ModelEntry:
    """One model of a manifest, its fields checked (ValueError naming the model when one has the wrong type)."""
    if not isinstance(entry, dict):
        raise ValueError(f"model {name!r} is not an object")
    types = {"file": str, "sha256": str, "architecture": dict, "training": dict, "metrics": dict}
    for key, value in entry.items():
        if key not in types or not isinstance(value, types[key]):
            raise ValueError(f"model {name!r} has a wrong field {key!r}")
    return ModelEntry(name=name, folder=folder, **entry)


def write_manifest(entries: dict[str, ModelEntry], path: Path = MANIFEST) -> None:
    """Write the manifest (sorted, stable) atomically: a reader never sees half a file."""
    models = {
        name: {"file": e.file, "sha256": e.sha256, "architecture": e.architecture, "training": e.training,
               "metrics": e.metrics}
        for name, e in sorted(entries.items())
    }
    part = path.with_suffix(".json.part")
    part.write_text(json.dumps({"models": models}, indent=2, sort_keys=True) + "\n")
    os.chmod(part, 0o644)
    os.replace(part, path)


@contextmanager
def updating_manifest(path: Path = MANIFEST) -> Iterator[dict[str, ModelEntry]]:
    """Read, change and write back the manifest under an exclusive lock, so that trainings running side by side
    (one per style, say) never drop each other's entries."""
    folder = os.open(path.parent, os.O_RDONLY)  # the lock is on the folder: the manifest file itself is replaced
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)  # a wait that Ctrl-C still interrupts
        with signals_deferred():  # what the body replaces (a weights file) and the manifest change together
            entries = read_manifest(path)
            yield entries
            write_manifest(entries, path)
    finally:
        os.close(folder)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends, then act on the first one that came: a training stopped
    between replacing its weights and recording their hash left a model no render could load. Python runs signal
    handlers in the main thread only, so elsewhere there is nothing to hold."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    saved = {number: signal.signal(number, lambda n, _frame: caught.append(n))
             for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in saved.items():
            signal.signal(number, handler)
        if caught:
            signal.raise_signal(caught[0])


def entry(name: str) -> ModelEntry:
    """The manifest entry of a model; ModelError listing the known models if there is none."""
    entries = read_manifest()
    if name not in entries:
        known = ", ".join(sorted(entries)) or "none"
        raise ModelError(f"no model named {name!r} is installed (known models: {known})")
    return entries[name]


def verified_entry(name: str) -> ModelEntry:
    """A model's manifest entry once its weights file is there with the recorded SHA-256 (ModelError naming the
    file when not); reads no weights and imports no torch."""
    e = entry(name)
    if not e.path.is_file():
        raise ModelError(f"{e.path}: weights file of model {name!r} is missing (expected sha256 {e.sha256}); "
                         "reinstall hostplug or retrain it with 'hostplug train'")
    actual = file_sha256(e.path)
    if actual != e.sha256:
        raise ModelError(f"{e.path}: weights file of model {name!r} is corrupt or was changed (sha256 "
                         f"{actual[:16]}..., expected {e.sha256}); reinstall hostplug or retrain it")
    return e


def load_state(name: str, weights_format: str = "torch") -> dict[str, Any]:
    """The verified tensors of a model, read from its weights file: torch tensors, or numpy arrays when
    ``weights_format`` is ``"numpy"`` (which never imports torch)."""
    e = verified_entry(name)
    try:
        if weights_format == "numpy":
            from safetensors.numpy import load_file as load_arrays

            return load_arrays(str(e.path))
        from safetensors.torch import load_file

        return load_file(str(e.path))
    except MemoryError:
        raise
    except Exception as ex:  # noqa: BLE001 - safetensors raises several types for a damaged file
        if getattr(ex, "errno", None) == errno.ENOMEM or "(os error 12)" in str(ex):  # the memory, not the file
            raise MemoryError(f"loading the weights of model {name!r}") from ex
        raise ModelError(f"{e.path}: weights of model {name!r} cannot be read ({ex})") from ex


# The one cache of loaded networks, by weights folder, model name, weights format (a model can have a torch and
# a numpy form), weights' hash and the weights file's identity on disk: a daemon or service loads each model once,
# and again once it is retrained or its file is changed.
_NETWORKS: dict[tuple[str, str, str, str], tuple[tuple[Any, ...] | None, Any]] = {}


def build_network(name: str, build: Callable[..., Any]) -> Any:
    """A model's network, built by ``build(**architecture)`` from its manifest entry, with its verified weights
    and in eval mode (cached until :func:`clear_cache`, or until its file changes); ModelError naming the file
    when the weights are missing, altered or do not fit. A builder whose ``weights_format`` is ``"numpy"`` gets
    numpy arrays."""
    # keyed by the weights' hash too: retraining into the same folder (a resident service) makes a new network
    e = entry(name)
    key = (str(weights_folder()), name, getattr(build, "weights_format", "torch"), e.sha256)
    on_disk = file_identity(e.path)  # a file changed or removed since it was loaded is verified again: a
    cached = _NETWORKS.get(key)  # tester's render service rendered on after a HOSTPLUG_WEIGHTS file was damaged
    if cached is None or on_disk is None or cached[0] != on_disk:  # (None: gone; loading it says so)
        _NETWORKS[key] = (on_disk, _build_network(name, build, key[2]))
    return _NETWORKS[key][1]


def clear_cache() -> None:
    """Forget every loaded network: a model was just replaced (training), and the next use reloads it."""
    _NETWORKS.clear()


def _build_network(name: str, build: Callable[..., Any], weights_format: str) -> Any:
    e = entry(name)
    state = load_state(name, weights_format)
    net = build(**e.architecture)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as ex:
        raise ModelError(f"{e.path}: weights of model {name!r} do not fit its architecture ({ex}); "
                         "reinstall hostplug or retrain it with 'hostplug train'") from ex
    return net.eval()


def model_hashes() -> dict[str, str]:
    """Name -> sha256 of every shipped model (recorded in outputs so re-renders can tell what changed)."""
    return {name: e.sha256 for name, e in read_manifest().items()}
