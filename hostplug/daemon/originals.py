"""What happens to the dropped files themselves: archived once rendered, set aside with a report when they fail.

A raw travels with its sidecars (``IMG_0001.CR2.xmp``, ``IMG_0001.xmp``). Moves never overwrite a different
file: a raw whose name is taken gets ``-2``, ``-3``... (an identical file there is simply replaced), and its
sidecars take the sidecar names of the raw's new name, so that they stay its sidecars; a different file already
holding such a name (an earlier sidecar of the same photo, dropped again) is kept beside it as ``NAME.xmp.1``, a
name no program reads as a sidecar. A move to another
file system (an archive disk) copies to hidden temporaries first and removes the originals only once every copy
is complete, durable and named: a full disk or a crash leaves the originals where they were and, at worst, a
hidden ``.NAME.xxxxxxxx.hostplug-part`` that the next try removes.
"""

from __future__ import annotations

import errno
import filecmp
import hashlib
import os
import shutil
import time
from pathlib import Path

from engine.output.publish import partial_name, publish, remove_partials, write_whole
from engine.xmp.sidecar_files import find_sidecars
from hostplug.daemon.config import FolderConfig


def free_name(target: Path, source: Path) -> Path:
    """``target``, or ``target`` with ``-2``, ``-3``... when a different file already has that name."""
    candidate, n = target, 1
    while candidate.exists() and not (candidate.is_file() and filecmp.cmp(candidate, source, shallow=False)):
        n += 1
        candidate = target.with_name(f"{target.stem}-{n}{target.suffix}")
    return candidate


def planned_moves(raw: Path, folder: Path) -> list[tuple[Path, Path]]:
    """Where a raw (first) and its sidecars go in ``folder`` (created if needed): the raw to a free name, numbered
    (:func:`free_name`), each sidecar to its sidecar name for that name (:func:`paired_name`). The daemon records
    the raw's destination before :func:`carry_out` moves it, so that a daemon killed in between knows where the raw
    went."""
    folder.mkdir(parents=True, exist_ok=True)
    target = free_name(folder / raw.name, raw)
    return [(raw, target)] + [(sidecar, paired_name(sidecar, raw, target)) for sidecar in find_sidecars(raw)]


def paired_name(sidecar: Path, raw: Path, target: Path) -> Path:
    """The name a sidecar of ``raw`` takes beside ``target``, the raw's new name: darktable's form
    (``IMG.dng.xmp``, its duplicates ``IMG_01.dng.xmp``) or Adobe's (``IMG.xmp``), so that no sidecar lands on
    the name of another raw's (a numbered ``IMG-2.xmp`` beside the daemon's own ``IMG-2.dng``)."""
    if sidecar.name.startswith(raw.name):
        return target.with_name(target.name + sidecar.name[len(raw.name):])
    if sidecar.name.startswith(raw.stem):
        return target.with_name(target.stem + sidecar.name[len(raw.stem):])
    return target.with_name(sidecar.name)


def _keep_earlier_sidecars(moves: list[tuple[Path, Path]]) -> list[tuple[Path, Path]]:
    """Rename each different file already at a sidecar's destination to the first free ``NAME.xmp.N`` beside it:
    kept, and read by no program as a sidecar, so that the sidecar moving there stays its raw's. Returns the
    renames done, (where it was, where it is), for :func:`carry_out` to undo if the move fails."""
    done = []
    for source, destination in moves:
        if destination.exists() and not (destination.is_file() and filecmp.cmp(destination, source, shallow=False)):
            n = 1
            while (aside := destination.with_name(f"{destination.name}.{n}")).exists():
                n += 1
            os.rename(destination, aside)
            done.append((destination, aside))
    return done


def carry_out(moves: list[tuple[Path, Path]]) -> None:
    """Move each file to its destination, the raw first, once a different file at a sidecar's destination is kept
    aside (:func:`_keep_earlier_sidecars`). On one file system each is renamed. Across file systems
    (``EXDEV``) they are copied all together, see :func:`copy_across`; on failure the originals stay and nothing is
    left at the destinations, so a retry uses the same names."""
    raw, target = moves[0]
    kept = _keep_earlier_sidecars(moves[1:])
    try:
        try:
            os.rename(raw, target)
        except OSError as e:
            if e.errno != errno.EXDEV:
                raise
            copy_across(moves)
            return
        for sidecar, destination in moves[1:]:
            os.rename(sidecar, destination)
    except BaseException:
        for destination, aside in reversed(kept):  # the earlier sidecars back under their names
            if not destination.exists():
                os.rename(aside, destination)
        raise


ARCHIVE_PARTIAL = ".hostplug-part"  # an archive copy's temporary suffix: hidden, and never a photo's suffix


def _copy_durably(source: Path, partial: Path) -> None:
    """Copy ``source`` to the new file ``partial`` with its mode and times, and flush it to the disk."""
    with open(source, "rb") as reader, open(partial, "xb") as writer:
        shutil.copyfileobj(reader, writer, 1 << 20)
        writer.flush()
        shutil.copystat(source, partial)  # as a move keeps them
        os.fsync(writer.fileno())


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
            remove_partials(destination, ARCHIVE_PARTIAL)  # an interrupted copy's (a daemon killed mid-copy)
            if destination.exists():
                continue
            partial = destination.with_name(partial_name(destination.name, ARCHIVE_PARTIAL))
            partials.append(partial)
            _copy_durably(source, partial)
            publish(partial, destination, overwrite=False)  # never replacing a file that took the name
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
    """Move a rendered raw into the hot folder's archive, keeping its sub-folder; returns its new path."""
    moves = archive_moves(raw, folder)
    carry_out(moves)
    return moves[0][1]


