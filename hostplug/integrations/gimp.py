"""Installing hostplug's GIMP 3 plug-in into a user's GIMP, and taking it out again.

GIMP 3 finds a Python plug-in as ``PLUG-INS/NAME/NAME.py`` (the folder named after the file, the file executable
with a shebang). The user's folder is ``~/.config/GIMP/3.0/plug-ins`` on Linux (``$XDG_CONFIG_HOME`` honoured),
``~/Library/Application Support/GIMP/3.0/plug-ins`` on macOS, ``%APPDATA%\\GIMP\\3.0\\plug-ins`` on Windows,
and ``$GIMP3_DIRECTORY/plug-ins`` when that variable is set (as GIMP itself does).

GIMP keeps only one raw loader active: the one named by ``(import-raw-plug-in "PATH")`` in the user's
``gimprc`` (the plug-in's file path; Preferences > Import & Export > Raw Image Importer writes it). Making
hostplug the raw loader edits that line and records its previous value in the plug-in's config file, so
uninstalling puts it back.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import stat
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import HostplugError

PLUGIN_NAME = "hostplug-raw"
CONFIG_NAME = f"{PLUGIN_NAME}.json"
GIMP_VERSION_DIR = "3.0"
_RAW_LOADER = re.compile(r'^[ \t]*\(import-raw-plug-in[ \t]+"((?:[^"\\]|\\.)*)"[ \t]*\)[ \t]*$', re.MULTILINE)


class IntegrationError(HostplugError):
    """An installation into a host program failed (files not writable, plug-in source missing)."""

    exit_code = 5


@dataclass
class InstallReport:
    """What an install or uninstall did, for the command to print."""

    plugin: Path
    actions: list[str] = field(default_factory=list)


def gimp_directory() -> Path:
    """GIMP 3's per-user folder (see the module docstring)."""
    if os.environ.get("GIMP3_DIRECTORY"):
        return Path(os.environ["GIMP3_DIRECTORY"]).expanduser()
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "GIMP" / GIMP_VERSION_DIR
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming")) / "GIMP" / GIMP_VERSION_DIR
    from engine.xmp.presets import config_home

    return config_home() / "GIMP" / GIMP_VERSION_DIR


def plugin_source() -> Path:
    """The plug-in file: ``hostplug/data/hostplug-raw.py``, a link to ``integrations/gimp/hostplug-raw/`` in the
    source tree that a wheel carries as a copy."""
    source = Path(__file__).resolve().parents[1] / "data" / f"{PLUGIN_NAME}.py"
    if not source.is_file():
        raise IntegrationError(f"{source}: the GIMP plug-in is missing from this hostplug installation; "
                               "reinstall hostplug")
    return source


def hostplug_command() -> Path:
    """The ``hostplug`` console script of this installation (not a shim such as pyenv's, which a plug-in's
    environment may not resolve)."""
    scripts = Path(sysconfig.get_path("scripts"))
    for name in ("hostplug", "hostplug.exe"):
        if (scripts / name).is_file():
            return scripts / name
    found = shutil.which("hostplug")
    if found is None:
        raise IntegrationError("cannot find the hostplug command; install hostplug with pip first")
    return Path(found).resolve()


