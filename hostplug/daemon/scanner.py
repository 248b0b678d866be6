"""Finding raws that are ready: watcher events as hints, full scans as the truth, and settle detection.

Events (inotify through watchdog) only say where to look. A full scan at start-up finds what arrived while the
daemon was down, a periodic rescan catches what the watcher missed, and a hot folder on a network share (or any
folder when inotify cannot be used) is simply scanned every ``poll_seconds``. A file is handed on only once its
size and modification time have stayed the same for ``settle_seconds``; names that copy tools use while writing
(``.*``, ``~*``, ``*.part``, ``*.tmp``, ``*.crdownload``, rsync's ``.NAME.XXXXXX``) are never candidates, so the
file is seen when it is renamed to its real name. A raw's sidecars (``IMG_0001.CR2.xmp``, ``IMG_0001.xmp``) are part
of it: a sidecar that appears or changes makes its raw settle (and be looked at) again, and a raw settles only
once its sidecars have stopped changing too.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from engine.io.formats import RAW_FORMATS, RGB_SUFFIXES
from engine.xmp.sidecar_files import lone_sidecars
from hostplug.daemon.config import FolderConfig

log = logging.getLogger("hostplug.watch")

TEMPORARY_SUFFIXES = (".part", ".partial", ".tmp", ".temp", ".crdownload", ".download", ".filepart", ".!qb",
                      ".swp", ".failed.txt")
NETWORK_FILESYSTEMS = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "afs", "ceph", "glusterfs",
                                 "fuse.sshfs", "fuse.rclone", "davfs", "fuse.davfs2", "fuse.s3fs", "virtiofs"})
SKIPPED_DIRS = frozenset({"_failed"})
# How many settle periods a file must stay unchanged before it is judged empty or broken for good: a copy tool
# may create a file and pause before its first bytes, or pause mid-copy, and a half-copied raw looks truncated.
LONG_SETTLE_FACTOR = 5
# Every suffix hostplug renders (raws, and the JPEG, PNG and TIFF images it reads): one a hot folder's
# `extensions` leave out is reported once, not silently ignored
READABLE_SUFFIXES = frozenset(RAW_FORMATS) | frozenset(s.lstrip(".") for s in RGB_SUFFIXES)

Wanted = Callable[[Path, os.stat_result], bool]


class Watcher(Protocol):
    """What the scanner uses of a watchdog observer (tests pass stand-ins)."""

    def schedule(self, event_handler: FileSystemEventHandler, path: str, *, recursive: bool = False) -> object: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def join(self, timeout: float | None = None) -> None: ...


def is_temporary(name: str) -> bool:
    """Whether a file name is one that copy tools and editors use while a file is incomplete.

    A name that is only dots before its extension (``..dng``) is no tool's temporary name: it is a raw like any
    other, rendered (its outputs are named ``_``), never silently skipped.
    """
    lowered = name.lower()
    stem = name.rpartition(".")[0]
    if stem and not stem.strip("."):
        return False
    return name.startswith((".", "~")) or lowered.endswith(TEMPORARY_SUFFIXES)


def refusal(path: Path, folder: FolderConfig) -> str | None:
    """Why a candidate is not rendered although its name says raw, or None: only regular files whose real path is
    inside the hot folder are (a link pointing out of it would let whoever can write the hot folder have any
    file the daemon can read rendered into the outputs; a FIFO would hang the reader). A name that is no UTF-8
    text (written under another encoding: an old card, an SMB share, a zip file) cannot be journaled or recorded
    in an output's XMP, so it is left where it is until renamed."""
    try:
        str(path).encode("utf-8")
    except UnicodeError:
        return ("its name is not UTF-8 text (written under another encoding?): not rendered; rename it (for "
                "example with convmv) and it is rendered")
    real = Path(os.path.realpath(path))
    if not real.is_relative_to(folder.path.resolve()):
        return f"a link to {real}, outside the hot folder: not rendered"
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        return None if e.errno == errno.ENOENT else f"cannot be read ({e.strerror})"
    if not stat.S_ISREG(mode):
        return "not a regular file: not rendered"
    return None


def is_candidate(path: Path, folder: FolderConfig) -> bool:
    """Whether a file could be a raw for this hot folder (not temporary, a raw suffix, not in a skipped folder)."""
    if is_temporary(path.name) or path.suffix.lower().lstrip(".") not in folder.extensions:
        return False
    return is_watched_place(path, folder)


