"""XMP sidecars: where a photographer's edit of a raw lives, next to the raw, shared with other programs.

hostplug writes ``IMG_0001.CR2.xmp`` (the darktable and digiKam name) and also reads ``IMG_0001.xmp`` (Adobe's).
darktable's duplicates (``IMG_0001_01.CR2.xmp``) are listed by :func:`find_duplicates`. Our recipe is stored in
hostplug's namespace (see :mod:`engine.xmp.recipe_properties`); every other namespace is left exactly as it was (see
:mod:`engine.xmp.document`). When no recipe of ours exists, Adobe's basic settings become hints for one. An
orientation another program set (Lightroom's tiff:Orientation, darktable's orientation module) is read whether or
not a recipe of ours exists, and never written (see :mod:`engine.orientation`). A DNG's own XMP packet, where
Lightroom keeps a DNG's edit instead of a sidecar, is read after the sidecars, as one more of them that holds no
recipe of ours and is never written (:mod:`engine.xmp.embedded`).

Writes go to a temporary file that replaces the sidecar in one step, under an exclusive ``fcntl`` lock on a
hidden lock file beside it (``.IMG_0001.CR2.xmp.lock``, removed again by the writer that holds it),
and the sidecar is read again under the lock, so two writers at once each keep the other's changes.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import os
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple

from engine.errors import InputNotFoundError, NewerSettingsError, OutputError, SidecarError, StoredSettingError
from engine.io.bounded import not_a_file, read_regular
from engine.io.probe import exif_orientation
from engine.orientation import Orientation
from engine.output.metadata import XMP_NS_URI, XMP_PREFIX
from engine.output.publish import keep_mode_of
from engine.recipe import Recipe
from engine.xmp.capture_time import capture_time
from engine.xmp.document import (
    MAX_PACKET_BYTES,
    empty_packet,
    parse_packet,
    replace_namespace,
    serialise,
    setting_properties,
    simple_properties,
)
from engine.xmp.embedded import embedded_name, embedded_packet
from engine.xmp.hints import (
    ADOBE_READ,
    DARKTABLE_LABELS,
    adobe_hints,
    adobe_settings,
    clamped_hints,
    colour_labels,
    credits,
    darktable_edits,
    keywords,
    orientation,
    rating,
)
from engine.xmp.location import location
from engine.xmp.recipe_properties import OUTPUT_PROPERTIES, properties_to_recipe, recipe_to_properties
from engine.xmp.sidecar_files import find_sidecars, sidecar_path


@dataclass(frozen=True)
class SidecarInfo:
    """What a raw's sidecars (and a DNG's own XMP) say: our recipe, hints from Adobe, the orientation another
    program set, and the photographer's catalogue data."""

    path: Path  # the sidecar read first (ours when there is one); the raw itself when it has only its own XMP
    recipe: Recipe | None = None  # hostplug's stored recipe
    hints: dict[str, Any] = field(default_factory=dict)  # recipe settings from Adobe crs (when no recipe of ours)
    adobe: dict[str, str] = field(default_factory=dict)  # the crs values the hints came from, as written
    rating: int | None = None
    labels: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)  # every sidecar read, in order
    credits: dict[str, Any] = field(default_factory=dict)  # creator, rights, title, description as output XMP
    location: dict[str, Any] = field(default_factory=dict)  # geotag and IPTC place as output XMP (engine.xmp.location)
    taken: dict[str, Any] = field(default_factory=dict)  # capture times as output XMP (engine.xmp.capture_time)
    orientation: Orientation | None = None  # set by Lightroom, Camera Raw or darktable; wins over the raw's EXIF
    embedded: bool = False  # whether a DNG's own XMP packet was read too, after the sidecars
    adobe_from: str = ""  # the packet the Adobe values came from: a sidecar's path, or the DNG's embedded XMP
    darktable_edits: list[str] = field(default_factory=list)  # darktable's history, which a render does not apply
    darktable_from: str = ""  # the packet darktable's history came from


def _read_packet(path: Path):
    """The parsed packet at ``path`` and its bytes; an empty file (a tool that died before writing) reads as an
    empty packet, and None for its bytes."""
    data = read_regular(path, MAX_PACKET_BYTES, "sidecar", SidecarError)
    if not data.strip():
        return empty_packet(), None
    return parse_packet(data, str(path)), data


