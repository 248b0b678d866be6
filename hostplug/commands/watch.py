"""``hostplug watch`` (the hot-folder daemon) and ``hostplug queue`` (its journal, for people and scripts)."""

from __future__ import annotations

import dataclasses
import json
import os
import textwrap
import time
from pathlib import Path
from typing import Any

import click

from engine.output.formats import FORMAT_ALIASES, FORMATS, SPACE_ALIASES, SPACE_NAMES
from hostplug.commands.common import FiniteRange, NameChoice, json_option
from hostplug.daemon.config import EXAMPLE, LIMITS, DaemonConfig, FolderConfig, OutputSpec
from hostplug.daemon.errors import ConfigError
from hostplug.recipe_options import pop_recipe_options, recipe_options

_WATCH_HELP = f"""Render every raw dropped into hot folders, as a resident daemon.

\b
  hostplug watch --config studio.toml
  hostplug watch IN_DIR --out OUT_DIR [--preset NAME]... [recipe options]

A file is rendered once its size and time have not changed for the settle period; temporary names of copy
tools (.*, ~*, *.part, *.tmp, *.crdownload) are ignored until renamed. A SQLite journal records every file,
so after a crash or restart each dropped raw still ends with exactly one set of outputs, and a re-dropped
identical raw is not rendered again unless its recipe changed. Files that cannot render go to
IN_DIR/_failed/ with NAME.failed.txt saying why. SIGTERM (or Ctrl-C) lets running renders finish within
grace_seconds, then exits 0; a second one stops at once (exit 128+N: 130 for Ctrl-C). `hostplug queue` shows
the journal.

A configuration file (TOML; --workers, --journal, --log-json, --polling and --cluster override it):

\b
{textwrap.indent(EXAMPLE, "  ", lambda line: True)}"""


def _recipe_settings(changes: dict[str, Any]) -> dict[str, Any]:
    """The hot folder's look as its ``recipe`` settings (the recipe JSON's form), made from the options as
    ``render`` makes its recipe (:func:`engine.edits.apply_changes`: the recipe file, then the presets, then the
    settings, then the stage changes). So the defaults a recipe file holds do not undo the presets, a
    white-balance option replaces the file's as it does for ``render``, and ``--set`` merges with a preset's
    stage. Empty when only presets were given: the folder's presets then make the look by themselves."""
    from engine.edits import apply_changes

    if all(value in (None, {}, (), []) for name, value in changes.items() if name != "presets"):
        return {}
    settings = apply_changes(None, changes).to_dict()
    settings.pop("version")
    return settings


MINIMAL_FORM_OPTIONS = ("fmt", "bits", "quality", "space", "long_edge", "template", "recurse", "archive")


def _minimal_form_options() -> str:
    """The minimal form's output options given on the command line (a configuration file would ignore them), as
    the user typed them; "" for none."""
    context = click.get_current_context()
    given = [param.opts[0] for param in context.command.params
             if param.name in MINIMAL_FORM_OPTIONS
             and context.get_parameter_source(param.name) == click.core.ParameterSource.COMMANDLINE]
    return ", ".join(given)


def _minimal_config(in_dir: Path, out_dir: Path, presets: tuple[str, ...], spec: dict[str, Any],
                    recurse: bool, archive: Path | None, settings: dict[str, Any]) -> DaemonConfig:
    from hostplug.daemon.config import default_journal
    from hostplug.daemon.templates import check_template

    check_template(spec["template"])
    if spec["bits"] == 16 and spec["format"] == "jpeg":  # every raw would fail, then go to _failed/
        raise ConfigError("a JPEG holds only 8 bits per channel; leave out --bits 16, or give --format tiff or png")
    if spec["quality"] is not None and spec["format"] != "jpeg":  # it was ignored, as if it had been read
        raise ConfigError(f"--quality applies to JPEG outputs only, and this writes {spec['format'].upper()}; leave "
                          "it out, or give --format jpeg")
    output = OutputSpec(folder=out_dir.absolute(), **{**spec, "quality": spec["quality"] or 92})
    folder = FolderConfig(path=in_dir.absolute(), outputs=(output,), presets=presets, recipe=settings,
                          recurse=recurse, originals="move" if archive else "leave",
                          archive=archive.absolute() if archive else None)
    return DaemonConfig(folders=(folder,), journal=default_journal(folder.path))