def is_left_out(path: Path, folder: FolderConfig) -> bool:
    """Whether a file is one hostplug could render but this hot folder's ``extensions`` leave out (by default the
    JPEGs a camera writes beside its raws): reported once, never rendered."""
    suffix = path.suffix.lower().lstrip(".")
    return (suffix in READABLE_SUFFIXES and suffix not in folder.extensions and not is_temporary(path.name)
            and is_watched_place(path, folder))


def is_watched_place(path: Path, folder: FolderConfig) -> bool:
    """Whether ``path`` lies where the hot folder looks: its top, or a sub-folder when it recurses; never
    ``_failed/``, a hidden folder or the archive."""
    try:
        relative = path.parent.relative_to(folder.path)
    except ValueError:
        return False
    if relative.parts and (not folder.recurse or any(is_skipped_dir(p) for p in relative.parts)):
        return False
    return not (folder.archive and path.is_relative_to(folder.archive))


def is_skipped_dir(name: str) -> bool:
    """Folders a scan never enters: hidden ones (``.hostplug``) and ``_failed``."""
    return name.startswith(".") or name in SKIPPED_DIRS


def is_sidecar(path: Path) -> bool:
    """Whether a file is an XMP sidecar (not a copy tool's temporary one)."""
    return path.suffix.lower() == ".xmp" and not is_temporary(path.name)


def sidecar_owners(sidecar: Path, folder: FolderConfig) -> list[Path]:
    """The raws in ``folder`` a sidecar belongs to: ``IMG_0001.CR2`` for darktable's ``IMG_0001.CR2.xmp``, every
    ``IMG_0001.*`` raw for Adobe's ``IMG_0001.xmp``."""
    stem = sidecar.name[:-len(".xmp")]
    try:
        names = os.listdir(sidecar.parent)
    except OSError:
        return []
    return [sidecar.parent / n for n in sorted(names)
            if stem in (n, n.rpartition(".")[0]) and is_candidate(sidecar.parent / n, folder)]


def sidecar_stamp(raw: Path) -> str:
    """The size and modification time of each sidecar of ``raw``, as JSON text ("[]" without one): what the
    journal keeps to tell that a sidecar arrived, changed or went away. Names are left out, so a raw set aside
    under another name (``IMG-2.CR2``) keeps its stamp."""
    from engine.xmp.sidecar_files import find_sidecars

    stamps = []
    for sidecar in find_sidecars(raw):
        try:
            st = sidecar.stat()
        except OSError:
            continue
        stamps.append([st.st_size, st.st_mtime_ns])
    return json.dumps(stamps)


def failure_wait(mtime: float, settled_at: float | None, now: float, settle_seconds: float) -> float:
    """Seconds to wait before a file that failed may be set aside: until it has not changed for
    ``LONG_SETTLE_FACTOR`` settle periods (0 once it has). A copy that pauses longer than ``settle_seconds``
    settles half-written and fails as truncated; waiting lets it go on, and it then settles again.

    Quiet time is the longer of the time since the file's ``mtime`` (the writer's clock) and since the daemon saw
    it settle (``settled_at``, the daemon's own clock, for a share whose clock runs ahead); all in ``time.time()``
    seconds.
    """
    quiet = now - mtime
    if settled_at is not None:
        quiet = max(quiet, now - settled_at + settle_seconds)
    return max(0.0, LONG_SETTLE_FACTOR * settle_seconds - quiet)


def walk(folder: FolderConfig, start: Path | None = None, sidecars: bool = False,
         left_out: bool = False) -> Iterator[Path]:
    """Every candidate raw in a hot folder (or below ``start`` inside it); with ``sidecars``, every sidecar too;
    with ``left_out``, every image the folder's ``extensions`` leave out too (:func:`is_left_out`)."""
    stack = [start or folder.path]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                if folder.recurse and not is_skipped_dir(entry.name) and not (
                        folder.archive and path.is_relative_to(folder.archive)):
                    stack.append(path)
            elif is_candidate(path, folder) or sidecars and is_sidecar(path) or left_out and is_left_out(path, folder):
                yield path


def filesystem_type(path: Path) -> str:
    """The type of the file system ``path`` is on (from /proc/self/mountinfo; "" when unknown)."""
    best, kind = "", ""
    target = str(path.resolve())
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return ""
    for line in lines:
        fields = line.split(" - ")
        if len(fields) != 2:
            continue
        mount_point = fields[0].split()[4].replace("\\040", " ")
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, kind = mount_point, fields[1].split()[0]
    return kind


