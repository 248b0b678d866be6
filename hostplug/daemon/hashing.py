"""Content hashes of settled files, made on a thread so that the daemon's loop keeps turning meanwhile.

A raw of a few gigabytes on a slow share takes tens of seconds to read; hashed in the loop, it stopped every other
file, the status line and systemd's watchdog pings (``WatchdogSec=60``: systemd killed and restarted the daemon,
which hashed the same file again).
"""

from __future__ import annotations

import hashlib
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

BLOCK = 1 << 20  # as engine.filehash.file_sha256 reads


class _StoppedError(Exception):
    """The daemon is stopping: the hash is not needed any more."""


THREADS = 2  # a large file hashing on one, the photos dropped after it go on on the other


class Hasher:
    """Hashes files on threads; :meth:`finished` hands back those done, in the order they were asked for."""

    def __init__(self) -> None:
        self.executor = ThreadPoolExecutor(THREADS, thread_name_prefix="hostplug-hash")
        self.stopping = threading.Event()
        self.pending: dict[Path, tuple[os.stat_result, Future[str]]] = {}

    def __contains__(self, path: object) -> bool:
        return path in self.pending

    def submit(self, path: Path, st: os.stat_result) -> None:
        """Hash ``path``, which had the size and time of ``st`` when it settled."""
        self.pending[path] = (st, self.executor.submit(self._sha256, path))

    def finished(self) -> list[tuple[Path, os.stat_result, str | None]]:
        """The files hashed since the last call, each with its stat and its SHA-256 (None: it could not be
        read)."""
        done = []
        for path, (st, future) in list(self.pending.items()):
            if not future.done():
                continue
            del self.pending[path]
            done.append((path, st, None if future.exception() else future.result()))
        return done

    def close(self) -> None:
        """Stop: a hash under way ends at its next block (the file is hashed again at the next start)."""
        self.stopping.set()
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.pending.clear()

    def _sha256(self, path: Path) -> str:
        """SHA-256 of a file's bytes, as :func:`engine.filehash.file_sha256` makes it, stopping when asked."""
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(BLOCK), b""):
                if self.stopping.is_set():
                    raise _StoppedError
                digest.update(block)
        return digest.hexdigest()
