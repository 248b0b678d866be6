"""What the commands share: one error line and an exit code, the device check, the ``--device`` and ``--json``
options, and the loop over inputs where each failure is one error line and the exit status is 1."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import click

from engine.errors import HostplugError, InputNotFoundError

DEVICES = ("cpu", "cuda")


def fail(message: str, code: int = 1) -> None:
    """Print one error line and exit."""
    click.echo(f"hostplug: error: {message}", err=True)
    sys.exit(code)


def error_line(error: HostplugError | str) -> None:
    """Print one error line on stderr (the run goes on)."""
    click.echo(f"hostplug: error: {error}", err=True)


def check_device(device: str) -> str:
    """``device`` when it can be used here; a clear error for CUDA on a machine without a GPU."""
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise HostplugError("--device cuda: no CUDA GPU is available here; use --device cpu")
    return device


def device_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--device cpu|cuda`` (default cpu)."""
    return click.option("--device", type=click.Choice(DEVICES), default="cpu", show_default=True)(command)


def json_option(help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--json``, passed to the command as ``as_json``."""
    return click.option("--json", "as_json", is_flag=True, help=help_text)


def for_each_input(inputs: Iterable[Path], action: Callable[[Path], Any], *, must_exist: bool = False,
                   summary: bool = False, on_error: Callable[[], None] | None = None,
                   after: Callable[[], None] | None = None) -> None:
    """Run ``action`` on every input; a failure is one error line and the others still run; exit 1 if any failed.

    ``must_exist`` refuses a missing file before ``action``; ``summary`` adds "N of M files failed" for several
    inputs; ``on_error`` runs before an error line is printed (a progress bar clears itself), ``after`` after
    each input.
    """
    inputs = list(inputs)
    failures = 0
    for path in inputs:
        try:
            if must_exist and not path.is_file():
                raise InputNotFoundError(f"{path}: no such file")
            action(path)
        except HostplugError as e:
            failures += 1
            if on_error is not None:
                on_error()
            error_line(e)
        finally:
            if after is not None:
                after()
    if failures:
        if summary and len(inputs) > 1:
            error_line(f"{failures} of {len(inputs)} files failed")
        sys.exit(1)