@dataclass
class _Seen:
    size: int
    mtime_ns: int
    sidecars: str  # sidecar_stamp
    since: float  # monotonic time this size, mtime and sidecar stamp were first seen


class SettleTracker:
    """Remembers each watched file's size and mtime, and its sidecars'; a file is settled once they stay the same
    long enough.

    An empty file waits ``EMPTY_SETTLE_FACTOR`` times longer (a copy tool may create the file, then pause before
    its first bytes); once settled it is handed on like any other and reported as failed ("empty file").
    """

    EMPTY_SETTLE_FACTOR = LONG_SETTLE_FACTOR

    def __init__(self, settle_seconds: float) -> None:
        self.settle_seconds = settle_seconds
        self.files: dict[Path, _Seen] = {}

    def __len__(self) -> int:
        return len(self.files)

    def __contains__(self, path: object) -> bool:
        return path in self.files

    def watch(self, path: Path, size: int, mtime_ns: int, now: float) -> None:
        """Start watching a file."""
        if path not in self.files:
            self.files[path] = _Seen(size, mtime_ns, sidecar_stamp(path), now)

    def settled(self, now: float) -> list[Path]:
        """Re-stat every watched file; return (and stop watching) those that have settled or gone."""
        ready = []
        for path, seen in list(self.files.items()):
            try:
                st = path.stat()
            except OSError:
                del self.files[path]  # gone (renamed or deleted): its new name is found on its own
                continue
            sidecars = sidecar_stamp(path)
            if (st.st_size, st.st_mtime_ns, sidecars) != (seen.size, seen.mtime_ns, seen.sidecars):
                self.files[path] = _Seen(st.st_size, st.st_mtime_ns, sidecars, now)
            elif now - seen.since >= self.settle_seconds * (1 if st.st_size > 0 else self.EMPTY_SETTLE_FACTOR):
                del self.files[path]
                ready.append(path)
        return ready


