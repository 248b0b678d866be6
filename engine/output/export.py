"""Writing a render to a file with everything a photographer expects to travel with it.

The pixels go through :func:`engine.output.write.write_image` (ICC profile, atomic write); this module adds the
metadata: the source's EXIF and GPS, and XMP that records how the file was made (its recipe, the source it
was derived from and that source's content hash, the engine version), so it can be re-rendered later.

:func:`render_file` is a whole render from a file to a file: the raw's sidecar recipe with the changes asked
for, the render, and the output with its metadata. :func:`render_files` is the same into several outputs at
once (a hot folder's). The command line, the editor hand-off and the watch daemon all call these.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from engine.errors import OptionError, OutputError, RecipeError
from engine.filehash import file_sha256
from engine.io.source import Source, check_source_argument
from engine.orientation import Orientation
from engine.output import write as _write
from engine.output.formats import OutputOptions, checked_options, resolve_format
from engine.output.metadata import XMP_PREFIX, exif_left_out, xmp_file_name
from engine.output.publish import discard
from engine.recipe import Recipe
from engine.results import ProgressCallback, Rendered, RenderResult
from engine.stage_cache import StageCache
from engine.xmp.capture_time import with_capture_time
from engine.xmp.exif_credits import with_credits
from engine.xmp.location import with_position

__all__ = ["OutputOptions", "RenderResult", "file_sha256", "output_xmp", "provenance_xmp", "render_file",
           "render_files", "save", "write_image"]


def provenance_xmp(rendered: Rendered) -> dict[str, str]:
    """XMP properties that say how an output was made (``models`` is {} while every stage is classical)."""
    from engine import __version__
    from engine.models import model_hashes

    source = rendered.source.path.resolve()
    # the SHA-256 of the file as opened; a Source made in code has none, and whatever its path names is not it
    sha256 = {f"Xmp.{XMP_PREFIX}.sourceSHA256": rendered.source.sha256} if rendered.source.sha256 else {}
    return {
        "Xmp.xmpMM.DerivedFrom": xmp_file_name(source.name),  # the raw is found by SHA-256 too
        f"Xmp.{XMP_PREFIX}.sourcePath": xmp_file_name(str(source)),
        **sha256,
        f"Xmp.{XMP_PREFIX}.engineVersion": __version__,
        f"Xmp.{XMP_PREFIX}.models": json.dumps(model_hashes(), sort_keys=True, separators=(",", ":")),
        f"Xmp.{XMP_PREFIX}.recipe": rendered.recipe.to_json(),
        f"Xmp.{XMP_PREFIX}.decided": json.dumps(rendered.notes, sort_keys=True, separators=(",", ":")),
    }


def _pairs(outputs: Any) -> list[tuple[Any, Any]]:
    """A render's outputs as a list (a generator is read once); OptionError for anything but (path, options)
    pairs."""
    pairs = None if isinstance(outputs, (str, os.PathLike)) else list(outputs)
    if pairs is None or not all(isinstance(o, Sequence) and not isinstance(o, str) and len(o) == 2 for o in pairs):
        raise OptionError("outputs must be a list of (path, engine.OutputOptions or None) pairs")
    return [tuple(pair) for pair in pairs]


def check_output_path(path: Any) -> Path:
    """``path`` as a Path; OutputError for anything that is not a path (None, bytes, an open file)."""
    if not isinstance(path, (str, os.PathLike)):
        raise OutputError(f"the output must be a path (str or pathlib.Path), not {type(path).__name__}")
    return Path(path)


def output_xmp(options: OutputOptions, rendered: Rendered | None = None, fmt: str | None = None) -> dict[str, str]:
    """The output options that a re-render needs to match this file (colour space, size, a JPEG's quality: a file
    of format ``fmt`` other than JPEG records none). The size is ``long_edge``; for ``rendered`` smaller than its
    picture (a preview, :func:`engine.render`'s ``preview``) and no smaller ``long_edge``, the long edge it was
    rendered at. The modification time the file was given (``modified``) is recorded as ``hostplug:written``."""
    long_edge = options.long_edge
    if rendered is not None:
        drawn, source = max(rendered.pixels.shape[:2]), rendered.source
        crop = source.crop or source.camera_crop  # a DNG's DefaultCrop, or LibRaw's picture area, applied
        picture = max(crop[2:]) if crop else max(source.size)
        if drawn < picture and (long_edge is None or drawn < long_edge):
            long_edge = drawn
    recorded: dict[str, Any] = {"space": options.space, "long_edge": long_edge}
    if rendered is not None:  # the size the stages worked at (None: the full picture), for a re-render to match
        recorded["rendered_at"] = drawn if drawn < picture else None
    if fmt in (None, "jpeg"):
        recorded["quality"] = options.quality
    written = {f"Xmp.{XMP_PREFIX}.written": str(options.modified)} if options.modified is not None else {}
    return {f"Xmp.{XMP_PREFIX}.output": json.dumps(recorded, sort_keys=True, separators=(",", ":")), **written}


def write_image(rendered: Rendered, path: str | Path, options: OutputOptions | None = None,
                extra_xmp: dict[str, Any] | None = None) -> Path:
    """Write ``rendered`` to ``path`` with its ICC profile, the source's EXIF/GPS and its provenance XMP.

    ``extra_xmp`` adds pyexiv2 XMP keys, such as the rating, labels and keywords of the source's sidecar
    (:func:`engine.xmp.sidecar.catalogue_xmp`); it cannot replace the provenance (the recipe and source recorded
    for a re-render), which describes these pixels. Returns the path written.
    """
    return _write_rendered(rendered, path, options, extra_xmp, hold=False)


def _write_rendered(rendered: Rendered, path: str | Path, options: OutputOptions | None,
                    extra_xmp: dict[str, Any] | None, hold: bool) -> Path:
    """:func:`write_image`; with ``hold``, the complete file under its partial name (see engine.output.write)."""
    if not isinstance(rendered, Rendered):
        raise OptionError(f"write_image writes what engine.render returns, not {type(rendered).__name__}")
    check_output_path(path)
    if extra_xmp is not None and not isinstance(extra_xmp, dict):
        raise OptionError(f"extra_xmp must be a dict of XMP keys and values, not {type(extra_xmp).__name__}")
    options = checked_options(options)
    fmt, _bits = resolve_format(Path(path), options)
    _check_not_input(Path(path), rendered.source.path)
    # the provenance last: a script carrying an older output's XMP forward had its recipe recorded over this one's
    xmp = output_xmp(options, rendered, fmt) | (extra_xmp or {}) | provenance_xmp(rendered)
    # a sidecar's geotag, capture time and credits are the photographer's: they win over the camera's
    exif = with_credits(with_capture_time(with_position(rendered.source.exif, xmp), xmp), xmp)
    return _write.write_image(rendered.pixels, path, options, exif=exif, xmp=xmp, hold=hold)


save = write_image  # the earlier name



@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block (reference counting still frees everything else).

    A cold render imports about 1500 modules, and numba makes a few hundred thousand objects as it loads its
    kernels: the collector, which runs every 700 new objects, spent 0.2-0.3 s of a cold start-up rescanning them.
    A render itself makes few reference cycles; they are collected after it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@functools.cache
def _start_loading_kernels() -> None:
    """Import the compiled kernels and load their code (:func:`engine.kernels.load_compiled`; numba, about 1 s)
    in a thread, once per process: it runs while the main thread reads the sidecar and LibRaw decodes the raw,
    which releases the GIL. Not a daemon thread: the interpreter waits for it before it tears down, since a
    thread still loading numba while modules are finalized crashed the process (a refused raw exits early)."""

    def load() -> None:
        try:
            from engine import kernels

            kernels.load_compiled()
        except Exception:  # noqa: BLE001, S110 - only a head start: the render's own first call reports any error
            pass

    threading.Thread(target=load, name="hostplug-load-kernels", daemon=False).start()


def reduced_size(source: Source, targets: Sequence[tuple[Path, OutputOptions]]) -> int | None:
    """The long edge to render at when every output is at most half the picture's size (``long_edge``): the
    image is then scaled down right after demosaicing and every later stage works at that size, a fraction of
    the work (a 2048 px JPEG of an 18 MP raw: a sixteenth of the pixels). Otherwise None (full size).

    Scaling down first is what a photographer's export does to noise and detail anyway: the denoiser is told
    the averaged-down noise (:meth:`engine.io.noise_level.NoiseModel.binned`), and sharpening acts at the
    output's scale. Between half and full size the full-size render is scaled down at the end, as before."""
    edges = [options.long_edge for _, options in targets]
    if any(edge is None for edge in edges):
        return None
    largest = max(edge for edge in edges if edge is not None)
    return largest if 2 * largest <= max(source.sensor.shape[:2]) else None


def _check_not_input(target: Path, source: Path) -> None:
    """Refuse an output that would replace the file it is rendered from, ``--overwrite`` or not."""
    try:
        same = target.exists() and target.samefile(source)  # a link or another spelling of its path too
    except OSError:
        return  # an input that cannot be found fails where it is opened
    if same:
        raise OutputError(f"{target}: this is the input itself; give the output another name or folder")


def _check_target(target: Path, options: OutputOptions) -> None:
    """Refuse an output that cannot be written before spending time on the render."""
    _write.check_target(target, options)
    resolve_format(target, options)


def render_files(source: str | Path | Source, outputs: Sequence[tuple[str | Path, OutputOptions | None]],
                 recipe: Recipe | None = None, *, changes: Mapping[str, Any] | None = None,
                 base: Recipe | None = None, extra_xmp: dict[str, Any] | None = None, device: str = "cpu",
                 stages_dir: str | Path | None = None, progress: ProgressCallback | None = None,
                 cache: StageCache | None = None, orientation: Orientation | None = None,
                 render_size: int | None | Literal["by outputs"] = "by outputs",
                 before_naming: Callable[[list[Path]], None] | None = None) -> RenderResult:
    """Render ``source`` (a path, or a :class:`Source` already open) once and write it to every output.

    The recipe is ``recipe`` when given, else the source's sidecar recipe (or ``base``, or the defaults, with
    the sidecar's hints; see :func:`engine.xmp.sidecar.sidecar_recipe`); ``changes`` apply on top
    (:func:`engine.edits.apply_changes`). The pixels are turned upright by ``orientation`` when given, else by
    the one the source's sidecar sets, else by its EXIF (:mod:`engine.orientation`), and written with EXIF
    Orientation 1. The outputs carry the source's EXIF, the provenance a re-render needs
    and ``extra_xmp`` (default: the sidecar's rating, labels and keywords). Every output is checked before the
    render starts; an existing file is replaced only with ``overwrite`` in its options; all outputs are written,
    or none (those written are removed when a later one fails). ``cache`` (a
    :class:`engine.stage_cache.StageCache`) resumes the render after the last stage whose inputs are unchanged.
    ``render_size`` is the long edge the stages work at (None: the full picture; by default the outputs' sizes
    decide, :func:`reduced_size`), which a re-render takes from what the output records. ``before_naming`` is
    called with the targets once every output is complete, just before any takes its name; what it raises
    stops the write with nothing named (a caller that replaces files checks there that they are still the ones
    it may replace: a render takes seconds, in which an editor may save over one).
    """
    from engine.edits import apply_changes
    from engine.io.source import open_source
    from engine.xmp.sidecar import sidecar_orientation, sidecar_render

    start = time.perf_counter()
    with _cyclic_gc_paused():
        if device == "cpu":  # on a GPU the stages run torch, not the compiled loops
            _start_loading_kernels()
        if recipe is not None and not isinstance(recipe, Recipe):
            raise RecipeError(f"the recipe must be an engine.Recipe, not {type(recipe).__name__} "
                              "(Recipe.from_dict reads a dict)")
        check_source_argument(source)
        if render_size not in ("by outputs", None) and (isinstance(render_size, bool) or not isinstance(
                render_size, int) or render_size < 16):  # (engine.render would name it "preview")
            raise RecipeError(f"render_size {render_size!r} is not a whole number of pixels (at least 16), None or "
                              "'by outputs'")
        path = source.path if isinstance(source, Source) else Path(source)
        targets = [(check_output_path(target), checked_options(options)) for target, options in _pairs(outputs)]
        if not targets:
            raise OutputError("no output to write")
        _check_targets_apart(targets)
        asked = orientation
        notice = None
        # the photographer's rotation in another program is read with or without a recipe of ours
        if recipe is None or extra_xmp is None:
            read = sidecar_render(path, changes, base)
            extra_xmp = read.catalogue if extra_xmp is None else extra_xmp
            recipe = read.recipe if recipe is None else apply_changes(recipe, changes)
            orientation = orientation or read.orientation
            notice = read.notice
        else:
            recipe = apply_changes(recipe, changes)
            orientation = orientation or sidecar_orientation(path)
        for target, options in targets:
            _check_not_input(target, path)
            _check_target(target, options)
        opened = source if isinstance(source, Source) else open_source(path)
        if asked is None and changes and changes.get("recipe_file"):
            orientation = _recorded_orientation(Path(changes["recipe_file"]), opened) or orientation
        from engine.pipeline import render  # after the raw is open: the kernels' thread imports numba meanwhile

        rendered = render(opened, recipe, device=device, stages_dir=Path(stages_dir) if stages_dir else None,
                          progress=progress, cache=cache,
                          preview=reduced_size(opened, targets) if render_size == "by outputs" else render_size,
                          orientation=orientation)
        written = _write_all(rendered, targets, extra_xmp or None, before_naming)
        from engine.stages.white_balance import white_decided  # (loaded with the render)

        notice = "; ".join(said for said in (notice, _tint_limited_note(rendered.notes),
                                             _exif_left_out_note(rendered, targets),
                                             _not_enlarged_note(rendered, targets)) if said) or None
    return RenderResult(input=path, outputs=written, recipe=recipe, seconds=time.perf_counter() - start,
                        timings=dict(rendered.timings), orientation=rendered.orientation,
                        source_sha256=opened.sha256, white_balance=white_decided(rendered.notes), notice=notice)


def _tint_limited_note(notes: dict[str, Any]) -> str | None:
    """What the white balance made of a tint its camera's calibration cannot balance (a tester's +150 at 1700 K
    had turned the picture green), or None."""
    limited = notes.get("tint_limited")
    if not isinstance(limited, dict):
        return None
    return (f"tint {limited['asked']:+g} at {limited['temperature']:g} K is beyond what this camera's colour "
            f"calibration balances to white: rendered with tint {limited['used']:+g}")


def _not_enlarged_note(rendered: Rendered, targets: list[tuple[Path, OutputOptions]]) -> str | None:
    """The outputs asked for a long edge beyond the picture's, which are written at its own size (a tester's
    delivery to a client's 4000 px went out at 900 px without a word), or None."""
    height, width = rendered.pixels.shape[:2]
    said = [f"{target} is {width} x {height}, the picture's own size: a long edge of {options.long_edge} is more "
            "than it has (hostplug does not enlarge)" for target, options in targets
            if options.long_edge is not None and options.long_edge > max(width, height)]
    return "; ".join(said) or None


def _exif_left_out_note(rendered: Rendered, targets: list[tuple[Path, OutputOptions]]) -> str | None:
    """What of the raw's EXIF a PNG or JPEG output could not hold (a tester's 70 000-character description went
    without a word), or None."""
    said = []
    for target, options in targets:
        fmt, _bits = resolve_format(target, options)
        left_out = exif_left_out(rendered.source.exif or {}, fmt)
        if left_out:
            names = ", ".join(key.rsplit(".", 1)[-1] for key in left_out)
            said.append(f"{target} leaves out the raw's EXIF {names}: more than the 64 KB of EXIF that exiv2 "
                        f"writes into a {fmt.upper()} (a TIFF keeps it)")
    return "; ".join(said) or None


def _recorded_orientation(recipe_file: Path, source: Source) -> Orientation | None:
    """The orientation a hostplug output given as the recipe (``--recipe OUTPUT``) applied, when it was rendered
    from this very raw (its recorded SHA-256): it reproduces that output, as a re-render does, whatever the
    sidecar says now. None for a recipe file, or an output of another raw (whose own orientation applies)."""
    from engine.io.formats import RGB_SUFFIXES
    from engine.xmp.provenance import read_provenance

    if recipe_file.suffix.lower() not in RGB_SUFFIXES or not source.sha256:
        return None
    recorded = read_provenance(recipe_file)
    return recorded.orientation if recorded.sha256 == source.sha256 else None


def _write_all(rendered: Rendered, targets: list[tuple[Path, OutputOptions]], extra_xmp: dict[str, Any] | None,
               before_naming: Callable[[list[Path]], None] | None = None) -> tuple[Path, ...]:
    """Write every output, or none: all are written under partial names first, and named only once all are
    complete. When one cannot be written (a full disk, say), none is named, so a watch folder's failed file
    leaves no web JPEG published without its master TIFF, and a re-render that fails leaves the previous
    outputs as they were."""
    held: list[tuple[Path, Path, OutputOptions]] = []
    named: list[Path] = []
    try:
        for target, options in targets:
            held.append((_write_rendered(rendered, target, options, extra_xmp, hold=True), target, options))
        if before_naming is not None:
            before_naming([target for target, _ in targets])
        for partial, target, options in held:
            new = not target.exists()
            _write.publish_held(partial, target, options.overwrite)
            if new:
                named.append(target)
    except BaseException:
        for partial, _, _ in held:
            _write.drop_held(partial)
        for target in named:  # a name failing after others were given (rare: a file appeared): no half set
            discard(target)
        raise
    return tuple(target for _, target, _ in held)


def _check_targets_apart(targets: list[tuple[Path, Any]]) -> None:
    """OutputError for two outputs of one render naming one file (the second would fail after the first was
    written)."""
    names = Counter(os.path.abspath(target) for target, _options in targets)
    twice = next((name for name, count in names.items() if count > 1), None)
    if twice is not None:
        raise OutputError(f"{twice} is named for two outputs of one render; name each output once")


def render_file(source: str | Path | Source, target: str | Path, recipe: Recipe | None = None,
                options: OutputOptions | None = None, *, changes: Mapping[str, Any] | None = None,
                base: Recipe | None = None, extra_xmp: dict[str, Any] | None = None, device: str = "cpu",
                stages_dir: str | Path | None = None, progress: ProgressCallback | None = None,
                cache: StageCache | None = None, orientation: Orientation | None = None,
                render_size: int | None | Literal["by outputs"] = "by outputs",
                before_naming: Callable[[list[Path]], None] | None = None) -> RenderResult:
    """Render ``source`` into ``target``: :func:`render_files` with one output (the same keyword arguments;
    replacing an existing file is ``options=engine.OutputOptions(overwrite=True)``).

        engine.render_file("IMG_0001.CR2", "IMG_0001.tif", changes={"exposure": 0.3})
    """
    return render_files(source, [(target, options)], recipe, changes=changes, base=base, extra_xmp=extra_xmp,
                        device=device, stages_dir=stages_dir, progress=progress, cache=cache,
                        orientation=orientation, render_size=render_size, before_naming=before_naming)