_HINTED = set(ADOBE_READ) - {"ProcessVersion"}  # the Adobe settings a render takes (as hints)


def _recipe_properties(tree: Any, where: str) -> dict[str, str]:
    """Our namespace's properties that make a stored recipe: an output's own XMP (its provenance, copied into a
    sidecar by a tool that extracts XMP) holds none of them. StoredSettingError for one that holds an array or a
    structure: a tester's exposure written as an rdf:Bag was passed over, and the sidecar rendered with the
    defaults without a word."""
    properties = setting_properties(tree, XMP_NS_URI, where, loose=OUTPUT_PROPERTIES)
    return {k: v for k, v in properties.items() if k not in OUTPUT_PROPERTIES}


def _packets(raw: Path, sidecars: list[Path]) -> Iterator[tuple[Any, str, bool]]:
    """The XMP packets that speak for ``raw``, parsed, each with the name its messages give it and whether its
    edits apply, in the order their word counts: its ``sidecars``, then a DNG's own packet
    (:mod:`engine.xmp.embedded`), which Lightroom writes instead of a sidecar, or an image's (left out when it
    cannot be read: a JPEG rendered without it before). An image's own XMP gives its catalogue data only: its
    develop settings, rotation and history describe pixels that hold them already (a Lightroom export's +1 EV
    would be applied twice). Lazily: a caller that stops at the first answer reads no further packet."""
    for path in sidecars:
        yield _read_packet(path)[0], str(path), True
    try:
        inside = embedded_packet(raw)
        tree = None if inside is None else parse_packet(inside, embedded_name(raw))
    except SidecarError as e:  # the photographer cannot fix a packet inside the raw the way they fix a sidecar
        if _is_image(raw):  # an image's own, read for its catalogue data only: it rendered without it before
            return
        raise SidecarError(f"{e}; save the metadata to the file again in Lightroom, or remove the packet "
                           f"(exiftool -XMP:all= FILE) to render without its edits") from e
    if tree is not None:
        yield tree, embedded_name(raw), not _is_image(raw)


def read_sidecar(raw: Path) -> SidecarInfo | None:
    """Everything the sidecars of ``raw`` and a DNG's own XMP say, or None without either; :class:`SidecarError`
    for a bad one.

    Our recipe comes from the first sidecar holding one (never from a DNG's own XMP: hostplug writes only
    sidecars); Adobe's values, rating, labels, keywords, credits and orientation from the first packet that has
    each, the sidecars before the DNG's own XMP; Adobe's hints are read only when no recipe of ours exists.
    """
    raw = Path(raw)
    paths = find_sidecars(raw)
    packets = list(_packets(raw, paths))
    if not packets:
        return None
    primary, recipe = paths[0] if paths else raw, None
    adobe: dict[str, Any] = {}
    adobe_from = ""
    stars: int | None = None
    labels: list[str] = []
    words: list[str] = []
    named: dict[str, Any] = {}
    place: dict[str, Any] = {}
    taken: dict[str, Any] = {}
    turn: Orientation | None = None
    darktable: list[str] = []
    darktable_from = ""
    exif = functools.partial(exif_orientation, raw)  # asked only for darktable's version 1 orientation
    for index, (tree, where, edits) in enumerate(packets):
        turn = turn or (orientation(tree, where, exif) if edits else None)
        if not darktable and edits:
            darktable, darktable_from = darktable_edits(tree, where), where
        ours = _recipe_properties(tree, where) if index < len(paths) else {}
        if ours and recipe is None:
            primary, recipe = paths[index], properties_to_recipe(ours, where)
        if edits and not set(adobe) & _HINTED:  # the first packet with settings a render takes (not a crop alone)
            found = adobe_settings(tree)
            if found and (set(found) & _HINTED or not adobe):
                adobe, adobe_from = found, where
        stars = stars if stars is not None else rating(tree)
        labels = labels or colour_labels(tree)
        words = words or keywords(tree)
        named = credits(tree) | named  # each from the first packet that has it
        place = place or location(tree)  # a place and its position from one packet, never mixed
        taken = taken or capture_time(tree)
    # Adobe's values are checked only when they are used: with a recipe of ours, a bad one does not matter.
    hints = adobe_hints(adobe, adobe_from) if recipe is None else {}
    return SidecarInfo(path=primary, recipe=recipe, hints=hints, adobe=adobe, rating=stars, labels=labels,
                       keywords=words, paths=paths, credits=named, location=place, taken=taken, orientation=turn,
                       embedded=len(packets) > len(paths), adobe_from=adobe_from if adobe else "",
                       darktable_edits=darktable, darktable_from=darktable_from if darktable else "")


