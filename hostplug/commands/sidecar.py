"""The commands around XMP sidecars and re-rendering: ``edit``, ``show``, ``presets`` and ``rerender``."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import click

from engine.edits import changed_settings
from engine.recipe import Recipe
from hostplug.commands.common import (
    batch_inputs,
    check_device,
    device_option,
    echo_line,
    error_line,
    for_each_input,
    json_option,
    json_text,
    printable_data,
    time_limit_option,
)
from hostplug.recipe_options import pop_recipe_options, recipe_options


def _describe(settings: dict[str, Any]) -> str:
    return ", ".join(f"{k} {json.dumps(v) if isinstance(v, dict) else v}" for k, v in settings.items()) or "defaults"


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@json_option("Print one JSON object per edited file.")
@recipe_options
def edit(inputs: tuple[Path, ...], as_json: bool, **kwargs: Any) -> None:
    """Store an edit in each raw's XMP sidecar (IMG_0001.CR2.xmp) without rendering.

    Only the options given change; the rest of a stored recipe stays. Other programs' data in the sidecar is
    kept as it was. A raw without a recipe of ours starts from what a render would use: Lightroom's exposure,
    white balance and basic sliders, which the stored recipe then holds (a later change in Lightroom no longer
    applies; `hostplug show` lists them).
    """
    from engine.edits import apply_changes, check_changes, check_renderable
    from engine.errors import NewerSettingsError, StoredSettingError
    from engine.io.probe import check_renderable_file
    from engine.xmp.sidecar import clamped_notes, read_sidecar, update_recipe, write_recipe
    from engine.xmp.sidecar_files import sidecar_path

    changes = pop_recipe_options(kwargs)
    if not changes:  # it wrote the whole default recipe, and rewrote another program's sidecar for nothing
        raise click.UsageError("give the changes to store, such as --exposure 0.3 or --preset NAME; "
                               "'hostplug show' prints what is stored")
    check_changes(changes)  # refuse bad options before touching any sidecar
    inputs = batch_inputs(inputs)

    def change(current: Recipe) -> Recipe:
        recipe = apply_changes(current, changes)
        check_renderable(recipe)
        return recipe

    def store(path: Path) -> None:
        check_renderable_file(path)  # a sidecar for a file that never renders helps nobody
        if changes.get("recipe_file"):  # a whole recipe, stored over the one there (repairs damaged settings)
            recipe = change(Recipe())
            write_recipe(path, recipe)
        else:
            try:
                before = read_sidecar(path)  # Lightroom's settings, which a first edit stores
                recipe = update_recipe(path, change)
            except NewerSettingsError:
                raise
            except StoredSettingError as e:
                said = str(e).removesuffix("; correct it or remove it")  # the advice below says it for edit
                raise StoredSettingError(f"{said}; correct it there, or store a whole recipe over hostplug's settings: "
                                         f"hostplug edit {shlex.quote(str(path))} --recipe FILE") from None
            for note in clamped_notes(before, recipe) if before is not None else []:  # said once: stored now
                echo_line(f"hostplug: note: {note}; the recipe stores it so", err=True)
        sidecar = sidecar_path(path)
        if as_json:
            click.echo(json.dumps({"input": str(path), "sidecar": str(sidecar), "recipe": recipe.to_dict()}))
        else:
            echo_line(f"{path} -> {sidecar}: {_describe(changed_settings(recipe))}")

    for_each_input(inputs, store, must_exist=True, as_json=as_json)


def _show_text(info_json: dict[str, Any]) -> str:
    made = info_json.get("rendered")
    if made is not None:  # a hostplug output: how it was made comes first, and how to make it again
        recipe = made["recipe_error"] or (_describe(made["changed"]) if made["recipe"] is not None else "none recorded")
        said = [f"{info_json['input']}: a hostplug render",
                f"  rendered from: {made['source'] or 'a raw it does not name'}"
                + (f" (SHA-256 {made['source_sha256'][:16]}...)" if made["source_sha256"] else ""),
                f"  its recipe:    {recipe}"]
        if made["recipe_error"] is None:  # (a damaged recipe cannot be rendered again)
            said.append(f"  again:         hostplug rerender {shlex.quote(info_json['input'])} (with changes: add "
                        "options)")
        return "\n".join(said)
    lines = [f"{info_json['input']}"]
    if info_json["sidecar"] is None and not info_json.get("embedded_xmp"):
        duplicates = info_json.get("duplicates") or []  # darktable's versions of it, which a render does not read
        return lines[0] + ": no sidecar; renders with the defaults" + (
            f" (darktable's duplicates {', '.join(duplicates)} are not read)" if duplicates else "")
    lines.append(f"  sidecar:    {', '.join(info_json['sidecars']) or 'none'}")
    if info_json["embedded_xmp"]:
        own = ("the DNG's own XMP" if info_json["input"].lower().endswith(".dng") else
               "the image's own XMP, for its rating, labels, keywords and credits")
        lines.append(f"  embedded:   {own}, read after the sidecars (hostplug edit writes the sidecar)")
    if info_json["recipe"] is not None:
        lines.append(f"  recipe:     {_describe(info_json['changed'])}")
    else:
        lines.append("  recipe:     none stored")
    if info_json["hints"]:
        lines.append(f"  hints:      {_describe(info_json['hints'])} (from Adobe Camera Raw settings in "
                     f"{Path(info_json['adobe_from']).name})")
    for note in info_json.get("hints_clamped") or []:
        lines.append(f"  clamped:    {note}")
    if info_json.get("adobe_differs"):
        differs = info_json["adobe_differs"]
        lines.append(f"  lightroom:  {_describe(differs)} in {Path(info_json['adobe_from']).name}; the recipe's "
                     f"differ and the recipe renders (to take Lightroom's: hostplug edit "
                     f"{shlex.quote(info_json['input'])} {_edit_options(differs)})")
    if info_json.get("adobe_unused"):
        from engine.xmp.hints import ADOBE_OLDER

        older = any(item.partition("=")[0].removeprefix("crs:") in ADOBE_OLDER for item in info_json["adobe_unused"])
        lines.append(f"  not used:   {', '.join(info_json['adobe_unused'])} (Lightroom edits that hostplug does "
                     "not render: export from Lightroom to keep them" + ("; those of a process version before 2012 "
                     "carry over once the photo is updated to 2012 there)" if older else ")"))
    if info_json["darktable_edits"]:
        lines.append(f"  darktable:  {', '.join(info_json['darktable_edits'])} (darktable's own edits and defaults, "
                     "which hostplug does not render: export from darktable to keep them)")
    lines.append(f"  orientation: {_orientation_text(info_json['orientation'])}")
    for key in ("rating", "labels", "keywords", "duplicates"):
        value = info_json[key]
        if key == "rating" and value == -1:
            value = "rejected (-1)"
        if value not in (None, []):
            lines.append(f"  {key + ':':<11} {', '.join(map(str, value)) if isinstance(value, list) else value}")
    return "\n".join(lines)


def _orientation_text(turned: dict[str, Any] | None) -> str:
    """The orientation the sidecars set, which a render applies instead of the raw's EXIF one, or that they set
    none."""
    if turned is None:
        return "none set; the raw's EXIF applies (hostplug info shows it)"
    return f"{turned['value']} ({turned['meaning']}), from {turned['from']}; a render applies it, not the raw's EXIF"


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@json_option("Print JSON instead of text.")
def show(inputs: tuple[Path, ...], as_json: bool) -> None:
    """Print what a raw's sidecars hold: hostplug's recipe, Adobe hints, darktable's edits (named, not rendered),
    the orientation another program set (it wins over the raw's EXIF), rating, labels, keywords; and, after them,
    what a DNG holds in its own XMP (where Lightroom keeps a DNG's edit)."""
    from engine.io.probe import check_renderable_file
    from engine.xmp.hints import clamped_hints, unused_adobe
    from engine.xmp.sidecar import read_sidecar
    from engine.xmp.sidecar_files import find_duplicates

    inputs = batch_inputs(inputs)

    def describe(path: Path) -> None:
        check_renderable_file(path)  # "renders with the defaults" is said only of a file that renders
        info = read_sidecar(path)
        # the same keys with or without a sidecar, so that a script reads d["rating"] of any file
        data: dict[str, Any] = {"input": str(path), "sidecar": None, "sidecars": [], "embedded_xmp": None,
                                "recipe": None, "changed": {}, "hints": {}, "hints_clamped": [], "adobe_unused": [],
                                "adobe": {}, "adobe_from": None, "darktable_edits": [], "orientation": None,
                                "rating": None, "labels": [], "keywords": [], "adobe_differs": {}}
        if info is not None:
            data |= {
                "sidecar": str(info.path) if info.paths else None,
                "sidecars": [str(p) for p in info.paths],
                "embedded_xmp": str(path) if info.embedded else None,  # a DNG's own XMP packet, read too
                "recipe": info.recipe.to_dict() if info.recipe else None,
                "changed": changed_settings(info.recipe) if info.recipe else {},
                "hints": info.hints,
                "hints_clamped": list(clamped_hints(info.adobe, info.adobe_from).values()) if info.recipe is None
                else [],
                "adobe_unused": unused_adobe(info.adobe),  # with a recipe of ours too: none of them renders
                "adobe": info.adobe,
                "adobe_from": info.adobe_from or None,
                "darktable_edits": info.darktable_edits,
                "orientation": info.orientation.note() if info.orientation else None,
                "rating": info.rating,
                "labels": info.labels,
                "keywords": info.keywords,
                "adobe_differs": _adobe_differs(info),
            }
        data["duplicates"] = [str(p) for p in find_duplicates(path)]
        data["rendered"] = _render_record(path)
        if as_json:
            click.echo(json_text(data))
        else:
            click.echo(_show_text(printable_data(data)))

    for_each_input(inputs, describe, must_exist=True, as_json=as_json)


def _adobe_differs(info: Any) -> dict[str, Any]:
    """Lightroom's basic settings that differ from the recipe of ours stored beside them: changed in Lightroom
    after `hostplug edit` took them (a tester's exposure, moved there, went on rendering as first stored), or
    changed in hostplug's recipe since; either way the recipe renders, which `show` says."""
    from engine.errors import SidecarError
    from engine.xmp.hints import adobe_hints

    if info.recipe is None or not info.adobe:
        return {}
    try:
        hints = adobe_hints(info.adobe, info.adobe_from)
    except SidecarError:  # a value that is no number: `show` names Adobe's settings already
        return {}
    if info.adobe.get("WhiteBalance", "").strip() == "As Shot":  # set back there (the hints leave as-shot unsaid)
        hints["wb"] = "as-shot"
    return {name: value for name, value in hints.items() if _differs(getattr(info.recipe, name), value)}


def _differs(stored: Any, value: Any) -> bool:
    """Whether a stored setting is not Lightroom's ``value`` (numbers within 1e-6 are the same: stored as text)."""
    if isinstance(stored, float) and isinstance(value, float):
        return abs(stored - value) >= 1e-6
    return stored != value


def _edit_options(settings: dict[str, Any]) -> str:
    """The `hostplug edit` options that set ``settings`` (recipe names to values)."""
    return " ".join(f"--{name.replace('_', '-')} {value:g}" if isinstance(value, float) else
                    f"--{name.replace('_', '-')} {value}" for name, value in settings.items()
                    if not (name == "wb" and value == "custom"))  # (a temperature sets custom)


def _render_record(path: Path) -> dict[str, Any] | None:
    """What a hostplug output records of its making (its raw, that raw's SHA-256, its recipe and the settings that
    differ from the defaults), for ``show``; None for any other file (a tester found no command that said it
    without rendering)."""
    from engine.io.formats import RGB_SUFFIXES
    from engine.xmp.provenance import read_provenance

    if path.suffix.lower() not in RGB_SUFFIXES:
        return None
    made = read_provenance(path)
    if not made.from_hostplug:
        return None
    return {"source": str(made.path) if made.path else None, "source_sha256": made.sha256,
            "recipe": made.recipe.to_dict() if made.recipe else None,
            "changed": changed_settings(made.recipe) if made.recipe else {}, "recipe_error": made.recipe_error}


@click.command()
@json_option("Print JSON instead of text.")
def presets(as_json: bool) -> None:
    """List the presets (shipped ones and those in the user folder) and what each sets.

    A malformed preset file is one error line (exit 4, a bad preset); the good ones are listed all the same."""
    from engine.errors import SidecarError
    from engine.xmp.presets import list_presets, user_folder

    bad: list[SidecarError] = []
    found = list_presets(on_error=bad.append)
    for error in bad:
        error_line(error)
    if as_json:
        click.echo(json.dumps([{"name": p.name, "kind": p.kind, "file": str(p.path), "settings": p.settings,
                                "stages": p.stages, "description": p.description} for p in found], indent=2))
    else:
        width = max([16, *(len(preset.name) for preset in found)])  # a long name keeps the columns straight
        for preset in found:
            sets = _describe({**preset.settings, **({"stages": preset.stages} if preset.stages else {})})
            echo_line(f"{preset.name:<{width}} {preset.kind:<10} {sets}")
            echo_line(f"{'':<{width}} {preset.description or ''} ({preset.path})".rstrip())
        click.echo(f"user presets: {user_folder()}")
    if bad:
        sys.exit(bad[0].exit_code)  # SidecarError: a bad preset


@click.command()
@click.argument("outputs", metavar="OUTPUT...", nargs=-1, required=True,
                type=click.Path(dir_okay=False, path_type=Path))
@click.option("--search", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Another folder to look for the source raws in (repeatable).")
@click.option("-o", "--output", "--out", "target", type=click.Path(dir_okay=False, path_type=Path),
              help="The new output, for one OUTPUT (default: OUTPUT_rerender with the same suffix, or its "
                   "format's when the suffix names none; OUTPUT_rerender-2... if taken).")
@click.option("--overwrite", is_flag=True, help="Replace -o/--output if it exists.")
@device_option
@time_limit_option
@json_option("Print a JSON object describing each render (one per line for several).")
@recipe_options
def rerender(outputs: tuple[Path, ...], search: tuple[Path, ...], target: Path | None, overwrite: bool,
             device: str, time_limit: float | None, as_json: bool, **kwargs: Any) -> None:
    """Render outputs' source raws again, each with its output's stored recipe plus the options given.

    \b
      hostplug rerender IMG_0001.jpg --exposure +0.3
      hostplug rerender out/*.jpg --preset monochrome

    A raw is looked for next to its OUTPUT, at its recorded path and in the --search folders, and checked
    against its recorded SHA-256. Each new file has its OUTPUT's format, bit depth, colour space and size.
    """
    from engine.rerender import rerender_file

    if target is not None and len(outputs) > 1:
        raise click.UsageError(f"-o/--output names one new file; {len(outputs)} outputs were given (leave it "
                               "out: each re-render is written beside its output)")
    changes = pop_recipe_options(kwargs)
    device = check_device(device)

    def rerender_one(output: Path) -> None:
        result = rerender_file(output, changes, target=target, search=search, overwrite=overwrite, device=device)
        if result.notice:
            echo_line(f"hostplug: note: {result.notice}", err=True)
        if as_json:
            # "input": the output given, as every command's JSON names its argument; "source": its raw
            click.echo(json.dumps(result.as_dict() | {"input": str(output), "source": str(result.source),
                                                      "notice": result.notice}))
        else:
            echo_line(f"{result.source} -> {result.output} ({result.seconds:.1f} s)")

    for_each_input(outputs, rerender_one, time_limit=time_limit, as_json=as_json)
