"""Where a raw's XMP sidecars are, found without reading them: no XMP parser is loaded, so a command that only
looks (``hostplug info`` on a raw without a sidecar, the daemon's scanner) stays quick. Reading and writing
them: :mod:`engine.xmp.sidecar`."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from engine.errors import SidecarError
from engine.io.bounded import is_name_too_long

__all__ = ["find_duplicates", "find_sidecar", "find_sidecars", "sidecar_path"]


def _present(path: Path) -> bool:
    """Whether anything is at ``path``: a FIFO, a folder or a link to a share that is not mounted is found here too,
    so that reading it is refused in one line, rather than the sidecar being ignored (a render with the defaults)
    or replaced. A name longer than the file system allows cannot exist."""
    try:
        os.lstat(path)  # not os.path.lexists, which calls a folder it may not look in empty
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as e:
        if is_name_too_long(e):
            return False
        raise SidecarError(f"{path}: cannot look for the sidecar ({e.strerror})") from None
    return True


def sidecar_path(raw: Path) -> Path:
    """Where hostplug writes the sidecar of ``raw``: ``IMG_0001.CR2.xmp`` (an existing ``.XMP`` is kept).

    :class:`SidecarError` when the sidecar's name would be longer than the file system allows.
    """
    lower, upper = raw.with_name(raw.name + ".xmp"), raw.with_name(raw.name + ".XMP")
    if len(os.fsencode(lower.name)) > 255:
        raise SidecarError(f"{raw}: the name is too long for a sidecar beside it ({len(os.fsencode(lower.name))} "
                           "bytes with .xmp, more than the 255 a file name may have)")
    return upper if _present(upper) and not _present(lower) else lower


def is_sidecar_name(path: Path) -> bool:
    """Whether ``path`` is named as an XMP sidecar is (``*.xmp``, any case)."""
    return path.suffix.lower() == ".xmp"


def lone_sidecars(paths: Iterable[Path]) -> set[Path]:
    """The sidecars among ``paths`` whose raw is not among them (darktable's ``IMG_0001.CR2.xmp`` and Adobe's
    ``IMG_0001.xmp`` belong to ``IMG_0001.CR2``)."""
    paths = set(paths)
    owners = {(p.parent, n) for p in paths if not is_sidecar_name(p) for n in (p.name, p.name.rpartition(".")[0])}
    return {p for p in paths if is_sidecar_name(p) and (p.parent, p.name[:-len(".xmp")]) not in owners}


def find_sidecars(raw: Path) -> list[Path]:
    """The sidecars of ``raw`` that exist: ``IMG_0001.CR2.xmp`` first, then Adobe's ``IMG_0001.xmp``.

    Adobe's name is a camera raw's only: a JPEG, PNG or TIFF beside the raw (the camera's JPEG of a RAW+JPEG
    pair, an output rendered beside it) shares its stem, not its edit; and only where it is no other raw's
    (:func:`_adobe_name_is_its_own`)."""
    from engine.io.formats import RGB_SUFFIXES

    raw = Path(raw)
    if not raw.name:  # "." or "/": a folder, which has no sidecar (opening it says what is wrong)
        return []
    names: tuple[str, ...] = (raw.name + ".xmp", raw.name + ".XMP")
    adobe = (raw.stem + ".xmp", raw.stem + ".XMP") if raw.suffix.lower() not in RGB_SUFFIXES else ()
    found: list[Path] = []
    for name in names + adobe:
        candidate = raw.with_name(name)
        if _present(candidate) and not any(_same(candidate, p) for p in found):
            if name in adobe and not _adobe_name_is_its_own(raw):
                continue
            found.append(candidate)
    return found


def _adobe_name_is_its_own(raw: Path) -> bool:
    """Whether Adobe's sidecar name of ``raw`` (``IMG.xmp``) is no other raw's sidecar too: a tester's ``A.ARW.dng``
    read ``A.ARW.xmp``, hostplug's sidecar of ``A.ARW``, and an ``IMG.dng`` took Lightroom's ``IMG.xmp`` of the
    ``IMG.ARW`` beside it over its own embedded edit. Where a camera raw and DNGs share the stem, Lightroom's file
    is the camera raw's (Lightroom writes a DNG's edit into the DNG); where other raws share it, it is no one's."""
    from engine.io.formats import RAW_SUFFIXES

    owner = raw.with_name(raw.stem)  # A.ARW beside A.ARW.dng: A.ARW.xmp is A.ARW's own sidecar
    if owner.suffix.lower() in RAW_SUFFIXES and owner.is_file():  # (a folder IMG_0001 beside IMG_0001.dng is not)
        return False
    others = [raw.with_name(raw.stem + suffix) for lower in sorted(RAW_SUFFIXES) for suffix in (lower, lower.upper())
              if raw.stem + suffix != raw.name]
    others = [path for path in others if _present(path) and not _same(path, raw)]
    return not others or (raw.suffix.lower() != ".dng" and all(p.suffix.lower() == ".dng" for p in others))


def _same(a: Path, b: Path) -> bool:
    """Whether two names are one file (``.xmp`` and ``.XMP`` on a file system that ignores case); a link to
    nothing is only itself."""
    try:
        return a.samefile(b)
    except OSError:
        return a == b


def find_sidecar(raw: Path) -> Path | None:
    """The sidecar to read for ``raw`` (see :func:`find_sidecars`), or None."""
    found = find_sidecars(raw)
    return found[0] if found else None


def find_duplicates(raw: Path) -> list[Path]:
    """darktable's duplicate versions of ``raw``: ``IMG_0001_01.CR2.xmp``, ``IMG_0001_02.CR2.xmp``, ..."""
    raw = Path(raw)
    pattern = re.compile(re.escape(raw.stem) + r"_(\d{2,})" + re.escape(raw.suffix) + r"\.xmp", re.IGNORECASE)
    if not raw.parent.is_dir():
        return []
    numbered = ((p, pattern.fullmatch(p.name)) for p in raw.parent.iterdir())
    return [p for _, p in sorted((int(m.group(1)), p) for p, m in numbered if m is not None and p.is_file())]