def _is_image(path: Path) -> bool:
    """Whether ``path`` is a display-referred image (JPEG, PNG, TIFF), whose own XMP is no edit to apply."""
    from engine.io.formats import RGB_SUFFIXES

    return path.suffix.lower() in RGB_SUFFIXES


def sidecar_orientation(raw: Path) -> Orientation | None:
    """The orientation the sidecars of ``raw`` set (the first that sets one: ``IMG_0001.CR2.xmp``, then Adobe's
    ``IMG_0001.xmp``), else a DNG's own XMP, or None: the file's own EXIF orientation applies.
    :class:`SidecarError` for a malformed packet or a value that is no orientation."""
    raw = Path(raw)
    exif = functools.partial(exif_orientation, raw)
    turns = (orientation(tree, where, exif) for tree, where, edits in _packets(raw, find_sidecars(raw)) if edits)
    return next((turn for turn in turns if turn is not None), None)


def apply_hints(recipe: Recipe, hints: dict[str, Any]) -> Recipe:
    """``recipe`` with Adobe's hints applied (as-shot white balance drops a hinted temperature)."""
    return recipe.replace(**hints)


def recipe_for(raw: Path, base: Recipe | None = None) -> Recipe:
    """The recipe to render ``raw`` with: ours if stored; else ``base`` (or defaults) with Adobe's hints."""
    base = base or Recipe()
    info = read_sidecar(Path(raw))
    if info is None:
        return base
    if info.recipe is not None:
        return info.recipe
    return apply_hints(base, info.hints)


def sidecar_recipe(raw: str | Path, changes: Mapping[str, Any] | None = None,
                   base: Recipe | None = None) -> tuple[Recipe, dict[str, Any]]:
    """The recipe to render ``raw`` with and the output XMP its sidecar contributes.

    The recipe is the sidecar's stored one (else ``base``, or the defaults, with the Adobe hints of the sidecar or
    of a DNG's own XMP), with ``changes`` on top (:func:`engine.edits.apply_changes`); the XMP is their rating,
    labels, keywords and credits (see :func:`read_sidecar`). InputNotFoundError when ``raw`` does not exist: a
    mistyped path is not a raw without edits.
    """
    from engine.io.source import check_source_argument

    check_source_argument(raw)
    why = not_a_file(Path(raw))
    if why is not None:
        raise InputNotFoundError(f"{raw}: {why}")
    read = sidecar_render(raw, changes, base)
    return read.recipe, read.catalogue


class SidecarRender(NamedTuple):
    """What a render takes from a raw's sidecars (:func:`sidecar_render`)."""

    recipe: Recipe
    catalogue: dict[str, Any]  # the output XMP: rating, labels, keywords, credits, place
    orientation: Orientation | None  # set by another program (None: the raw's EXIF one applies)
    notice: str | None = None  # what the sidecar asks that a render does not do (another program's crop)


def sidecar_render(raw: str | Path, changes: Mapping[str, Any] | None = None,
                   base: Recipe | None = None) -> SidecarRender:
    """:func:`sidecar_recipe`'s recipe and output XMP, the orientation the sidecars or a DNG's own XMP set and
    a notice of a crop they set, from one reading of them: a sidecar saved meanwhile cannot give a mix of two
    states."""
    from engine.edits import apply_changes
    from engine.io.source import check_source_argument

    check_source_argument(raw)

    info = read_sidecar(Path(raw))
    if info is None:
        return SidecarRender(apply_changes(base, changes), {}, None)
    start = info.recipe if info.recipe is not None else apply_hints(base or Recipe(), info.hints)
    recipe = apply_changes(start, changes)
    return SidecarRender(recipe, catalogue_xmp(info), info.orientation, hints_notice(info, recipe))


def hints_notice(info: SidecarInfo, recipe: Recipe) -> str | None:
    """What a render of ``recipe`` from ``info``'s raw does not do as the sidecars ask: another program's crop
    (:func:`unapplied_crop`), and Lightroom's values beyond the recipe's range (:func:`clamped_notes`)."""
    said = [unapplied_crop(info), *clamped_notes(info, recipe)]
    return "; ".join(note for note in said if note) or None


