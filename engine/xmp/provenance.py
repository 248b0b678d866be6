"""Where an output came from: reading its provenance XMP and finding its source raw again.

Every output hostplug writes records its source (see :func:`engine.export.provenance_xmp`): the raw's name in
``xmpMM:DerivedFrom``, its absolute path and its SHA-256. Other editors leave less: Lightroom's "Edit in" TIFF
(``IMG_0001-Edit.tif``) names the raw in ``crs:RawFileName``, or only by its own file name. :func:`find_source`
tries, in order: the recorded path; the recorded names, in the archive folder a watch daemon recorded, beside the
output and in the search folders; the
output's own name with editors' suffixes taken off (``-Edit``, ``_hostplug``, `` copy``...); and last, any raw in
those folders whose content hash is the recorded one. When a hash is recorded, a candidate must match it.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.errors import InputNotFoundError, RecipeError, shown
from engine.io.formats import is_raw_name
from engine.orientation import Orientation
from engine.output.metadata import EXIV2, XMP_PREFIX, exiv2_image, register_namespace, xmp_file_name
from engine.recipe import Recipe

# Suffixes editors add to the name of a file they rendered from a raw: Lightroom "-Edit", "-Edit-2"; ours
# "_hostplug", "_hostplug-2"; Finder/Explorer " copy", " (2)"; darktable's duplicate "_01".
_EDITOR_SUFFIX = re.compile(
    r"(?:[-_ ](?:edit|edited|hostplug|copy|bearbeitet)(?:[-_ ]?\d+)?|\s*\(\d+\)|_\d{2})$", re.IGNORECASE
)


@dataclass(frozen=True)
class Provenance:
    """What an image file says about its source (every field may be missing)."""

    names: tuple[str, ...] = ()  # source file names recorded (DerivedFrom, crs:RawFileName...)
    path: Path | None = None  # the absolute source path hostplug recorded
    sha256: str | None = None  # the source's content hash hostplug recorded
    damaged_sha256: str | None = None  # a recorded hash that is no SHA-256 (as written): nothing can be checked
    recipe: Recipe | None = None  # the recipe the file was rendered with (hostplug outputs only)
    recipe_error: str | None = None  # why a recorded recipe cannot be used (damaged, from a newer hostplug)
    written: str | None = None  # when ``hostplug open`` wrote the file, as it recorded it (its own TIFFs only)
    orientation: Orientation | None = None  # the one the output applied (None: none recorded, or damaged)
    darktable_export: bool = False  # darktable's history or its name as creator tool is in it: darktable exported it
    archive: Path | None = None  # the folder a watch daemon moves the source to once it is rendered
    saved_by: str = ""  # the program that wrote the file last, as it says (EXIF Software, else xmp:CreatorTool)

    @property
    def from_hostplug(self) -> bool:
        """Whether the image carries hostplug's record of its making (a source path, hash or recipe)."""
        return bool(self.sha256 or self.path or self.recipe)


