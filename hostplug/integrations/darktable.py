"""``hostplug integrate darktable``: a watch-folder configuration for darktable's "copy" export, without Lua.

darktable exports with format "copy" into a hot folder, to ``<hot folder>/$(FILE_FOLDER)/$(FILE_NAME)``, so the
copy's place spells the original's folder; ``hostplug watch`` renders it with the folder's look and writes a
16-bit TIFF beside the original raw (``IMG_0001.tif`` beside ``IMG_0001.CR2``, which darktable groups with the
raw when the folder is imported again), carrying the rating, colour labels and tags. The copy is then deleted;
the original and its darktable sidecar are only ever read. How the original is found: :mod:`hostplug.daemon.beside`.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tomllib
from collections.abc import Sequence
from pathlib import Path

from engine.errors import OutputError
from hostplug.daemon.beside import MIRROR_PATTERN
from hostplug.daemon.config import DaemonConfig, load_config, parse_config
from hostplug.daemon.errors import ConfigError

DEFAULT_HOT_FOLDER = Path("~/hostplug-darktable")


def default_config() -> Path:
    """Where the route's configuration goes: ``$XDG_CONFIG_HOME/hostplug/darktable.toml`` (``~/.config`` by
    default), beside the user's presets."""
    from engine.xmp.presets import config_home

    return config_home() / "hostplug" / "darktable.toml"


def _toml(value: str | Sequence[str]) -> str:
    """A string or a list of strings as TOML (JSON's string escapes are TOML's)."""
    return json.dumps(value if isinstance(value, str) else list(value))


def route_config(hot_folder: Path, library_roots: Sequence[Path] = (), presets: Sequence[str] = (),
                 style: str | None = None) -> str:
    """The TOML text of the darktable route's watch configuration."""
    look = [f"presets = {_toml(presets)}"] if presets else ["# presets = [\"punchy\"]      # the look: presets, "
                                                            "applied in order"]
    look.append(f"recipe = {{ style = {_toml(style)} }}" if style else "# recipe = { style = \"natural\" }")
    roots = _toml([str(r) for r in library_roots])
    return "\n".join([
        "# hostplug watch configuration for darktable, written by `hostplug integrate darktable`.",
        "# darktable's export module, format \"copy\", writes a raw and its sidecar into the hot folder at",
        f"#   {hot_folder}/{MIRROR_PATTERN}",
        "# (the copy's sub-folder spells the original's folder); hostplug renders it and writes the TIFF beside the",
        "# ORIGINAL raw, with darktable's rating, colour labels and tags, then deletes the copy. The original raw",
        "# and its darktable sidecar are never written.",
        "",
        "[daemon]",
        "workers = 1",
        "settle_seconds = 2.0",
        "",
        "[[folder]]",
        f"path = {_toml(str(hot_folder))}",
        "recurse = true              # copies arrive in sub-folders that spell the original's folder",
        "originals = \"delete\"        # delete the copy once rendered (leave | move | delete)",
        "failed = \"move\"             # an original that cannot be found: the copy goes to _failed/ with a report",
        f"library_roots = {roots}   # also searched by file name (content-checked) for other export patterns",
        *look,
        "",
        "[[folder.output]]",
        "beside_original = true      # next to the original raw, in darktable's film roll folder",
        "template = \"{name}\"         # IMG_0001.tif: same base name as IMG_0001.CR2, so darktable groups them",
        "format = \"tiff\"",
        "bits = 16",
        "space = \"srgb\"              # srgb | display-p3 | adobe-rgb | prophoto",
        "",
    ])


def write_route(config_path: Path, hot_folder: Path, library_roots: Sequence[Path] = (),
                presets: Sequence[str] = (), style: str | None = None, *, force: bool = False) -> DaemonConfig:
    """Create the hot folder, write the configuration and prove it loads and passes the daemon's start checks.

    Everything that can be checked is checked before anything is made (:class:`ConfigError`): a hot folder that
    is not a new folder of its own (the home folder, one overlapping a library root, or one that already holds
    files, since the daemon deletes the copies it renders there), an unknown preset or style, and an existing
    configuration with other content, kept unless ``force``. Then the configuration is written first
    (:class:`OutputError` when it cannot be), and the hot folder made; when that or the daemon's start checks
    fail, both are taken back, so a refused route leaves nothing behind.
    """
    from hostplug.daemon.validate import validate

    hot_folder = hot_folder.expanduser().absolute()
    roots = [r.expanduser().absolute() for r in library_roots]
    text = route_config(hot_folder, roots, presets, style)
    _check_route(text, config_path, hot_folder, roots)  # what is wrong with the route first, then what is in the way
    previous = _existing_config(config_path, text, force)
    made = _write_config(config_path, text, previous)
    new_hot = _missing_folders(hot_folder)
    try:
        _make_hot_folder(hot_folder)
        config = load_config(config_path)
        validate(config)
        mark_started_empty(config)
    except BaseException:
        _take_back(hot_folder, new_hot)
        _restore_config(config_path, previous)
        _remove_folders(made)
        raise
    return config


