"""The editor hand-off: what ``hostplug open`` does, the one command editors' "Edit in" / "Open with" slots call.

Given a raw, ``open`` renders a 16-bit TIFF beside it (``IMG_0001_hostplug.tif``; an unrelated file of that name,
or an earlier render that was changed since, is never replaced: the next free ``IMG_0001_hostplug-2.tif`` is used)
and prints its path. Given an image an editor rendered from a raw (Lightroom hands over ``IMG_0001-Edit.tif``), it
finds the source raw (see :func:`engine.xmp.provenance.find_source`) and re-renders it in place, atomically,
keeping the file name, format, bit depth and colour space the editor expects; a TIFF that ``open`` itself wrote
(``IMG_0001_hostplug.tif``) and that was changed since (a retouch saved over it) is refused instead, never rendered
over. The recipe is the raw's sidecar recipe when it has one, else the one the image was rendered with, else the
defaults; the changes asked for (:mod:`engine.edits`) apply on top.
:func:`open_file` does it all; :func:`plan` only decides.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import InputNotFoundError, OutputError, RecipeError
from engine.io.bounded import not_a_file
from engine.output.formats import SUFFIX_FORMATS
from hostplug.stamps import newer_second, untouched

if TYPE_CHECKING:
    from engine.xmp.provenance import Provenance

RENDERED_SUFFIXES = frozenset(SUFFIX_FORMATS)  # an image an editor rendered, not a raw
OUTPUT_TAG = "_hostplug"
# How editors name the render they hand over: Lightroom's "IMG_0001-Edit.tif", "-Edit-2"; German "-bearbeitet"
HAND_OVER_NAME = re.compile(r"[-_ ](?:edit|edited|bearbeitet)(?:[-_ ]?\d+)?$", re.IGNORECASE)
OWN_NAME = re.compile(rf"{OUTPUT_TAG}(?:-\d+)?$")  # the stem of a TIFF open wrote: IMG_0001_hostplug(-2)
# An editor hands over the render it has just written (RawTherapee's and Capture One's keep the raw's name): a TIFF
# recording no raw, named like it, is taken as one only this soon after it was written
HAND_OVER_FRESH_S = 120.0
OPEN_TRIES = 3  # plans of one open, when other opens of the same raw write its render meanwhile


@dataclass(frozen=True)
class OpenPlan:
    """What ``hostplug open`` will do: render ``source`` into ``target`` with ``recipe`` and these settings."""

    mode: str  # "render" (a raw: new TIFF beside it) or "rerender" (an editor's image, replaced in place)
    source: Path
    target: Path
    recipe: Any  # engine.Recipe
    catalogue: dict[str, Any]  # rating, labels and keywords from the raw's sidecar, for the output's XMP
    bits: int
    space: str
    replace: bool
    recorded: dict[str, Any] = field(default_factory=dict)  # a hostplug output's own size and quality, to keep
    compression: str = "none"  # the replaced TIFF's
    # What the image replaced holds (copyright, keywords, rating, GPS) stays in it, unless it is open's own TIFF;
    # an editor's image (a hand-over name, or no record of ours) has its own win over the sidecar's, at every
    # hand-over (Lightroom hands the same -Edit.tif over again, which then carries our record), an output of ours
    # has the sidecar's win (the sidecar is where a rating was changed since)
    keeps_metadata: bool = False
    editors: bool = False
    notice: str | None = None  # a crop the raw's sidecar sets, which the render does not apply


def check_readable(path: Path) -> None:
    """InputNotFoundError unless ``path`` is a file this process can read."""
    why = not_a_file(path)
    if why is not None:
        raise InputNotFoundError(f"{path}: {why}")
    try:
        with path.open("rb") as f:
            f.read(1)
    except OSError as e:
        raise InputNotFoundError(f"{path}: cannot read ({e.strerror})") from e


def rendered_from(provenance: Provenance, raw: Path) -> bool:
    """Whether the image ``provenance`` was read from is a hostplug render of ``raw`` (by its recorded hash, else
    its recorded path)."""
    from engine.output.export import file_sha256

    if provenance.sha256 is not None:
        return provenance.sha256 == file_sha256(raw.resolve())
    return provenance.path is not None and provenance.path == raw.resolve()


def output_for_raw(raw: Path) -> tuple[Path, bool]:
    """Where to render ``raw``: (path, whether it replaces an earlier render of the same raw that nobody changed
    since it was written; a retouched one is kept, and the next free name taken)."""
    from engine.xmp.provenance import read_provenance

    index = 1
    while True:
        name = f"{raw.stem}{OUTPUT_TAG}{'' if index == 1 else f'-{index}'}.tif"
        target = raw.with_name(name)
        if not os.path.lexists(target):  # a dangling link or a link loop takes the name too
            return target, False
        provenance = read_provenance(target)
        if rendered_from(provenance, raw) and _not_retouched(target, provenance):
            return target, True
        index += 1


def _not_retouched(image: Path, provenance: Provenance) -> bool:
    """Whether ``image``, hostplug's render, may be rendered over: it records when it was written and still has
    that time (:func:`untouched`), or it records none (an older version's, or `hostplug render`'s) and was written
    in the last :data:`HAND_OVER_FRESH_S`. A retouch that kept our XMP is otherwise not told from the render (a
    tester's was lost)."""
    if provenance.written is None:
        return _just_written(image)
    return untouched(image, provenance.written)


def colour_space(path: Path) -> str:
    """The colour space key of an existing image, from its ICC profile ("srgb" without a known one), so a
    re-render keeps what the editor chose (Lightroom's "Edit in" may ask for ProPhoto RGB or Adobe RGB)."""
    from engine.colour import SPACES

    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tiff:
                tag = tiff.pages.first.tags.get(34675)
                profile = bytes(tag.value) if tag is not None else None
        else:
            from PIL import Image

            with Image.open(path) as image:
                profile = image.info.get("icc_profile")
    except Exception:  # noqa: BLE001 - an unreadable profile gets the default
        return "srgb"
    return _space_of(profile, SPACES)


def _space_of(profile: bytes | None, spaces: dict) -> str:
    """The key of the colour space an ICC profile describes (by its description); "srgb" when unknown."""
    if not profile:
        return "srgb"
    from PIL import ImageCms

    try:
        description = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(profile))).strip()
    except Exception:  # noqa: BLE001 - littlecms raises its own types for a damaged profile
        return "srgb"
    folded = description.casefold()
    for key, space in spaces.items():
        if space.name.casefold() in folded or key.replace("-", " ") in folded.replace("-", " "):
            return key
    return "srgb"