def read_provenance(image: Path) -> Provenance:
    """The provenance XMP of ``image``; an empty :class:`Provenance` when it has none or cannot be read."""

    register_namespace()
    try:
        with EXIV2, exiv2_image(image) as handle:
            xmp = handle.read_xmp()
            software = handle.read_exif().get("Exif.Image.Software", "")
    except Exception:  # noqa: BLE001 - pyexiv2 raises RuntimeError or its own types; no XMP is not an error
        return Provenance()
    names = []
    for key in ("Xmp.xmpMM.DerivedFrom", "Xmp.xmpMM.DerivedFrom/stRef:filePath", "Xmp.crs.RawFileName",
                "Xmp.xmpMM.PreservedFileName"):
        value = xmp.get(key)
        if isinstance(value, str) and value.strip():
            name = Path(value.strip()).name
            if name and name not in names:
                names.append(name)
    recorded = xmp.get(f"Xmp.{XMP_PREFIX}.sourcePath")
    sha = xmp.get(f"Xmp.{XMP_PREFIX}.sourceSHA256")
    valid_sha = isinstance(sha, str) and re.fullmatch(r"[0-9a-fA-F]{64}", sha) is not None
    recipe, recipe_error = _recipe(xmp.get(f"Xmp.{XMP_PREFIX}.recipe"))
    return Provenance(
        names=tuple(names),
        path=Path(recorded) if isinstance(recorded, str) and recorded else None,
        sha256=sha.lower() if valid_sha else None,
        damaged_sha256=None if sha is None or valid_sha else str(sha),
        recipe=recipe,
        recipe_error=recipe_error,
        written=xmp.get(f"Xmp.{XMP_PREFIX}.written"),
        orientation=_orientation(xmp.get(f"Xmp.{XMP_PREFIX}.decided"), image),
        # its develop history, or, exported without it (an export setting), darktable named as the creator tool
        darktable_export="Xmp.darktable.history" in xmp or str(xmp.get("Xmp.xmp.CreatorTool", "")).strip().lower()
        .startswith("darktable"),
        archive=_folder(xmp.get(ARCHIVE_KEY)),
        saved_by=str(software or xmp.get("Xmp.xmp.CreatorTool", "")).strip(),
    )


ARCHIVE_KEY = f"Xmp.{XMP_PREFIX}.sourceArchive"  # what a watch daemon records of where the source goes (a folder)


def _folder(value: object) -> Path | None:
    """A recorded absolute folder, or None."""
    return Path(value) if isinstance(value, str) and value.startswith("/") else None


def _orientation(decided: object, image: Path) -> Orientation | None:
    """The orientation an output's recorded decisions name, or None when there is none or it is damaged (a
    re-render, which must have it, reads it strictly: :func:`engine.rerender.read_record`)."""
    try:
        note = json.loads(decided).get("orientation") if isinstance(decided, str) else None
        return Orientation.from_note(note, str(image)) if note is not None else None
    except (ValueError, AttributeError, RecipeError):
        return None


def _recipe(text: object) -> tuple[Recipe | None, str | None]:
    """The recipe stored in an output, and why it cannot be used when it is there but does not parse (damaged,
    or written by a newer hostplug); (None, None) when there is none."""
    if not isinstance(text, str) or not text.strip():
        return None, None
    try:
        return Recipe.from_json(text), None
    except (RecipeError, json.JSONDecodeError) as e:
        return None, str(e)


def stem_candidates(name: str) -> list[str]:
    """The raw names an editor's output name may come from: ``IMG_0001-Edit-2`` -> [IMG_0001-Edit-2, IMG_0001]."""
    stems = [Path(name).stem]
    while True:
        shorter = _EDITOR_SUFFIX.sub("", stems[-1])
        if not shorter or shorter == stems[-1]:
            return stems
        stems.append(shorter)


def _raws_in(folder: Path) -> list[Path]:
    """The camera raw files in ``folder`` (not recursive), sorted; [] for a missing or unreadable folder."""
    try:
        return sorted(p for p in folder.iterdir() if is_raw_name(p) and p.is_file())
    except OSError:
        return []


def _candidates(output: Path, provenance: Provenance, folders: list[Path]) -> Iterator[Path]:
    """Possible sources of ``output``, most likely first (may repeat)."""
    if provenance.path is not None:
        yield provenance.path
        if "\ufffd" in provenance.path.name and provenance.path.parent.is_dir():  # a name that is no UTF-8
            yield from (p for p in _raws_in(provenance.path.parent) if xmp_file_name(p.name) == provenance.path.name)
    for folder in folders:
        for name in provenance.names:
            yield folder / name
    for stem in stem_candidates(output.name):
        for folder in folders:
            yield from (p for p in _raws_in(folder) if p.stem.casefold() == stem.casefold())
    if provenance.sha256 is not None:
        for folder in folders:
            yield from _raws_in(folder)