def _existing_config(config_path: Path, text: str, force: bool) -> bytes | None:
    """The bytes of the configuration already at ``config_path`` (None for none); ConfigError when it differs
    from ``text`` and ``force`` was not given."""
    try:
        previous = config_path.read_bytes() if config_path.exists() else None
    except OSError as e:
        raise OutputError(f"cannot read the configuration {config_path} ({e.strerror or e}); name another file "
                          "with --config") from None
    if previous is not None and previous != text.encode("utf-8") and not force:
        raise ConfigError(f"{config_path} exists; pass --force to replace it")
    return previous


def _check_route(text: str, config_path: Path, hot_folder: Path, roots: Sequence[Path]) -> None:
    """The checks that need nothing made: library roots, a hot folder of its own, the look (presets, style)."""
    from hostplug.daemon.validate import check_copies_apart, check_look

    for root in roots:
        if not root.is_dir():
            raise ConfigError(f"library root {root} is not a folder")
    check_copies_apart(hot_folder, roots)  # the daemon checks this at every start too
    if not _route_known(hot_folder):  # set up before: the files there now are copies waiting for the daemon
        check_starts_empty(hot_folder)
    check_look(parse_config(tomllib.loads(text), config_path.parent.absolute()).folders[0])


def _write_config(config_path: Path, text: str, previous: bytes | None) -> list[Path]:
    """Write the configuration, making its folder; the folders made. OutputError, with nothing left behind,
    when it cannot be written (a read-only or missing place such as /proc)."""
    made = _missing_folders(config_path.parent)
    try:
        config_path.parent.mkdir(parents=True, exist_ok=True)
        config_path.write_text(text, encoding="utf-8")
    except OSError as e:
        _restore_config(config_path, previous)
        _remove_folders(made)
        raise OutputError(f"cannot write the configuration {config_path} ({e.strerror or e}); name another file "
                          "with --config") from None
    return made


def _make_hot_folder(hot_folder: Path) -> None:
    """Create the hot folder; OutputError in one line when it cannot be."""
    try:
        hot_folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot make the hot folder {hot_folder} ({e.strerror or e}); name another folder "
                          "with --hot-folder") from None


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and those of its parents that do not exist yet, the outermost first: what making it makes."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing[::-1]


def _remove_folders(made: Sequence[Path]) -> None:
    """Remove the folders this run made, innermost first; one that is not empty (by then) stays."""
    for folder in reversed(made):
        with contextlib.suppress(OSError):
            folder.rmdir()


def _take_back(hot_folder: Path, made: Sequence[Path]) -> None:
    """Remove a hot folder this run made, with the journal written into it, unless files arrived there since."""
    from hostplug.daemon.validate import first_file

    if not made or first_file(hot_folder) is not None:
        return
    shutil.rmtree(hot_folder / ".hostplug", ignore_errors=True)
    _remove_folders(made)


def _restore_config(config_path: Path, previous: bytes | None) -> None:
    """Put back the configuration that was at ``config_path`` before (none: remove what was written)."""
    with contextlib.suppress(OSError):
        if previous is None:
            config_path.unlink(missing_ok=True)
        else:
            config_path.write_bytes(previous)


def mark_started_empty(config: DaemonConfig) -> None:
    """Record in the daemon's journal that the hot folder was empty when it was set up, so that the daemon takes
    files found there at its first start for copies (it refuses a new hot folder that holds files)."""
    from hostplug.daemon.journal import Journal

    journal = Journal(config.journal)
    try:
        journal.mark_empty(config.folders[0].path)
    finally:
        journal.close()


def _route_known(hot_folder: Path) -> bool:
    """Whether the route's journal (the default place) already knows the hot folder: it was set up before."""
    from hostplug.daemon.config import default_journal
    from hostplug.daemon.journal import Journal

    if not default_journal(hot_folder).is_file():
        return False
    journal = Journal(default_journal(hot_folder))
    try:
        return journal.knows_folder(hot_folder)
    finally:
        journal.close()


def check_starts_empty(hot_folder: Path) -> None:
    """Refuse a hot folder that already holds files (hostplug's own journal and ``_failed/`` aside): the daemon
    deletes every copy it renders there, so a folder of the photographer's own raws must never become one."""
    from hostplug.daemon.validate import first_file

    found = first_file(hot_folder)
    if found is not None:
        raise ConfigError(f"hot folder {hot_folder} already holds files ({found}); a darktable hot folder starts "
                          "empty, as hostplug deletes the copies it renders there: name a new folder with "
                          f"--hot-folder (default {DEFAULT_HOT_FOLDER}), or move those files out first")


def darktable_steps(hot_folder: Path, config_path: Path) -> list[str]:
    """The three things a user does, in darktable and beside it, to use the route."""
    return [
        f"1. In darktable's lighttable, export module: target storage \"file on disk\", path\n"
        f"     {hot_folder}/{MIRROR_PATTERN}\n"
        "   (copy it exactly: the copy's sub-folder tells hostplug where the original is), format \"copy\".\n"
        "   Save it as an export preset (\"hostplug\") to pick it in one click next time.",
        f"2. Keep the renderer running: hostplug watch --config {config_path}\n"
        "   (or as a service: the systemd unit in integrations/systemd/, with its --config set to this file).",
        "3. Select images and press export. The TIFF appears beside each raw (IMG_0001.tif beside IMG_0001.CR2)\n"
        "   with its rating, colour labels and tags; import the folder again (import > add to library) and\n"
        "   darktable groups it with the raw. Your edit history and sidecar are never changed.",
    ]
