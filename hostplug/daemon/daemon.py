"""The daemon's loop: find settled raws, queue them in the journal, feed the workers, record what happened.

Every decision goes through the journal first, so a ``kill -9`` at any moment loses nothing: on restart rows
left ``rendering`` are queued again, temporary output files of killed renders are removed, and a full scan finds
files that arrived meanwhile. Outputs have deterministic names and are replaced atomically, so a render repeated
after a crash leaves exactly one set.

A file that fails is set aside only once it has stopped changing for good (:func:`.scanner.failure_wait`): a copy
that pauses longer than the settle period looks truncated, and must not be moved while it is being written. One
set aside in ``_failed/`` that changes afterwards is moved back to be tried again.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import signal
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hostplug.daemon import originals
from hostplug.daemon.config import DaemonConfig, FolderConfig
from hostplug.daemon.errors import ConfigError, JournalError, TakenError
from hostplug.daemon.hashing import Hasher
from hostplug.daemon.job import MAX_RAW_BYTES, Job, Outcome
from hostplug.daemon.journal import Entry, Journal, journal_error
from hostplug.daemon.logs import StatusLine, fatal_fields
from hostplug.daemon.progress import Throughput
from hostplug.daemon.scanner import Scanner, failure_wait, is_skipped_dir, sidecar_stamp
from hostplug.daemon.systemd import notify, watchdog_interval
from hostplug.daemon.validate import first_file
from hostplug.daemon.workers import Event, Pool, WorkerPool

log = logging.getLogger("hostplug.watch")
NODE_EXCUSES = 3  # renders a node may lose of one file before they count against it (see _node_excused)
TICK_SECONDS = 0.25
STOP_MARGIN_S = 30.0  # beyond grace_seconds, for a stopping daemon to end its workers and close its journal
DISK_FULL_WAIT_S = 30.0  # between tries of a raw whose output disk is full (it waits without using up attempts)


def lock_journal(journal: Path) -> int:
    """Hold an exclusive lock beside the journal for the daemon's lifetime; refuse if another daemon has it."""
    try:
        journal.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(journal.with_name(journal.name + ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise journal_error(journal, e) from e
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        raise _journal_taken(journal, holder) from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError as e:  # a full disk: the journal beside it cannot be written either
        os.close(fd)
        raise journal_error(journal, e) from e
    return fd


FOLDER_LOCK = Path(".hostplug") / "watch.lock"  # in a hot folder; hostplug's own .hostplug/ is never scanned
RECURSE_MARK = ", recurse = "  # in a folder lock's note, after its holder (one line: older daemons print it whole)
ARCHIVE_MARK = ", archive "  # after the recurse flag: the archive the holder's scan never enters
LOCK_TRIES = 5  # over ~100 ms: another daemon's start-up probe holds each lock for an instant (_held_by_another)


def check_not_watched(folders: Sequence[FolderConfig], journal: Path) -> None:
    """Refuse (JournalError, the message :func:`lock_folder` and :func:`lock_journal` give) when another daemon
    holds the journal or watches one of ``folders``, or a folder above or below one (:func:`check_not_nested`),
    before anything is created: a refused start left the output folders its checks had made and a lock file
    beside a new journal. Only looks at locks that exist."""
    held = _held_by_another(journal.with_name(journal.name + ".lock"))
    if held is not None:
        raise _journal_taken(journal, held)
    for folder in folders:
        held = _held_by_another(folder.path / FOLDER_LOCK)
        if held is not None:
            raise _folder_taken(folder.path, held)
    # the walk below too, made again once the locks are held (a recursive tree is walked twice at start): a start
    # refused only then had made its output folders and a .hostplug/ of locks in a folder it never watched
    check_not_nested(folders)


def check_not_nested(folders: Sequence[FolderConfig]) -> None:
    """Refuse (TakenError) a hot folder inside a folder another running daemon watches with its sub-folders, and
    one watched with its sub-folders that holds a folder another daemon watches: both daemons rendered the files
    they shared, each journal claimed them, and one archived a raw while the other rendered it. Another daemon is
    found by its folder lock (:data:`FOLDER_LOCK`, held while it runs): in every folder above this one, and, when
    this one recurses, in every folder its scan would enter (a walk of the whole tree). Called before anything
    is made and again once the locks are taken (two daemons starting at once: each then sees the other's lock,
    and at worst both are refused). Archives are left out as the scans leave them out."""
    own = {folder.path.resolve() for folder in folders}
    for folder in folders:
        path = folder.path.resolve()
        above = _watched_above(path, own)
        if above is not None:
            outer, holder = above
            raise TakenError(f"hot folder {folder.path} is inside {outer}, which another hostplug watch ({holder}) "
                             "watches with its sub-folders: stop that one, or let it render this folder's files")
        archive = folder.archive.resolve() if folder.archive else None
        inside = _watched_below(path, own, archive) if folder.recurse else None
        if inside is not None:
            inner, holder = inside
            raise TakenError(f"hot folder {folder.path} holds {inner}, which another hostplug watch ({holder}) "
                             "watches: both would render its files; stop that one, or watch this folder without "
                             "its sub-folders (recurse = false)")


def _watched_above(path: Path, own: set[Path]) -> tuple[Path, str] | None:
    """The nearest folder above ``path`` that another daemon watches with its sub-folders, reaching ``path`` (not
    through a hidden folder, ``_failed/`` or that daemon's archive, which its scan never enters), and what its
    lock names; or None."""
    for outer in path.parents:
        if outer in own or any(is_skipped_dir(part) for part in path.relative_to(outer).parts):
            continue
        held = _held_by_another(outer / FOLDER_LOCK)
        if held is None:
            continue
        holder, recurses, archive = _read_note(held)
        if recurses and not (archive is not None and path.is_relative_to(archive)):
            return outer, holder
    return None


def _watched_below(path: Path, own: set[Path], archive: Path | None = None) -> tuple[Path, str] | None:
    """A folder below ``path``, where a recursive scan goes (links, hidden folders, ``_failed/`` and the daemon's
    own ``archive`` left out), that another daemon watches, and what its lock names; or None. One failed open a
    folder: cheaper than the scan."""
    stack = [path]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False) or is_skipped_dir(entry.name):
                continue
            inner = Path(entry.path)
            if archive is not None and inner == archive:
                continue
            held = None if inner in own else _held_by_another(inner / FOLDER_LOCK)
            if held is not None:
                return inner, _holder(held)
            stack.append(inner)
    return None


def _lock_note(journal: Path, recurse: bool, archive: Path | None) -> str:
    """What a daemon writes in its folder lock (:func:`_read_note` reads it): one line, as older daemons print a
    note whole in their refusal (a second line broke it in two)."""
    where = f"{ARCHIVE_MARK}{archive.resolve()}" if archive is not None else ""
    flag = f"{RECURSE_MARK}{str(recurse).lower()}"
    return f"pid {os.getpid()} on {socket.gethostname()}, journal {journal}{flag}{where}\n"


def _read_note(note: str) -> tuple[str, bool | None, Path | None]:
    """A folder lock's note (:func:`_lock_note`): who holds it, whether that daemon watches the sub-folders (None:
    an older daemon's, which does not say), and its archive (None: none, or not said)."""
    line = note.partition("\n")[0].strip()
    holder, mark, rest = line.partition(RECURSE_MARK)
    flag, _, archive = rest.partition(ARCHIVE_MARK)
    recurses = {"true": True, "false": False}.get(flag) if mark else None
    return holder or "another process", recurses, Path(archive) if archive else None


def _holder(note: str) -> str:
    """Who holds a folder lock, from its note."""
    return _read_note(note)[0]


def _journal_taken(journal: Path, holder: str) -> TakenError:
    """The refusal of a journal another daemon holds (``holder``: what it wrote in the lock, its pid)."""
    return TakenError(f"another hostplug watch (pid {holder or '?'}) is using {journal}")


def _folder_taken(folder: Path, holder: str) -> TakenError:
    """The refusal of a hot folder another daemon watches (``holder``: what it wrote in the folder's lock)."""
    return TakenError(f"hot folder {folder}: another hostplug watch ({_holder(holder)}) watches it; a "
                        "folder has one daemon: stop that one, or start this one with its journal (--journal)")


def _held_by_another(lock: Path) -> str | None:
    """What the holder of ``lock`` wrote in it when another process holds it, else None (no lock file, or free)."""
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return os.pread(fd, 4096, 0).decode(errors="replace").strip()
    except OSError:  # a file system without locks: lock_folder says so when it starts
        return None
    finally:
        os.close(fd)  # (releases the probe's lock, if it took it)
    return None


def lock_folder(folder: Path, journal: Path, recurse: bool = True, archive: Path | None = None) -> int | None:
    """Hold a lock in a hot folder (:data:`FOLDER_LOCK`) for the daemon's lifetime; JournalError naming the other
    daemon when one holds it. Two daemons on one folder with different journals each rendered every file (or split
    them, racing), and ``queue`` showed half. None where the folder cannot be written (a read-only share whose
    originals are left in place): no second daemon can move anything there either."""
    lock = folder / FOLDER_LOCK
    try:
        lock.parent.mkdir(exist_ok=True)
        if lock.parent.is_symlink():
            raise JournalError(f"hot folder {folder}: its {FOLDER_LOCK.parent} is a link, where the daemon keeps its "
                               "lock; remove the link")
        # a drop folder is written by others: a link planted at the lock's name must not be followed and written
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise JournalError(f"hot folder {folder}: {FOLDER_LOCK} is a link; remove it") from None
        return None
    try:
        _flock_soon(fd)
    except BlockingIOError:
        holder = os.pread(fd, 4096, 0).decode(errors="replace").strip()
        os.close(fd)
        raise _folder_taken(folder, holder) from None
    except OSError as e:  # a share without locks (NFSv3 without lockd, some FUSE mounts): watched without one
        os.close(fd)
        _event(f"hot folder {folder}: cannot lock it ({e.strerror or e}); a second daemon on it would not be "
               "refused", "lock_failed", logging.WARNING, folder=str(folder))
        return None
    try:
        os.ftruncate(fd, 0)
        # tells a daemon starting on a folder below whether this one renders its files too
        os.pwrite(fd, _lock_note(journal, recurse, archive).encode(), 0)
    except OSError:
        pass  # the lock holds all the same; the note only names the holder
    return fd


def _flock_soon(fd: int) -> None:
    """Take the exclusive lock of ``fd``, trying a few times over ~100 ms: another daemon starting next door holds
    it for an instant to see whether it is held (:func:`_held_by_another`); BlockingIOError when it stays held."""
    for attempt in range(LOCK_TRIES):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if attempt == LOCK_TRIES - 1:
                raise
            time.sleep(0.025)


def running_pid(journal: Path) -> int | None:
    """The pid of the daemon that holds the journal's lock, or None when no daemon runs."""
    lock = journal.with_name(journal.name + ".lock")
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        return int(text) if text.isdigit() else -1
    finally:
        os.close(fd)
    return None


def _hold(path: Path) -> int:
    """``path`` (a file or a folder) opened for :meth:`Daemon._check_places`."""
    return os.open(path, os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0))


