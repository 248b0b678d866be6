"""What happens to the dropped files themselves: archived once rendered, set aside with a report when they fail.

A raw travels with its sidecars (``IMG_0001.CR2.xmp``, ``IMG_0001.xmp``). Moves never overwrite a different
file: a name already taken gets ``-2``, ``-3``... (an identical file there is simply replaced).
"""

from __future__ import annotations

import filecmp
import hashlib
import os
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
    """Move a raw and its sidecars into ``folder`` (created if needed); returns the raw's new path."""
    folder.mkdir(parents=True, exist_ok=True)
    target = free_name(folder / raw.name, raw)
    sidecars = find_sidecars(raw)
    shutil.move(raw, target)
    for sidecar in sidecars:
        shutil.move(sidecar, free_name(folder / sidecar.name.replace(raw.name, target.name, 1), sidecar))
    return target


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
