"""Re-rendering an output: what it records about its making, and which recipe and format to use again.

Every output carries its recipe, what the stages decided, its source's name, path and sha256, the engine
version and the model hashes (see :mod:`engine.output.export`); :func:`engine.provenance.find_source` locates the raw
again from those. :func:`plan_rerender` decides the recipe: the stored one plus the user's changes.
When the engine or its models changed since the output was made and the user changed nothing, the stored
photofinish operator parameters are pinned in the recipe, so the look is reproduced (like Capture One's
process versions); when the user changed settings, the look is derived afresh and the notice says so.
A white balance the output estimated from the image (``--wb auto``, or a file without as-shot white balance)
is pinned the same way, its stored neutral, unless the user changed the white balance: a new estimator does
not change old outputs, nor does an exposure change. The orientation the output applied (its raw's EXIF, or the one
its sidecar set) is applied again, whatever the sidecar says now; an output that recorded none (made before
hostplug recorded it) takes the one a render takes.

:func:`rerender_file` does all of it: read the record, find the source, plan the recipe, render and write.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

from engine.errors import (
    CorruptInputError,
    InputNotFoundError,
    OptionError,
    OutputOptionError,
    OutputTakenError,
    RecipeError,
    SidecarError,
    UnsupportedInputError,
    shown,
)
from engine.io.bounded import not_a_file
from engine.io.formats import image_format_of
from engine.orientation import Orientation
from engine.output.formats import (
    FORMAT_SUFFIX,
    MIN_LONG_EDGE,
    SPACE_NAMES,
    SUFFIX_FORMATS,
    OutputOptions,
)
from engine.output.metadata import EXIV2, XMP_PREFIX, exiv2_image, register_namespace
from engine.recipe import Recipe, StageSettings, parse_json
from engine.results import ProgressCallback, RenderResult
from engine.xmp import capture_time, location
from engine.xmp.hints import CREDIT_KEYS
from engine.xmp.recipe_properties import check_stages

CATALOGUE_KEYS = ("Xmp.xmp.Rating", "Xmp.xmp.Label", "Xmp.darktable.colorlabels", "Xmp.dc.subject",
                  *CREDIT_KEYS, *location.OUTPUT_KEYS, *capture_time.OUTPUT_KEYS)


@dataclass(frozen=True)
class RenderRecord:
    """What an output says about how it was made (its source is found by :mod:`engine.xmp.provenance`)."""

    path: Path
    recipe: Recipe
    decided: dict[str, Any]
    engine_version: str
    models: dict[str, str]
    output: dict[str, Any] = field(default_factory=dict)  # colour space, long edge, JPEG quality
    catalogue: dict[str, Any] = field(default_factory=dict)  # rating, label, keywords, credits, to carry over
    source_sha256: str | None = None  # of the raw, as recorded (None: an output that records none)
    orientation: Orientation | None = None  # the one it applied; None when it recorded none (an older output)


def _json(xmp: dict[str, Any], name: str, path: Path, default: Any = None) -> Any:
    text = xmp.get(f"Xmp.{XMP_PREFIX}.{name}")
    if text is None:
        return default
    return parse_json(text, f"{path}: its hostplug:{name}")


def _json_object(xmp: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    value = _json(xmp, name, path, {})
    if not isinstance(value, dict):
        raise RecipeError(f"{path}: its hostplug:{name} is not a JSON object; the file's record is damaged")
    return value


def _output_options(xmp: dict[str, Any], path: Path) -> dict[str, Any]:
    """The recorded output options, each of the type a re-render passes on (a damaged record is one line)."""
    output = _json_object(xmp, "output", path)

    def counts(key: str, low: int, high: int | None = None) -> bool:
        value = output.get(key)
        return value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= low
                                 and (high is None or value <= high))

    # each as OutputOptions takes it: a damaged one was reported as a wrong option, exit 2, not naming the file
    if not (counts("long_edge", MIN_LONG_EDGE) and counts("rendered_at", MIN_LONG_EDGE) and counts("quality", 1, 100)
            and output.get("space", "srgb") in SPACE_NAMES):
        raise RecipeError(f"{path}: its hostplug:output {shown(output)} is damaged; re-render from the raw "
                          "(hostplug render) instead")
    return output


def read_record(path: Path) -> RenderRecord:
    """Read how an output was made from its XMP; a clear error when it is not a hostplug output."""
    why = not_a_file(path)
    if why is not None:
        raise InputNotFoundError(f"{path}: {why}")
    register_namespace()
    try:
        with EXIV2, exiv2_image(path) as image:
            xmp = image.read_xmp()
    except RuntimeError as e:
        raise UnsupportedInputError(f"{path}: not an image whose metadata hostplug can read "
                                    f"({' '.join(str(e).split())}); only hostplug outputs can be re-rendered") from e
    stored = xmp.get(f"Xmp.{XMP_PREFIX}.recipe")
    if not stored:
        raise RecipeError(f"{path}: records no hostplug recipe; only hostplug outputs can be re-rendered")
    try:
        recipe = Recipe.from_json(stored)
        check_stages(recipe)  # a stage setting out of range was said at render, without the file's name
    except RecipeError as e:
        raise RecipeError(f"{path}: its recorded recipe cannot be used: {e}") from e
    decided = _json_object(xmp, "decided", path)
    turned = decided.get("orientation")
    return RenderRecord(
        path=path,
        recipe=recipe,
        decided=decided,
        engine_version=xmp.get(f"Xmp.{XMP_PREFIX}.engineVersion", ""),
        models=_json_object(xmp, "models", path),
        output=_output_options(xmp, path),
        catalogue={key: xmp[key] for key in CATALOGUE_KEYS if key in xmp},
        source_sha256=xmp.get(f"Xmp.{XMP_PREFIX}.sourceSHA256") or None,
        orientation=Orientation.from_note(turned, str(path)) if turned is not None else None,
    )


def _current_catalogue(source: Path, record: RenderRecord) -> tuple[dict[str, Any], str | None]:
    """The rating, labels, keywords, credits and location the raw's sidecar (or a DNG's own XMP) holds now: a
    photographer who rated or untagged the raw since expects the new output to say so (a client's keyword removed
    came back). The output's own where the raw has none, or one that cannot be read (the recipe comes from the
    output anyway), with a notice saying so; and a notice of a crop the sidecar sets, which is not applied."""
    from engine.xmp.sidecar import catalogue_xmp, read_sidecar, unapplied_crop

    try:
        info = read_sidecar(source)
    except SidecarError as e:
        return record.catalogue, f"the raw's sidecar cannot be read ({e}); the rating and keywords are the output's"
    if info is None:
        return record.catalogue, None
    return catalogue_xmp(info), unapplied_crop(info)


def _without_pin(recipe: Recipe) -> Recipe:
    """``recipe`` with any pinned photofinish operators removed, so the look is derived afresh."""
    settings = recipe.stage("photofinish")
    if "operators" not in settings.params:
        return recipe
    params = {k: v for k, v in settings.params.items() if k != "operators"}
    stages = dict(recipe.stages)
    stages["photofinish"] = replace(settings, params=params)
    if stages["photofinish"] == StageSettings():
        del stages["photofinish"]
    return recipe.replace(stages=stages)


def _with_pin(recipe: Recipe, operators: dict[str, Any]) -> Recipe:
    """``recipe`` with the photofinish operator parameters fixed to ``operators``."""
    settings = recipe.stage("photofinish")
    stages = {**recipe.stages, "photofinish": replace(settings, params={**settings.params, "operators": operators})}
    return recipe.replace(stages=stages)


def _white_balance_of(recipe: Recipe) -> tuple[Any, ...]:
    return recipe.wb, recipe.temperature, recipe.tint, recipe.stage("white_balance")


def _with_estimated_white_pinned(recipe: Recipe, record: RenderRecord) -> Recipe:
    """``recipe`` with the white balance neutral the output estimated from its image (its decided white balance
    names an ``estimator``) pinned, unless the user changed the white balance settings."""
    decided = record.decided.get("white_balance", {})
    if "estimator" not in decided or _white_balance_of(recipe) != _white_balance_of(record.recipe):
        return recipe
    settings = recipe.stage("white_balance")
    params = {**settings.params, "neutral": [float(v) for v in decided["neutral"]]}
    return recipe.replace(stages={**recipe.stages, "white_balance": replace(settings, params=params)})


def plan_rerender(record: RenderRecord, changed: Recipe, engine_version: str,
                  models: dict[str, str]) -> tuple[Recipe, str | None]:
    """The recipe to re-render with, and a one-line notice when the engine or models changed (else None).

    ``changed`` is the stored recipe with the user's changes applied (equal to it when there are none).
    """
    unchanged = changed == record.recipe  # equal recipes, however their numbers were typed (0 and 0.0)
    what = []
    if record.engine_version != engine_version:
        what.append(f"engine {record.engine_version or 'unknown'} -> {engine_version}")
    if record.models != models:
        what.append("models changed")
    if unchanged and not what:
        return changed, None
    if not unchanged:
        fixed_by_user = changed.stage("photofinish").params.get("operators") != \
            record.recipe.stage("photofinish").params.get("operators")
        recipe = changed if fixed_by_user else _without_pin(changed)
        if not what:
            return recipe, None
        return _with_estimated_white_pinned(recipe, record), (
            f"since {record.path.name} was made: {', '.join(what)}; the look is derived afresh from the changed "
            "settings, so it may differ from the original beyond your changes")
    recipe = _with_estimated_white_pinned(changed, record)
    operators = record.decided.get("photofinish", {}).get("operators")
    if operators is None:
        return recipe, (f"since {record.path.name} was made: {', '.join(what)}; it recorded no photofinish "
                        "parameters to pin, so the look may differ")
    return _with_pin(recipe, operators), (
        f"since {record.path.name} was made: {', '.join(what)}; kept its stored photofinish operator "
        "parameters (tone, local tone, colour) and any estimated white balance so the look is reproduced; "
        "other stages use the current engine")


class ImageLayout(NamedTuple):
    """How an image file is stored, read from the file: what a re-render of it must match."""

    format: str  # "tiff", "png" or "jpeg"
    bits: int  # per channel
    compression: str = "none"  # a TIFF's, as engine.output.formats.TIFF_COMPRESSIONS names it


def image_format(path: Path) -> ImageLayout:
    """The format, bits per channel and (TIFF) compression of an image file, read from the file;
    UnsupportedInputError (exit 3) for a file that is none of them: the input is wrong, not the output."""
    with path.open("rb") as f:
        head = f.read(32)
    fmt = image_format_of(head)
    if fmt is None:
        raise UnsupportedInputError(f"{path}: not a TIFF, PNG or JPEG file")
    if fmt == "jpeg":
        return ImageLayout(fmt, 8)
    if fmt == "png":
        if len(head) < 25:
            raise CorruptInputError(f"{path}: the PNG file is truncated (it ends inside its header)")
        return ImageLayout(fmt, head[24])  # IHDR bit depth
    return _tiff_layout(path)


def _tiff_layout(path: Path) -> ImageLayout:
    """A TIFF's first page: bits per channel and compression ("none", else "deflate": the one hostplug writes,
    which keeps an editor's LZW or ZIP TIFF compressed when it is rendered again in place, as a tester's LZW
    TIFF grew 55 % uncompressed);
    CorruptInputError for one tifffile cannot read (truncated, or its header points nowhere), whatever tifffile
    raises for it."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tiff:
            page = tiff.pages.first
            bits, compression = int(page.bitspersample), int(page.compression)
    except Exception as e:  # noqa: BLE001 - tifffile raises IndexError, ValueError, TiffFileError... on damage
        raise CorruptInputError(f"{path}: the TIFF file is damaged or truncated (its first image cannot be "
                                "read)") from e
    return ImageLayout("tiff", bits, "none" if compression == tifffile.COMPRESSION.NONE else "deflate")


