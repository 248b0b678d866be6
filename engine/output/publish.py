"""Giving a complete file its name: the last step of every output hostplug writes (images, thumbnails).

Imports nothing beyond the standard library, so the thumbnail command (which must start in a fraction of a
second) shares it with the image writer.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def publish(partial: Path, path: Path, overwrite: bool) -> None:
    """Give the complete ``partial`` its name. Without ``overwrite``, a file that appeared at ``path`` since it was
    checked (another render of the same name, at the same time) is kept: a hard link never replaces a file, and
    raises FileExistsError. On a file system without hard links (FAT and exFAT memory cards, some network shares)
    the check is repeated just before the rename instead."""
    if overwrite:
        os.replace(partial, path)
        return
    try:
        os.link(partial, path)
    except FileExistsError:
        raise
    except OSError:
        if path.exists():
            raise FileExistsError(path) from None
        os.replace(partial, path)


def discard(path: Path) -> None:
    """Delete ``path`` if it is there. A failure to (a read-only file system, where the file was never made) is
    ignored: this runs while another error is on its way out, and must not replace it."""
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)
