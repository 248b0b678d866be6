"""The journal: a SQLite file recording every dropped raw's state, so nothing is lost or rendered twice.

One row a raw (keyed by its absolute path; an earlier photo whose name a new one took keeps its row as
``PATH#ID``): ``queued`` -> ``rendering`` -> ``done`` or ``failed``, with its attempts, size and modification
time when it settled (and its sidecars'), content hash, the hash of the recipe its outputs were rendered with
(and the content hash they were rendered from), the outputs themselves and the last error. A second table maps
every output path to the raw that owns it, so two raws can never write the same output. The journal is the
daemon's queue: ``hostplug queue --retry`` changes rows and the running daemon picks them up. WAL mode keeps
readers and the daemon apart; a write is committed before the daemon acts on it, so after ``kill -9`` a restart
sees the truth.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import re
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from hostplug.daemon.errors import JournalError
from hostplug.daemon.templates import safe_part

STATES = ("queued", "rendering", "done", "failed")
SCHEMA_VERSION = 1
SETTLING_SHOWN = 50  # arriving files named in the journal for `hostplug queue` (all are counted)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    path TEXT UNIQUE NOT NULL,
    folder TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'rendering', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    size INTEGER,
    mtime_ns INTEGER,
    content_hash TEXT,
    recipe_hash TEXT,
    rendered_hash TEXT,
    outputs TEXT NOT NULL DEFAULT '[]',
    error TEXT,
    error_kind TEXT,
    moved_to TEXT,
    not_before REAL NOT NULL DEFAULT 0,
    queued_at REAL,
    started_at REAL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS files_state ON files (state, not_before);
CREATE TABLE IF NOT EXISTS outputs (target TEXT PRIMARY KEY, file_id INTEGER NOT NULL REFERENCES files (id));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS workers (slot INTEGER PRIMARY KEY, node TEXT NOT NULL, pid INTEGER, state TEXT NOT NULL,
    file_id INTEGER, since REAL, updated REAL NOT NULL);
"""
# Columns added after the first release: (name, declaration), added to older journals when opened.
# files.node: the machine that rendered (or is rendering) the raw; files.sidecars: the raw's sidecar stamp when it
# settled (hostplug.daemon.scanner.sidecar_stamp; NULL in rows from before, which then count as unchanged);
# files.deleted_at: when the daemon deleted the rendered copy (originals = "delete"); files.earlier: the row of the
# earlier photo a new file under the same name followed (Journal.enqueue_new_photo)
_ADDED_COLUMNS = (("node", "TEXT"), ("sidecars", "TEXT"), ("deleted_at", "REAL"), ("earlier", "INTEGER"))

# What queuing a raw again resets (a re-dropped or replaced raw): a fresh start, where it is; the hashes and
# outputs of its last render stay, for comparison
_QUEUED = "state = 'queued', attempts = 0, error = NULL, error_kind = NULL, moved_to = NULL, not_before = 0"


def _like_literal(text: str) -> str:
    """``text`` for a LIKE pattern (with ``ESCAPE '\\'``), its ``%`` and ``_`` taken literally."""
    return "".join("\\" + c if c in "\\%_" else c for c in text)


def _numbered_from(name: str, holder: str) -> bool:
    """Whether the raw name ``name`` is what numbering makes of ``holder`` (``holder-N``, N >= 2, as
    :func:`.job.claim_outputs` numbers), compared as output names (made safe alike): a holder of ``name``'s own
    outputs then holds them numbered, where a holder of the same output name (``IMG 0001`` for ``IMG_0001``)
    holds its own."""
    number = name.rpartition("-")[2]
    if re.fullmatch(r"[2-9]|[1-9][0-9]+", number) is None:
        return False
    return safe_part(f"{holder}-{number}") == safe_part(name)


