"""The commands around XMP sidecars and re-rendering: ``edit``, ``show``, ``presets`` and ``rerender``.

``hostplug render`` uses :func:`sidecar_recipe` to start each input from its sidecar.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from engine.errors import HostplugError, InputNotFoundError, OutputError
from engine.recipe import Recipe
from hostplug.recipe_options import build_recipe, pop_recipe_options, recipe_options


def sidecar_recipe(raw: Path, options: dict[str, Any]) -> tuple[Recipe, dict[str, Any]]:
    """The recipe to render ``raw`` with (its sidecar's, with the command-line options on top) and the
    sidecar's rating, labels and keywords as output XMP."""
    from engine.xmp.sidecar import apply_hints, catalogue_xmp, read_sidecar

    info = read_sidecar(raw)
    if info is None:
        return build_recipe(options), {}
    base = info.recipe if info.recipe is not None else apply_hints(Recipe(), info.hints)
    return build_recipe(options, base), catalogue_xmp(info)


def changed_settings(recipe: Recipe) -> dict[str, Any]:
    """The settings of ``recipe`` that differ from the defaults (JSON form)."""
    defaults = Recipe().to_dict()
    return {k: v for k, v in recipe.to_dict().items() if defaults.get(k) != v}


def _describe(settings: dict[str, Any]) -> str:
    return ", ".join(f"{k} {json.dumps(v) if isinstance(v, dict) else v}" for k, v in settings.items()) or "defaults"


def check_renderable(recipe: Recipe) -> None:
    """Refuse a recipe the pipeline would refuse (unknown stage, style or stage parameter) before storing it."""
    from engine.pipeline import STAGE_ORDER, check_recipe, stage_for

    check_recipe(recipe)
    for name in STAGE_ORDER:
        stage_for(name, recipe).resolve_params(recipe)
    photofinish = stage_for("photofinish", recipe)
    if photofinish.resolve_params(recipe).operators is None:
        photofinish.check_style(recipe.style)


def _each(inputs: tuple[Path, ...], action) -> None:
    """Run ``action`` on every input; a failure is one error line and the others still run."""
    failures = 0
    for path in inputs:
        try:
            if not path.is_file():
                raise InputNotFoundError(f"{path}: no such file")
            action(path)
        except HostplugError as e:
            failures += 1
            click.echo(f"hostplug: error: {e}", err=True)
    if failures:
        sys.exit(1)


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per edited file.")
@recipe_options
def edit(inputs: tuple[Path, ...], as_json: bool, **kwargs: Any) -> None:
    """Store an edit in each raw's XMP sidecar (IMG_0001.CR2.xmp) without rendering.

    Only the options given change; the rest of a stored recipe stays. Other programs' data in the sidecar is
    kept as it was.
    """
    from engine.xmp.sidecar import sidecar_path, update_recipe

    options = pop_recipe_options(kwargs)
    build_recipe(options)  # refuse bad options before touching any sidecar

    def change(current: Recipe) -> Recipe:
        recipe = build_recipe(options, current)
        check_renderable(recipe)
        return recipe

    def store(path: Path) -> None:
        recipe = update_recipe(path, change)
        sidecar = sidecar_path(path)
        if as_json:
            click.echo(json.dumps({"input": str(path), "sidecar": str(sidecar), "recipe": recipe.to_dict()}))
        else:
            click.echo(f"{path} -> {sidecar}: {_describe(changed_settings(recipe))}")

    _each(inputs, store)


def _show_text(info_json: dict[str, Any]) -> str:
    lines = [f"{info_json['input']}"]
    if info_json["sidecar"] is None:
        return lines[0] + ": no sidecar; renders with the defaults"
    lines.append(f"  sidecar:    {', '.join(info_json['sidecars'])}")
    if info_json["recipe"] is not None:
        lines.append(f"  recipe:     {_describe(info_json['changed'])}")
    else:
        lines.append("  recipe:     none stored")
    if info_json["hints"]:
        lines.append(f"  hints:      {_describe(info_json['hints'])} (from Adobe Camera Raw settings)")
    for key in ("rating", "labels", "keywords", "duplicates"):
        value = info_json[key]
        if value not in (None, []):
            lines.append(f"  {key + ':':<11} {', '.join(map(str, value)) if isinstance(value, list) else value}")
    return "\n".join(lines)


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def show(inputs: tuple[Path, ...], as_json: bool) -> None:
    """Print what a raw's sidecars hold: hostplug's recipe, Adobe hints, rating, labels, keywords."""
    from engine.xmp.sidecar import find_duplicates, read_sidecar

    def describe(path: Path) -> None:
        info = read_sidecar(path)
        data: dict[str, Any] = {"input": str(path), "sidecar": None}
        if info is not None:
            data |= {
                "sidecar": str(info.path),
                "sidecars": [str(p) for p in info.paths],
                "recipe": info.recipe.to_dict() if info.recipe else None,
                "changed": changed_settings(info.recipe) if info.recipe else {},
                "hints": info.hints,
                "adobe": info.adobe,
                "rating": info.rating,
                "labels": info.labels,
                "keywords": info.keywords,
            }
        data["duplicates"] = [str(p) for p in find_duplicates(path)]
        click.echo(json.dumps(data, indent=2) if as_json else _show_text(data))

    _each(inputs, describe)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def presets(as_json: bool) -> None:
    """List the presets (shipped ones and those in the user folder) and what each sets."""
    from engine.xmp.presets import list_presets, user_folder

    found = list_presets()
    if as_json:
        click.echo(json.dumps([{"name": p.name, "kind": p.kind, "file": str(p.path), "settings": p.settings,
                                "stages": p.stages, "description": p.description} for p in found], indent=2))
        return
    for preset in found:
        sets = _describe({**preset.settings, **({"stages": preset.stages} if preset.stages else {})})
        click.echo(f"{preset.name:<16} {preset.kind:<10} {sets}")
        click.echo(f"{'':<16} {preset.description or ''} ({preset.path})".rstrip())
    click.echo(f"user presets: {user_folder()}")


@click.command()
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--search", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              help="Another folder to look for the source raw in (repeatable).")
@click.option("--out", "target", type=click.Path(dir_okay=False, path_type=Path),
              help="The new output (default: OUTPUT_rerender with the same suffix, numbered if taken).")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object describing the render.")
@recipe_options
def rerender(output: Path, search: tuple[Path, ...], target: Path | None, overwrite: bool, device: str,
             as_json: bool, **kwargs: Any) -> None:
    """Render an output's source raw again with the output's stored recipe plus the options given.

    The raw is looked for next to OUTPUT, at its recorded path and in the --search folders, and checked
    against its recorded SHA-256. The new file has OUTPUT's format, bit depth, colour space and size.
    """
    from engine import __version__
    from engine.models import model_hashes
    from engine.output.write import OutputOptions, resolve_format
    from engine.rerender import image_format, plan_rerender, read_record, rerender_target
    from engine.xmp.provenance import find_source
    from hostplug.cli import render_one

    record = read_record(output)
    recipe, notice = plan_rerender(record, build_recipe(pop_recipe_options(kwargs), record.recipe), __version__,
                                   model_hashes())
    source = find_source(output, search)
    fmt, bits = image_format(output)
    target = target or rerender_target(output, fmt)
    if resolve_format(target, OutputOptions())[0] != fmt:
        raise OutputError(f"{target}: {output.name} is {fmt.upper()}; give --out a name with a matching suffix")
    options = OutputOptions(format=fmt, bits=bits, quality=record.output.get("quality", 92),
                            space=record.output.get("space", "srgb"), long_edge=record.output.get("long_edge"),
                            overwrite=overwrite)
    if notice:
        click.echo(f"hostplug: note: {notice}", err=True)
    result = render_one(source, target, recipe, options, device, None, extra_xmp=record.catalogue)
    if as_json:
        click.echo(json.dumps(result | {"source": str(source), "notice": notice}))
    else:
        click.echo(f"{source} -> {result['output']} ({result['seconds']:.1f} s)")
