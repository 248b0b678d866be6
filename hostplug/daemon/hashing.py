"""Content hashes of settled files, made on a thread so that the daemon's loop keeps turning meanwhile.

A raw of a few gigabytes on a slow share takes tens of seconds to read; hashed in the loop, it stopped every other
file, the status line and systemd's watchdog pings (``WatchdogSec=60``: systemd killed and restarted the daemon,
which hashed the same file again).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

from engine.filehash import file_sha256

THREADS = 2  # a large file hashing on one, the photos dropped after it go on on the other


class Hashed(NamedTuple):
    """A file the hasher is done with."""

    path: Path
    st: os.stat_result  # its size and time when it settled
    digest: str | None  # its SHA-256; None when it could not be read
    error: str = ""  # why it could not be read


class Hasher:
    """Hashes files on threads; :meth:`finished` hands back those done since it was last called."""

    def __init__(self) -> None:
        self.executor = ThreadPoolExecutor(THREADS, thread_name_prefix="hostplug-hash")
        self.stopping = threading.Event()
        self.pending: dict[Path, tuple[os.stat_result, Future[str]]] = {}

    def __contains__(self, path: object) -> bool:
        return path in self.pending

    def __len__(self) -> int:
        return len(self.pending)

    def submit(self, path: Path, st: os.stat_result) -> None:
        """Hash ``path``, which had the size and time of ``st`` when it settled."""
        self.pending[path] = (st, self.executor.submit(file_sha256, path, self.stopping.is_set))

    def finished(self) -> list[Hashed]:
        """The files hashed since the last call (in the order they were asked for among themselves; a large file
        asked for first may come after small ones asked for later)."""
        done = []
        for path, (st, future) in list(self.pending.items()):
            if not future.done():
                continue
            del self.pending[path]
            error = future.exception()
            if error is None:
                done.append(Hashed(path, st, future.result()))
            else:
                done.append(Hashed(path, st, None, getattr(error, "strerror", None) or str(error)))
        return done

    def close(self) -> None:
        """Stop: a hash under way ends at its next block (the file is hashed again at the next start)."""
        self.stopping.set()
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.pending.clear()
