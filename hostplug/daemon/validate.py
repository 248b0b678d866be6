"""Start-up checks: a configuration that cannot work is refused with one clear line before anything runs."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from engine.edits import check_renderable
from engine.errors import HostplugError
from hostplug.daemon.config import LIMITS, DaemonConfig, FolderConfig, check_limit
from hostplug.daemon.errors import ConfigError
from hostplug.daemon.recipes import folder_recipe


def check_writable(folder: Path, what: str) -> None:
    """Create ``folder`` if needed and prove a file can be written there."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".hostplug-probe-"):
            pass
    except OSError as e:
        raise ConfigError(f"{what} {folder} is not writable ({e.strerror or e})") from e


def _inside(inner: Path, outer: Path) -> bool:
    return inner.resolve().is_relative_to(outer.resolve())


def check_overlaps(config: DaemonConfig) -> None:
    """Refuse outputs that would land in a hot folder, hot folders inside outputs, and nested hot folders."""
    for folder in config.folders:
        for spec in folder.outputs:
            if spec.folder is None:  # beside the original: outside every hot folder (see .beside)
                continue
            if spec.folder.resolve() == folder.path.resolve():
                raise ConfigError(f"output folder {spec.folder} is the hot folder itself; use another folder")
            if folder.recurse and _inside(spec.folder, folder.path):
                raise ConfigError(f"output folder {spec.folder} is inside hot folder {folder.path}, which is "
                                  "watched recursively: outputs would be picked up as inputs")
            if _inside(folder.path, spec.folder):
                raise ConfigError(f"hot folder {folder.path} is inside output folder {spec.folder}")
        if folder.archive and folder.archive.resolve() == folder.path.resolve():
            raise ConfigError(f"archive folder {folder.archive} is the hot folder itself")
        for other in config.folders:
            if other is folder:
                continue
            if other.path.resolve() == folder.path.resolve() or (folder.recurse and _inside(other.path, folder.path)):
                raise ConfigError(f"hot folders {folder.path} and {other.path} overlap")


def check_folder(folder: FolderConfig) -> None:
    """The hot folder exists, its look is valid (presets known, settings in range), its outputs are writable."""
    if not folder.path.is_dir():
        raise ConfigError(f"hot folder {folder.path} does not exist or is not a folder")
    recipe = folder_recipe(folder)
    try:  # stage settings are held to their stages' descriptions now, not at every render
        check_renderable(recipe)
    except HostplugError as e:
        raise ConfigError(f"hot folder {folder.path}: {e}") from None
    for spec in folder.outputs:
        if spec.folder is not None:
            check_writable(spec.folder, "output folder")
    if folder.archive:
        check_writable(folder.archive, "archive folder")


def validate(config: DaemonConfig) -> None:
    """Every start-up check; raises :class:`ConfigError` with one line saying what to fix."""
    check_numbers(config)
    if config.log_json and config.log_json.exists():  # an existing device or FIFO: refused before anything is made
        check_log_file(config.log_json)
    check_overlaps(config)
    for folder in config.folders:
        check_folder(folder)
    check_writable(config.journal.parent, "journal folder")
    if config.log_json:
        check_writable(config.log_json.parent, "log folder")
        check_log_file(config.log_json)


def check_numbers(config: DaemonConfig) -> None:
    """Every number of the daemon, including those the command line set (``--workers``, ``--settle``): above zero,
    finite and within its documented limit (:data:`hostplug.daemon.config.LIMITS`)."""
    for key in LIMITS:
        value = getattr(config, key, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if key != "threads_per_worker" and value <= 0:
                raise ConfigError(f"[daemon]: {key!r} must be above zero, not {value!r}")
            check_limit("[daemon]", key, value)


def check_log_file(path: Path) -> None:
    """The JSON log must be a regular file (created if missing) that can be appended to: a device such as
    ``/dev/full`` or a FIFO would fail (or block) on every line the daemon logs."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise ConfigError(f"log file {path} is not writable ({e.strerror or e})") from None
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise ConfigError(f"log file {path} is not a regular file; name a file for log_json")
    finally:
        os.close(descriptor)