def plan(path: Path, search: Iterable[Path] = (), changes: Mapping[str, Any] | None = None) -> OpenPlan:
    """Decide what ``hostplug open PATH`` does with the recipe ``changes`` asked for (nothing is written)."""
    from engine.edits import apply_changes
    from engine.rerender import image_format
    from engine.xmp.provenance import read_provenance
    from engine.xmp.sidecar import hints_notice, read_sidecar, sidecar_recipe, unapplied_crop

    check_readable(path)
    if path.suffix.lower() not in RENDERED_SUFFIXES:
        target, replace = output_for_raw(path)
        recipe, catalogue = sidecar_recipe(path, changes)
        info = read_sidecar(path)
        return OpenPlan("render", path, target, recipe, catalogue, 16, "srgb", replace,
                        notice=hints_notice(info, recipe) if info is not None else None)
    _, bits, compression = image_format(path)  # refuses a file that is no image before anything else
    provenance = read_provenance(path)
    if provenance.recipe_error is not None:  # rendered again without it, the image would lose its edits
        raise RecipeError(f"{path}: its recorded recipe cannot be used: {provenance.recipe_error}; it is left as "
                          "it is")
    raw = _source_of(path, search, provenance)
    _check_replaceable(path, raw, provenance)
    if not untouched(path, provenance.written):
        raise OutputError(f"{path} was changed since hostplug wrote it (retouched in an editor?); it is kept as it "
                          f"is: open the raw for a new render beside it ({open_command(raw)})")
    check_readable(raw)
    recipe, catalogue = sidecar_recipe(raw, changes)
    info = read_sidecar(raw)
    stored = provenance.recipe
    notice = hints_notice(info, recipe) if info is not None else None
    if (info is None or info.recipe is None) and stored is not None:
        recipe = apply_changes(stored, changes)
        notice = unapplied_crop(info) if info is not None else None  # Adobe's settings are not the recipe here
    # a hostplug output keeps its size and JPEG quality, as a re-render does: the file an editor has open
    recorded = _recorded_output(path) if stored is not None else {}
    editors = bool(HAND_OVER_NAME.search(path.stem)) or not provenance.from_hostplug
    return OpenPlan("rerender", raw, path, recipe, catalogue, bits if bits in (8, 16) else 16, colour_space(path),
                    True, recorded, compression, keeps_metadata=not OWN_NAME.search(path.stem),
                    editors=editors, notice=notice)


