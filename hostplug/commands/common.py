"""What the commands share: one error line and an exit code, the device check, the ``--device``, ``--json`` and
``--time-limit`` options, the time limit's watchdog, and the loop over inputs where each failure is one error line
and the exit status is 1."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import click

from engine.errors import HostplugError, InputNotFoundError, OptionError
from engine.io.bounded import not_a_file

DEVICES = ("cpu", "cuda")
TIME_LIMIT_ENV = "HOSTPLUG_TIME_LIMIT"
TIME_LIMIT_EXIT = 124  # the exit status of a render stopped by --time-limit (as timeout(1) uses)
# stage folders (--stages) a render has begun: removed, as its partial output is, when it is stopped or fails
PARTIAL_FOLDERS: set[Path] = set()


def fail(message: str, code: int = 1) -> None:
    """Print one error line (:func:`error_line`) and exit."""
    error_line(message)
    sys.exit(code)


def error_line(error: HostplugError | str) -> None:
    """Print one error line on stderr (the run goes on): a newline or an escape sequence in a file's name is
    written as an escape (``\\n``), as the daemon's log writes it, so the error stays one line."""
    echo_line(f"hostplug: error: {for_the_command_line(str(error))}", err=True)


def echo_line(text: str, err: bool = False) -> None:
    """Print one line (on stderr with ``err``) with the characters that could hide or fake a line (a newline or an
    escape sequence in a file's name, a carriage return in a sidecar's keyword) written as escapes."""
    from hostplug.printable import printable

    click.echo(printable(text), err=err)