def archive_moves(raw: Path, folder: FolderConfig) -> list[tuple[Path, Path]]:
    """Where a rendered raw and its sidecars go in the hot folder's archive, keeping its sub-folder."""
    return planned_moves(raw, archive_folder(raw, folder))


def archive_folder(raw: Path, folder: FolderConfig) -> Path:
    """The folder of the hot folder's archive a rendered raw goes to: its sub-folder kept."""
    assert folder.archive is not None
    return folder.archive / raw.parent.relative_to(folder.path)


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


def failure_report(raw: Path, reason: str, kind: str, attempts: int, journal: Path) -> str:
    """The text of ``NAME.failed.txt``; its retry command names the daemon's ``journal``, so it works from any
    folder, whatever configuration the daemon was started with."""
    from engine import __version__

    return (f"hostplug could not render {raw.name}\n\n"
            f"reason:   {reason}\n"
            f"kind:     {FAILURE_KINDS.get(kind, FAILURE_KINDS['temporary'])}\n"
            f"attempts: {attempts}\n"
            f"file:     {raw}\n"
            f"when:     {time.strftime('%Y-%m-%d %H:%M:%S %z')}\n"
            f"hostplug: {__version__}\n\n"
            f"To try again, fix the cause and run `{retry_command(journal)}` (or drop the file in again).\n")


FAILURE_KINDS = {"failed": "permanent (the file itself)",
                 "outputs": "its outputs (the raw is fine: an output cannot be written as named)",
                 "temporary": "temporary, retries used up"}


def retry_command(journal: Path) -> str:
    """The command that queues a daemon's failed raws again, naming its journal: bare, it works only from where
    the daemon's default journal is found (a tester's log advised it, and it found no journal)."""
    import shlex

    return f"hostplug queue --retry --journal {shlex.quote(str(journal))}"


def report_path(raw: Path) -> Path:
    """``NAME.failed.txt`` beside ``raw``; for a name too long to take the suffix (a file system allows 255 bytes),
    the name cut short with a hash of the whole name added (``NAME-cut-1a2b3c4d.failed.txt``), so the report is
    still written and two long names never share one."""
    name = raw.name + ".failed.txt"
    if len(os.fsencode(name)) <= 255:
        return raw.with_name(name)
    digest = hashlib.sha256(os.fsencode(raw.name)).hexdigest()[:8]
    keep = 255 - len(f"-{digest}.failed.txt")
    cut = os.fsencode(raw.name)[:keep].decode("utf-8", errors="ignore")  # on a character, not inside one
    return raw.with_name(f"{cut}-{digest}.failed.txt")


def aside_moves(raw: Path, folder: FolderConfig) -> list[tuple[Path, Path]]:
    """Where a failed raw and its sidecars go in ``<hot folder>/_failed/``; none when the folder says "mark" (the
    raw stays where it is, with its report beside it)."""
    if folder.failed != "move" or not raw.exists():
        return []
    return planned_moves(raw, folder.failed_dir / raw.parent.relative_to(folder.path))


def set_aside(raw: Path, folder: FolderConfig, report: str) -> Path:
    """Move a failed raw to ``<hot folder>/_failed/`` (or leave it, if the folder says "mark") with its report.

    Returns where the raw now is."""
    moves = aside_moves(raw, folder)
    where = moves[0][1] if moves else raw
    put_aside(moves, where, report)
    return where


def put_aside(moves: list[tuple[Path, Path]], where: Path, report: str) -> None:
    """Carry out ``moves`` (:func:`aside_moves`) and write the report beside the raw, now at ``where``."""
    if moves:
        carry_out(moves)
    write_whole(report_path(where), report.encode("utf-8"))  # a full disk leaves no empty report


def earlier_failures(folder: Path, tracked: set[Path]) -> list[tuple[Path, Path]]:
    """Raws in ``folder``'s ``_failed/`` with a report that the journal no longer tracks (``tracked``: where its
    failed rows are), each with the path it was dropped at (the report's ``file:`` line). An earlier copy of a name
    that failed again is one: the journal keeps one row per name, and the later failure took it."""
    found = []
    for raw in sorted((folder / "_failed").rglob("*")):
        report = report_path(raw)  # a long name's report is named shortened: found from the raw, not the reverse
        if raw in tracked or raw.name.endswith(".failed.txt") or not (raw.is_file() and report.is_file()):
            continue
        dropped = next((line[len("file:"):].strip() for line in report.read_text(errors="replace").splitlines()
                        if line.startswith("file:")), None)
        if dropped:
            found.append((raw, Path(dropped)))
    return found


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
        target = paired_name(sidecar, moved_to, raw)  # IMG-2.xmp comes back as IMG.xmp, its raw's
        if not target.exists():
            os.replace(sidecar, target)
    return True