def _source_of(image: Path, search: Iterable[Path], provenance: Provenance) -> Path:
    """The raw ``image`` was rendered from (:func:`engine.xmp.provenance.find_source`). An image that records none,
    is not named as an editor hands a render over and has no raw of its name beside it is no editor's render: a
    JPEG-only shot (a tester's was sent to look for a raw with --search, which could never help)."""
    from engine.errors import InputNotFoundError
    from engine.xmp.provenance import find_source

    try:
        return find_source(image, search)
    except InputNotFoundError:
        from engine.io.formats import is_raw_name

        raw_named = any(is_raw_name(Path(name)) for name in provenance.names)  # an editor's export of a JPEG names it
        if provenance.sha256 or provenance.path or raw_named or HAND_OVER_NAME.search(image.stem):
            raise  # an editor's render whose raw was moved: --search finds it
        target = image.with_name(f"{image.stem}_rendered.tif")
        raise InputNotFoundError(f"{image}: an image with no raw of its name beside it, and it records none it "
                                 "was rendered from; open takes a raw, or an editor's render of one (--search "
                                 f"names the raw's folder); to render this image itself: hostplug render "
                                 f"{shlex.quote(str(image))} -o {shlex.quote(str(target))}") from None


def _recorded_output(image: Path) -> dict[str, Any]:
    """The size, quality and colour space a hostplug output recorded; {} when that record is damaged (the image is
    then rendered again as an editor's image, at full size, as it was before the record was read)."""
    from engine.rerender import read_record

    try:
        return read_record(image).output
    except RecipeError:
        return {}


def _check_replaceable(image: Path, raw: Path, provenance: Provenance) -> None:
    """Refuse to replace an image that may be somebody's own work:

    - one named as ``open``'s own TIFF that no longer carries hostplug's record (an editor saved over it and
      dropped hostplug's XMP: GIMP's TIFF export writes none);
    - a JPEG or PNG that records no raw it was rendered from: matched to ``raw`` by its name alone it is most
      likely the camera's own JPEG of a RAW+JPEG pair, not an editor's render;
    - any other image without hostplug's record whose name is not an editor's hand-over name (Lightroom's
      ``-Edit``) and that was not written in the last :data:`HAND_OVER_FRESH_S`: ``IMG_0001.tif`` or
      ``IMG_0001 copy.tif`` beside the raw is then more likely an export or a copy someone made than a render an
      editor has just handed over. Recording its raw (``xmpMM:DerivedFrom``) does not make it one: darktable
      writes that into every export;
    - a darktable export (its develop history is in its XMP, or darktable is named as its creator tool, when it
      was exported without the history), however fresh;
    - a render of ``hostplug render`` (which records no write time to tell a retouch by) not written in the last
      :data:`HAND_OVER_FRESH_S` nor named as an editor's hand-over.
    """
    ours = provenance.from_hostplug
    if OWN_NAME.search(image.stem) and not ours:
        raise OutputError(f"{image} was changed since hostplug wrote it (it no longer carries hostplug's record: "
                          f"retouched in an editor?); it is kept as it is: open the raw for a new render beside it "
                          f"({open_command(raw)})")
    if ours:
        saved_by = provenance.saved_by
        if saved_by and not saved_by.lower().startswith("hostplug") and not HAND_OVER_NAME.search(image.stem):
            # an editor's export keeps hostplug's record (GIMP's, by default): a tester's fresh retouch was lost
            raise OutputError(f"{image} was saved by {saved_by}, not by hostplug (an editor's export keeps "
                              f"hostplug's record); it is left as it is: open the raw for a new render "
                              f"({open_command(raw)})")
        # a render of `hostplug render` (or an older version's) records no time it was written, so a retouch saved
        # over it with our record kept is not told from the render: it was rendered over (a tester's)
        # (one that records its write time is checked against it by plan(), with its own message)
        if provenance.written is None and not HAND_OVER_NAME.search(image.stem) and not _just_written(image):
            quoted = shlex.quote(str(image))
            again = f"open the raw for a new render beside it ({open_command(raw)})" if OWN_NAME.search(
                image.stem) else f"hostplug rerender {quoted} renders it again beside it (adding -o {quoted} " \
                                 "--overwrite, in its place)"
            raise OutputError(f"{image} is a hostplug render that records no time it was written, so a retouch "
                              f"since cannot be told; it is left as it is: {again}")
        return
    if provenance.darktable_export:  # however fresh: darktable hands nothing over to be rendered in place
        raise OutputError(f"{image} is a darktable export (its XMP holds darktable's develop history or names "
                          f"darktable as its creator); it is left as it is: open the raw to render it "
                          f"({open_command(raw)})")
    if image.suffix.lower() not in (".tif", ".tiff") and not provenance.names:
        raise OutputError(f"{image} records no raw it was rendered from (the camera's own JPEG beside {raw.name}?); "
                          f"it is left as it is: open the raw to render it ({open_command(raw)})")
    if not HAND_OVER_NAME.search(image.stem) and not _just_written(image):
        records = "was not rendered by hostplug" if provenance.names else "records no raw it was rendered from"
        raise OutputError(f"{image} {records}, is not named as an editor hands a render over ({raw.stem}-Edit.tif) "
                          f"and was not just written: it may be your own export or copy, so it is left as it is; "
                          f"open the raw to render it ({open_command(raw)})")


