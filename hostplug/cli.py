"""The ``hostplug`` command.

Every error is one line on stderr (``hostplug: error: ...``) and a non-zero exit; ``--json`` prints results
for scripts on stdout.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from engine.errors import HostplugError, OutputError
from hostplug import sidecar_cli
from hostplug.recipe_options import build_recipe, pop_recipe_options, recipe_options

OUTPUT_SUFFIX = {"tiff": ".tif", "png": ".png", "jpeg": ".jpg"}
SPACE_CHOICES = ("srgb", "display-p3", "adobe-rgb", "prophoto")


def fail(message: str, code: int = 1) -> None:
    """Print one error line and exit."""
    click.echo(f"hostplug: error: {message}", err=True)
    sys.exit(code)


class HostplugGroup(click.Group):
    """A group that turns engine errors raised anywhere in a command into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HostplugError as e:
            fail(str(e), e.exit_code)
        except KeyboardInterrupt:
            fail("interrupted", 130)


@click.group(cls=HostplugGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hostplug")
def main() -> None:
    """Render camera raws through hostplug's modular neural ISP."""


def _device(device: str) -> str:
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise HostplugError("--device cuda: no CUDA GPU is available here; use --device cpu")
    return device


def _output_path(source: Path, output: Path | None, out_dir: Path | None, fmt: str | None) -> Path:
    if output is not None:
        return output
    suffix = OUTPUT_SUFFIX[fmt or "tiff"]
    folder = out_dir if out_dir is not None else source.parent
    return folder / (source.stem + suffix)


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Output file (one input only). The suffix picks the format: .tif, .png, .jpg.")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for outputs, named after each input.")
@click.option("--format", "fmt", type=click.Choice(["tiff", "png", "jpeg"]),
              help="Output format (default: from -o's suffix, else tiff).")
@click.option("--bits", type=click.Choice(["8", "16"]), help="Bits per channel (default 16; JPEG 8).")
@click.option("--quality", type=click.IntRange(1, 100), default=92, show_default=True, help="JPEG quality.")
@click.option("--colour-space", "--color-space", "space", type=click.Choice(SPACE_CHOICES), default="srgb",
              show_default=True, help="Output colour space (its ICC profile is embedded).")
@click.option("--long-edge", type=click.IntRange(16, None), help="Shrink so the long side has N pixels.")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
@click.option("--stages", "stages_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also write every stage's output image and parameters into this folder.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per rendered file.")
@recipe_options
def render(inputs: tuple[Path, ...], output: Path | None, out_dir: Path | None, fmt: str | None,
           bits: str | None, quality: int, space: str, long_edge: int | None, overwrite: bool,
           stages_dir: Path | None, device: str, as_json: bool, **kwargs: Any) -> None:
    """Render camera raws (or JPEG/PNG/TIFF images) to finished images."""
    from engine.output.write import OutputOptions

    recipe_settings = pop_recipe_options(kwargs)
    build_recipe(recipe_settings)  # refuse bad options before any work
    if output is not None and len(inputs) > 1:
        raise OutputError("-o names one output file; for several inputs use --out-dir")
    if out_dir is not None and not out_dir.is_dir():
        raise OutputError(f"{out_dir}: the output folder does not exist")
    options = OutputOptions(format=fmt, bits=int(bits) if bits else None, quality=quality, space=space,
                            long_edge=long_edge, overwrite=overwrite)
    device = _device(device)
    failures = 0
    with _progress(len(inputs)) as bar:
        for path in inputs:
            target = _output_path(path, output, out_dir, fmt)
            stage_folder = stages_dir / path.stem if stages_dir and len(inputs) > 1 else stages_dir
            try:
                recipe, catalogue = sidecar_cli.sidecar_recipe(path, recipe_settings)
                result = render_one(path, target, recipe, options, device, stage_folder, bar, extra_xmp=catalogue)
            except HostplugError as e:
                failures += 1
                bar.clear()
                click.echo(f"hostplug: error: {e}", err=True)
                continue
            finally:
                bar.update(1)
            if as_json:
                click.echo(json.dumps(result))
            elif len(inputs) == 1 or not bar.disable:
                bar.write(f"{path} -> {result['output']} ({result['seconds']:.1f} s)")
            else:
                click.echo(f"{path} -> {result['output']} ({result['seconds']:.1f} s)")
    if failures:
        if len(inputs) > 1:
            click.echo(f"hostplug: error: {failures} of {len(inputs)} files failed", err=True)
        sys.exit(1)


def _progress(total: int):
    from tqdm import tqdm

    return tqdm(total=total, unit="file", file=sys.stderr, disable=None, leave=False, dynamic_ncols=True)


def render_one(path: Path, target: Path, recipe, options, device: str, stages_dir: Path | None,
               bar=None, extra_xmp: dict[str, Any] | None = None) -> dict[str, Any]:
    """Open, render and save one file (``extra_xmp`` joins its XMP); returns what ``--json`` prints."""
    import engine
    from engine.output.export import save
    from engine.output.write import resolve_format

    start = time.perf_counter()
    resolve_format(target, options)  # refuse a bad output name before spending time on the render
    if target.exists() and not options.overwrite:
        raise OutputError(f"{target} exists; pass --overwrite to replace it")
    if not target.parent.is_dir():
        raise OutputError(f"{target.parent}: the output folder does not exist")

    def progress(stage: str, index: int, count: int) -> None:
        if bar is not None:
            bar.set_postfix_str(f"{path.name}: {stage} ({index}/{count})")

    source = engine.open(path)
    rendered = engine.render(source, recipe, device=device, stages_dir=stages_dir, progress=progress)
    written = save(rendered, target, options, extra_xmp)
    return {
        "input": str(path),
        "output": str(written),
        "seconds": round(time.perf_counter() - start, 3),
        "recipe": recipe.to_dict(),
        "timings": {k: round(v, 3) for k, v in rendered.timings.items()},
    }


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def info(inputs: tuple[Path, ...], as_json: bool) -> None:
    """Print what the engine reads from each file: camera, exposure, sensor layout, levels, colour."""
    from hostplug.describe import describe, format_description

    failures = 0
    for path in inputs:
        try:
            import engine

            description = describe(engine.open(path))
        except HostplugError as e:
            failures += 1
            click.echo(f"hostplug: error: {e}", err=True)
            continue
        click.echo(json.dumps(description, indent=2) if as_json else format_description(description))
    if failures:
        sys.exit(1)


def _register_commands() -> None:
    """Attach the commands that live in their own modules (sidecars, daemon, hosts, models)."""
    from hostplug import daemon_cli
    from hostplug.integrate_cli import integrate
    from hostplug.models_cli import evaluate, register_subcommands, train
    from hostplug.open_cli import open_command, thumbnail

    register_subcommands()
    for command in (sidecar_cli.edit, sidecar_cli.show, sidecar_cli.presets, sidecar_cli.rerender,
                    daemon_cli.watch, daemon_cli.queue, open_command, thumbnail, integrate, train, evaluate):
        main.add_command(command)


_register_commands()