@dataclass(frozen=True)
class Conflict:
    """Why a raw cannot have the output names it asked for (:meth:`Journal.claim`). It crosses the cluster's
    claim protocol as it is (pickled)."""

    message: str  # one line naming the output and the raw that holds it
    renamed: bool  # that raw was numbered to the name (NAME-2...), which is the asking raw's own: number it in turn
    owner: Path | None = field(default=None, compare=False)  # that raw (None: its row is gone)


@dataclass(frozen=True)
class Entry:
    """One raw's row."""

    id: int
    path: Path
    folder: Path
    state: str
    attempts: int
    size: int | None
    mtime_ns: int | None
    content_hash: str | None
    recipe_hash: str | None
    rendered_hash: str | None  # content hash the outputs were rendered from
    outputs: tuple[str, ...]
    error: str | None
    error_kind: str | None
    moved_to: Path | None
    not_before: float
    finished_at: float | None
    node: str | None = None  # the machine that rendered it (a cluster node, or this machine)
    queued_at: float | None = None  # when it settled (time.time())
    sidecars: str | None = None  # its sidecars when it settled (scanner.sidecar_stamp); None: not recorded
    deleted_at: float | None = None  # when the daemon deleted it, a rendered copy (originals = "delete")
    earlier: int | None = None  # the row of the earlier photo of this name it follows: its outputs get new names

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Entry:
        """Build from a ``SELECT * FROM files`` row."""
        return cls(
            id=row["id"], path=Path(row["path"]), folder=Path(row["folder"]), state=row["state"],
            attempts=row["attempts"], size=row["size"], mtime_ns=row["mtime_ns"],
            content_hash=row["content_hash"], recipe_hash=row["recipe_hash"], rendered_hash=row["rendered_hash"],
            outputs=tuple(json.loads(row["outputs"])), error=row["error"], error_kind=row["error_kind"],
            moved_to=Path(row["moved_to"]) if row["moved_to"] else None, not_before=row["not_before"],
            finished_at=row["finished_at"], node=row["node"], queued_at=row["queued_at"], sidecars=row["sidecars"],
            deleted_at=row["deleted_at"], earlier=row["earlier"],
        )

    def same_stat(self, size: int, mtime_ns: int) -> bool:
        """Whether the file on disk is the one this row settled on."""
        return self.size == size and self.mtime_ns == mtime_ns

    def left_hot_folder(self) -> bool:
        """Whether the daemon rendered this raw and then archived or deleted it: a later file of its name is
        another photo (cameras start again at IMG_0001), not this one replaced."""
        return self.state == "done" and (self.moved_to is not None or self.deleted_at is not None)

    def same_sidecars(self, stamp: str) -> bool:
        """Whether the raw's sidecars are those it settled with (a row from before they were recorded: yes)."""
        return self.sidecars is None or self.sidecars == stamp


def disk_full(error: BaseException) -> bool:
    """Whether an SQLite or OS error says the disk is full (``SQLITE_FULL``, ``ENOSPC``, a quota)."""
    return (getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
            or getattr(error, "errno", None) in (errno.ENOSPC, errno.EDQUOT))


def journal_error(path: Path, error: BaseException) -> JournalError:
    """A failure of the journal as one line naming it; a full disk is named as such, with what to do."""
    if disk_full(error):
        return JournalError(f"the journal {path} cannot be written: its disk is full ({error}); free space there, "
                            "then start again (files not rendered yet stay queued)")
    return JournalError(f"the journal {path} failed: {error}")


_Class = TypeVar("_Class", bound=type)