class _Hints(FileSystemEventHandler):
    """Collects the paths watcher events mention (they are only hints to look there)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.paths: set[Path] = set()

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("deleted", "closed_no_write", "opened"):
            return
        path = getattr(event, "dest_path", "") or event.src_path
        with self.lock:
            self.paths.add(Path(os.fsdecode(path)))

    def take(self) -> set[Path]:
        """The paths seen since the last call."""
        with self.lock:
            paths, self.paths = self.paths, set()
        return paths


class Scanner:
    """Watches the hot folders and returns raws that are complete and wanted."""

    def __init__(self, folders: tuple[FolderConfig, ...], *, settle_seconds: float, rescan_seconds: float,
                 poll_seconds: float, watcher: str = "auto",
                 observer_factory: Callable[[], Watcher] = Observer) -> None:
        self.folders = folders
        self.rescan_seconds, self.poll_seconds, self.watcher = rescan_seconds, poll_seconds, watcher
        self.tracker = SettleTracker(settle_seconds)
        self.hints = _Hints()
        self.observer_factory = observer_factory
        self.observer: Watcher | None = None
        self.modes: dict[Path, str] = {}
        self.next_scan: dict[Path, float] = {}
        self.refused: dict[Path, str] = {}  # candidates not rendered, and why (logged once each)
        self.lone: set[Path] = set()  # sidecars first seen without their raw since the last take_lone_sidecars()
        self.lone_seen: set[Path] = set()  # every sidecar ever reported in lone (each is reported once)
        self.left_out_seen: set[Path] = set()  # every file reported as left out by `extensions` (once each)

    def start(self) -> dict[Path, str]:
        """Start watching; returns each folder's mode ("events" or "polling"). The first poll scans everything."""
        watched = [f for f in self.folders if self._wants_events(f)]
        for folder in self.folders:
            self.modes[folder.path] = "events" if folder in watched else "polling"
            self.next_scan[folder.path] = 0.0
        if watched:
            try:
                observer = self.observer_factory()
                for folder in watched:
                    observer.schedule(self.hints, str(folder.path), recursive=folder.recurse)
                observer.start()
                self.observer = observer
            except OSError as e:  # inotify watch or instance limits, or no inotify at all
                log.warning("file events unavailable (%s); polling every %g s instead", e.strerror or e,
                            self.poll_seconds, extra={"event": "polling_fallback"})
                for folder in watched:
                    self.modes[folder.path] = "polling"
        return dict(self.modes)

    def _wants_events(self, folder: FolderConfig) -> bool:
        if self.watcher == "polling":
            return False
        kind = filesystem_type(folder.path)
        if self.watcher == "auto" and kind in NETWORK_FILESYSTEMS:
            log.info("%s is on %s, where file events are not delivered: polling it", folder.path, kind,
                     extra={"event": "polling_network"})
            return False
        return True

    def stop(self) -> None:
        """Stop the watcher thread."""
        if self.observer is not None:
            self.observer.stop()
            self.observer.join(timeout=5)
            self.observer = None

    def recheck(self, path: Path) -> None:
        """Look at ``path`` again at the next poll, as if an event had named it."""
        with self.hints.lock:
            self.hints.paths.add(path)

    def take_lone_sidecars(self) -> set[Path]:
        """Sidecars first found since the last call with no raw beside them (the raw may be on its way, or gone);
        each is reported once."""
        lone, self.lone = self.lone, set()
        return lone

    def rescan_soon(self) -> None:
        """Make the next poll scan every folder."""
        for path in self.next_scan:
            self.next_scan[path] = 0.0

    def poll(self, wanted: Wanted, now: float | None = None) -> list[Path]:
        """Look where events point and scan folders that are due; return raws that settled since the last poll.

        ``wanted(path, stat)`` says whether a complete file still needs work (the journal knows); files it
        declines are not watched.
        """
        now = time.monotonic() if now is None else now
        for path in self._discover(now):
            if path in self.tracker or self._refused(path):
                continue
            try:
                st = path.stat()
            except OSError:
                continue
            if wanted(path, st):
                self.tracker.watch(path, st.st_size, st.st_mtime_ns, now)
        return self.tracker.settled(now)

    def _refused(self, path: Path) -> bool:
        """Whether ``path`` is not to be rendered (see :func:`refusal`); logged once per path and reason."""
        folder = next((f for f in self.folders if path.is_relative_to(f.path)), None)
        why = refusal(path, folder) if folder is not None else None
        if why is None:
            self.refused.pop(path, None)
            return False
        if self.refused.get(path) != why:
            self.refused[path] = why
            log.warning("%s: %s", path, why, extra={"event": "refused", "fields": {"path": str(path), "reason": why}})
        return True

    def _discover(self, now: float) -> set[Path]:
        found: set[Path] = set()
        for folder in self.folders:
            if now >= self.next_scan[folder.path]:
                found.update(self._raws(set(walk(folder, sidecars=True, left_out=True)), folder))
                interval = self.poll_seconds if self.modes[folder.path] == "polling" else self.rescan_seconds
                self.next_scan[folder.path] = now + interval
        for path in self.hints.take():
            hot = next((f for f in self.folders if path.is_relative_to(f.path)), None)
            if hot is None:
                continue
            if path.is_dir():
                if hot.recurse and path != hot.path:
                    found.update(self._raws(set(walk(hot, path, sidecars=True, left_out=True)), hot))
            elif is_candidate(path, hot):
                found.add(path)
            elif is_left_out(path, hot) and path.is_file():
                self._note_left_out({path})
            elif is_sidecar(path) and is_watched_place(path, hot):
                owners = sidecar_owners(path, hot)
                found.update(owners)
                if not owners and path.exists():
                    self._note_lone({path})
        return found

    def _raws(self, paths: set[Path], folder: FolderConfig) -> set[Path]:
        """The raws of a scan's raws, sidecars and left-out images; sidecars without their raw are noted
        (:meth:`_note_lone`), left-out images reported (:meth:`_note_left_out`)."""
        left_out = {p for p in paths if is_left_out(p, folder)}
        self._note_left_out(left_out)
        paths = paths - left_out
        self._note_lone(lone_sidecars(paths))
        return {p for p in paths if not is_sidecar(p)}

    def _note_left_out(self, paths: set[Path]) -> None:
        """One line for each image the ``extensions`` leave out, the first time this daemon sees it (not at every
        scan; a restart names it again)."""
        for path in sorted(paths - self.left_out_seen):
            self.left_out_seen.add(path)
            suffix = path.suffix.lower().lstrip(".")
            log.info("skipped %s: .%s files are not rendered from this hot folder (raws only, by default); to render "
                     "them, list \"%s\" in the folder's extensions, with the raw suffixes to keep (docs/daemon.md)",
                     path, suffix, suffix, extra={"event": "skipped", "fields": {"path": str(path), "suffix": suffix}})

    def _note_lone(self, sidecars: set[Path]) -> None:
        """Report the sidecars not reported before (a lone sidecar stays lone scan after scan)."""
        new = sidecars - self.lone_seen
        self.lone |= new
        self.lone_seen |= new
