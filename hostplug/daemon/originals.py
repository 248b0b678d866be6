"""What happens to the dropped files themselves: archived once rendered, set aside with a report when they fail.

A raw travels with its sidecars (``IMG_0001.CR2.xmp``, ``IMG_0001.xmp``). Moves never overwrite a different
file: a name already taken gets ``-2``, ``-3``... (an identical file there is simply replaced). A move to another
file system (an archive disk) copies to hidden temporaries first and removes the originals only once every copy
is complete, durable and named: a full disk or a crash leaves the originals where they were and, at worst, a
hidden ``.NAME.xxxxxxxx.hostplug-part`` that the next try removes.
"""

from __future__ import annotations

import errno
import filecmp
import hashlib
import os
import secrets
import shutil
import time
from pathlib import Path

from engine.xmp.sidecar import find_sidecars
from hostplug.daemon.config import FolderConfig


def free_name(target: Path, source: Path) -> Path:
    """``target``, or ``target`` with ``-2``, ``-3``... when a different file already has that name."""
    candidate, n = target, 1
    while candidate.exists() and not (candidate.is_file() and filecmp.cmp(candidate, source, shallow=False)):
        n += 1
        candidate = target.with_name(f"{target.stem}-{n}{target.suffix}")
    return candidate


def move_with_sidecars(raw: Path, folder: Path) -> Path:
    """Move a raw and its sidecars into ``folder`` (created if needed); returns the raw's new path.

    On one file system each is renamed. Across file systems (``EXDEV``) they are copied all together, see
    :func:`copy_across`; on failure the originals stay and nothing is left in ``folder``, so a retry uses the same
    names.
    """
    folder.mkdir(parents=True, exist_ok=True)
    target = free_name(folder / raw.name, raw)
    moves = [(raw, target)] + [(sidecar, free_name(folder / sidecar.name.replace(raw.name, target.name, 1), sidecar))
                               for sidecar in find_sidecars(raw)]
    try:
        os.rename(raw, target)
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
        copy_across(moves)
        return target
    for sidecar, destination in moves[1:]:
        os.rename(sidecar, destination)
    return target


PARTIAL_SUFFIX = ".hostplug-part"
_PARTIAL_ROOM = 255 - len(f"..12345678{PARTIAL_SUFFIX}")  # bytes left for the name in a temporary's name


def _partial_stem(name: str) -> str:
    """``name``, or for one too long to fit in a temporary's name a hash of it (still unique to it)."""
    if len(os.fsencode(name)) <= _PARTIAL_ROOM:
        return name
    return "hostplug-" + hashlib.sha256(os.fsencode(name)).hexdigest()[:16]


def partial_name(name: str) -> str:
    """The hidden temporary a file called ``name`` is copied under: ``.NAME.xxxxxxxx.hostplug-part`` (never a
    raw's suffix, so never taken for a photo)."""
    return f".{_partial_stem(name)}.{secrets.token_hex(4)}{PARTIAL_SUFFIX}"


def is_partial_of(candidate: str, name: str) -> bool:
    """Whether ``candidate`` is a temporary :func:`partial_name` gives a file called ``name``."""
    prefix = f".{_partial_stem(name)}."
    token = candidate[len(prefix):-len(PARTIAL_SUFFIX)]
    return (candidate.startswith(prefix) and candidate.endswith(PARTIAL_SUFFIX) and len(token) == 8
            and all(c in "0123456789abcdef" for c in token))


def remove_partial_copies(destination: Path) -> None:
    """Delete the temporaries an interrupted copy to ``destination`` left (a daemon killed mid-copy)."""
    try:
        names = os.listdir(destination.parent)
    except OSError:
        return
    for name in names:
        if is_partial_of(name, destination.name):
            (destination.parent / name).unlink(missing_ok=True)


def _copy_durably(source: Path, partial: Path) -> None:
    """Copy ``source`` to the new file ``partial`` with its mode and times, and flush it to the disk."""
    with open(source, "rb") as reader, open(partial, "xb") as writer:
        shutil.copyfileobj(reader, writer, 1 << 20)
        writer.flush()
        shutil.copystat(source, partial)  # as a move keeps them
        os.fsync(writer.fileno())


def _name_without_replacing(partial: Path, destination: Path) -> None:
    """Give the copy its final name, failing (``FileExistsError``) rather than replacing a file that took it."""
    try:
        os.link(partial, destination)
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
            raise
        if destination.exists():  # a file system without hard links: check, then rename
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(destination)) from None
        os.rename(partial, destination)


