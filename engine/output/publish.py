"""Giving a complete file its name: the last step of every output hostplug writes (images, thumbnails, the
daemon's archive copies), and the hidden temporary names a file is written under until then.

Imports nothing beyond the standard library, so the thumbnail command (which must start in a fraction of a
second) shares it with the image writer.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import time
from pathlib import Path

FULL_DISK_BYTES = 1 << 20  # free space under which a disk counts as full (the watch daemon waits for room)


def publish(partial: Path, path: Path, overwrite: bool) -> None:
    """Give the complete ``partial`` its name (with ``overwrite``, in place of the file there, whose permissions it
    takes). Without ``overwrite``, a file that appeared at ``path`` since it was
    checked (another render of the same name, at the same time) is kept, and FileExistsError raised: a hard link
    never replaces a file. On a file system without hard links (FAT and exFAT memory cards, some network shares)
    the name is reserved first, see :func:`_rename_into_reservation`."""
    if overwrite:
        keep_mode_of(path, partial)
        os.replace(partial, path)
        return
    try:
        os.link(partial, path)
    except FileExistsError:
        raise
    except OSError:
        _rename_into_reservation(partial, path)


def keep_mode_of(path: Path, partial: Path) -> None:
    """Give ``partial`` the permissions and group of the file it is to replace (and its owner, for root), as an
    editor saving over a file keeps them: a client's file made private (0600) came back readable by everyone,
    and a studio group's 0660 file lost its group, so colleagues lost access (testers')."""
    try:
        held = os.stat(path)
    except OSError:  # nothing there (or nothing readable): the new file keeps the umask's mode
        return
    with contextlib.suppress(OSError):  # a group the user is no member of stays the user's own
        os.chown(partial, held.st_uid if os.geteuid() == 0 else -1, held.st_gid)
    with contextlib.suppress(OSError):  # (after chown, which clears set-ID bits; none is copied anyway)
        os.chmod(partial, held.st_mode & 0o777)


def write_whole(path: Path, data: bytes) -> None:
    """Write ``data`` under a hidden temporary name, then give it ``path`` (replacing a file there): the file is
    whole or not there, a full disk leaves no empty or cut-short one."""
    partial = path.with_name(partial_name(path.name))
    try:
        partial.write_bytes(data)
        publish(partial, path, overwrite=True)
    except BaseException:
        discard(partial)
        raise


def _rename_into_reservation(partial: Path, path: Path) -> None:
    """Name ``partial`` ``path`` without links: create ``path`` exclusively (``O_EXCL`` is atomic on local file
    systems and on SMB and NFS shares, so of two publishers only one gets it), then rename the complete file over
    that empty reservation, which is ours. A check for the name followed by a rename let two publishers both find
    it free, and the second replaced the first's file.

    Between the two steps the name holds an empty file; a process killed just then leaves it there."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)  # FileExistsError: taken
    try:
        reserved = os.fstat(fd)
    finally:
        os.close(fd)
    try:
        if not _holds(path, reserved):  # replaced meanwhile by a publisher that overwrites on purpose: theirs
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path))
        os.replace(partial, path)
    except BaseException:
        if _holds(path, reserved):
            discard(path)
        raise


def _holds(path: Path, reserved: os.stat_result) -> bool:
    """Whether ``path`` is still the empty file we created (a FAT file system may give a file that replaced it
    the same inode number, never a complete output's size of 0)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return (st.st_dev, st.st_ino, st.st_size) == (reserved.st_dev, reserved.st_ino, 0)


def discard(path: Path) -> None:
    """Delete ``path`` if it is there. A failure to (a read-only file system, where the file was never made) is
    ignored: this runs while another error is on its way out, and must not replace it."""
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


PARTIAL_SUFFIX = ".part"


def _stem(name: str, suffix: str) -> str:
    """``name``, or for one too long to take the ``.NAME.xxxxxxxx<suffix>`` form within 255 bytes a hash of it."""
    encoded = os.fsencode(name)
    room = 255 - len(f"..12345678{suffix}")  # 240 bytes for ".part"
    return name if len(encoded) <= room else f"hostplug-{hashlib.sha256(encoded).hexdigest()[:16]}"


def partial_name(name: str, suffix: str = PARTIAL_SUFFIX) -> str:
    """The hidden temporary name a file called ``name`` is written under: ``.NAME.xxxxxxxx.part``, or for a name
    too long for that ``.hostplug-HHHHHHHHHHHHHHHH.xxxxxxxx.part``, whose H part is a hash of the name (so
    :func:`is_partial_of` still knows whose it is)."""
    return f".{_stem(name, suffix)}.{secrets.token_hex(4)}{suffix}"


def is_partial_of(candidate: str, name: str, suffix: str = PARTIAL_SUFFIX) -> bool:
    """Whether ``candidate`` is a temporary name :func:`partial_name` gives a file called ``name``."""
    prefix = f".{_stem(name, suffix)}."
    token = candidate[len(prefix):-len(suffix)]
    return (candidate.startswith(prefix) and candidate.endswith(suffix) and len(token) == 8
            and all(c in "0123456789abcdef" for c in token))


# No write of one file takes this long: an older temporary's writer is gone (killed, or the machine lost power,
# which also empties the service's journal of what it was writing, in the runtime folder)
STALE_PARTIAL_S = 3600.0


def remove_partials(target: Path, suffix: str = PARTIAL_SUFFIX, older_than: float | None = None) -> int:
    """Delete the temporaries that an interrupted write of ``target`` left beside it (a process killed before it
    could); returns how many. With ``older_than``, only those no writer has touched for that many seconds (a write
    under way now is younger, and is left alone)."""
    try:
        names = [n for n in os.listdir(target.parent) if is_partial_of(n, target.name, suffix)]
    except OSError:
        return 0
    removed = 0
    for name in names:
        path = target.parent / name
        try:
            if older_than is None or time.time() - path.lstat().st_mtime > older_than:
                path.unlink()
                removed += 1
        except OSError:
            pass
    return removed
