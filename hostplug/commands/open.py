"""``hostplug open`` (the editor hand-off, :mod:`hostplug.handoff`) and ``hostplug thumbnail``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from engine.errors import CorruptInputError, InputNotFoundError, OutputError, OutputOptionError
from hostplug.commands.common import (
    check_device,
    device_option,
    echo_line,
    for_each_input,
    json_option,
    time_limit_option,
    watchdog,
)
from hostplug.commands.serve import open_through_service, service_option
from hostplug.recipe_options import pop_recipe_options, recipe_options


@click.command("open")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--search", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Also look for the source raw in this folder (repeatable).")
@device_option
@service_option(starts=True)
@time_limit_option
@json_option("Print the output path, recipe and timings as JSON.")
@recipe_options
def open_command(file: Path, search: tuple[Path, ...], device: str, service: bool | None,
                 time_limit: float | None, as_json: bool, **kwargs: Any) -> None:
    """Render a raw to a 16-bit TIFF beside it, or re-render an editor's TIFF of a raw in place.

    Prints the path of the image written (the one to open in the editor).
    """
    changes = pop_recipe_options(kwargs)
    device = check_device(device)  # before any work, and in the option's words, as render does

    def open_one(path: Path) -> None:
        # the service by default; under a time limit, in this process (the limit must be able to stop the work)
        result = open_through_service(False if time_limit else service, path, search, changes, device)
        if result is None:
            from hostplug.handoff import open_file

            with watchdog(time_limit, str(path), as_json=as_json):
                result = open_file(path, search, changes, device=device)
        if result.get("notice") and not as_json:  # in --json, the result's "notice"
            echo_line(f"hostplug: note: {result['notice']}", err=True)
        click.echo(json.dumps(result) if as_json else result["output"])

    for_each_input([file], open_one, as_json=as_json)  # (with --json, a failure is a record too)


@click.command("thumbnail")
@click.argument("raw", type=click.Path(path_type=Path))
@click.option("-o", "--output", "--out", "output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The JPEG to write.")
@click.option("--size", type=click.IntRange(16, 4096), default=256, show_default=True,
              help="Longest side of the thumbnail in pixels.")
@click.option("--overwrite", is_flag=True, help="Replace an existing file (never the raw itself).")
def thumbnail(raw: Path, output: Path, size: int, overwrite: bool) -> None:
    """Write a raw's embedded preview as a small JPEG; prints the full image size as JSON."""
    from hostplug.thumbnail import ThumbnailError, write_thumbnail

    if output.suffix.lower() not in (".jpg", ".jpeg"):
        raise OutputOptionError(f"{output.name}: a thumbnail is a JPEG; name it {output.stem}.jpg")  # as render: 2
    try:
        click.echo(json.dumps(write_thumbnail(raw, output, size, overwrite=overwrite)))
    except ThumbnailError as e:
        error = {"output": OutputError, "missing": InputNotFoundError}.get(e.kind, CorruptInputError)
        raise error(str(e)) from e
