"""Outputs beside the original: hot folders that receive a copy of a raw, such as darktable's "copy" export.

darktable's export format "copy" writes a byte-identical copy of the raw and a sidecar with its edit, rating,
colour labels and tags (``IMG_0001.CR2`` and ``IMG_0001.CR2.xmp``) wherever the export's file name pattern says.
Neither says where the original lives: darktable's ``xmpMM:DerivedFrom`` holds the file name only. Two ways find
it, tried in this order, and both accept a candidate only when it is byte-identical to the copy (same size, same
SHA-256), so an output is never written beside the wrong raw:

1. **The mirrored path.** With the export pattern ``<hot folder>/$(FILE_FOLDER)/$(FILE_NAME)`` darktable writes
   the copy to ``<hot folder>/home/ann/Pictures/2024/IMG_0001.CR2``: the copy's folder inside the hot folder *is*
   the original's absolute folder. Exact, and nothing is searched.
2. **The library roots.** For any other pattern, the original's name (the sidecar's ``xmpMM:DerivedFrom``, then
   the copy's own name) is looked for below the hot folder's ``library_roots``. Hidden folders, the hot folder and
   its archive are not searched; two identical matches are refused as ambiguous rather than guessed.

Nothing here writes: the caller renders from the original and writes outputs beside it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from engine.errors import InputNotFoundError
from engine.filehash import file_sha256
from engine.xmp.namespaces import XMP_MM_NS
from hostplug.daemon.config import FolderConfig

MIRROR_PATTERN = "$(FILE_FOLDER)/$(FILE_NAME)"  # appended to the hot folder in darktable's export module


def derived_from(copy: Path) -> str | None:
    """The original's file name recorded in the copy's sidecar (``xmpMM:DerivedFrom``), or None."""
    from engine.errors import SidecarError
    from engine.io.bounded import read_regular
    from engine.xmp.document import MAX_PACKET_BYTES, parse_packet, simple_properties
    from engine.xmp.sidecar_files import find_sidecar

    sidecar = find_sidecar(copy)
    if sidecar is None:
        return None
    try:
        tree = parse_packet(read_regular(sidecar, MAX_PACKET_BYTES, "sidecar", SidecarError), str(sidecar))
    except SidecarError:
        return None
    name = Path(simple_properties(tree, XMP_MM_NS).get("DerivedFrom", "").strip()).name
    return name or None


def mirrored_folder(copy: Path, hot_folder: Path) -> Path | None:
    """The absolute folder that the copy's place inside the hot folder spells; None at the top of the hot folder
    or when that folder would be inside the hot folder itself."""
    relative = copy.parent.relative_to(hot_folder)
    if not relative.parts:
        return None
    folder = Path("/", *relative.parts)
    return None if folder.resolve().is_relative_to(hot_folder.resolve()) else folder


def same_content(candidate: Path, copy: Path, sha256: str) -> bool:
    """Whether ``candidate`` is another file with exactly the copy's bytes."""
    try:
        if not candidate.is_file() or candidate.samefile(copy) or candidate.stat().st_size != copy.stat().st_size:
            return False
        return file_sha256(candidate) == sha256
    except OSError:
        return False


def _named_below(root: Path, names: set[str], skip: set[Path]) -> Iterator[Path]:
    """Files below ``root`` whose name is one of ``names`` (any letter case), hidden and ``skip`` folders left out."""
    for current, dirs, files in os.walk(root):
        here = Path(current)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (here / d).resolve() not in skip)
        yield from (here / f for f in sorted(files) if f.casefold() in names)


def original_names(copy: Path) -> list[str]:
    """Names the original may have: darktable's ``xmpMM:DerivedFrom``, then the copy's own name."""
    return list(dict.fromkeys(n for n in (derived_from(copy), copy.name) if n))


def find_original(copy: Path, folder: FolderConfig, sha256: str) -> Path:
    """The original that ``copy`` (a file in hot folder ``folder``) was copied from; see the module docstring.

    :class:`InputNotFoundError` says where it looked (or which identical files made it ambiguous).
    """
    names = original_names(copy)
    mirror = mirrored_folder(copy, folder.path)
    if mirror is not None:
        for name in names:
            if same_content(mirror / name, copy, sha256):
                return mirror / name
    skip = {p.resolve() for p in (folder.path, folder.archive) if p is not None}
    wanted = {n.casefold() for n in names}
    found = [p for root in folder.library_roots if root.is_dir() and root.resolve() not in skip
             for p in _named_below(root, wanted, skip) if same_content(p, copy, sha256)]
    found = list(dict.fromkeys(p.resolve() for p in found))
    if len(found) == 1:
        return found[0]
    if found:
        raise InputNotFoundError(f"{copy.name}: {len(found)} identical originals ({', '.join(map(str, found))}); "
                                 f"not guessing. Export from darktable to '{folder.path}/{MIRROR_PATTERN}'")
    raise InputNotFoundError(f"{copy.name}: cannot find its original: {where_looked(names, mirror, folder)}")


def where_looked(names: Iterable[str], mirror: Path | None, folder: FolderConfig) -> str:
    """The failure report's account of the search, with what to change."""
    places = [f"in {mirror} (the folder the copy's place in the hot folder spells)"] if mirror else []
    places += [f"below {root}" for root in folder.library_roots]
    looked = "; ".join(places) or "nowhere: the copy's place in the hot folder names no folder, no library_roots"
    return (f"looked for {' or '.join(names)} with the copy's exact content {looked}. Export from darktable "
            f"to '{folder.path}/{MIRROR_PATTERN}', or add the photo folder to library_roots")