TAKEN_TRIES = 5  # free names tried when other re-renders of the same output take them first


def rerender_target(output: Path, fmt: str) -> Path:
    """A free name beside ``output``: ``NAME_rerender.EXT``, then ``NAME_rerender-2.EXT``, ... (numbered as the other
    names hostplug finds free are: ``IMG_0001_hostplug-2.tif``)"""
    # the output's own suffix, unless it names no format (an output named "x.v2" with --format tiff)
    suffix = output.suffix if output.suffix.lower() in SUFFIX_FORMATS else FORMAT_SUFFIX[fmt]
    candidate = output.with_name(f"{output.stem}_rerender{suffix}")
    number = 2
    while os.path.lexists(candidate):  # a dangling link or a link loop takes the name too
        candidate = output.with_name(f"{output.stem}_rerender-{number}{suffix}")
        number += 1
    return candidate


def _path_argument(value: Any, name: str) -> Path:
    if not isinstance(value, (str, os.PathLike)):
        raise OptionError(f"{name} must be a path (str or pathlib.Path), not {type(value).__name__}")
    return Path(value)


def rerender_file(output: str | Path, changes: Mapping[str, Any] | None = None, *, target: str | Path | None = None,
                  search: str | Path | Iterable[str | Path] = (), overwrite: bool = False, device: str = "cpu",
                  progress: ProgressCallback | None = None) -> RenderResult:
    """Render ``output``'s source raw again with its stored recipe plus ``changes`` (see :mod:`engine.edits`).

    The raw is found by :func:`engine.xmp.provenance.find_source` (beside ``output``, at its recorded path, in
    ``search``, a folder or several) and checked against its recorded SHA-256. The new file (``target``, default
    ``NAME_rerender.EXT`` beside ``output``) has the output's format, bit depth, colour space, size and JPEG
    quality, and the rating, labels, keywords, credits and place the raw's sidecar holds now (the output's where
    the raw has none), and is turned upright as ``output`` was. The result's ``notice`` says what could not be
    reproduced (see :func:`plan_rerender`), an unreadable sidecar and a crop it sets; its ``source`` is the raw.

        engine.rerender_file("IMG_0001.tif", {"exposure": 0.5}, target="IMG_0001_brighter.tif")
    """
    from engine import __version__
    from engine.edits import apply_changes
    from engine.models import model_hashes
    from engine.output.export import render_files
    from engine.xmp.provenance import find_source

    output = _path_argument(output, "output")
    searched = [search] if isinstance(search, (str, os.PathLike)) else list(search) if isinstance(
        search, Iterable) else None  # a generator is read once
    if searched is None or not all(isinstance(s, (str, os.PathLike)) for s in searched):
        raise OptionError(f"search must be a folder's path or a list of them, not {type(search).__name__}")
    target = _path_argument(target, "target") if target is not None else None
    record = read_record(output)
    changed = apply_changes(record.recipe, changes)
    try:
        recipe, notice = plan_rerender(record, changed, __version__, model_hashes())
    except (AttributeError, TypeError, ValueError) as e:  # a recorded decision of the wrong shape
        raise RecipeError(f"{output}: its recorded decisions (hostplug:decided) are damaged ({e}); re-render from "
                          "the raw (hostplug render) instead") from None
    source = find_source(output, [Path(s) for s in searched])
    catalogue, also_said = _current_catalogue(source, record)
    if record.source_sha256 is None:  # (a damaged one find_source refused): the raw is taken by its name alone
        unchecked = f"{output.name} records no SHA-256 of its raw, so {source} was taken by its name, unchecked"
        also_said = "; ".join(n for n in (unchecked, also_said) if n)
    fmt, bits, compression = image_format(output)
    new = target if target is not None else rerender_target(output, fmt)
    if SUFFIX_FORMATS.get(new.suffix.lower(), fmt) != fmt:  # (a suffix that names no format takes the output's)
        raise OutputOptionError(f"{new}: {output.name} is {fmt.upper()}; give the new file its suffix, "
                                f"{FORMAT_SUFFIX[fmt]} (in Python: target's suffix)")
    # (a null quality is none recorded: it was said as a wrong option, exit 2, not naming the file; a null
    # long edge or render size means the whole picture)
    options = OutputOptions(format=fmt, bits=bits, quality=record.output.get("quality") or 92,
                            space=record.output.get("space", "srgb"), long_edge=record.output.get("long_edge"),
                            overwrite=overwrite, compression=compression)
    for _ in range(TAKEN_TRIES):
        try:
            result = render_files(source, [(new, options)], recipe, extra_xmp=catalogue, device=device,
                                  progress=progress, orientation=record.orientation,
                                  render_size=record.output.get("rendered_at", "by outputs"))
            said = (notice, also_said, result.notice)  # (the render's own: EXIF an output could not hold)
            return replace(result, source=source, notice="; ".join(n for n in said if n) or None)
        except OutputTakenError:
            if target is not None:
                raise
            new = rerender_target(output, fmt)  # another re-render of this output took that name: the next free one
    raise OutputTakenError(f"{output}: {TAKEN_TRIES} free names beside it were taken by other re-renders while "
                           "this one rendered; name the re-render (target=, --out)")