def _identity(place: Path | int) -> tuple[int, int] | None:
    """(device, inode) of a path or an open file, None when it is not there."""
    try:
        st = os.stat(place)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def make_pool(config: DaemonConfig) -> Pool:
    """The render workers: processes on this machine, or Ray actors on a cluster's nodes (``cluster``)."""
    if config.cluster:
        from hostplug.daemon.cluster import RayPool  # Ray is imported only here, and only when asked for

        return RayPool(config)
    return WorkerPool(config)


def _about(message: str, path: Path) -> str:
    """An engine message without the file's path it starts with, for a log line that names the file already (it
    read "failed /in/a.dng: /in/a.dng: the file is truncated")."""
    return message.removeprefix(f"{path}: ")


def _event(message: str, event: str, level: int = logging.INFO, **fields: Any) -> None:
    log.log(level, message, extra={"event": event, "fields": fields})


class Daemon:
    """``hostplug watch`` itself."""

    def __init__(self, config: DaemonConfig, *, scanner: Scanner | None = None,
                 status: StatusLine | None = None) -> None:
        self.config = config
        self.scanner = scanner or Scanner(config.folders, settle_seconds=config.settle_seconds,
                                          rescan_seconds=config.rescan_seconds, poll_seconds=config.poll_seconds,
                                          watcher=config.watcher)
        self.status = status or StatusLine()
        self.pool = make_pool(config)
        self.throughput = Throughput()
        self.stop_requested = 0
        self.last_signal = 0  # the signal that came last (a second one stops at once: exit 128 + it)
        self.journal: Journal | None = None
        self.settling_recorded: list[Path] = []  # the arriving files `hostplug queue` was last told of
        self.next_failed_check = 0.0  # monotonic time of the next look for changed files in _failed/
        self.archive_failures: dict[int, str] = {}  # file id -> why its archiving last failed (warned once)
        self.places: dict[Path, int] = {}  # journal and hot folders, held open: see _check_places
        self.waiting_for_room: set[int] = set()  # file ids waiting for a full output disk (warned once each)
        self.output_outages: dict[str, str] = {}  # output folder -> why it cannot be written (warned once)
        self.hasher = Hasher()  # settled files' content hashes, made beside the loop
        self.unreadable: dict[Path, str] = {}  # settled files that could not be read -> why (warned once)
        self.node_excuses: dict[int, int] = {}  # file id -> renders lost with a node, given back (_node_excused)

    # -- life cycle ---------------------------------------------------------------------------------------------

    def run(self) -> int:
        """Run until SIGTERM, SIGINT or SIGHUP (a closed terminal; not under ``nohup``); returns the exit status
        (0 after a clean stop). What stops it otherwise is a ``fatal`` event in the log too: the command prints
        it, and a monitor tailing the JSON log must read it (a tester's log just ended)."""
        try:
            return self._run()
        except TakenError:  # another daemon's: its log may be this configuration's, and it is not stopping
            raise
        except Exception as e:
            fields = fatal_fields(e)
            _event(f"stopped: {fields['error']}", "fatal", logging.ERROR, **fields)
            raise

    def _run(self) -> int:
        held: list[int | None] = [lock_journal(self.config.journal)]  # None: a folder that cannot be locked
        try:
            for folder in self.config.folders:
                held.append(lock_folder(folder.path, self.config.journal, folder.recurse, folder.archive))
            check_not_nested(self.config.folders)  # again, with the locks held: another may have started meanwhile
        except JournalError:
            for fd in held:
                if fd is not None:
                    os.close(fd)
            raise
        self.journal = Journal(self.config.journal)
        stops = [signal.SIGTERM, signal.SIGINT] + ([signal.SIGHUP] if signal.getsignal(signal.SIGHUP)
                                                   is not signal.SIG_IGN else [])
        previous = {s: signal.signal(s, self._on_signal) for s in stops}
        try:
            self._start()
            while not self.stop_requested:
                self._tick()
            self._shutdown()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.scanner.stop()
            self.hasher.close()
            self.pool.close()
            self.status.clear()
            with contextlib.suppress(JournalError):  # the journal failing is what stops it: said once, above
                self.journal.set_workers([])
            self.journal.close()
            for place in self.places.values():
                os.close(place)
            for fd in held:
                if fd is not None:
                    os.close(fd)
        return self._exit_status()

    def _exit_status(self) -> int:
        """0 after a clean stop (one signal: running renders finished or left queued at the grace period's end);
        128 + N when a second signal N stopped it at once, as for any command a signal stops (it exited 0, so a
        script could not tell that renders were abandoned)."""
        return 128 + self.last_signal if self.stop_requested >= 2 else 0

    def _on_signal(self, signum: int, frame: object) -> None:
        self.stop_requested += 1
        self.last_signal = signum
        if self.stop_requested == 1:
            notify("STOPPING=1")

    def _start(self) -> None:
        assert self.journal is not None
        self._check_new_copy_folders()
        recovered = self.journal.recover()
        self._finish_moves()
        if not self.stop_requested:  # (asked while the journal recovered: no cluster joined for nothing)
            self.pool.start()  # first: a cluster pool also stops the workers a killed daemon left running there
        if self.stop_requested:  # while the pool started (joining a cluster takes up to a minute): nothing watched
            return
        removed = sum(originals.remove_partials(t) for t in self.journal.claimed())
        modes = self.scanner.start()
        where = f" on the cluster {self.config.cluster}" if self.config.cluster else ""
        _event(f"watching {', '.join(f'{p} ({m})' for p, m in modes.items())} with {len(self.pool.slots)} "
               f"worker(s){where}; journal {self.config.journal}", "start", recovered=recovered,
               removed_partials=removed, folders={str(p): m for p, m in modes.items()},
               workers=len(self.pool.slots), cluster=self.config.cluster, journal=str(self.config.journal))
        if recovered:
            _event(f"{recovered} file(s) were being rendered when the daemon last stopped: queued again",
                   "recovered", count=recovered)
        self.places = {path: _hold(path) for path in (self.config.journal, *(f.path for f in self.config.folders))}
        self.watchdog_every = watchdog_interval()
        self.next_watchdog = self.next_progress = time.monotonic()
        self.progress_logged = -1
        notify("READY=1\nSTATUS=watching")

    def _finish_moves(self) -> None:
        """Finish setting aside the failed raws a killed daemon recorded but did not move. The journal records where
        a raw goes before it is moved (to ``_failed/``, or to the archive): recorded after, a kill in between left
        a failed raw's row saying it was being rendered (it was then forgotten as gone) and an archived raw's row
        saying it was still in the hot folder (a later photo of its name then re-rendered over its outputs). A
        rendered raw whose move did not happen is archived again by the first scan (:meth:`_needs_work`)."""
        assert self.journal is not None
        for entry in self.journal.entries("failed"):
            folder = self._folder(entry)
            if folder is None or entry.moved_to in (None, entry.path) or not self._interrupted(entry):
                continue
            moves = originals.aside_moves(entry.path, folder)
            if not moves:  # the folder now leaves failed raws in place
                self.journal.set_moved(entry.id, entry.path)
                continue
            report = originals.failure_report(entry.path, entry.error or "", entry.error_kind or "failed",
                                              entry.attempts, self.config.journal)
            try:
                self.journal.set_moved(entry.id, moves[0][1])
                originals.put_aside(moves, moves[0][1], report)
            except OSError as e:
                _event(f"cannot set {entry.path} aside (the daemon stopped while moving it): {e}", "move_failed",
                       logging.WARNING, path=str(entry.path))

    @staticmethod
    def _interrupted(entry: Entry) -> bool:
        """Whether the raw a row recorded as moved is still where it was dropped, as it was: not a file put back
        by hand (it changed, or its sidecars did) nor another photo of its name."""
        assert entry.moved_to is not None
        try:
            st = entry.path.stat()
        except OSError:
            return False
        return (not entry.moved_to.exists() and entry.same_stat(st.st_size, st.st_mtime_ns)
                and entry.same_sidecars(sidecar_stamp(entry.path)))

    def _check_new_copy_folders(self) -> None:
        """Refuse a hot folder whose rendered copies are deleted (``originals = "delete"``) that holds files the
        first time this journal sees it: it may be a folder of the photographer's own raws, named by mistake,
        whose files match a backup below a library root. Such a folder starts empty (``hostplug integrate
        darktable`` records it so when it creates it); later, files there are copies that arrived."""
        assert self.journal is not None
        for folder in self.config.folders:
            if folder.originals != "delete" or self.journal.knows_folder(folder.path):
                continue
            found = first_file(folder.path)
            if found is not None:
                raise ConfigError(f"hot folder {folder.path} already holds {found}, and this daemon never watched it: "
                                  "a hot folder whose rendered copies are deleted (originals = \"delete\") starts "
                                  "empty; move its files out, start the daemon, then put back the copies to render")
            self.journal.mark_empty(folder.path)

    def _shutdown(self) -> None:
        """Take no new work; let running renders finish within the grace period, else abandon them to the queue."""
        self.scanner.stop()
        busy = len(self.pool.busy())
        _event(f"stopping: {busy} render(s) running, waiting up to {self.config.grace_seconds:g} s", "stopping",
               running=busy)
        deadline = time.monotonic() + self.config.grace_seconds
        # systemd's TimeoutStopSec (120 s in our unit) would SIGKILL a longer grace period: extend it to ours
        notify(f"EXTEND_TIMEOUT_USEC={int((self.config.grace_seconds + STOP_MARGIN_S) * 1e6)}")
        while self.pool.busy() and time.monotonic() < deadline and self.stop_requested < 2:
            for event in self.pool.poll(TICK_SECONDS):
                self._handle(event)
            self._heartbeat()
        for event in self.pool.abandon():
            self._handle(event)
        counts = self.journal.counts() if self.journal else {}
        waiting = counts.get("queued", 0) + counts.get("rendering", 0)
        _event("stopped" + (f"; {waiting} file(s) stay queued for the next start" if waiting else ""), "stopped",
               **counts)

    # -- the loop -----------------------------------------------------------------------------------------------

    def _tick(self) -> None:
        for path in self.scanner.poll(self._needs_work):
            self._settled(path)
        self._take_hashes()
        for sidecar in self.scanner.take_lone_sidecars():
            self._late_sidecar(sidecar)
        self._take_back_changed_failures()
        self._dispatch()
        for event in self.pool.poll(TICK_SECONDS):
            self._handle(event)
        self._heartbeat()

    def _take_hashes(self) -> None:
        """Queue the files the hasher finished, unless they changed while hashed (then they settle again). One that
        could not be read and did not change is left to the next rescan (:meth:`_unreadable`)."""
        for done in self.hasher.finished():
            try:
                now = done.path.stat()
            except OSError:
                continue  # gone: nothing to queue
            if (now.st_size, now.st_mtime_ns) != (done.st.st_size, done.st.st_mtime_ns):
                self.scanner.recheck(done.path)
            elif done.digest is None:
                self._unreadable(done.path, done.error)
            else:
                self.unreadable.pop(done.path, None)
                self._hashed(done.path, done.st, done.digest)

    def _unreadable(self, path: Path, error: str) -> None:
        """A settled file could not be read: said once (for each cause), and read again at each rescan, not at each
        settle period (it was hashed again every settle_seconds, for ever, without a word)."""
        level = logging.DEBUG if self.unreadable.get(path) == error else logging.WARNING
        self.unreadable[path] = error
        _event(f"cannot read {path} ({error}); tried again every {self.config.rescan_seconds:g} s", "unreadable",
               level, path=str(path), error=error)

    def _needs_work(self, path: Path, st: os.stat_result) -> bool:
        """Whether a complete-looking file must be settled and queued (the journal does not have it, or its
        sidecars, as they are). Not one being hashed: it is queued once hashed."""
        assert self.journal is not None
        if path in self.hasher:
            return False
        entry = self.journal.lookup(path)
        if entry is None or not entry.same_stat(st.st_size, st.st_mtime_ns):
            return True
        if not entry.same_sidecars(sidecar_stamp(path)):
            return True  # a sidecar arrived, changed or went: the recipe may have changed
        if entry.state == "done":
            self._archive(entry)  # rendered, but the daemon stopped before it could move the original
        return False

    def _settled(self, path: Path) -> None:
        """A file stopped changing: hash it on the hasher's thread (:mod:`.hashing`), then :meth:`_hashed` queues it.
        Hashed here, a file of gigabytes on a slow share stopped the loop: no other file went on, and systemd's
        watchdog, no longer pinged, killed the daemon, again and again."""
        if self.config.folder_of(path) is None or path in self.hasher:
            return
        try:
            st = path.stat()
        except OSError:
            return
        if st.st_size > MAX_RAW_BYTES:  # too large to be a raw: refused by the worker, never read whole
            self._hashed(path, st, f"size {st.st_size}, {st.st_mtime_ns}")
        else:
            self.hasher.submit(path, st)

    def _hashed(self, path: Path, st: os.stat_result, digest: str) -> None:
        """A settled file's content is hashed: record it in the journal's queue (unless it is byte-for-byte what
        was there)."""
        assert self.journal is not None
        folder = self.config.folder_of(path)
        if folder is None:
            return
        sidecars = sidecar_stamp(path)
        entry = self.journal.lookup(path)
        if entry and entry.state in ("queued", "rendering") and entry.content_hash == digest:
            # a worker that is rendering may have read the old sidecar: then the row keeps its old stamp, so the
            # file is looked at again once it is rendered
            if entry.state == "queued" or entry.same_sidecars(sidecars):
                self.journal.update_stat(entry.id, st.st_size, st.st_mtime_ns, sidecars)
            return
        if entry and entry.state == "failed":
            originals.report_path(path).unlink(missing_ok=True)  # failed in place, changed since: tried again
        if entry and entry.left_hot_folder() and entry.rendered_hash != digest:
            again = next((e for e in self.journal.earlier_photos(path) if e.rendered_hash == digest), None)
            if again is not None:
                self._photo_again(entry, again, st, digest, sidecars)
            else:
                self._new_photo(entry, st, digest, sidecars)
            return
        entry = self.journal.enqueue(path, folder.path, st.st_size, st.st_mtime_ns, digest, sidecars)
        _event(f"queued {path}", "queued", path=str(path), id=entry.id, size=st.st_size)

    def _new_photo(self, earlier: Entry, st: os.stat_result, digest: str, sidecars: str) -> None:
        """A different file where a rendered raw was archived or deleted from: another photo under the same name
        (cameras start again at IMG_0001), queued with a row of its own; its outputs get new names (``-2``...),
        so the earlier photo's are kept."""
        assert self.journal is not None
        entry = self.journal.enqueue_new_photo(earlier, st.st_size, st.st_mtime_ns, digest, sidecars)
        gone = f"archived to {earlier.moved_to}" if earlier.moved_to else "deleted"
        _event(f"queued {entry.path}: a new photo under the name of one rendered and {gone}; its outputs get new "
               "names (NAME-2...), the earlier photo's stay", "queued", path=str(entry.path), id=entry.id,
               size=st.st_size, new_photo=True, earlier=earlier.id)

    def _photo_again(self, current: Entry, again: Entry, st: os.stat_result, digest: str,
                     sidecars: str) -> None:
        """An earlier photo whose name a later one took, dropped again (the same content as ``again``): it is that
        photo, not a new one. It takes its row back and is queued as any re-dropped raw: not rendered again if its
        recipe is the same and its outputs are there, rendered again over its own outputs if not."""
        assert self.journal is not None
        entry = self.journal.enqueue_photo_again(current, again, st.st_size, st.st_mtime_ns, digest, sidecars)
        _event(f"queued {entry.path}: the same photo as the one rendered to {', '.join(entry.outputs)}, dropped "
               "again", "queued", path=str(entry.path), id=entry.id, size=st.st_size, photo_again=True,
               later=current.id)

    def _dispatch(self) -> None:
        if self.stop_requested:
            return
        idle = self.pool.idle()
        if not idle:
            return
        assert self.journal is not None
        running = {s.job.id for s in self.pool.busy() if s.job}
        for slot, entry in zip(idle, self.journal.due(len(idle), running), strict=False):
            job = Job(id=entry.id, path=entry.path, folder=entry.folder, size=entry.size or 0,
                      mtime_ns=entry.mtime_ns or 0, content_hash=entry.content_hash or "",
                      previous_content_hash=entry.rendered_hash,
                      previous_recipe_hash=entry.recipe_hash, previous_outputs=entry.outputs,
                      fresh_names=entry.earlier is not None, taken_names=self.journal.names_before(entry),
                      retry=originals.retry_command(self.config.journal))
            self.journal.start(entry.id, node=slot.node)
            self.pool.submit(slot, job)
            _event(f"rendering {entry.path} on {slot.node}", "rendering", logging.DEBUG, path=str(entry.path),
                   id=entry.id, worker=slot.pid, node=slot.node, attempt=entry.attempts + 1)

    # -- outcomes -----------------------------------------------------------------------------------------------

    def _handle(self, event: Event) -> None:
        assert self.journal is not None
        job = event.job
        if job is None:
            return
        entry = self.journal.get(job.id)
        if entry is None:
            return
        if entry.content_hash != job.content_hash:  # replaced while it rendered: what came back is the old file's
            for target in event.targets:
                originals.remove_partials(Path(target))
            self.journal.requeue(entry.id, refund=True)
            _event(f"{entry.path} was replaced while it rendered; rendering the new file", "replaced",
                   path=str(entry.path), id=entry.id)
            return
        if event.kind == "outcome" and event.outcome is not None:
            self._outcome(entry, event.outcome, event.slot.node)
            return
        for target in event.targets:
            originals.remove_partials(Path(target))
        if event.kind == "abandoned":
            self.journal.requeue(entry.id, refund=True)
            _event(f"abandoned {entry.path} at shutdown; it stays queued", "abandoned", path=str(entry.path))
            return
        if event.kind == "node_lost" and self._node_excused(entry.id):  # no fault of the file: its attempt back
            self.journal.requeue(entry.id, event.detail, delay=self.config.retry_seconds, refund=True)
            _event(f"{entry.path}: {event.detail} while rendering it; it stays queued for another node", "node_lost",
                   logging.WARNING, path=str(entry.path), id=entry.id, node=event.slot.node)
            return
        self._temporary(entry, f"{event.kind}: {event.detail}")

    def _outcome(self, entry: Entry, outcome: Outcome, node: str | None = None) -> None:
        assert self.journal is not None
        fields: dict[str, Any] = {"path": str(entry.path), "id": entry.id, "seconds": outcome.seconds, "node": node}
        if outcome.kind != "disk_full":
            self.waiting_for_room.discard(entry.id)
        for remade in outcome.remade:
            _event(f"output folder {remade} was gone (moved or removed while the daemon ran, or a share that is not "
                   "mounted?): made it again; outputs go there now", "output_folder_remade", logging.WARNING,
                   folder=remade, **fields)
        if outcome.kind == "done":
            self._output_folders_back(outcome.outputs)
        if outcome.kind in ("done", "unchanged"):
            self.journal.finish(entry.id, outcome.recipe_hash or "", list(outcome.outputs),
                                rendered=outcome.kind == "done")
            if outcome.kind == "done":
                self.throughput.add(True)
                _event(f"rendered {entry.path} -> {', '.join(outcome.outputs)} ({outcome.seconds:.1f} s)", "done",
                       outputs=list(outcome.outputs), timings=outcome.timings, **fields)
                if outcome.message:  # earlier outputs under other names: never removed (they may be retouched)
                    _event(f"{entry.path}: {_about(outcome.message, entry.path)}", "kept", logging.WARNING, **fields)
            else:
                _event(f"{entry.path}: identical to its last render (same content and recipe); not rendered again",
                       "unchanged", **fields)
            if outcome.notice:
                _event(f"{entry.path}: {outcome.notice}", "notice", logging.WARNING, **fields)
            refreshed = self.journal.get(entry.id)
            if refreshed and self._changed(refreshed):
                self.scanner.recheck(refreshed.path)  # changed while it rendered: kept, and queued again
            elif refreshed:
                self._archive(refreshed)
        elif outcome.kind == "changed":
            self.journal.requeue(entry.id, delay=self.config.settle_seconds, refund=True)
            self.scanner.rescan_soon()
            _event(f"{entry.path} is still changing; waiting for it to settle", "changed", **fields)
        elif (outcome.kind == "gone" and self.config.cluster and entry.path.exists()
              and self._node_excused(entry.id)):
            # the node did not see a file the daemon sees: its mount of the share is gone, not the file (a tester's
            # were dropped from the queue, again at every rescan)
            self.journal.requeue(entry.id, outcome.message, delay=self.config.retry_seconds, refund=True)
            _event(f"{entry.path}: node {node} cannot see it ({_about(outcome.message, entry.path)}): is the share "
                   "mounted there? It stays queued", "node_cannot_see", logging.WARNING, **fields)
        elif outcome.kind in ("failed", "gone"):
            self._give_up(entry, outcome.message, "outputs" if outcome.outputs_at_fault else outcome.kind)
        elif outcome.kind == "no_output":  # no fault of the file either
            self._wait_for_output_folder(entry, outcome, fields)
        elif outcome.kind == "disk_full":  # no fault of the file: it waits for room, never to _failed/
            self.journal.requeue(entry.id, outcome.message, delay=DISK_FULL_WAIT_S, refund=True)
            level = logging.DEBUG if entry.id in self.waiting_for_room else logging.WARNING  # said once a file
            self.waiting_for_room.add(entry.id)
            _event(f"{entry.path}: {_about(outcome.message, entry.path)}; the disk is full: it stays queued and is "
                   f"tried every {DISK_FULL_WAIT_S:g} s", "disk_full", level, **fields)
        else:
            self._temporary(entry, outcome.message)

    def _wait_for_output_folder(self, entry: Entry, outcome: Outcome, fields: dict[str, Any]) -> None:
        """An output folder is not there to write in (a file in its place, gone with its parent): the raw stays
        queued without using up an attempt, as for a full disk; it went to ``_failed/`` after its attempts. Said
        once for each outage of the folder, not for each file (:meth:`_output_folders_back` ends it)."""
        assert self.journal is not None
        wait = min(DISK_FULL_WAIT_S, self.config.rescan_seconds)
        self.journal.requeue(entry.id, outcome.message, delay=wait, refund=True)
        level = logging.DEBUG if self.output_outages.get(outcome.place) == outcome.message else logging.WARNING
        self.output_outages[outcome.place] = outcome.message
        _event(f"{outcome.message}: files that render there stay queued and are tried every {wait:g} s",
               "no_output_folder", level, folder=outcome.place, **fields)

    def _output_folders_back(self, outputs: tuple[str, ...]) -> None:
        """End the outages of the output folders a render just wrote in (:meth:`_wait_for_output_folder`)."""
        for place in [p for p in self.output_outages if any(Path(o).is_relative_to(p) for o in outputs)]:
            del self.output_outages[place]
            _event(f"output folder {place} can be written again", "output_folder_back", folder=place)

    def _node_excused(self, file_id: int) -> bool:
        """Whether a file whose render a node lost (the node left, or could not see the share) gets its attempt
        back once more: at most NODE_EXCUSES times, so a raw that brings its node down, or a node that never
        sees the share, ends as any failure does instead of going round for ever."""
        self.node_excuses[file_id] = self.node_excuses.get(file_id, 0) + 1
        return self.node_excuses[file_id] <= NODE_EXCUSES

    def _temporary(self, entry: Entry, reason: str) -> None:
        """A cause that may pass: retry later, a bounded number of times."""
        assert self.journal is not None
        if entry.attempts >= self.config.max_attempts:
            self._give_up(entry, f"gave up after {entry.attempts} attempts; last: {reason}", "temporary")
            return
        delay = self.config.retry_seconds * 2 ** max(0, entry.attempts - 1)
        self.journal.requeue(entry.id, reason, delay=delay)
        _event(f"{entry.path}: {_about(reason, entry.path)}; retrying in {delay:g} s (attempt {entry.attempts} of "
               f"{self.config.max_attempts})", "retry", logging.WARNING, path=str(entry.path), id=entry.id,
               error=reason, attempts=entry.attempts)

    def _give_up(self, entry: Entry, reason: str, kind: str) -> None:
        """The file failed for good: set it aside with a report, record why, keep going."""
        assert self.journal is not None
        if kind == "gone":  # renamed or deleted before it rendered: nothing failed, and nothing is left to retry
            self.journal.forget(entry.id)
            _event(f"{entry.path} went away before it rendered (renamed or deleted)", "gone", path=str(entry.path),
                   id=entry.id)
            return
        if self._may_still_be_written(entry, reason, partial=kind != "outputs"):  # a name clash is no partial copy
            return
        folder = self._folder(entry)
        moved_to = None
        if folder is not None:
            report = originals.failure_report(entry.path, reason, kind, entry.attempts, self.config.journal)
            try:
                moves = originals.aside_moves(entry.path, folder)
                moved_to = moves[0][1] if moves else entry.path
                self.journal.fail(entry.id, reason, kind, moved_to)  # before the move: see _finish_moves
                originals.put_aside(moves, moved_to, report)
            except OSError as e:
                moved_to = None
                _event(f"cannot set {entry.path} aside: {e}", "set_aside_failed", logging.ERROR,
                       path=str(entry.path))
        if moved_to is None:
            self.journal.fail(entry.id, reason, kind, None)
        self.throughput.add(False)
        _event(f"failed {entry.path}: {_about(reason, entry.path)}", "failed", logging.ERROR, path=str(entry.path),
               id=entry.id, error=reason, kind=kind, moved_to=str(moved_to) if moved_to else None)

    def _may_still_be_written(self, entry: Entry, reason: str, partial: bool = True) -> bool:
        """Whether a file about to fail for good may be a copy still under way; it is then queued again, without
        using an attempt: to settle again if it changed since it settled, else, when the failure may come from a
        partial copy (``partial``), once it has been quiet long enough (:func:`.scanner.failure_wait`). Checked
        right before the file would be moved to ``_failed/``."""
        assert self.journal is not None
        try:
            st = entry.path.stat()
        except OSError:
            return False  # gone: nothing is being written here
        fields: dict[str, Any] = {"path": str(entry.path), "id": entry.id, "error": reason}
        if not entry.same_stat(st.st_size, st.st_mtime_ns):
            self.journal.requeue(entry.id, delay=self.config.settle_seconds, refund=True)
            self.scanner.recheck(entry.path)
            _event(f"{entry.path} changed after it failed ({reason}); waiting for it to settle", "changed", **fields)
            return True
        wait = failure_wait(st.st_mtime, entry.queued_at, time.time(), self.config.settle_seconds)
        if wait <= 0 or not partial:
            return False
        self.journal.requeue(entry.id, reason, delay=wait, refund=True)
        _event(f"{entry.path}: {_about(reason, entry.path)}; it changed {time.time() - st.st_mtime:.1f} s ago and "
               f"may still be being copied: trying again in {wait:.1f} s before setting it aside", "unsettled",
               **fields)
        return True

    def _take_back_changed_failures(self) -> None:
        """Every ``rescan_seconds``: a file in ``_failed/`` that changed since it was set aside (a copy that went
        on after a long pause, a file the photographer replaced) goes back where it was dropped, to settle and be
        tried again. One that failed in place (``failed = "mark"``) is seen changing by the scan itself."""
        assert self.journal is not None
        now = time.monotonic()
        if now < self.next_failed_check:
            return
        self.next_failed_check = now + self.config.rescan_seconds
        for entry in self.journal.entries("failed"):
            moved = entry.moved_to
            if moved is None or moved == entry.path:
                continue
            try:
                st = moved.stat()
            except OSError:
                continue  # deleted by the photographer: nothing to take back
            if entry.same_stat(st.st_size, st.st_mtime_ns) or not originals.restore(entry.path, moved):
                continue  # unchanged, or its name in the hot folder is taken again (`queue --retry` says so)
            self.journal.set_moved(entry.id, None)
            self.scanner.recheck(entry.path)
            _event(f"{moved} changed after it failed: moved back to {entry.path} to be tried again", "taken_back",
                   path=str(entry.path), id=entry.id, moved_from=str(moved))

    def _late_sidecar(self, sidecar: Path) -> None:
        """A sidecar first seen without its raw. If the raw was already rendered and then archived or deleted, or
        set aside, the sidecar alone cannot render it: say so, and leave the sidecar where it is. Without a journal
        row the raw may still be on its way, and nothing is said."""
        assert self.journal is not None
        owners = [e for e in self.journal.owners_of_sidecar(sidecar)
                  if e.state in ("done", "failed") and not e.path.exists()]
        if not owners:
            return
        entry = owners[-1]
        _event(f"{sidecar} came after {entry.path.name} was {self._whereabouts(entry)}: a sidecar alone cannot be "
               "rendered; put the raw back beside it to render it with this sidecar", "late_sidecar", logging.WARNING,
               path=str(sidecar), raw=str(entry.path), moved_to=str(entry.moved_to) if entry.moved_to else None)

    def _whereabouts(self, entry: Entry) -> str:
        """Where a raw that left the hot folder went, for :meth:`_late_sidecar`."""
        folder = self._folder(entry)
        if entry.state == "failed" and entry.moved_to:
            return f"set aside in {entry.moved_to} (`hostplug queue --retry` brings it back)"
        if entry.moved_to:
            return f"rendered and archived to {entry.moved_to}"
        if folder is not None and folder.originals == "delete":
            return "rendered and deleted (it was a copy: export or copy it again)"
        return "rendered and removed from the hot folder"

    def _changed(self, entry: Entry) -> bool:
        """Whether the raw, or its sidecars, differ from what its row settled on (a raw that is gone: no)."""
        try:
            st = entry.path.stat()
        except OSError:
            return False
        return not entry.same_stat(st.st_size, st.st_mtime_ns) or not entry.same_sidecars(sidecar_stamp(entry.path))

    def _archive(self, entry: Entry) -> None:
        """Move a rendered original to its archive (or delete a rendered copy) when the hot folder says so."""
        folder = self._folder(entry)
        if folder is None or folder.originals == "leave" or not entry.path.exists():
            return
        if folder.originals == "delete":
            self._discard(entry, folder)
            return
        assert self.journal is not None
        try:
            moves = originals.archive_moves(entry.path, folder)
            moved = moves[0][1]
            self.journal.set_moved(entry.id, moved)  # first: see _finish_moves
            originals.carry_out(moves)
        except OSError as e:
            self.journal.set_moved(entry.id, None)
            self._archive_failed(entry, folder, e)
            return
        failed_before = self.archive_failures.pop(entry.id, None) is not None
        _event(f"archived {entry.path} -> {moved}", "archived", logging.INFO if failed_before else logging.DEBUG,
               path=str(entry.path), moved_to=str(moved))  # said aloud when it ends an earlier warning

    def _archive_failed(self, entry: Entry, folder: FolderConfig, error: OSError) -> None:
        """An original could not be archived (it stays in the hot folder, nothing is left in the archive): a
        warning the first time for each cause, as the move is tried again at every rescan until it works."""
        reason = error.strerror or str(error)
        level = logging.DEBUG if self.archive_failures.get(entry.id) == reason else logging.WARNING
        self.archive_failures[entry.id] = reason
        _event(f"cannot archive {entry.path} to {folder.archive}: {reason}; it stays in the hot folder and is "
               f"moved once that works (tried again every {self.config.rescan_seconds:g} s)", "archive_failed",
               level, path=str(entry.path), archive=str(folder.archive), error=str(error))

    def _discard(self, entry: Entry, folder: FolderConfig) -> None:
        """Delete a rendered copy, unless it (or its sidecar) changed since it settled (then it is queued again)."""
        if self._changed(entry):
            return
        try:
            originals.discard(entry.path, folder)
        except OSError as e:
            _event(f"cannot delete the copy {entry.path}: {e}; will try again", "delete_failed", logging.WARNING,
                   path=str(entry.path))
            return
        assert self.journal is not None
        self.journal.set_deleted(entry.id)
        _event(f"deleted the rendered copy {entry.path}", "deleted", logging.DEBUG, path=str(entry.path))

    def _folder(self, entry: Entry) -> FolderConfig | None:
        return next((f for f in self.config.folders if f.path == entry.folder), None)

    # -- progress -----------------------------------------------------------------------------------------------

    def _check_places(self) -> None:
        """Stop (JournalError, exit 7) when the journal or a hot folder is no longer the one the daemon started
        with: a hot folder renamed and made again left the daemon writing to a journal that moved with the old
        folder, silently, while `hostplug queue` found none and a second daemon could start on the new folder and
        render its files again. A restart (systemd's) watches what is there now. Each is compared with the one
        held open since the start, so file systems that number files afresh (FUSE without use_ino, CIFS with
        noserverino) keep its number while it is held."""
        for path, held in self.places.items():
            if _identity(path) != _identity(held):
                what = "journal" if path == self.config.journal else "hot folder"
                raise JournalError(f"the {what} {path} was moved, removed or replaced while the daemon ran; it "
                                   "stops (files not rendered yet stay queued): start it again to watch what is "
                                   "there now")

    def _heartbeat(self) -> None:
        """Watchdog pings, the status line and the periodic progress log."""
        now = time.monotonic()
        if self.watchdog_every and now >= self.next_watchdog:
            notify("WATCHDOG=1")
            self.next_watchdog = now + self.watchdog_every
        if now < getattr(self, "next_status", 0.0):
            return
        self.next_status = now + 1.0
        assert self.journal is not None
        self._check_places()
        self.journal.set_workers(self.pool.describe())  # for `hostplug queue`: who renders what, where
        # what is arriving (written when it changes): settling, or being hashed (minutes, for a large file on a
        # slow share, in which it was in no list)
        settling = list(self.scanner.tracker.files) + list(self.hasher.pending)
        if settling != self.settling_recorded:
            self.journal.set_settling(settling)
            self.settling_recorded = settling
        counts = self.journal.counts()
        rate = self.throughput.per_minute(now)
        waiting, hashing = len(self.scanner.tracker), len(self.hasher)
        text = (f"queued {counts['queued']}  rendering {counts['rendering']}  done {counts['done']}  "
                f"failed {counts['failed']}  settling {waiting}  hashing {hashing}  {rate:.1f} files/min")
        self.status.show(text)
        notify(f"STATUS={text}")
        total = self.throughput.rendered + self.throughput.failed
        if now >= self.next_progress and total != self.progress_logged:
            self.next_progress = now + self.config.progress_seconds
            self.progress_logged = total
            _event(text, "progress", files_per_minute=round(rate, 2), settling=waiting, hashing=hashing, **counts)