def _just_written(image: Path) -> bool:
    """Whether ``image`` was written within :data:`HAND_OVER_FRESH_S` (an editor handing over its render)."""
    try:
        return time.time() - image.stat().st_mtime <= HAND_OVER_FRESH_S
    except OSError:
        return False


def open_command(raw: Path) -> str:
    """The command that opens ``raw``, quoted so that it can be pasted into a shell."""
    return f"hostplug open {shlex.quote(str(raw))}"


def open_file(path: Path, search: Iterable[Path] = (), changes: Mapping[str, Any] | None = None, *,
              device: str = "cpu", opener: Callable[[Path], Any] | None = None, cache: Any = None,
              writing: Callable[[str], contextlib.AbstractContextManager[None]] | None = None,
              progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Render a raw to a 16-bit TIFF beside it, or re-render an editor's image of a raw in place (see the module
    docstring); returns what ``hostplug open --json`` prints (the image to open is ``output``).

    The render service passes ``opener`` (its cache of opened raws) and ``cache`` (its full-size stage
    checkpoints, :class:`engine.stage_cache.StageCache`), so opening a raw again after a change resumes after
    the last unchanged stage, and ``writing``, which records the output while it is written (so a service killed
    mid-write has its partial file removed when the next one starts), and ``progress``, which stops the render
    when its client has gone."""
    start = time.perf_counter()
    for _ in range(OPEN_TRIES):
        decided = plan(Path(path), tuple(search), changes)
        if not os.access(decided.target.parent, os.W_OK):
            raise OutputError(f"cannot write {decided.target}: folder {decided.target.parent} is not writable (a "
                              "memory card, a read-only share?); copy the raw to a folder you can write to, or "
                              f"render it elsewhere: hostplug render {shlex.quote(str(decided.source))} -o OUT.tif")
        try:
            result = _render_planned(decided, device, opener, cache, writing, progress)
            break
        except _RetouchedMeanwhileError:
            if decided.mode == "rerender":  # the image handed over was saved again meanwhile: that save is kept
                raise OutputError(f"{decided.target} was changed while hostplug rendered it again; it is kept as "
                                  "it is, and the new render was not written: open it again") from None
            continue  # plan again: the raw's render takes the next free name (or replaces its own, untouched)
        except OutputError:
            if decided.replace or not decided.target.exists():
                raise
            # another open of the same raw wrote that name meanwhile: plan again (its render, untouched, is ours)
    else:
        raise OutputError(f"{path}: {OPEN_TRIES} other opens of it wrote its render meanwhile; open it again")
    # "input": the file given, as every command's JSON names its argument (a handed-back TIFF's raw is "source")
    result.update(input=str(path), mode=decided.mode, source=str(decided.source),
                  seconds=round(time.perf_counter() - start, 3), bits=decided.bits, colour_space=decided.space)
    return result


def _render_planned(decided: OpenPlan, device: str, opener: Callable[[Path], Any] | None, cache: Any,
                    writing: Callable[[str], contextlib.AbstractContextManager[None]] | None,
                    progress: Callable[[str, int, int], None] | None) -> dict[str, Any]:
    """Render what :func:`plan` decided (see :func:`open_file` for the arguments)."""
    from engine.output.export import render_file
    from engine.output.formats import OutputOptions

    recorded = decided.recorded
    # open's own TIFFs (a raw's, or one of them opened itself) record when they were written, so a retouch saved
    # over one is never rendered over (see untouched()). An editor's TIFF (Lightroom's -Edit.tif) is not stamped:
    # its editor writes metadata into it, which moves the time without a retouch.
    stamped = decided.mode == "render" or bool(OWN_NAME.search(decided.target.stem))
    options = OutputOptions(bits=decided.bits, space=decided.space, overwrite=decided.replace,
                            long_edge=recorded.get("long_edge"), quality=recorded.get("quality", 92),
                            compression=decided.compression,
                            modified=newer_second(decided.target) if stamped else None)
    source = opener(decided.source) if opener is not None else decided.source
    catalogue = decided.catalogue
    if decided.keeps_metadata:
        source, catalogue = _keeping_metadata_of(decided.target, source, catalogue, decided.editors)
    seen = _file_state(decided.target)
    with writing(str(decided.target)) if writing is not None else contextlib.nullcontext():
        result = render_file(source, decided.target, decided.recipe, options, extra_xmp=catalogue,
                             device=device, cache=cache, progress=progress,
                             render_size=recorded.get("rendered_at", "by outputs"),
                             before_naming=lambda targets: _unchanged_since(targets, seen)).as_dict()
    return result | ({"notice": decided.notice} if decided.notice else {})


# XMP of an image rendered again in place that describes the old file, not the picture: hostplug's record (made
# anew), the file's identity and history, its layout, when and by what it was written, darktable's develop history
_NOT_KEPT_XMP = ("Xmp.hostplug.", "Xmp.xmpMM.", "Xmp.tiff.", "Xmp.darktable.", "Xmp.xmp.CreatorTool",
                 "Xmp.xmp.ModifyDate", "Xmp.xmp.MetadataDate", "Xmp.exif.PixelXDimension", "Xmp.exif.PixelYDimension")


def _keeping_metadata_of(image: Path, source: Any, catalogue: dict[str, Any],
                         image_wins: bool) -> tuple[Any, dict[str, Any]]:
    """The source with ``image``'s own EXIF over the raw's, and the output XMP with ``image``'s, over the sidecar's
    where ``image_wins``, else under it: an editor's hand-over TIFF (Lightroom's ``-Edit.tif``) carries the
    catalogue's copyright, keywords, rating and GPS, which the raw and its sidecar may lack, and a render in place
    must not drop them."""
    import dataclasses

    import engine
    from engine.output.metadata import EXIV2, exiv2_image, read_exif, register_namespace

    register_namespace()
    try:
        with EXIV2, exiv2_image(image) as handle:
            xmp = handle.read_xmp()
    except Exception:  # noqa: BLE001 - pyexiv2 raises RuntimeError or its own types; no XMP keeps none
        xmp = {}
    kept = {key: value for key, value in xmp.items() if not key.startswith(_NOT_KEPT_XMP)}
    opened = source if isinstance(source, engine.Source) else engine.open(source)
    merged = {**catalogue, **kept} if image_wins else {**kept, **catalogue}
    return dataclasses.replace(opened, exif={**opened.exif, **read_exif(image)}), merged


class _RetouchedMeanwhileError(OutputError):
    """The render to be replaced was retouched while the new one rendered."""


def _file_state(path: Path) -> tuple[int, int, int] | None:
    """What tells a file from the same file written again: its inode, size and modification time (None: none)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _unchanged_since(targets: list[Path], seen: tuple[int, int, int] | None) -> None:
    """Stop before the name is taken when the file there changed while the render ran (an editor saved a retouch
    over it, with or without our record in it; another program put a file there): what :func:`plan` decided
    about it no longer holds."""
    for target in targets:
        if _file_state(target) != seen:
            raise _RetouchedMeanwhileError(f"{target} was changed while hostplug rendered it again; it is kept")
