"""Content hashes of files: how outputs name their source, the daemon recognises re-drops, and models are verified;
and the identity of a file on disk, which tells when to hash again."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


class HashStoppedError(Exception):
    """A hash was stopped before its end, as its caller asked (:func:`file_sha256`'s ``stop``)."""


def file_sha256(path: Path, stop: Callable[[], bool] | None = None) -> str:
    """SHA-256 of a file's bytes (read in 1 MiB blocks; never cached, since files change under one name).
    ``stop``, asked before each block: True ends a hash no longer needed (HashStoppedError), as a file of
    gigabytes on a slow share takes tens of seconds."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            if stop is not None and stop():
                raise HashStoppedError(path)
            digest.update(block)
    return digest.hexdigest()


def file_identity(path: Any) -> tuple[Any, ...] | None:
    """What tells one file from another: real path, device, inode, size, modification and change times (``cp -p``
    of another raw of the same size over it keeps the first four and the modification time, never the change
    time); None when ``path`` is not a file. The render service keys its opened sources on it, and a loaded network
    is verified again when its weights file's identity changed (:func:`engine.models.build_network`)."""
    try:
        real = os.path.realpath(path)
        info = os.stat(real)
    except (OSError, TypeError):
        return None
    return real, info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns
