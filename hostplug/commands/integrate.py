"""``hostplug integrate``: install hostplug into the programs photographers edit in."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def integrate() -> None:
    """Install hostplug into another program (GIMP, darktable...)."""


@integrate.command("gimp")
@click.option("--uninstall", is_flag=True, help="Remove the plug-in and restore GIMP's previous raw loader.")
@click.option("--make-default-raw-loader", is_flag=True,
              help="Make hostplug GIMP's raw importer (edits gimprc; close GIMP first, it rewrites gimprc on exit).")
@click.option("--plugin-dir", type=click.Path(file_okay=False, path_type=Path),
              help="GIMP's plug-in folder (default: the user's, e.g. ~/.config/GIMP/3.0/plug-ins).")
@click.option("--gimprc", type=click.Path(dir_okay=False, path_type=Path),
              help="The gimprc to edit (default: the user's, e.g. ~/.config/GIMP/3.0/gimprc).")
def gimp(uninstall: bool, make_default_raw_loader: bool, plugin_dir: Path | None, gimprc: Path | None) -> None:
    """Install the GIMP 3 plug-in: opens camera raws through hostplug, adds Image > Re-render with hostplug."""
    from hostplug.integrations.gimp import check_profile_started, gimp_directory, install
    from hostplug.integrations.gimp import uninstall as remove

    if not uninstall and (plugin_dir is None or (make_default_raw_loader and gimprc is None)):  # makes GIMP's folder
        check_profile_started(gimp_directory())
    plugin_dir = plugin_dir or gimp_directory() / "plug-ins"
    gimprc = gimprc or gimp_directory() / "gimprc"
    if uninstall:
        report = remove(plugin_dir, gimprc)
    else:
        report = install(plugin_dir, gimprc, make_default=make_default_raw_loader)
    for action in report.actions:
        click.echo(action)
    if not uninstall:
        click.echo("Restart GIMP to load it." + ("" if make_default_raw_loader else
                   " To open raws with it, choose 'Camera raw (hostplug)' in Preferences > Import & Export > "
                   "Raw Image Importer, or run this again with --make-default-raw-loader."))


@integrate.command("darktable")
@click.option("--hot-folder", type=click.Path(file_okay=False, path_type=Path),
              help="Where darktable's \"copy\" export writes: a new, empty folder of its own (it may lie inside a "
                   "library root, not be or hold one; default: ~/hostplug-darktable; created).")
@click.option("--library-root", "library_roots", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              help="A photo folder to search for originals when the export path does not say (repeatable).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="The watch configuration to write (default: $XDG_CONFIG_HOME/hostplug/darktable.toml, "
                   "~/.config/hostplug/darktable.toml without it).")
@click.option("--preset", "presets", multiple=True, help="A preset for the look (repeatable, applied in order).")
@click.option("--style", help="The picture style of the renders.")
@click.option("--force", is_flag=True, help="Replace an existing configuration file.")
def darktable(hot_folder: Path | None, library_roots: tuple[Path, ...], config_path: Path | None,
              presets: tuple[str, ...], style: str | None, force: bool) -> None:
    """Write a watch configuration that renders darktable's "copy" exports beside the original raws (no Lua)."""
    from engine.errors import RecipeError
    from engine.styles import parse_style
    from engine.xmp.presets import preset_file
    from hostplug.integrations.darktable import DEFAULT_HOT_FOLDER, darktable_steps, default_config, write_route

    try:  # a wrong option value, as on every other command (exit 2)
        if style is not None:
            parse_style(style)
        for name in presets:
            preset_file(name)
    except RecipeError as e:
        raise click.UsageError(str(e)) from None
    config_path = (config_path or default_config()).expanduser().absolute()
    config = write_route(config_path, hot_folder or DEFAULT_HOT_FOLDER, library_roots, presets, style, force=force)
    click.echo(f"Wrote {config_path} (hot folder {config.folders[0].path}).\n")
    for step in darktable_steps(config.folders[0].path, config_path):
        click.echo(step)
