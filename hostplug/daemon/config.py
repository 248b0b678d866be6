"""The watch configuration: hot folders, their looks and outputs, and how the daemon runs.

Read from TOML (see :data:`EXAMPLE`, also shown by ``hostplug watch --help``) or built from the command line's
minimal form. Parsing is strict: an unknown key, a wrong type or a bad value is a :class:`ConfigError` naming
where it is. Checks that touch the file system (folders, presets, overlaps) live in :mod:`.validate`.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.output.formats import (
    FORMAT_ALIASES,
    FORMAT_SUFFIX,
    FORMATS,
    MIN_LONG_EDGE,
    SPACE_ALIASES,
    SPACE_NAMES,
    TIFF_COMPRESSIONS,
    canonical_name,
)
from hostplug.daemon.errors import ConfigError
from hostplug.daemon.templates import check_template

WATCHERS = ("auto", "events", "polling")
RAW_EXTENSIONS = frozenset({
    "3fr", "ari", "arw", "bay", "cr2", "cr3", "crw", "dcr", "dng", "erf", "fff", "gpr", "iiq", "k25", "kdc",
    "mef", "mos", "mrw", "nef", "nrw", "orf", "pef", "raf", "raw", "rw2", "rwl", "sr2", "srf", "srw", "x3f",
})

EXAMPLE = """\
# studio.toml: one resident renderer for the studio's hot folders
[daemon]
workers = 2                 # renders at once (worker processes)
# journal = "/var/lib/hostplug/journal.sqlite"  # default: <first hot folder>/.hostplug/journal.sqlite
# log_json = "/var/log/hostplug/watch.jsonl"    # one JSON object a line
settle_seconds = 2.0        # size and mtime unchanged this long = the copy is complete
rescan_seconds = 60         # full rescan, in case the watcher missed an event
watcher = "auto"            # auto | events | polling (auto polls network shares, or when inotify fails)
poll_seconds = 2.0          # scan interval when polling
render_timeout = 600        # seconds one render may take before its worker is killed (and the file retried)
memory_limit_mb = 8192      # address-space limit of each worker
max_attempts = 3            # tries for temporary failures (worker crash, timeout, output error)
retry_seconds = 5           # wait before the first retry (doubling after each)
grace_seconds = 30          # on SIGTERM, how long running renders may take to finish
warm_up = true              # each worker renders the bundled sample once before taking files
threads_per_worker = 0      # 0: the CPU cores shared evenly among the workers
# cluster = "ray://head.studio.lan:10001"  # render on the nodes of a Ray cluster, or "auto" (docs/cluster.md)
# cpus_per_worker = 2       # cluster: one worker per this many CPU cores of a node (device = "cuda": one per GPU)
# path_map = { "10.0.0.12" = { "/studio" = "/mnt/studio" } }  # cluster nodes that mount the share elsewhere

[[folder]]
path = "/studio/incoming"   # relative paths are relative to this file
recurse = true
presets = ["warm-5200"]         # applied in order, the last one winning per setting
recipe = { exposure = 0.3, sharpening = 40 }   # any recipe setting; a raw's own sidecar recipe wins
originals = "move"          # leave | move (to archive, once every output is written) | delete (copies only)
archive = "/studio/archive"
failed = "move"             # move (to <hot folder>/_failed/) | mark (leave in place); both write NAME.failed.txt
# extensions = ["dng", "cr3", "jpg"]  # suffixes rendered: default every raw suffix; JPEG/PNG/TIFF only if listed

[[folder.output]]           # a 16-bit TIFF master, by date
folder = "/studio/masters"
template = "{date}/{name}"  # tokens: {name} {ext} {dir} {date} {camera} {style} {seq} (e.g. {seq:05d})
format = "tiff"             # tiff | png | jpeg
bits = 16
space = "adobe-rgb"         # srgb | display-p3 | adobe-rgb | prophoto

