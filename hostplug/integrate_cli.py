"""``hostplug integrate``: install hostplug into the programs photographers edit in."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def integrate() -> None:
    """Install hostplug into another program (GIMP...)."""


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
    from hostplug.gimp_install import gimp_directory, install
    from hostplug.gimp_install import uninstall as remove

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