def _errors_named(cls: _Class) -> _Class:
    """Make every public method raise :class:`JournalError` (one line, exit 7) instead of a bare
    ``sqlite3.Error``, which the command line would show as a traceback (a full disk, a damaged file)."""
    def guard(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except sqlite3.Error as e:
                raise journal_error(self.path, e) from e
        return guarded

    for name, value in list(vars(cls).items()):
        if callable(value) and not name.startswith("_"):
            setattr(cls, name, guard(value))
    return cls


@_errors_named
class Journal:
    """A connection to the journal file (one per process)."""

    def __init__(self, path: Path, *, create: bool = True, missing: str = "") -> None:
        """``missing``: what to ask when there is no journal and ``create`` is false (one line, after the path)."""
        self.path = path
        if not create and not path.is_file():
            raise JournalError(f"{path}: no journal here{f' ({missing})' if missing else ''}")
        if not path.parent.parent.is_dir():  # one folder is made (.hostplug in a hot folder), not a mistyped path
            raise JournalError(f"{path}: cannot open the journal: the folder {path.parent.parent} does not exist "
                               "(mistyped?); make it first")
        try:
            path.parent.mkdir(exist_ok=True)
            self.db = sqlite3.connect(path, timeout=30.0, isolation_level=None)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
            present = {row[1] for row in self.db.execute("PRAGMA table_info(files)")}
            for name, declaration in _ADDED_COLUMNS:
                if name not in present:
                    self.db.execute(f"ALTER TABLE files ADD COLUMN {name} {declaration}")
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        except (OSError, sqlite3.Error) as e:
            raise journal_error(path, e) if disk_full(e) else JournalError(
                f"{path}: cannot open the journal ({e})") from e

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> Entry | None:
        row = self.db.execute(sql, args).fetchone()
        return Entry.from_row(row) if row else None

    def get(self, file_id: int) -> Entry | None:
        """The row with this id."""
        return self._one("SELECT * FROM files WHERE id = ?", (file_id,))

    def lookup(self, path: Path) -> Entry | None:
        """The row of the raw at ``path``, if it was ever seen."""
        return self._one("SELECT * FROM files WHERE path = ?", (str(path),))

    def enqueue(self, path: Path, folder: Path, size: int, mtime_ns: int, content_hash: str,
                sidecars: str | None = None) -> Entry:
        """Queue a settled raw (a new row, or an old one reset); the previous render's hashes stay for comparison."""
        now = time.time()
        self.db.execute(
            f"""INSERT INTO files (path, folder, state, size, mtime_ns, content_hash, queued_at, sidecars)
               VALUES (?, ?, 'queued', ?, ?, ?, ?, ?)
               ON CONFLICT (path) DO UPDATE SET {_QUEUED}, size = excluded.size, mtime_ns = excluded.mtime_ns,
                   content_hash = excluded.content_hash, queued_at = excluded.queued_at,
                   sidecars = excluded.sidecars""",
            (str(path), str(folder), size, mtime_ns, content_hash, now, sidecars),
        )
        entry = self.lookup(path)
        assert entry is not None
        return entry

    def enqueue_new_photo(self, earlier: Entry, size: int, mtime_ns: int, content_hash: str,
                          sidecars: str | None = None) -> Entry:
        """Queue a different file at the path of a raw that was rendered and then archived or deleted
        (:meth:`Entry.left_hot_folder`) as a new photo: a row (and a ``{seq}``) of its own, which remembers the
        earlier one so that its outputs get new names. The earlier row, its outputs still its own, moves to the
        path ``PATH#ID`` (never a raw's: its suffix is no raw's) in the same transaction."""
        with self._transaction():
            self.db.execute("UPDATE files SET path = ? WHERE id = ?", (f"{earlier.path}#{earlier.id}", earlier.id))
            self.db.execute(
                """INSERT INTO files (path, folder, state, size, mtime_ns, content_hash, queued_at, sidecars, earlier)
                   VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?)""",
                (str(earlier.path), str(earlier.folder), size, mtime_ns, content_hash, time.time(), sidecars,
                 earlier.id))
        entry = self.lookup(earlier.path)
        assert entry is not None
        return entry

    @staticmethod
    def photo_path(path: str, id_: int) -> tuple[str, bool]:
        """A row's raw path, and whether a later photo took its name (the row moved to ``PATH#ID`` by
        :meth:`enqueue_new_photo`)."""
        mark = f"#{id_}"
        return (path.removesuffix(mark), True) if path.endswith(mark) else (path, False)

    def earlier_photos(self, path: Path) -> list[Entry]:
        """The photos rendered under ``path`` whose name a later photo took (rows moved to ``PATH#ID`` by
        :meth:`enqueue_new_photo`), oldest first."""
        rows = self.db.execute("SELECT * FROM files WHERE path LIKE ? ESCAPE '\\' ORDER BY id",
                               (_like_literal(f"{path}#") + "%",))
        return [e for e in map(Entry.from_row, rows) if str(e.path) == f"{path}#{e.id}"]

    def enqueue_photo_again(self, current: Entry, again: Entry, size: int, mtime_ns: int, content_hash: str,
                            sidecars: str | None = None) -> Entry:
        """Queue an earlier photo dropped again under its name (``again``, a ``PATH#ID`` row of
        :meth:`earlier_photos` whose content this is) in place of the later photo that had the name (``current``,
        rendered and gone too): the two rows swap paths in one transaction, and the earlier photo's row is queued
        as any re-dropped raw's, its outputs and the hashes of its render kept for comparison."""
        with self._transaction():
            self.db.execute("UPDATE files SET path = ? WHERE id = ?", (f"{current.path}#{current.id}", current.id))
            self.db.execute(
                f"""UPDATE files SET path = ?, {_QUEUED}, size = ?, mtime_ns = ?, content_hash = ?, queued_at = ?,
                       sidecars = ? WHERE id = ?""",
                (str(current.path), size, mtime_ns, content_hash, time.time(), sidecars, again.id))
        entry = self.get(again.id)
        assert entry is not None
        return entry

    def set_deleted(self, file_id: int) -> None:
        """Record that the daemon deleted the rendered copy (``originals = "delete"``)."""
        self.db.execute("UPDATE files SET deleted_at = ? WHERE id = ?", (time.time(), file_id))

    def folders(self) -> list[Path]:
        """Every hot folder this journal has recorded a file of."""
        return [Path(row[0]) for row in self.db.execute("SELECT DISTINCT folder FROM files ORDER BY folder")]

    def knows_folder(self, folder: Path) -> bool:
        """Whether this journal has seen the hot folder before: a file of it is recorded, or it was found empty
        (:meth:`mark_empty`)."""
        seen = self.db.execute("SELECT 1 FROM files WHERE folder = ? LIMIT 1", (str(folder),)).fetchone()
        marked = self.db.execute("SELECT 1 FROM meta WHERE key = ?", (f"started_empty:{folder}",)).fetchone()
        return bool(seen or marked)

    def mark_empty(self, folder: Path) -> None:
        """Record that a hot folder held no files when it was set up (or first watched)."""
        self.db.execute("INSERT OR IGNORE INTO meta VALUES (?, '1')", (f"started_empty:{folder}",))

    def update_stat(self, file_id: int, size: int, mtime_ns: int, sidecars: str | None = None) -> None:
        """Record a new size and mtime (and sidecar stamp) for a raw whose content did not change (for example
        after ``touch``, or a sidecar changed before a worker read it)."""
        self.db.execute("UPDATE files SET size = ?, mtime_ns = ?, sidecars = COALESCE(?, sidecars) WHERE id = ?",
                        (size, mtime_ns, sidecars, file_id))

    def owners_of_sidecar(self, sidecar: Path) -> list[Entry]:
        """The rows of the raws ``sidecar`` belongs to: ``IMG_0001.CR2`` for ``IMG_0001.CR2.xmp``, any
        ``IMG_0001.*`` for Adobe's ``IMG_0001.xmp``."""
        stem = sidecar.name[:-len(".xmp")]
        rows = self.db.execute("SELECT * FROM files WHERE path LIKE ? ESCAPE '\\'",
                               (_like_literal(str(sidecar.parent / stem)) + "%",))
        entries = (Entry.from_row(row) for row in rows)
        return [e for e in entries if e.path.parent == sidecar.parent and stem in (e.path.name, e.path.stem)]

    def due(self, limit: int, exclude: set[int], now: float | None = None) -> list[Entry]:
        """Queued rows whose retry time has come, oldest first, not counting those in ``exclude``."""
        rows = self.db.execute(
            "SELECT * FROM files WHERE state = 'queued' AND not_before <= ? ORDER BY id LIMIT ?",
            (now or time.time(), limit + len(exclude)),
        ).fetchall()
        return [e for e in map(Entry.from_row, rows) if e.id not in exclude][:limit]

    def start(self, file_id: int, node: str | None = None) -> None:
        """A worker (on ``node``) took the raw: it is rendering, and this is one more attempt."""
        self.db.execute("UPDATE files SET state = 'rendering', attempts = attempts + 1, started_at = ?, "
                        "node = COALESCE(?, node) WHERE id = ?", (time.time(), node, file_id))

    def finish(self, file_id: int, recipe_hash: str, outputs: list[str], rendered: bool = True) -> None:
        """The raw's outputs are all written (``rendered``), or were there already, of the same content and recipe
        (not ``rendered``: its render time stays the one of the render that made them, a tester's queue showed
        the skip's). Names it held and no longer uses (a template or naming rule changed since: a beside-original
        render takes its original's exact name now) are free for other raws again; the files there, stamped as
        this raw's renders, are never replaced by another's."""
        with self._transaction():
            self.db.execute(
                """UPDATE files SET state = 'done', recipe_hash = ?, rendered_hash = content_hash, outputs = ?,
                       error = NULL, error_kind = NULL,
                       finished_at = CASE WHEN ? OR finished_at IS NULL THEN ? ELSE finished_at END WHERE id = ?""",
                (recipe_hash, json.dumps(outputs), rendered, time.time(), file_id),
            )
            held = [row[0] for row in self.db.execute("SELECT target FROM outputs WHERE file_id = ?", (file_id,))]
            self.db.executemany("DELETE FROM outputs WHERE target = ? AND file_id = ?",
                                [(target, file_id) for target in held if target not in outputs])

    def forget(self, file_id: int) -> None:
        """Drop a raw's row and its claims on output names: the file went away before it rendered, or was deleted
        after it failed (a later file of that name is new, and may take those names; SQLite may even give it the
        same id)."""
        with self._transaction():
            self.db.execute("DELETE FROM outputs WHERE file_id = ?", (file_id,))
            self.db.execute("DELETE FROM files WHERE id = ?", (file_id,))

    def fail(self, file_id: int, error: str, kind: str, moved_to: Path | None = None) -> None:
        """The raw failed for good (until someone retries it)."""
        self.db.execute(
            "UPDATE files SET state = 'failed', error = ?, error_kind = ?, moved_to = ?, finished_at = ? WHERE id = ?",
            (error, kind, str(moved_to) if moved_to else None, time.time(), file_id),
        )

    def requeue(self, file_id: int, error: str | None = None, delay: float = 0.0, refund: bool = False) -> None:
        """Put a raw back in the queue, after ``delay`` seconds; ``refund`` takes back the attempt it used."""
        self.db.execute(
            """UPDATE files SET state = 'queued', error = COALESCE(?, error), not_before = ?,
                   attempts = MAX(0, attempts - ?) WHERE id = ?""",
            (error, time.time() + delay, int(refund), file_id),
        )

    def retry(self, file_id: int) -> None:
        """Queue a failed raw again with fresh attempts (``hostplug queue --retry``)."""
        self.db.execute(
            """UPDATE files SET state = 'queued', attempts = 0, error = NULL, error_kind = NULL, moved_to = NULL,
                   not_before = 0, queued_at = ? WHERE id = ? AND state = 'failed'""", (time.time(), file_id))

    def set_moved(self, file_id: int, moved_to: Path | None) -> None:
        """Record where the raw now lives (archive or ``_failed/``), or that it is back in place."""
        self.db.execute("UPDATE files SET moved_to = ? WHERE id = ?", (str(moved_to) if moved_to else None, file_id))

    def recover(self) -> int:
        """After a crash: rows left 'rendering' go back to the queue. Returns how many."""
        return self.db.execute("UPDATE files SET state = 'queued' WHERE state = 'rendering'").rowcount

    def claim(self, file_id: int, targets: list[str]) -> Conflict | None:
        """Reserve output paths for a raw, all or none; returns the :class:`Conflict` of a path that another raw
        already owns, else None."""
        with self._transaction():  # every target is checked before any is reserved
            for target in targets:
                row = self.db.execute("SELECT file_id FROM outputs WHERE target = ?", (target,)).fetchone()
                if row and row[0] != file_id:
                    return self._conflict(file_id, row[0], target)
            self.db.executemany("INSERT OR IGNORE INTO outputs VALUES (?, ?)", [(t, file_id) for t in targets])
        return None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction (``BEGIN IMMEDIATE``: another daemon's writes wait for it), committed when the
        block ends, rolled back when it raises."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _conflict(self, file_id: int, owner_id: int, target: str) -> Conflict:
        """The conflict of ``file_id`` with the raw that holds ``target``: ``renamed`` when that raw was numbered
        to the asking raw's own name (``canon1-2.dng`` asks for the ``canon1-2.jpg`` of a new photo ``canon1``,
        or ``canon1-2-2.dng`` for that of a ``canon1-2`` numbered in turn). A raw of the same output name
        (``IMG 0001.dng`` and ``IMG_0001.dng`` under ``{name}``, or one in a sub-folder) is not renamed,
        whichever of them came first."""
        owner, asking = self.get(owner_id), self.get(file_id)
        renamed = bool(owner and asking and _numbered_from(asking.path.stem, owner.path.stem))  # PATH#ID: stem of PATH
        return Conflict(f"{target} (already the output of {owner.path if owner else owner_id})", renamed,
                        owner.path if owner else None)

    def names_before(self, entry: Entry) -> tuple[str, ...]:
        """The names (without suffix) of the raws of ``entry``'s hot folder that the journal knew before it and
        that look like its numbered names (``NAME-…``): its numbering leaves them to those raws. Only rows older
        than it count, so the answer stays the same at every retry."""
        stem = f"{entry.path.stem}-"
        rows = self.db.execute("SELECT path FROM files WHERE folder = ? AND id < ? AND path LIKE ? ESCAPE '\\'",
                               (str(entry.folder), entry.id, f"%{_like_literal(stem)}%"))
        return tuple(sorted({Path(p).stem for (p,) in rows if Path(p).stem.startswith(stem)}))

    def claimed(self) -> list[Path]:
        """Every output path any raw ever reserved."""
        return [Path(row[0]) for row in self.db.execute("SELECT target FROM outputs")]

    def set_workers(self, workers: list[dict[str, Any]]) -> None:
        """Replace the daemon's picture of its workers (slot, node, pid, state, file_id, since) in one go."""
        now = time.time()
        with self._transaction():
            self.db.execute("DELETE FROM workers")
            self.db.executemany(
                "INSERT INTO workers VALUES (:slot, :node, :pid, :state, :file_id, :since, :updated)",
                [{"file_id": None, "since": None, "pid": None, **w, "updated": now} for w in workers])

    def set_settling(self, paths: list[Path]) -> None:
        """Record the files the daemon sees arriving (still being copied in, not yet queued), for ``hostplug
        queue``: a tester's queue looked idle through a card dump's copy. The first SETTLING_SHOWN are named."""
        record = json.dumps({"count": len(paths), "paths": sorted(map(str, paths))[:SETTLING_SHOWN]})
        with self._transaction():
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('settling', ?)", (record,))

    def settling(self) -> dict[str, Any]:
        """What :meth:`set_settling` last recorded (``count``, ``paths``); none recorded: a count of 0."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'settling'").fetchone()
        try:
            return json.loads(row[0]) if row else {"count": 0, "paths": []}
        except ValueError:
            return {"count": 0, "paths": []}

    def workers(self) -> list[dict[str, Any]]:
        """The workers as the daemon last recorded them, with the path of the raw each is on."""
        rows = self.db.execute(
            "SELECT w.*, f.path FROM workers w LEFT JOIN files f ON f.id = w.file_id ORDER BY w.node, w.slot")
        return [dict(row) for row in rows]

    def rendered_per_node(self, since: float) -> dict[str, int]:
        """How many raws each node finished rendering since ``since`` (a ``time.time()``)."""
        rows = self.db.execute("SELECT COALESCE(node, '?'), COUNT(*) FROM files WHERE state = 'done' AND "
                               "finished_at >= ? GROUP BY node", (since,))
        return {node: count for node, count in rows}

    def nodes(self, window: float = 300.0, now: float | None = None, live: bool = True) -> dict[str, Any]:
        """Where the work happens, for ``hostplug queue``: per node its workers (and how many are in each state:
        idle, rendering, starting, lost), the raws rendering there and the files per minute it finished over the
        last ``window`` seconds; each worker (with its node); each rendered raw's node. ``live=False`` (no daemon
        running) leaves out the workers the daemon last recorded."""
        now = time.time() if now is None else now
        workers = self.workers() if live else []
        finished = self.rendered_per_node(now - window)
        nodes: dict[str, dict[str, Any]] = {}
        for name in sorted({w["node"] for w in workers} | set(finished)):
            on = [w for w in workers if w["node"] == name]
            nodes[name] = {"node": name, "workers": len(on),
                           "states": dict(sorted(Counter(w["state"] for w in on).items())),
                           "rendering": [w["path"] for w in on if w["state"] == "rendering" and w["path"]],
                           "files_per_minute": round(finished.get(name, 0) * 60.0 / window, 2)}
        rendered = [{"path": row["path"], "node": row["node"], "finished_at": row["finished_at"]}
                    for row in self.db.execute("SELECT path, node, finished_at FROM files WHERE state = 'done' "
                                               "ORDER BY finished_at")]
        return {"window_seconds": window, "nodes": list(nodes.values()),
                "workers": [{k: w[k] for k in ("slot", "node", "pid", "state", "path", "since")} for w in workers],
                "rendered": rendered}

    def counts(self) -> dict[str, int]:
        """How many raws are in each state."""
        counts = dict.fromkeys(STATES, 0)
        for state, count in self.db.execute("SELECT state, COUNT(*) FROM files GROUP BY state"):
            counts[state] = count
        return counts

    def entries(self, state: str | None = None) -> list[Entry]:
        """All rows, or those in one state, oldest first."""
        sql, args = ("SELECT * FROM files WHERE state = ? ORDER BY id", (state,)) if state else (
            "SELECT * FROM files ORDER BY id", ())
        return [Entry.from_row(r) for r in self.db.execute(sql, args)]

    def rendered_outputs(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Each rendered raw's outputs, for ``hostplug queue``: ``path``, its hot ``folder``, ``outputs`` (as
        recorded: absolute paths), ``node``, ``moved_to`` (where the raw went: the archive) and ``finished_at``,
        the most recently finished first; every one when ``limit`` is None. Plain rows, not :class:`Entry`: a
        journal of tens of thousands of raws is listed in a fraction of a second."""
        rows = self.db.execute(
            "SELECT id, path, folder, outputs, node, moved_to, finished_at FROM files WHERE state = 'done' "
            "ORDER BY finished_at DESC, id DESC LIMIT ?", (-1 if limit is None else limit,))  # -1: no limit
        return [{"id": id_, "path": path, "folder": folder, "outputs": json.loads(outputs), "node": node,
                 "moved_to": moved_to, "finished_at": finished_at}
                for id_, path, folder, outputs, node, moved_to, finished_at in rows]

    def recent_errors(self, limit: int = 10) -> list[Entry]:
        """The rows with an error, most recent first."""
        rows = self.db.execute(
            "SELECT * FROM files WHERE error IS NOT NULL ORDER BY COALESCE(finished_at, queued_at) DESC, id DESC "
            "LIMIT ?", (limit,)).fetchall()
        return [Entry.from_row(r) for r in rows]