def printable_data(value: Any) -> Any:
    """``value`` (JSON-like data another program's files filled) with every text in it escaped as
    :func:`echo_line` escapes a line, for building lines of text out of it: a keyword holding a newline and
    "rating: 5" made a line of its own (a reviewer's)."""
    from hostplug.printable import printable

    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {key: printable_data(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [printable_data(item) for item in value]
    return value


def for_the_command_line(message: str) -> str:
    """An engine message without the hint it gives a library user ("(in Python: OutputOptions(...))"), which is
    noise at the command line (a tester's)."""
    return re.sub(r" \(in Python: .*\)$", "", message)


def check_device(device: str) -> str:
    """``device`` when it can be used here (:func:`engine.devices.check_device`, in the option's words), before
    any work."""
    from engine.devices import check_device as engine_check

    return engine_check(device, "--device")


def device_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--device cpu|cuda`` (default cpu)."""
    return click.option("--device", type=click.Choice(DEVICES), default="cpu", show_default=True)(command)


def failure_record(input_path: str, message: str, exit_code: int) -> str:
    """The ``--json`` line of an input that failed: ``{"input", "error", "exit_code"}``."""
    return json_text({"input": input_path, "error": for_the_command_line(message), "exit_code": exit_code})


def json_text(value: Any) -> str:
    """``value`` as JSON for ``--json``: one line per record, however many inputs (JSON Lines, which a script
    reads line by line; a tester's line reader broke on the indented object one input used to give)."""
    return json.dumps(value)


def json_option(help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--json``, passed to the command as ``as_json``."""
    return click.option("--json", "as_json", is_flag=True, help=help_text)


def _check_time_limit(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """The time limit in seconds from ``--time-limit``, else ``HOSTPLUG_TIME_LIMIT``; None for no limit. A value
    that is no number of seconds is a wrong option (exit 2)."""
    source = f"--time-limit {value}"
    if value is None:
        value = os.environ.get(TIME_LIMIT_ENV, "").strip()
        source = f"{TIME_LIMIT_ENV}={value}"
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and 0 < seconds <= 7 * 86400):
        raise OptionError(f"{source}: the time limit must be a number of seconds above 0 and at most 604800")
    return seconds


def time_limit_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--time-limit SECONDS`` (default: ``HOSTPLUG_TIME_LIMIT``, else none), passed as ``time_limit``."""
    return click.option("--time-limit", "time_limit", metavar="SECONDS", callback=_check_time_limit,
                        help=f"Stop a render that takes longer than this (exit {TIME_LIMIT_EXIT}, nothing "
                             f"half-written left); default ${TIME_LIMIT_ENV}, else no limit. A limited render "
                             "runs in this process, never in the render service.")(command)


@contextlib.contextmanager
def watchdog(seconds: float | None, what: str, rest: str = "", as_json: bool = False) -> Iterator[None]:
    """Run the body under a time limit: past ``seconds``, a watchdog thread deletes the partial outputs being
    written (:data:`engine.output.write.IN_PROGRESS`) and the stage folders begun (:data:`PARTIAL_FOLDERS`), prints
    one error line about ``what`` (``rest`` ends it: what a batch leaves undone), with ``as_json`` a record of it
    on stdout as a failed input's (``input``, ``error``, ``exit_code``), and ends the process with
    :data:`TIME_LIMIT_EXIT`.

    A thread, not a signal: a Python signal handler waits for the main thread to return to Python, which a
    render stuck inside LibRaw or a compiled kernel never does. ``None`` means no limit.
    """
    if seconds is None:
        yield
        return
    done = threading.Event()
    # the stderr of now: while LibRaw decodes, fd 2 points at /dev/null (engine.io.limits.quiet_stderr)
    stderr = os.dup(2)

    def expire() -> None:
        if done.wait(seconds):
            return
        from engine.output.write import IN_PROGRESS

        for partial in list(IN_PROGRESS):
            with contextlib.suppress(OSError):
                partial.unlink()
        for folder in list(PARTIAL_FOLDERS):
            shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        said = f"{what}: stopped after {seconds:g} s (--time-limit / {TIME_LIMIT_ENV}); its output was not written"
        if as_json:  # a script reading the records learns of the stopped input too (a tester's got none)
            with contextlib.suppress(OSError):
                os.write(1, (failure_record(what, said, TIME_LIMIT_EXIT) + "\n").encode(errors="replace"))
        os.write(stderr, f"hostplug: error: {said}{rest}\n".encode(errors="replace"))
        os._exit(TIME_LIMIT_EXIT)

    thread = threading.Thread(target=expire, name="hostplug-time-limit", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        os.close(stderr)


class FiniteRange(click.FloatRange):
    """click's FloatRange that refuses NaN and infinities: every comparison with NaN is false, so FloatRange lets it
    through (a tester's ``train photofinish --correction nan`` wrote a model of NaN and exited 0)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


class NameChoice(click.Choice):
    """A choice typed as people write it (:func:`engine.output.formats.canonical_name`: "sRGB", "AdobeRGB",
    "Display P3", "JPG"); the value is the canonical name."""

    def __init__(self, choices: Iterable[str], aliases: dict[str, str] | None = None) -> None:
        super().__init__(tuple(choices))
        self.aliases = aliases or {}

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from engine.output.formats import canonical_name

        name = canonical_name(str(value), (str(choice) for choice in self.choices), self.aliases)
        return name if name is not None else super().convert(value, param, ctx)  # click's line naming the choices


def batch_inputs(inputs: Iterable[Path]) -> tuple[Path, ...]:
    """The files a command works on, in order: each once, since overlapping shell globs (``*.dng IMG_*``) name a
    file twice, and without the XMP sidecars of ``hostplug render *`` in a card folder (each is read with its
    raw), one note line for each kind left out. Sidecars alone are kept, for their error line that names the
    raw to give instead."""
    from engine.xmp.sidecar_files import is_sidecar_name, lone_sidecars

    inputs = list(inputs)
    sidecars = [path for path in inputs if is_sidecar_name(path)]
    files = [path for path in inputs if not is_sidecar_name(path)]
    if not files:
        files, sidecars = inputs, []
    if sidecars:
        click.echo(f"hostplug: note: {len(sidecars)} XMP sidecar{'s are' if len(sidecars) > 1 else ' is'} left "
                   "out; each is read with its raw", err=True)
    lone = lone_sidecars(inputs)
    for sidecar in (path for path in sidecars if path in lone):
        click.echo(f"hostplug: note: {sidecar}: its raw is not among the files given", err=True)
    seen: set[str] = set()
    distinct = []
    for path in files:
        try:
            key = str(path.resolve())
        except (RuntimeError, OSError):  # a symbolic link loop: the file's own error line comes when it is read
            key = str(path.absolute())
        if key in seen:
            click.echo(f"hostplug: note: {path} is given more than once; it is used once", err=True)
            continue
        seen.add(key)
        distinct.append(path)
    return tuple(distinct)


def undone(inputs: list[Path], index: int, shown: int = 10) -> str:
    """What a batch stopped at ``inputs[index]`` leaves undone: "2 of 4 files done; not done: s1.ARW, c3.dng"
    (at most ``shown`` names; a failure among the done ones had its own line)."""
    left = inputs[index:]
    names = ", ".join(str(p) for p in left[:shown]) + (f" and {len(left) - shown} more" if len(left) > shown else "")
    return f"{index} of {len(inputs)} files done; not done: {names}"


def for_each_input(inputs: Iterable[Path], action: Callable[[Path], Any], *, must_exist: bool = False,
                   on_error: Callable[[], None] | None = None,
                   after: Callable[[], None] | None = None, time_limit: float | None = None,
                   as_json: bool = False) -> None:
    """Run ``action`` on every input; a failure is one error line and the others still run. If any failed, exit
    with their error's status (:mod:`engine.errors`), or 1 when they failed for different reasons. With
    ``as_json`` a failure is also a JSON record on stdout (``input``, ``error``, ``exit_code``), so a script that
    reads the records learns of every input, not only those that worked.

    For several inputs a last line says "N of M files failed", and a stop (Ctrl-C, SIGTERM, the time limit) says
    which were not done. ``must_exist`` refuses a missing file before ``action``; ``on_error`` runs before an
    error line is printed (a progress bar clears itself), ``after`` after each input; ``time_limit`` bounds each
    input's ``action`` (:func:`watchdog`).
    """
    inputs = list(inputs)
    failures = 0
    codes: set[int] = set()
    for index, path in enumerate(inputs):
        try:
            why = not_a_file(path) if must_exist else None
            if why is not None:
                raise InputNotFoundError(f"{path}: {why}")
            rest = f"; {undone(inputs, index)}" if time_limit is not None and len(inputs) > 1 else ""
            with watchdog(time_limit, str(path), rest, as_json):
                action(path)
        except HostplugError as e:
            failures += 1
            codes.add(e.exit_code)
            if on_error is not None:
                on_error()
            error_line(e)
            if as_json:
                click.echo(failure_record(str(path), str(e), e.exit_code))
        except BaseException as e:  # Ctrl-C, SIGTERM: the command's own line follows; first, what is left undone
            if len(inputs) > 1 and not isinstance(e, SystemExit):
                if on_error is not None:
                    on_error()
                click.echo(f"hostplug: note: stopped in {path}; {undone(inputs, index)}", err=True)
            raise
        finally:
            if after is not None:
                after()
    if failures:
        if len(inputs) > 1:
            error_line(f"{failures} of {len(inputs)} files failed")
        sys.exit(codes.pop() if len(codes) == 1 else 1)
