"""``hostplug render``: raws (or JPEG/PNG/TIFF images) to finished images."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from engine.errors import OutputError, OutputOptionError
from engine.output.formats import (
    FORMAT_ALIASES,
    FORMATS,
    SPACE_ALIASES,
    SPACE_NAMES,
    TIFF_COMPRESSIONS,
    OutputOptions,
    output_names,
    resolve_format,
)
from hostplug.commands.common import (
    PARTIAL_FOLDERS,
    NameChoice,
    batch_inputs,
    check_device,
    device_option,
    echo_line,
    for_each_input,
    json_option,
    time_limit_option,
)
from hostplug.commands.serve import render_through_service, service_option
from hostplug.recipe_options import pop_recipe_options, recipe_options


class _NoBar:
    """What ``render`` uses of a tqdm bar, for when none is shown (tqdm shows none unless stderr is a terminal)."""

    disable = True

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def set_postfix_str(self, _: str) -> None:
        return None

    def update(self, _: int = 1) -> None:
        return None

    def clear(self) -> None:
        return None

    def write(self, line: str) -> None:
        click.echo(line)  # what tqdm.write prints: the line on stdout


def _progress(total: int) -> Any:
    """A progress bar on stderr when it is a terminal; otherwise :class:`_NoBar`, without importing tqdm (20-40 ms)."""
    if not sys.stderr.isatty():
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="file", file=sys.stderr, leave=False, dynamic_ncols=True)


def _check_format_options(outputs: list[Path], options: OutputOptions) -> None:
    """Refuse --quality or --compression given for outputs of no format they apply to (they were ignored, and a
    TIFF's recipe recorded a JPEG quality it never had)."""
    source = click.get_current_context().get_parameter_source
    formats = {resolve_format(path, options)[0] for path in outputs}
    for option, name, applies_to in (("quality", "--quality", "jpeg"), ("compression", "--compression", "tiff")):
        if source(option) is ParameterSource.COMMANDLINE and applies_to not in formats:
            written = " and ".join(sorted(f.upper() for f in formats))
            raise OutputOptionError(f"{name} applies to {applies_to.upper()} outputs only, and this writes "
                                    f"{written}; leave it out, or write a {applies_to.upper()}")


def _remove_added(folder: Path, there: set[str]) -> None:
    """Remove the stage images a failed render added to a stage folder that was there before it (only those: a
    file the photographer saved there meanwhile stays)."""
    from engine.pipeline import STAGE_FILE

    with contextlib.suppress(OSError):
        for name in set(os.listdir(folder)) - there:
            if STAGE_FILE.fullmatch(name):
                with contextlib.suppress(OSError):
                    (folder / name).unlink()


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", "--out", "output", type=click.Path(dir_okay=False, path_type=Path),
              help="Output file (one input only). The suffix picks the format: .tif, .png, .jpg.")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for outputs, named after each input.")
@click.option("--format", "fmt", type=NameChoice(FORMATS, FORMAT_ALIASES),
              help="Output format (default: -o's suffix; with --out-dir, tiff).")
@click.option("--bits", type=click.Choice(["8", "16"]), help="Bits per channel (default 16; JPEG 8).")
@click.option("--quality", type=click.IntRange(1, 100), default=92, show_default=True,
              help="JPEG quality; from 90 up colour is kept at full resolution (4:4:4), which makes files about 40% "
                   "larger than at 89.")
@click.option("--compression", type=click.Choice(TIFF_COMPRESSIONS), default="none", show_default=True,
              help="TIFF compression: deflate is about 28% smaller and takes seconds longer to write.")
@click.option("--colour-space", "--color-space", "space", type=NameChoice(SPACE_NAMES, SPACE_ALIASES), default="srgb",
              show_default=True, help="Output colour space (its ICC profile is embedded). The colours stay "
                   "within sRGB's gamut: the styles finish in sRGB.")