def _sync_folder(folder: Path) -> None:
    """Make the names created in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSUP):  # some file systems cannot sync a folder
            raise
    finally:
        os.close(fd)


def copy_across(moves: list[tuple[Path, Path]]) -> None:
    """Move files to another file system: copy each to a hidden temporary beside its destination, sync, name the
    copies (never replacing a file), and only then remove the originals (the raw first). On any failure the
    temporaries and the names already given are removed and the originals stay: a retry starts clean.

    A destination that already exists holds an identical file (:func:`free_name`): it is kept, not copied again.
    """
    partials: list[Path] = []
    placed: list[Path] = []
    try:
        for source, destination in moves:
            remove_partial_copies(destination)
            if destination.exists():
                continue
            partial = destination.with_name(partial_name(destination.name))
            partials.append(partial)
            _copy_durably(source, partial)
            _name_without_replacing(partial, destination)
            placed.append(destination)
            partial.unlink(missing_ok=True)  # the name now holds it (gone already after a rename)
        for folder in {destination.parent for _, destination in moves}:
            _sync_folder(folder)
    except BaseException:
        for path in [*partials, *placed]:
            path.unlink(missing_ok=True)
        raise
    for source, _ in moves:
        source.unlink()


def archive(raw: Path, folder: FolderConfig) -> Path:
    """Move a rendered raw into the hot folder's archive, keeping its sub-folder."""
    assert folder.archive is not None
    return move_with_sidecars(raw, folder.archive / raw.parent.relative_to(folder.path))


def discard(raw: Path, folder: FolderConfig) -> None:
    """Delete a rendered copy and its sidecars (``originals = "delete"``, allowed only where every file was first
    proven byte-identical to an original elsewhere), then the folders inside the hot folder it leaves empty."""
    for path in [*find_sidecars(raw), raw]:
        path.unlink(missing_ok=True)
    parent = raw.parent
    while parent != folder.path and parent.is_relative_to(folder.path):
        try:
            parent.rmdir()
        except OSError:  # not empty (another copy arrived), or gone
            return
        parent = parent.parent


def failure_report(raw: Path, reason: str, kind: str, attempts: int) -> str:
    """The text of ``NAME.failed.txt``."""
    from engine import __version__

    return (f"hostplug could not render {raw.name}\n\n"
            f"reason:   {reason}\n"
            f"kind:     {'permanent (the file itself)' if kind == 'failed' else 'temporary, retries used up'}\n"
            f"attempts: {attempts}\n"
            f"file:     {raw}\n"
            f"when:     {time.strftime('%Y-%m-%d %H:%M:%S %z')}\n"
            f"hostplug: {__version__}\n\n"
            "To try again, fix the cause and run `hostplug queue --retry` (or drop the file in again).\n")


def report_path(raw: Path) -> Path:
    """``NAME.failed.txt`` beside ``raw``; for a name too long to take the suffix (a file system allows 255 bytes),
    the name cut short with a hash of the whole name added (``NAME-cut-1a2b3c4d.failed.txt``), so the report is
    still written and two long names never share one."""
    name = raw.name + ".failed.txt"
    if len(os.fsencode(name)) <= 255:
        return raw.with_name(name)
    digest = hashlib.sha256(os.fsencode(raw.name)).hexdigest()[:8]
    keep = 255 - len(f"-{digest}.failed.txt")
    cut = os.fsdecode(os.fsencode(raw.name)[:keep])
    return raw.with_name(f"{cut}-{digest}.failed.txt")


def set_aside(raw: Path, folder: FolderConfig, report: str) -> Path:
    """Move a failed raw to ``<hot folder>/_failed/`` (or leave it, if the folder says "mark") with its report.

    Returns where the raw now is.
    """
    where = raw
    if folder.failed == "move" and raw.exists():
        where = move_with_sidecars(raw, folder.failed_dir / raw.parent.relative_to(folder.path))
    report_path(where).write_text(report, encoding="utf-8")
    return where


def restore(raw: Path, moved_to: Path) -> bool:
    """Put a failed raw back where it was dropped, without its report (for ``--retry``, or a file that changed
    since it failed); False, leaving the raw and its report as they are, when that is impossible."""
    if moved_to != raw and (not moved_to.exists() or raw.exists()):
        return False
    report_path(moved_to).unlink(missing_ok=True)
    if moved_to == raw:
        return raw.exists()
    raw.parent.mkdir(parents=True, exist_ok=True)
    sidecars = find_sidecars(moved_to)
    os.replace(moved_to, raw)
    for sidecar in sidecars:
        target = raw.with_name(sidecar.name.replace(moved_to.name, raw.name, 1))
        if not target.exists():
            os.replace(sidecar, target)
    return True


def remove_partials(target: Path) -> int:
    """Delete the temporary files a killed render of ``target`` left beside it; returns how many."""
    from engine.output.write import is_partial_of

    removed = 0
    try:
        names = os.listdir(target.parent)
    except OSError:
        return 0
    for name in names:
        if is_partial_of(name, target.name):
            try:
                (target.parent / name).unlink()
                removed += 1
            except OSError:
                pass
    return removed