def clamped_notes(info: SidecarInfo, recipe: Recipe) -> list[str]:
    """A note for each of Lightroom's settings that ``recipe`` took clamped to the recipe's range: where no recipe
    of ours is stored, and only those it still holds (a reviewer's ``--temperature 6000`` over Lightroom's 30000 K
    was told it rendered at 25000)."""
    if info.recipe is not None:
        return []
    notes = []
    for setting, note in clamped_hints(info.adobe, info.adobe_from).items():
        white = setting in ("temperature", "tint")
        if getattr(recipe, setting) == info.hints.get(setting) and (not white or recipe.wb == "custom"):
            notes.append(note)
    return notes


def unapplied_crop(info: SidecarInfo) -> str | None:
    """A note for a crop that Lightroom's or darktable's edit of the raw sets: a render does not crop, and a
    photographer who cropped in darktable got the whole frame without a word (a tester's)."""
    programs = []  # each with the file that holds its edit (a tester's note named darktable's for Lightroom's)
    if info.adobe.get("HasCrop", "").strip().lower() == "true":
        programs.append(f"Lightroom/Camera Raw ({Path(info.adobe_from or info.path).name})")
    if {"crop", "clipping"} & set(info.darktable_edits):
        programs.append(f"darktable ({Path(info.darktable_from or info.path).name})")
    if not programs:
        return None
    return (f"the crop set in {' and '.join(programs)} is not applied; hostplug renders the whole frame (crop the "
            "output in an editor)")


def _hidden(sidecar: Path, suffix: str) -> Path:
    """The hidden file ``.NAME<suffix>`` beside ``sidecar``; for a name too long to take the dot and the suffix,
    ``.hostplug-<hash of the name><suffix>`` (the same for every writer, so the lock still serialises them)."""
    name = f".{sidecar.name}{suffix}"
    if len(os.fsencode(name)) <= 255:
        return sidecar.with_name(name)
    return sidecar.with_name(f".hostplug-{hashlib.sha256(os.fsencode(sidecar.name)).hexdigest()[:24]}{suffix}")


@contextlib.contextmanager
def _locked(sidecar: Path) -> Iterator[None]:
    """Hold an exclusive lock on the hidden lock file beside ``sidecar``, and remove the file when done.

    Removing it is safe because it happens while the lock is held, and a writer that then gets the lock checks
    that its file is still the one at the path (not one removed meanwhile), else opens the new one and waits
    again: so no lock file is left beside a user's raws, and two writers never both hold one."""
    lock_path = _hidden(sidecar, ".lock")
    while True:
        try:
            handle = lock_path.open("a")
        except OSError as e:
            raise SidecarError(f"{sidecar}: cannot write the sidecar ({e.strerror})") from e
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        if _same_file(handle, lock_path):
            break
        handle.close()  # the holder before us removed it: lock the one at the path now
    with handle:
        try:
            yield
        finally:
            lock_path.unlink(missing_ok=True)
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _same_file(handle: IO[str], path: Path) -> bool:
    """Whether the open ``handle`` is still the file at ``path``."""
    try:
        at_path = path.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(handle.fileno())
    return (held.st_dev, held.st_ino) == (at_path.st_dev, at_path.st_ino)


def _replace_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path`` in one step."""
    temporary = _hidden(path, f".{secrets.token_hex(4)}.tmp")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(descriptor, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        keep_mode_of(path, temporary)
        os.replace(temporary, path)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO):  # the disk, not the sidecar: exit 5, as for outputs
            raise OutputError(f"{path}: cannot write the sidecar ({e.strerror}); it is as it was") from e
        raise SidecarError(f"{path}: cannot write the sidecar ({e.strerror})") from e
    finally:
        temporary.unlink(missing_ok=True)


def _store(sidecar: Path, recipe: Recipe) -> None:
    """Merge ``recipe`` into ``sidecar`` (created when missing), leaving every other namespace, and an output's
    provenance and the person's ``description`` note in ours, as they were."""
    if sidecar.exists():  # a FIFO, a device or a link to one is refused (read_regular), never replaced
        tree, original = _read_packet(sidecar)
    else:
        tree, original = empty_packet(), None
    kept = {k: v for k, v in simple_properties(tree, XMP_NS_URI).items() if k in OUTPUT_PROPERTIES | {"description"}}
    replace_namespace(tree, XMP_NS_URI, XMP_PREFIX, {**kept, **recipe_to_properties(recipe)})
    _replace_atomically(sidecar, serialise(tree, original))