def _write_atomically(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` through a temporary file beside it."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        temporary.write_bytes(data)
        if mode is not None:
            temporary.chmod(mode)
        elif path.exists():
            temporary.chmod(stat.S_IMODE(path.stat().st_mode))
        os.replace(temporary, path)
    except OSError as e:
        raise IntegrationError(f"cannot write {path}: {e.strerror or e}") from e
    finally:
        temporary.unlink(missing_ok=True)


def _quote(value: str) -> str:
    """A gimprc string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _unquote(literal: str) -> str:
    return re.sub(r"\\(.)", r"\1", literal)


def _read_gimprc(gimprc: Path) -> str:
    """``gimprc``'s text; bytes that are no UTF-8 (a comment saved in Latin-1) are kept as they are, to be
    written back unchanged."""
    return gimprc.read_bytes().decode("utf-8", "surrogateescape")


def read_raw_loader(gimprc: Path) -> str | None:
    """The raw loader ``gimprc`` names, or None when it names none (or does not exist)."""
    try:
        match = _RAW_LOADER.search(_read_gimprc(gimprc))
    except FileNotFoundError:
        return None
    except OSError as e:
        raise IntegrationError(f"cannot read {gimprc}: {e.strerror}") from e
    return _unquote(match.group(1)) if match else None


def set_raw_loader(gimprc: Path, value: str | None) -> None:
    """Make ``gimprc`` name ``value`` as the raw loader (None: remove the setting); the rest is kept."""
    try:
        text = _read_gimprc(gimprc)
    except FileNotFoundError:
        text = ""
    except OSError as e:
        raise IntegrationError(f"cannot read {gimprc}: {e.strerror}") from e
    line = f"(import-raw-plug-in {_quote(value)})" if value is not None else None
    if _RAW_LOADER.search(text):
        replacement = (lambda _m: line) if line is not None else (lambda _m: "")
        text = _RAW_LOADER.sub(replacement, text, count=1)
        if line is None:
            text = re.sub(r"\n{3,}", "\n\n", text)
    elif line is not None:
        text = text + ("" if not text or text.endswith("\n") else "\n") + line + "\n"
    real = gimprc.resolve()  # a gimprc kept in a dotfiles folder and linked here stays a link, and gets the change
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise IntegrationError(f"cannot write {gimprc}: cannot create its folder ({e.strerror or e})") from e
    _write_atomically(real, text.encode("utf-8", "surrogateescape"))


def _read_config(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _version_key(name: str) -> tuple[int, ...]:
    """"2.10" after "2.8"; a name with other parts sorts by its leading numbers."""
    return tuple(int(part) for part in re.findall(r"\d+", name))


def check_profile_started(gimp_dir: Path) -> None:
    """Refuse to create GIMP 3's user folder where an earlier GIMP's profile waits to be moved over: GIMP moves a
    GIMP 2.10 profile (brushes, shortcuts, gimprc) into its own folder at its first start, only when that folder is
    not there yet, and a plug-in folder made before then would cost the user their settings."""
    earlier = sorted((p.name for p in gimp_dir.parent.glob("2.*") if p.is_dir()), key=_version_key) \
        if not gimp_dir.exists() else []
    if earlier:
        raise IntegrationError(f"GIMP 3 has not started yet for this user ({gimp_dir} is not there) and GIMP "
                               f"{earlier[-1]}'s settings wait to be moved over at its first start: start GIMP 3 once, "
                               "then run hostplug integrate gimp again")


def install(plugin_dir: Path, gimprc: Path, make_default: bool = False) -> InstallReport:
    """Install the plug-in into ``plugin_dir`` (GIMP's plug-ins folder); optionally make it the raw loader."""
    plugin_dir, gimprc = plugin_dir.absolute(), gimprc.absolute()  # GIMP and uninstall run from other folders
    folder = plugin_dir / PLUGIN_NAME
    plugin = folder / f"{PLUGIN_NAME}.py"
    report = InstallReport(plugin)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise IntegrationError(f"cannot create {folder}: {e.strerror}") from e
    installed_before = plugin.exists()
    _write_atomically(plugin, plugin_source().read_bytes(), 0o755)
    report.actions.append(f"installed {plugin}")
    config_path = folder / CONFIG_NAME
    previous = _read_config(config_path)
    config: dict[str, str | None] = {"hostplug": str(hostplug_command()), "python": sys.executable}  # None: no loader
    if make_default:
        try:
            current = read_raw_loader(gimprc)
            ours = current is not None and Path(current) == plugin
            config["gimprc"] = str(gimprc)
            config["previous_raw_loader"] = previous.get("previous_raw_loader") if ours else current
            set_raw_loader(gimprc, str(plugin))
        except IntegrationError:
            if not installed_before:  # all or nothing: no plug-in left without its settings
                plugin.unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    folder.rmdir()
            raise
        report.actions.append(f"made it GIMP's raw loader in {gimprc}")
    elif "previous_raw_loader" in previous:
        config["gimprc"] = previous.get("gimprc", str(gimprc))
        config["previous_raw_loader"] = previous["previous_raw_loader"]
    _write_atomically(config_path, (json.dumps(config, indent=2) + "\n").encode("utf-8"), 0o644)
    report.actions.append(f"recorded {config['hostplug']} in {config_path}")
    return report


def uninstall(plugin_dir: Path, gimprc: Path) -> InstallReport:
    """Remove what :func:`install` put in place and give GIMP back its previous raw loader."""
    plugin_dir, gimprc = plugin_dir.absolute(), gimprc.absolute()
    folder = plugin_dir / PLUGIN_NAME
    plugin = folder / f"{PLUGIN_NAME}.py"
    report = InstallReport(plugin)
    config = _read_config(folder / CONFIG_NAME)
    rc = Path(config.get("gimprc") or gimprc)
    current = read_raw_loader(rc)
    if current is not None and Path(current) == plugin:
        set_raw_loader(rc, config.get("previous_raw_loader"))
        restored = config.get("previous_raw_loader") or "GIMP's default"
        report.actions.append(f"restored the raw loader in {rc} to {restored}")
    for path in (plugin, folder / CONFIG_NAME):
        if path.exists():
            try:
                path.unlink()
            except OSError as e:
                raise IntegrationError(f"cannot remove {path}: {e.strerror}") from e
            report.actions.append(f"removed {path}")
    shutil.rmtree(folder / "__pycache__", ignore_errors=True)
    if folder.is_dir():
        try:
            folder.rmdir()
            report.actions.append(f"removed {folder}")
        except OSError:
            report.actions.append(f"left {folder} in place: it holds files hostplug did not install")
    if not report.actions:
        report.actions.append(f"nothing to remove: no hostplug plug-in in {plugin_dir}")
    return report