@click.option("--long-edge", type=click.IntRange(16, None), help="Shrink so the long side has N pixels.")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
@click.option("--stages", "stages_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also write every stage's output image and parameters into this folder.")
@device_option
@service_option
@time_limit_option
@json_option("Print one JSON line per input (a failed one: input, error, exit_code).")
@recipe_options
def render(inputs: tuple[Path, ...], output: Path | None, out_dir: Path | None, fmt: str | None,
           bits: str | None, quality: int, compression: str, space: str, long_edge: int | None, overwrite: bool,
           stages_dir: Path | None, device: str, service: bool | None, time_limit: float | None, as_json: bool,
           **kwargs: Any) -> None:
    """Render camera raws (or JPEG/PNG/TIFF images) to finished images.

    Without -o or --out-dir each output is written beside its input, named after it (IMG_0001.tif); an existing
    file is never replaced without --overwrite."""
    from engine.edits import check_changes

    changes = pop_recipe_options(kwargs)
    check_changes(changes)  # refuse bad options before any work
    inputs = batch_inputs(inputs)
    if output is not None and out_dir is not None:
        raise OutputOptionError("give -o (one output file) or --out-dir (a folder for a batch), not both")
    if output is not None and len(inputs) > 1:
        raise OutputOptionError("-o names one output file; for several inputs use --out-dir")
    options = OutputOptions(format=fmt, bits=int(bits) if bits else None, quality=quality, space=space,
                            long_edge=long_edge, overwrite=overwrite, compression=compression)
    device = check_device(device)
    targets = dict(zip(inputs, output_names(list(inputs), fmt, out_dir), strict=True))
    _check_format_options([output] if output is not None else list(targets.values()), options)
    made = _make_folder(out_dir) if out_dir is not None else []
    with _progress(len(inputs)) as bar, _removed_if_left_empty(made):

        def render_one(path: Path) -> None:
            def progress(stage: str, index: int, count: int) -> None:
                bar.set_postfix_str(f"{path.name}: {stage} ({index}/{count})")

            target = output if output is not None else targets[path]
            # one folder per input, named as its output is (a RAW + JPEG pair gets two)
            stage_folder = stages_dir / targets[path].stem if stages_dir and len(inputs) > 1 else stages_dir
            if stage_folder is not None and not overwrite and stage_folder.is_dir() and any(stage_folder.iterdir()):
                raise OutputError(f"{stage_folder} already holds files; pass --overwrite to replace its stage images, "
                                  "or name another folder")
            # a stage folder this render begins is whole or not there: removed when the render fails or stops
            begun = stage_folder if stage_folder is not None and not stage_folder.exists() else None
            if begun is not None:
                PARTIAL_FOLDERS.add(begun)
            # in a folder that was there, what the render adds to it goes the same way
            there = set(os.listdir(stage_folder)) if stage_folder is not None and begun is None else set()
            try:
                # a time limit must be able to stop the work, so the render runs here, not in the shared service
                result = render_through_service(False if time_limit else service, path, target, options, changes,
                                                device, stage_folder)
                if result is None:  # no service (or --no-service): render in this process
                    from engine.output.export import render_file

                    result = render_file(path, target, options=options, changes=changes, device=device,
                                         stages_dir=stage_folder, progress=progress).as_dict()
            except BaseException:
                if begun is not None:
                    shutil.rmtree(begun, ignore_errors=True)
                elif stage_folder is not None:
                    _remove_added(stage_folder, there)
                raise
            finally:
                PARTIAL_FOLDERS.discard(begun)
            from hostplug.printable import printable  # a newline in a name must not split the line

            line = printable(f"{path} -> {result['output']} ({result['seconds']:.1f} s)")
            if result.get("notice") and not as_json:  # in --json, the result's "notice"
                bar.clear()
                echo_line(f"hostplug: note: {result['notice']}", err=True)
            if as_json:
                bar.clear()  # a JSON line of its own, not glued to the progress bar on a terminal
                click.echo(json.dumps(result))
            elif len(inputs) == 1 or not bar.disable:
                bar.write(line)
            else:
                click.echo(line)

        for_each_input(inputs, render_one, on_error=bar.clear, after=lambda: bar.update(1),
                       time_limit=time_limit, as_json=as_json)


@contextlib.contextmanager
def _removed_if_left_empty(made: list[Path]) -> Iterator[None]:
    """The folders this render made for ``--out-dir`` (deepest first) are removed again when no output came into
    them (every input refused or failed): a refused command leaves no trace (a tester's)."""
    try:
        yield
    finally:
        for folder in made:
            try:
                folder.rmdir()  # only when empty
            except OSError:
                break


def _make_folder(folder: Path) -> list[Path]:
    """Make ``--out-dir`` (and its parents) if it is not there, as a photographer expects of a new batch's folder;
    the folders made, deepest first."""
    made = [f for f in (folder, *folder.parents) if not f.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return made
    except OSError as error:
        raise OutputError(f"cannot make the output folder {folder}: {error.strerror or error}") from error
