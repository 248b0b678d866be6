"""Reading a small file (sidecar, preset, recipe, configuration) through a size-limited, regular-file-only open,
and pinning an input file so that every reader reads the one file that was checked.

A path a user or another program controls can name a FIFO (``open`` waits forever for a writer), a device
(``/dev/zero`` never ends) or a link to either. :func:`read_regular` opens with ``O_NONBLOCK`` (so a FIFO opens at
once), checks with ``fstat`` on the open descriptor that it is a regular file (checked after opening, so the file
cannot be swapped between the check and the read), and reads at most ``limit + 1`` bytes, so an oversized file is
refused without reading it all. ``follow=False`` adds ``O_NOFOLLOW`` where a link must not be followed.

:func:`pinned` opens an input (a raw or an image, read by several libraries that each open it by name) the same
way once, and hands out ``/proc/self/fd/N``: a name for that open file, so a file renamed, replaced or linked at
the original path meanwhile is never read instead.

:func:`is_name_too_long` tells the ``ENAMETOOLONG`` of a file name over the file system's 255 bytes apart from
other errors: such a file cannot exist, so looking for it finds nothing.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from engine.errors import HostplugError

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def not_a_file(path: Path) -> str | None:
    """Why ``path`` is no regular file to read, in words for an error line ("no such file", "a symbolic link
    loop", "refused, the input is a FIFO, not a regular file"); None when it is one. A FIFO or a link loop was
    reported as "no such file" by the commands that check before reading (a tester's)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "a symbolic link loop (the link leads back to itself)"
        if e.errno == errno.ENOENT and os.path.islink(path):
            return f"a link to {os.readlink(path)}, which is not there"
        return "no such file" if e.errno in (errno.ENOENT, errno.ENOTDIR) else f"cannot read it ({e.strerror})"
    if stat.S_ISDIR(mode):
        return "is a folder; name the files in it"
    return None if stat.S_ISREG(mode) else f"refused, the input is {_kind(mode)}, not a regular file"


def _open_regular(path: Path | str, what: str, error: type[HostplugError], follow: bool,
                  missing: type[HostplugError] | None = None) -> tuple[int, os.stat_result]:
    """A descriptor of ``path`` opened for reading and its ``fstat``, which showed a regular file; else ``error``
    (``missing`` for a file that does not exist, when given) in one line."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        descriptor = os.open(path, flags)
    except OSError as e:
        if e.errno == errno.ELOOP and not follow:
            raise error(f"{path}: refused, the {what} is a symbolic link") from None
        if e.errno == errno.ELOOP:
            raise error(f"{path}: cannot read the {what}: a symbolic link loop (the link leads back to itself)") \
                from None
        if e.errno == errno.ENOENT and missing is not None:  # "no such recipe file"; an input is just a file
            raise missing(f"{path}: no such {'file' if what == 'input' else what}") from None
        if e.errno == errno.ENOENT and os.path.islink(path):  # to a share that is not mounted, say
            raise error(f"{path}: cannot read the {what}: it is a link to {os.readlink(path)}, which is not "
                        "there") from None
        raise error(f"{path}: cannot read the {what} ({e.strerror})") from None
    try:
        info = os.fstat(descriptor)
    except OSError as e:
        os.close(descriptor)
        raise error(f"{path}: cannot read the {what} ({e.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        os.close(descriptor)
        raise error(f"{path}: refused, the {what} is {_kind(info.st_mode)}, not a regular file")
    return descriptor, info


def read_regular(path: Path | str, limit: int, what: str, error: type[HostplugError] = HostplugError,
                 *, follow: bool = True, missing: type[HostplugError] | None = None) -> bytes:
    """The bytes of ``path``, which must be a regular file of at most ``limit`` bytes; else ``error`` in one line
    naming the file and ``what`` it should have been ("sidecar", "configuration"), or ``missing`` (when given)
    for a file that does not exist ("no such recipe file")."""
    descriptor, info = _open_regular(path, what, error, follow, missing)
    try:
        if info.st_size > limit:
            raise error(f"{path}: refused, {info.st_size} bytes is far too large for a {what} (at most {limit})")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(descriptor, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:
        raise error(f"{path}: cannot read the {what} ({e.strerror})") from None
    finally:
        os.close(descriptor)
    if size > limit:
        raise error(f"{path}: refused, more than {limit} bytes is far too large for a {what}")
    return b"".join(chunks)


def is_name_too_long(error: OSError) -> bool:
    """Whether ``error`` says a file name (or path) is longer than the file system allows."""
    return error.errno == errno.ENAMETOOLONG


@contextlib.contextmanager
def pinned(path: Path, what: str, error: type[HostplugError] = HostplugError, *, follow: bool = True,
           missing: type[HostplugError] | None = None) -> Iterator[Path]:
    """``path`` opened once (a regular file, else ``error`` in one line; ``missing`` for a file that does not
    exist), as a path that names that open file: every open of the path yielded reads this file, whatever is
    renamed, replaced or linked at ``path`` meanwhile. ``follow=False`` refuses a link at ``path`` itself.

    The name is ``/proc/self/fd/N`` (Linux); where there is no ``/proc``, ``path`` itself (then only the checks
    on opening hold, not the pinning). The descriptor is closed when the block ends.
    """
    descriptor, _ = _open_regular(path, what, error, follow, missing)
    try:
        view = Path(f"/proc/self/fd/{descriptor}")
        yield view if view.exists() else path
    finally:
        os.close(descriptor)