[[folder.output]]           # a 2048 px web JPEG
folder = "/studio/web"
template = "{name}_{style}"
format = "jpeg"
quality = 85
long_edge = 2048
"""


@dataclass(frozen=True)
class OutputSpec:
    """One output of every raw in a hot folder."""

    folder: Path | None  # None: beside the original (see beside_original)
    template: str = "{name}"
    format: str = "tiff"
    bits: int | None = None
    quality: int = 92
    space: str = "srgb"
    long_edge: int | None = None
    beside_original: bool = False  # the dropped file is a copy: write next to its original (:mod:`.beside`)
    compression: str = "none"  # a TIFF's: none or deflate

    @property
    def suffix(self) -> str:
        """The file suffix the format gives."""
        return FORMAT_SUFFIX[self.format]

    def describe(self) -> dict[str, Any]:
        """JSON-ready form (what a recipe hash covers)."""
        described = {"folder": str(self.folder), "template": self.template, "format": self.format,
                     "bits": self.bits, "quality": self.quality, "space": self.space, "long_edge": self.long_edge}
        return described | ({"beside_original": True} if self.beside_original else {}) | (
            {"compression": self.compression} if self.compression != "none" else {})  # (hashes made before stay)


@dataclass(frozen=True)
class FolderConfig:
    """A hot folder: where raws arrive, the look they get, and where their outputs go."""

    path: Path
    outputs: tuple[OutputSpec, ...]
    presets: tuple[str, ...] = ()
    recipe: Mapping[str, Any] = field(default_factory=dict)
    recurse: bool = False
    originals: str = "leave"  # "leave", "move" or "delete" (copies of an original found elsewhere only)
    archive: Path | None = None
    failed: str = "move"  # "move" (to _failed/) or "mark" (in place)
    extensions: frozenset[str] = RAW_EXTENSIONS
    library_roots: tuple[Path, ...] = ()  # where originals of copies are searched (:mod:`.beside`)

    @property
    def failed_dir(self) -> Path:
        """Where failed raws and their reports go."""
        return self.path / "_failed"


@dataclass(frozen=True)
class DaemonConfig:
    """Everything ``hostplug watch`` runs with."""

    folders: tuple[FolderConfig, ...]
    journal: Path
    workers: int = 1
    log_json: Path | None = None
    settle_seconds: float = 2.0
    rescan_seconds: float = 60.0
    watcher: str = "auto"
    poll_seconds: float = 2.0
    render_timeout: float = 600.0
    memory_limit_mb: int = 8192
    max_attempts: int = 3
    retry_seconds: float = 5.0
    grace_seconds: float = 30.0
    progress_seconds: float = 30.0
    device: str = "cpu"
    warm_up: bool = True
    threads_per_worker: int = 0  # 0: the CPUs divided evenly among the workers
    cluster: str | None = None  # a Ray address ("ray://HOST:PORT", "HOST:PORT" or "auto"): render on its nodes
    cpus_per_worker: int = 1  # cluster: CPU cores each worker reserves on its node
    path_map: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # node -> {path here: path there}
    allow_public_bind: bool = False  # cluster: accept an address on every interface (0.0.0.0)

    def folder_of(self, path: Path) -> FolderConfig | None:
        """The hot folder a raw belongs to."""
        return next((f for f in self.folders if path.is_relative_to(f.path)), None)


class _Table:
    """A TOML table read key by key, so keys nobody asked for can be reported as unknown."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where} must be a table")
        self.data, self.where = dict(data), where
        self.seen: set[str] = set()

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        """The value of ``key`` checked against ``kind``; ``default`` when absent."""
        self.seen.add(key)
        if key not in self.data:
            return default
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise ConfigError(f"{self.where}: {key!r} must be {names}, not {value!r}")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str, aliases: dict[str, str] | None = None) -> str:
        """A string that must be one of ``choices`` as people write it ("JPG", "sRGB": see
        :func:`engine.output.formats.canonical_name`)."""
        value = self.get(key, str, default)
        name = canonical_name(value, choices, aliases)
        if name is None:
            raise ConfigError(f"{self.where}: {key!r} must be one of {', '.join(choices)}, not {value!r}")
        return name

    def positive(self, key: str, default: float | None, kind: type = float) -> Any:
        """A number above zero (finite, and at most its :data:`LIMITS` entry); ``default`` (None too) when absent."""
        value = self.get(key, (int, float) if kind is float else int, default)
        if value is not None and value <= 0:
            raise ConfigError(f"{self.where}: {key!r} must be above zero, not {value!r}")
        check_limit(self.where, key, value)
        return kind(value) if value is not None else None

    def done(self) -> None:
        """Refuse keys that were never asked for."""
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            raise ConfigError(f"{self.where}: unknown key {unknown[0]!r}")


def _path(value: str, base: Path) -> Path:
    if "\0" in value:
        raise ConfigError(f"config: the path {value!r} contains a NUL character")
    return (base / Path(value).expanduser()).absolute()


# The largest value each number key accepts (every number must also be finite and above zero); the documented
# range of each key is (0, limit]. workers: 4 render processes per CPU core this daemon may use is already far
# more than help (each render uses several cores); more only exhausts memory.
CPU_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
MAX_WORKERS = 4 * CPU_CORES
LIMITS: dict[str, float] = {
    "workers": MAX_WORKERS, "settle_seconds": 3600, "rescan_seconds": 86400, "poll_seconds": 3600,
    "render_timeout": 86400, "memory_limit_mb": 16 << 20, "max_attempts": 100, "retry_seconds": 86400,
    "grace_seconds": 3600, "progress_seconds": 86400, "cpus_per_worker": 1024, "long_edge": 100_000,
    "threads_per_worker": 1024,
}
MAX_CONFIG_BYTES = 1 << 20


def check_limit(where: str, key: str, value: Any) -> None:
    """:class:`ConfigError` for a number that is not finite or is above the key's entry in :data:`LIMITS`."""
    if value is None:
        return
    if not math.isfinite(value):
        raise ConfigError(f"{where}: {key!r} must be a finite number, not {value!r}")
    limit = LIMITS.get(key)
    if limit is not None and value > limit:
        why = f": 4 per CPU core, and this machine has {CPU_CORES}" if key == "workers" else ""
        raise ConfigError(f"{where}: {key!r} = {value!r} is too large (at most {limit}{why})")


def parse_output(data: Any, where: str, base: Path) -> OutputSpec:
    """One ``[[folder.output]]`` table."""
    t = _Table(data, where)
    folder = t.get("folder", str)
    beside = t.get("beside_original", bool, False)
    if beside and folder:
        raise ConfigError(f"{where}: 'folder' and beside_original = true exclude each other")
    if not folder and not beside:
        raise ConfigError(f"{where}: 'folder' is required (or beside_original = true)")
    template = t.get("template", str, "{name}")
    check_template(template)
    fmt = t.choice("format", FORMATS, "tiff", FORMAT_ALIASES)
    bits = t.get("bits", int)
    if bits not in (None, 8, 16) or (fmt == "jpeg" and bits == 16):
        raise ConfigError(f"{where}: 'bits' must be 8 or 16 (JPEG: 8), not {bits!r}")
    quality = t.get("quality", int, None)
    if quality is not None and fmt != "jpeg":  # it was ignored, as if it had been read
        raise ConfigError(f"{where}: 'quality' is a JPEG's; this output is {fmt.upper()} (leave it out)")
    if quality is None:
        quality = 92
    if not 1 <= quality <= 100:
        raise ConfigError(f"{where}: 'quality' must be between 1 and 100, not {quality}")
    space = t.choice("space", SPACE_NAMES, "srgb", SPACE_ALIASES)
    if "compression" in t.data and fmt != "tiff":
        raise ConfigError(f"{where}: 'compression' is a TIFF's; this output is {fmt.upper()} (leave it out)")
    compression = t.choice("compression", TIFF_COMPRESSIONS, "none")  # a studio's masters: deflate, smaller
    long_edge = t.positive("long_edge", None, int)
    if long_edge is not None and long_edge < MIN_LONG_EDGE:
        raise ConfigError(f"{t.where}: 'long_edge' must be at least {MIN_LONG_EDGE} pixels, not {long_edge}")
    t.done()
    return OutputSpec(folder=_path(folder, base) if folder else None, template=template, format=fmt, bits=bits,
                      quality=quality, space=space, long_edge=long_edge, beside_original=beside,
                      compression=compression)


def parse_folder(data: Any, where: str, base: Path) -> FolderConfig:
    """One ``[[folder]]`` table."""
    t = _Table(data, where)
    path = t.get("path", str)
    if not path:
        raise ConfigError(f"{where}: 'path' is required")
    outputs = t.get("output", list, [])
    if not outputs:
        raise ConfigError(f"{where}: at least one [[folder.output]] is required")
    presets = t.get("presets", list, [])
    if not all(isinstance(p, str) and p for p in presets):
        raise ConfigError(f"{where}: 'presets' must be a list of preset names")
    recipe = t.get("recipe", dict, {})
    originals = t.choice("originals", ("leave", "move", "delete"), "leave")
    archive = t.get("archive", str)
    if originals == "move" and not archive:
        raise ConfigError(f"{where}: originals = \"move\" needs an 'archive' folder")
    extensions = t.get("extensions", list)
    roots = t.get("library_roots", list, [])
    if not all(isinstance(r, str) and r for r in roots):
        raise ConfigError(f"{where}: 'library_roots' must be a list of folders")
    folder = FolderConfig(
        path=_path(path, base),
        outputs=tuple(parse_output(o, f"{where} output {i + 1}", base) for i, o in enumerate(outputs)),
        presets=tuple(presets),
        recipe=dict(recipe),
        recurse=t.get("recurse", bool, False),
        originals=originals,
        archive=_path(archive, base) if archive else None,
        failed=t.choice("failed", ("move", "mark"), "move"),
        extensions=frozenset(str(e).lower().lstrip(".") for e in extensions) if extensions else RAW_EXTENSIONS,
        library_roots=tuple(_path(r, base) for r in roots),
    )
    t.done()
    check_copies(folder, where)
    return folder