@click.command(help=_WATCH_HELP, short_help="Render raws dropped into hot folders (a resident daemon).")
@click.argument("in_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--config", "config_path", type=click.Path(path_type=Path),
              help="TOML configuration (see above).")
@click.option("--out", "--out-dir", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Output folder (minimal form).")
@click.option("--format", "fmt", type=NameChoice(FORMATS, FORMAT_ALIASES), default="tiff", show_default=True)
@click.option("--bits", type=click.Choice(["8", "16"]), help="Bits per channel (default 16; JPEG 8).")
@click.option("--quality", type=click.IntRange(1, 100), help="JPEG quality (default 92; --format jpeg only).")
@click.option("--colour-space", "--color-space", "space", type=NameChoice(SPACE_NAMES, SPACE_ALIASES), default="srgb",
              show_default=True)
@click.option("--long-edge", type=click.IntRange(16, LIMITS["long_edge"]), help="Shrink so the long side has N pixels.")
@click.option("--template", default="{name}", show_default=True,
              help="Output name without suffix; tokens {name} {ext} {dir} {date} {camera} {style} {seq}. {date} is "
                   "the capture date (a file that records none: its modification date).")
@click.option("--recurse", is_flag=True, help="Watch sub-folders too.")
@click.option("--archive", type=click.Path(file_okay=False, path_type=Path),
              help="Move each original here once rendered (default: leave it).")
@click.option("--workers", type=click.IntRange(1, None), help="Renders at once (default 1).")
@click.option("--settle", type=FiniteRange(0.1, None), help="Settle period in seconds (default 2).")
@click.option("--polling", is_flag=True, help="Scan folders instead of using file events (network shares).")
@click.option("--journal", type=click.Path(path_type=Path),
              help="Journal file (default: IN_DIR/.hostplug/journal.sqlite).")
@click.option("--log-json", type=click.Path(path_type=Path),
              help="Also log one JSON object a line to this file.")
@click.option("--cluster", metavar="ray://HOST:PORT|auto",
              help="Render on the nodes of a Ray cluster (pip install 'hostplug[cluster]'; docs/cluster.md).")
@click.option("--allow-public-bind", is_flag=True,
              help="Accept a cluster address on every interface (0.0.0.0); firewall it (docs/cluster.md).")
@click.option("-v", "--verbose", is_flag=True, help="Log every step.")
@recipe_options
def watch(in_dir: Path | None, config_path: Path | None, out_dir: Path | None, fmt: str, bits: str | None,
          quality: int, space: str, long_edge: int | None, template: str,
          recurse: bool, archive: Path | None, workers: int | None, settle: float | None, polling: bool,
          journal: Path | None, log_json: Path | None, cluster: str | None, allow_public_bind: bool, verbose: bool,
          **kwargs: Any) -> None:
    from hostplug.cli import Terminated

    try:
        import logging

        from engine.errors import HostplugError
        from hostplug.daemon.config import load_config
        from hostplug.daemon.daemon import Daemon, check_not_watched
        from hostplug.daemon.errors import TakenError
        from hostplug.daemon.logs import StatusLine, close_logging, log_fatal_before_start, setup_logging
        from hostplug.daemon.validate import validate

        changes = pop_recipe_options(kwargs)
        presets = tuple(changes.get("presets") or ())
        settings = _recipe_settings(changes)
        if config_path is not None:
            given = _minimal_form_options()
            if in_dir is not None or out_dir is not None:
                raise ConfigError("give either --config FILE or IN_DIR --out OUT_DIR, not both")
            if presets or settings:  # the file holds each folder's recipe
                raise ConfigError("recipe options belong to the form IN_DIR --out OUT_DIR; with --config, set them "
                                  "in the file (each [[folder]]'s presets and recipe)")
            if given:  # the file says how outputs are written: these would be ignored without a word
                verb = "belongs" if "," not in given else "belong"
                raise ConfigError(f"{given} {verb} to the form IN_DIR --out OUT_DIR; with --config, set them in the "
                                  "file ([[folder]] and its [[folder.output]])")
            config = load_config(config_path)
        elif in_dir is not None and out_dir is not None:
            spec = {"template": template, "format": fmt, "bits": int(bits) if bits else None, "quality": quality,
                    "space": space, "long_edge": long_edge}
            config = _minimal_config(in_dir, out_dir, presets, spec, recurse, archive, settings)
        else:
            raise ConfigError("give --config FILE, or IN_DIR --out OUT_DIR (see hostplug watch --help)")
        overrides: dict[str, Any] = {"workers": workers, "journal": journal.absolute() if journal else None,
                                     "log_json": log_json.absolute() if log_json else None, "settle_seconds": settle,
                                     "watcher": "polling" if polling else None, "cluster": cluster,
                                     "allow_public_bind": allow_public_bind or None}
        config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
        try:
            check_not_watched(config.folders, config.journal)  # before validate creates
            validate(config)
        except HostplugError as e:  # before the log is set up: a monitor tailing the JSON log reads it too
            if not isinstance(e, TakenError):  # (not into the log of the daemon that holds the journal)
                log_fatal_before_start(config.log_json, e)
            raise
        status = StatusLine()
        setup_logging(config.log_json, status, logging.DEBUG if verbose else logging.INFO)
        try:
            code = Daemon(config, status=status).run()
        finally:
            close_logging()
        raise SystemExit(code)
    except Terminated:  # SIGTERM before the daemon took its signals: nothing was started, so a clean stop
        raise SystemExit(0) from None


def _journal_path(hot_folder: Path | None, config_path: Path | None, journal: Path | None) -> tuple[Path, str]:
    """The journal ``queue`` reads, and what to ask when there is none there (it asked about "this
    configuration" when none was given)."""
    from hostplug.daemon.config import default_journal, load_config

    if journal is not None:
        return journal, "is it the journal the daemon was given?"
    if config_path is not None:
        return load_config(config_path).journal, "has the daemon run with this configuration?"
    if hot_folder is not None:
        if not hot_folder.is_dir():
            raise ConfigError(f"hot folder {hot_folder} does not exist or is not a folder")
        return (default_journal(hot_folder.absolute()), "has a daemon watched this hot folder? With --journal or "
                "--config, give the same here")
    raise ConfigError("give --config FILE, --journal PATH or the hot folder")


def _retry_failed(journal: Any) -> tuple[int, list[str]]:
    """Queue every failed raw again, moving it back from ``_failed/``; returns the count and what was skipped."""
    from hostplug.daemon.originals import restore

    count, skipped = 0, []
    for entry in journal.entries("failed"):
        where = entry.moved_to or entry.path
        if not where.exists() and not entry.path.exists():  # deleted since it failed: nothing left to retry
            journal.forget(entry.id)
            skipped.append(f"{entry.path}: deleted since it failed; no longer counted")
            continue
        if not restore(entry.path, where):
            skipped.append(f"{entry.path}: its name is taken again in the hot folder; drop it in again")
            continue
        journal.retry(entry.id)
        count += 1
    for raw, dropped in _untracked_failures(journal):  # earlier copies of a name that failed again
        if restore(dropped, raw):
            count += 1
        else:
            skipped.append(f"{raw}: its name {dropped.name} is taken in the hot folder; drop it in again")
    return count, skipped


def _untracked_failures(journal: Any) -> list[tuple[Path, Path]]:
    """The failed raws in ``_failed/`` that no journal row tracks, each with where it was dropped
    (:func:`.originals.earlier_failures`)."""
    from hostplug.daemon.originals import earlier_failures

    tracked = {entry.moved_to for entry in journal.entries("failed") if entry.moved_to}
    return [found for folder in journal.folders() for found in earlier_failures(folder, tracked)]


def _unusual_states(states: dict[str, int]) -> str:
    """`` (1 starting, 1 lost)``: the workers of a node that are neither idle nor rendering, if any."""
    shown = [f"{count} {state}" for state, count in states.items() if state not in ("idle", "rendering")]
    return f" ({', '.join(shown)})" if shown else ""


def _when(timestamp: float | None) -> str | None:
    """A journal time (``time.time()``) as local ISO time, to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(timestamp)) if timestamp else None


def _photo(path: str, id_: int) -> dict[str, Any]:
    """``path`` (the raw's, without the ``#ID`` the journal adds to an earlier photo whose name a later one took: a
    script opened "IMG_0001.dng#4"), the journal's ``id``, and ``name_taken``: whether a later photo took the name."""
    from hostplug.daemon.journal import Journal

    raw, taken = Journal.photo_path(path, id_)
    return {"path": raw, "id": id_, "name_taken": taken}


def _error_record(entry: Any) -> dict[str, Any]:
    return {**_photo(str(entry.path), entry.id), "state": entry.state, "kind": entry.error_kind,
            "error": entry.error, "attempts": entry.attempts,
            "moved_to": str(entry.moved_to) if entry.moved_to else None, "when": _when(entry.finished_at)}


def _done_record(row: dict[str, Any]) -> dict[str, Any]:
    """A rendered raw for ``--json``: its outputs as the journal holds them (absolute paths), and where the raw
    went (``moved_to``: the archive) if it left the hot folder."""
    return {**_photo(row["path"], row["id"]), "outputs": row["outputs"], "node": row["node"],
            "moved_to": row["moved_to"], "when": _when(row["finished_at"])}


def _output_root(done: list[dict[str, Any]]) -> str | None:
    """The folder all the listed outputs lie under, to show them relative to it; None when there are none or
    they share no folder but the file system's root (outputs on several disks)."""
    parents = [os.path.dirname(output) for row in done for output in row["outputs"]]
    if not parents:
        return None
    try:
        root = os.path.commonpath(parents)
    except ValueError:  # absolute and relative paths mixed: keep them as they are
        return None
    return root if root and os.path.dirname(root) != root else None


def _name_in_folder(path: str, folder: str | None) -> str:
    """A raw's path relative to its hot folder (``camB/IMG_0001.dng``: two cameras' sub-folders hold the same
    names, which the name alone did not tell apart), else its name."""
    if folder and path.startswith(folder.rstrip("/") + "/"):
        return path[len(folder.rstrip("/")) + 1:]
    return os.path.basename(path)


def _done_lines(done: list[dict[str, Any]], total: int) -> list[str]:
    """The text listing of rendered raws: one line each, ``WHEN  NAME -> OUTPUT, OUTPUT``, the outputs relative
    to the folder they share (named in the heading), so that a line stays short and a grep for the raw's name
    finds all its outputs."""
    from hostplug.printable import printable  # a name must not fake or hide a line

    root = _output_root(done)
    lines = [f"last done (outputs under {printable(root)}):" if root else "last done:"]
    for row in done:
        shown = ", ".join(printable(os.path.relpath(o, root) if root else o) for o in row["outputs"])
        name = printable(_name_in_folder(row["path"], row.get("folder")))
        lines.append(f"  {_when(row['finished_at']) or '-'}  {name} -> {shown or '(no outputs)'}")
    if total > len(done):
        lines.append(f"  ({total - len(done)} more: --done {total} lists them all)")
    return lines


@click.command(short_help="Show (and retry) the watch daemon's queue.")
@click.argument("hot_folder", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--config", "config_path", type=click.Path(path_type=Path),
              help="The daemon's TOML configuration (its journal is read).")
@click.option("--journal", type=click.Path(dir_okay=False, path_type=Path), help="The journal file itself.")
@click.option("--retry", is_flag=True, help="Queue failed files again (moved back from _failed/).")
@click.option("--errors", "error_count", type=click.IntRange(0, None), default=10, show_default=True,
              help="How many recent errors to show.")
@click.option("--done", "done_count", type=click.IntRange(0, None), default=10, show_default=True,
              help="How many recently rendered files to list with their outputs (--json lists all).")
@json_option("Print one JSON object.")
def queue(hot_folder: Path | None, config_path: Path | None, journal: Path | None, retry: bool,
          error_count: int, done_count: int, as_json: bool) -> None:
    """Queued, rendering, done and failed counts, the last rendered files with their outputs and the last
    errors, for a running or stopped daemon.

    The journal is the one in the configuration, else HOT_FOLDER/.hostplug/journal.sqlite. --retry
    re-queues failed files; a running daemon picks them up at once, a stopped one when it starts.
    """
    from hostplug.daemon.daemon import running_pid
    from hostplug.daemon.journal import Journal

    path, missing = _journal_path(hot_folder, config_path, journal)
    db = Journal(path, create=False, missing=missing)
    try:
        retried, skipped = _retry_failed(db) if retry else (0, [])
        counts, errors = db.counts(), db.recent_errors(error_count)
        untracked = _untracked_failures(db)
        limit = None if as_json else done_count  # scripts get every rendered raw, people the last few
        done = db.rendered_outputs(limit) if limit != 0 else []
        pid = running_pid(path)
        where = db.nodes(live=pid is not None)  # nodes, workers and each rendered file's node (a cluster's too)
        # files still being copied in, as the running daemon last saw them (a stopped one sees none)
        settling = db.settling() if pid is not None else {"count": 0, "paths": []}
    finally:
        db.close()
    if as_json:
        click.echo(json.dumps({"journal": str(path), "running_pid": pid, "counts": counts,
                               "errors": [_error_record(e) for e in errors], "retried": retried,
                               "not_retried": skipped, "earlier_failures": [str(raw) for raw, _ in untracked],
                               "settling": settling, "nodes": where["nodes"], "workers": where["workers"],
                               "rendered": where["rendered"], "done": [_done_record(e) for e in done]}))
        return
    click.echo(f"journal {path} ({f'daemon running, pid {pid}' if pid else 'daemon not running'})")
    click.echo("  ".join(f"{state} {n}" for state, n in counts.items()) + (
        f"  (arriving, still being copied in: {settling['count']})" if settling["count"] else ""))
    if untracked:
        click.echo(f"({len(untracked)} earlier failed cop{'y' if len(untracked) == 1 else 'ies'} wait in _failed/ "
                   "under names dropped again since: --retry brings them back too)")
    if counts["rendering"] and not pid:
        click.echo("(the daemon stopped while rendering; those files are queued again when it starts)")
    if where["nodes"] and pid:  # a stopped daemon has no workers (--json keeps the journal's record of them)
        click.echo(f"nodes (files per minute over the last {where['window_seconds'] / 60:g} minutes):")
        for node in where["nodes"]:
            rendering = ", ".join(Path(p).name for p in node["rendering"])
            click.echo(f"  {node['node']}: {node['workers']} worker(s){_unusual_states(node['states'])}, "
                       f"{node['files_per_minute']:g} files/min" + (f", rendering {rendering}" if rendering else ""))
    if done:
        click.echo("\n".join(_done_lines(done, counts["done"])))
    if retry:
        click.echo(f"re-queued {retried} failed file(s)")
        for line in skipped:
            click.echo(f"  not re-queued: {line}")
    if errors:
        from hostplug.printable import printable

        click.echo("last errors:")
        for entry in errors:
            name = printable(_name_in_folder(str(entry.path), str(entry.folder)))
            click.echo(f"  {_when(entry.finished_at) or '-'}  {name} [{entry.state}]: {printable(entry.error or '')}")