def _written_path(sidecar: Path) -> Path:
    """The file a write to ``sidecar`` changes: a symbolic link's target (a sidecar linked from a shared folder
    stays a link, and the file it names gets the edit), else ``sidecar`` itself. A sidecar with other hard links
    is replaced, not written through: a hard-link backup (rsnapshot, Time Machine) keeps its copy."""
    return Path(os.path.realpath(sidecar)) if sidecar.is_symlink() else sidecar


def _check_writable(sidecar: Path) -> None:
    """Refuse a sidecar its owner made read-only (the rename that replaces it would not ask)."""
    try:
        mode = sidecar.stat().st_mode
    except FileNotFoundError:
        return
    except OSError as e:
        raise SidecarError(f"{sidecar}: cannot look at the sidecar ({e.strerror})") from e
    if not mode & 0o222 or not os.access(sidecar, os.W_OK):
        if _read_only_file_system(sidecar.parent):  # chmod cannot help there
            raise SidecarError(f"{sidecar}: the sidecar is on a read-only file system (a locked memory card, a "
                               "share mounted read-only?); copy the raw somewhere writable to store the edit")
        raise SidecarError(f"{sidecar}: the sidecar is read-only; make it writable (chmod u+w) to store the edit")


def _read_only_file_system(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def update_recipe(raw: Path, change: Callable[[Recipe], Recipe]) -> Recipe:
    """Read the recipe of ``raw`` (see :func:`recipe_for`), change it and store it, all under the lock.

    Concurrent updates are serialised, so each sees the other's result. Returns the recipe stored.
    """
    return _store_locked(Path(raw), lambda: change(recipe_for(Path(raw))))


def write_recipe(raw: Path, recipe: Recipe) -> Path:
    """Store ``recipe`` as the recipe of ``raw`` in ``IMG_0001.CR2.xmp``, over the one stored (which is not read:
    this also replaces damaged settings of ours); returns the sidecar's path.

    Other programs' data in the sidecar is kept exactly; a malformed sidecar is refused and left untouched.
    """
    def over_stored() -> Recipe:
        try:
            recipe_for(Path(raw))
        except NewerSettingsError:
            raise
        except StoredSettingError:
            pass  # damaged settings of ours: what the new recipe replaces
        return recipe

    _store_locked(Path(raw), over_stored)
    return sidecar_path(Path(raw))


def _store_locked(raw: Path, make: Callable[[], Recipe]) -> Recipe:
    """Store the recipe ``make`` gives in the sidecar of ``raw``, made and stored under the sidecar's lock."""
    named = sidecar_path(raw)
    sidecar = _written_path(named)
    if not sidecar.parent.is_dir():
        if sidecar != named:  # a link to a share that is not mounted, say
            raise SidecarError(f"{named}: the sidecar is a link to {os.readlink(named)}, whose folder is not there")
        raise SidecarError(f"{sidecar.parent}: no such folder")
    _check_writable(sidecar)
    with _locked(sidecar):
        recipe = make()
        _store(sidecar, recipe)
    return recipe


def catalogue_xmp(info: SidecarInfo | None) -> dict[str, Any]:
    """The rating, colour labels, keywords, credits (creator, rights, title, description), location (geotag,
    place names) and capture time of a sidecar as output XMP (pyexiv2 keys)."""
    if info is None:
        return {}
    xmp: dict[str, Any] = dict(info.credits) | info.location | info.taken
    if info.rating is not None:
        xmp["Xmp.xmp.Rating"] = str(info.rating)
    if len(info.labels) == 1:
        xmp["Xmp.xmp.Label"] = info.labels[0]  # Adobe's one label, as written, which darktable reads too
    elif info.labels:  # darktable's list ("Yellow, Green" in xmp:Label was no label to it, and overrides its list)
        xmp["Xmp.darktable.colorlabels"] = [str(DARKTABLE_LABELS.index(label.casefold())) for label in info.labels
                                            if label.casefold() in DARKTABLE_LABELS]
    if info.keywords:
        xmp["Xmp.dc.subject"] = list(info.keywords)
    return xmp
