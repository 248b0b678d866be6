"""When hostplug wrote a render that a photographer may retouch in place, so that a retouch is never rendered over.

``hostplug open``'s TIFFs and the watch daemon's outputs (in output folders and beside originals) are written with
``OutputOptions(modified=...)``: they record the second they were written (``hostplug:written``, in their XMP) and
take their name with that modification time. An editor that saves over such a file moves the time on; the file no
longer counts as :func:`untouched`, and hostplug leaves it alone.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

MTIME_SLACK_S = 2.0  # file systems that keep modification times in 2 s steps (FAT, exFAT)


def untouched(image: Path, written: str | None) -> bool:
    """Whether ``image``, a render stamped ``written`` (its provenance's), was not changed since: its modification
    time is still the one it was given. A render that records no time counts as untouched here (the watch
    daemon's outputs of older versions); ``open`` asks more of one (``hostplug.handoff``)."""
    if written is None:
        return True
    try:
        return abs(image.stat().st_mtime - float(written)) <= MTIME_SLACK_S
    except (ValueError, OSError):
        return False


def newer_second(target: Path) -> int:
    """The whole second to stamp a new render of ``target`` with: now, rounded up, and after the time of the file
    it replaces, so that an editor waiting for the file to change sees it change."""
    try:
        before = int(target.stat().st_mtime) + 1
    except OSError:
        before = 0
    return max(math.ceil(time.time()), before)