def check_copies(folder: FolderConfig, where: str) -> None:
    """``originals = "delete"`` and ``library_roots`` only for a hot folder that receives copies.

    Such a folder has an output with ``beside_original = true``, so every file it renders was first proven
    byte-identical to an original elsewhere; a dropped file that may be the only copy is never deleted.
    """
    if any(spec.beside_original for spec in folder.outputs):
        return
    if folder.originals == "delete":
        raise ConfigError(f"{where}: originals = \"delete\" is only for hot folders that receive copies (an output "
                          "with beside_original = true); use \"move\" with an archive")
    if folder.library_roots:
        raise ConfigError(f"{where}: 'library_roots' needs an output with beside_original = true")


def parse_config(data: Mapping[str, Any], base: Path) -> DaemonConfig:
    """A whole configuration from parsed TOML; relative paths are taken relative to ``base``."""
    top = _Table(data, "config")
    folders_data = top.get("folder", list, [])
    daemon = _Table(top.get("daemon", dict, {}), "[daemon]")
    top.done()
    if not folders_data:
        raise ConfigError("at least one [[folder]] is required")
    folders = tuple(parse_folder(f, f"[[folder]] {i + 1}", base) for i, f in enumerate(folders_data))
    journal = daemon.get("journal", str)
    log_json = daemon.get("log_json", str)
    config = DaemonConfig(
        folders=folders,
        journal=_path(journal, base) if journal else default_journal(folders[0].path),
        workers=daemon.positive("workers", 1, int),
        log_json=_path(log_json, base) if log_json else None,
        settle_seconds=daemon.positive("settle_seconds", 2.0),
        rescan_seconds=daemon.positive("rescan_seconds", 60.0),
        watcher=daemon.choice("watcher", WATCHERS, "auto"),
        poll_seconds=daemon.positive("poll_seconds", 2.0),
        render_timeout=daemon.positive("render_timeout", 600.0),
        memory_limit_mb=daemon.positive("memory_limit_mb", 8192, int),
        max_attempts=daemon.positive("max_attempts", 3, int),
        retry_seconds=daemon.positive("retry_seconds", 5.0),
        grace_seconds=daemon.positive("grace_seconds", 30.0),
        progress_seconds=daemon.positive("progress_seconds", 30.0),
        device=daemon.choice("device", ("cpu", "cuda"), "cpu"),
        warm_up=daemon.get("warm_up", bool, True),
        threads_per_worker=daemon.get("threads_per_worker", int, 0),
        cluster=daemon.get("cluster", str),  # "" is refused by validate(), not taken for no cluster
        cpus_per_worker=daemon.positive("cpus_per_worker", 1, int),
        path_map=parse_path_map(daemon.get("path_map", dict, {}), base),
    )
    daemon.done()
    if config.threads_per_worker < 0:
        raise ConfigError("[daemon]: 'threads_per_worker' must be 0 (automatic) or more")
    check_limit("[daemon]", "threads_per_worker", config.threads_per_worker)
    return config


def parse_path_map(data: Mapping[str, Any], base: Path) -> dict[str, dict[str, str]]:
    """``path_map``: for each cluster node (its address or host name, or ``"*"``), folders here -> there."""
    mapped: dict[str, dict[str, str]] = {}
    for node, table in data.items():
        if not isinstance(table, Mapping) or not all(isinstance(v, str) and v for v in table.values()):
            raise ConfigError(f"[daemon]: path_map[{node!r}] must be a table of folder = folder on that node")
        mapped[str(node)] = {str(_path(here, base)): there for here, there in table.items()}
    return mapped


def default_journal(hot_folder: Path) -> Path:
    """Where the journal lives unless the configuration says otherwise."""
    return hot_folder / ".hostplug" / "journal.sqlite"


def load_config(path: Path) -> DaemonConfig:
    """Read and parse a TOML configuration file."""
    from engine.io.bounded import read_regular

    raw = read_regular(path, MAX_CONFIG_BYTES, "configuration", ConfigError)  # no FIFO, device or huge file
    try:
        data = tomllib.loads(raw.decode("utf-8-sig"))  # (a byte-order mark, as Windows Notepad writes)
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except RecursionError:
        raise ConfigError(f"{path}: arrays or tables nested far too deep") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from e
    try:
        return parse_config(data, path.parent.absolute())
    except ConfigError as e:  # the line names the file to fix, then the table and key in it
        raise type(e)(f"{path}: {e}") from None
