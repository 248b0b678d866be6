"""Start-up checks: a configuration that cannot work is refused with one clear line before anything runs."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

from engine.edits import check_renderable
from engine.errors import HostplugError, OptionError
from hostplug.daemon.config import LIMITS, DaemonConfig, FolderConfig, check_limit
from hostplug.daemon.errors import ConfigError, LookError
from hostplug.daemon.recipes import folder_recipe


def check_writable(folder: Path, what: str, parents: bool = True) -> None:
    """Create ``folder`` if needed (with its parents, when ``parents``) and prove a file can be written there."""
    try:
        folder.mkdir(parents=parents, exist_ok=True)
    except FileNotFoundError:  # (only without parents) a mistyped path, or a share not mounted
        raise ConfigError(f"{what} {folder}: {folder.parent} does not exist (a share not mounted, or a mistyped "
                          "path?); make it, or name another folder") from None
    except OSError as e:
        raise ConfigError(f"{what} {folder} is not writable ({e.strerror or e})") from e
    try:
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


def check_copies_apart(hot: Path, library_roots: Iterable[Path]) -> None:
    """Refuse a hot folder whose copies are deleted once rendered (``originals = "delete"``) when it is, or contains,
    the home folder, is a library root or holds one: the photographer's own raws there could be taken for copies
    of the same files elsewhere (a backup) and deleted. Such a hot folder must be a folder of its own. One inside a
    library root is fine, and the darktable route's default (``~/hostplug-darktable`` with the library root
    ``~``): the search for originals leaves the hot folder out."""
    apart = "a hot folder whose rendered copies are deleted must be a separate folder that only receives copies"
    home = Path.home()
    if _inside(home, hot):
        what = "your home folder" if hot.resolve() == home.resolve() else f"a folder that holds your home {home}"
        raise ConfigError(f"hot folder {hot} is {what}: {apart}")
    for root in library_roots:
        if hot.resolve() == root.resolve():
            raise ConfigError(f"hot folder {hot} is the library root {root}: {apart}, outside the photo library")
        if _inside(root, hot):
            raise ConfigError(f"library root {root} is inside hot folder {hot}: {apart}, outside the photo library")


def first_file(folder: Path) -> Path | None:
    """Any entry below ``folder`` that is not a folder (a file, a link...), leaving out hostplug's own
    ``.hostplug/`` and ``_failed/`` at its top; None when there is none or ``folder`` does not exist."""
    pending = [folder]
    while pending:
        current = pending.pop()
        try:
            entries = list(os.scandir(current))
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as e:
            raise ConfigError(f"hot folder {folder}: cannot look inside {current} ({e.strerror or e})") from None
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False):
                return Path(entry.path)
            if current != folder or entry.name not in (".hostplug", "_failed"):
                pending.append(Path(entry.path))
    return None


def check_look(folder: FolderConfig) -> None:
    """The folder's look is valid: its presets known, its style and settings in range (needs no folder)."""
    recipe = folder_recipe(folder)
    try:  # stage settings are held to their stages' descriptions now, not at every render
        check_renderable(recipe)
    except HostplugError as e:
        raise LookError(f"hot folder {folder.path}: {e}") from None


def check_folder(folder: FolderConfig) -> None:
    """The hot folder exists, its look is valid (presets known, settings in range), its outputs are writable."""
    if not folder.path.is_dir():
        raise ConfigError(f"hot folder {folder.path} does not exist or is not a folder")
    check_look(folder)
    for spec in folder.outputs:
        if spec.folder is not None:
            # never its parents: an unmounted share's mount point would take the renders on the local disk
            check_writable(spec.folder, "output folder", parents=False)
    if folder.archive:
        check_writable(folder.archive, "archive folder")


def validate(config: DaemonConfig) -> None:
    """Every start-up check; raises :class:`ConfigError` with one line saying what to fix."""
    check_numbers(config)
    from engine.io.limits import decode_seconds, max_pixels

    try:  # the limits' environment variables, read as a render reads them: a typo would fail every raw dropped
        max_pixels()
        decode_seconds()
    except OptionError as e:
        raise ConfigError(str(e)) from None
    if config.cluster is not None:  # an address Ray cannot use: one line now (Ray waits half a minute)
        from hostplug.daemon.cluster import checked_address

        checked_address(config.cluster)
    else:  # a cluster's nodes may have the GPU its head lacks
        from engine.devices import check_device

        try:
            check_device(config.device, "[daemon] device")
        except OptionError as e:  # every raw dropped would fail: refused now, as `render --device cuda` is
            raise ConfigError(str(e)) from None
    if config.log_json and config.log_json.exists():  # an existing device or FIFO: refused before anything is made
        check_log_file(config.log_json)
    check_overlaps(config)
    for folder in config.folders:
        if folder.originals == "delete":  # also for a configuration written by hand, or by an older version
            check_copies_apart(folder.path, folder.library_roots)
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