def _matches(candidate: Path, sha256: str | None) -> bool:
    """Whether ``candidate`` is a readable file with the recorded content hash (any file when none is)."""
    from engine.filehash import file_sha256

    try:
        if not candidate.is_file():
            return False
        return sha256 is None or file_sha256(candidate.resolve()) == sha256
    except OSError:
        return False


def _is_file(path: Path) -> bool:
    """Whether ``path`` is a file; False for a path the system cannot look at (a recorded path longer than it
    allows was a traceback: a fuzzer's)."""
    try:
        return path.is_file()
    except OSError:
        return False


def find_source(output: Path, search: Iterable[Path] = ()) -> Path:
    """The source raw of ``output`` (see the module docstring); :class:`InputNotFoundError` saying where it looked.

    ``search`` adds folders to look in after the output's own folder.
    """
    output, search = Path(output), list(search)
    provenance = read_provenance(output)
    if provenance.damaged_sha256 is not None:  # a tester's: the check was skipped, and another photo rendered
        raise RecipeError(f"{output}: its recorded source SHA-256 {shown(provenance.damaged_sha256)} is damaged, so "
                          "no raw can be checked to be its source; render the raw with this file's recipe: "
                          f"hostplug render RAW -o NEW --recipe {shlex.quote(str(output))}")
    # the folder a watch daemon archived the source to, then the output's own, then those asked for
    archived = [provenance.archive] if provenance.archive is not None else []
    folders = list(dict.fromkeys([*archived, output.resolve().parent, *(Path(s).resolve() for s in search)]))
    seen: set[Path] = set()
    other: list[Path] = []  # files of its raw's recorded name whose content is not the recorded one
    recorded_names = {*provenance.names, *([provenance.path.name] if provenance.path is not None else [])}
    for candidate in _candidates(output, provenance, folders):
        try:
            same_file = candidate.resolve() == output.resolve()
        except (OSError, RuntimeError):  # a symbolic link loop at a recorded or searched path: no raw there
            continue
        if candidate in seen or same_file:
            continue
        seen.add(candidate)
        if _matches(candidate, provenance.sha256):
            return candidate
        if provenance.sha256 is not None and candidate.name in recorded_names and _is_file(candidate):
            other.append(candidate)  # (not every raw of the folders searched: those are no raw of its name)
    if other:
        # the same raw with metadata written into it, or another photo under its name (a tester's): say both, and
        # which file, wherever it was found (a raw found through --search was called "not found")
        first = shlex.quote(str(other[0]))
        moved = "" if search else "; if the raw was moved, pass its folder with --search"
        raise InputNotFoundError(
            f"{output}: {', '.join(str(o) for o in other)} {'is' if len(other) == 1 else 'are'} not the raw it was "
            f"rendered from (its content changed since: a program may have written metadata into it, or it is "
            f"another photo){moved}; to render {'it' if len(other) == 1 else other[0]} with the output's recipe: "
            f"hostplug render {first} -o NEW --recipe {shlex.quote(str(output))} (in Python: "
            f"rerender_file(..., search=[FOLDER]), or render_file(RAW, NEW, recipe=OUTPUT's recipe))")
    looked = ", ".join(str(f) for f in folders)
    if provenance.path is not None:
        recorded = str(provenance.path)  # (a damaged record's path of kilobytes is cut: one readable line)
        looked = f"{recorded if len(recorded) <= 300 else recorded[:297] + '...'}, {looked}"
    what = f"the raw {provenance.names[0]}" if provenance.names else "a raw with a matching name"
    check = " with the recorded SHA-256" if provenance.sha256 else ""
    raise InputNotFoundError(f"{output}: cannot find its source raw: looked for {what}{check} in {looked}; "
                             "pass the raw's folder with --search (in Python: rerender_file(..., search=[FOLDER]))")
