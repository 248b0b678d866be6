"""The ``hostplug`` command: it only names the commands of :mod:`hostplug.commands`, and imports a command's
module when that command runs (``--help`` imports them all), so that ``hostplug info`` does not wait for the
watch daemon's or the service's modules to load.

Every error is one line on stderr (``hostplug: error: ...``) and a non-zero exit; ``--json`` prints results
for scripts on stdout.
"""

from __future__ import annotations

import atexit
import gc
import importlib
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

import click

from engine.errors import HostplugError
from hostplug.commands.common import fail
from hostplug.memory import keep_freed_memory, no_huge_page_advice

no_huge_page_advice()  # before anything imports numpy (hostplug.cli and the commands' modules do not)


# Each command's name, and where it is: module in hostplug.commands, and the click command's name there.
COMMANDS = {
    "render": ("render", "render"), "info": ("info", "info"),
    "edit": ("sidecar", "edit"), "show": ("sidecar", "show"), "presets": ("sidecar", "presets"),
    "rerender": ("sidecar", "rerender"),
    "watch": ("watch", "watch"), "queue": ("watch", "queue"),
    "open": ("open", "open_command"), "thumbnail": ("open", "thumbnail"),
    "integrate": ("integrate", "integrate"),
    "train": ("models", "train"), "eval": ("models", "evaluate"),
    "serve": ("serve", "serve"), "cluster": ("cluster", "cluster"),
}


class Terminated(BaseException):
    """SIGTERM (what ``timeout``, systemd and docker send) or SIGHUP (a closed terminal, a dropped ssh session),
    raised in the main thread as Ctrl-C raises KeyboardInterrupt, so that a partial output is removed on the way
    out as it is after Ctrl-C."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(signum)
        self.signum = signum

    def fail(self) -> None:
        """The command's one line and exit status for this signal."""
        fail(f"terminated ({signal.Signals(self.signum).name}); nothing half-written was left", 128 + self.signum)


def _terminate(signum: int, _frame: Any) -> None:
    raise Terminated(signum)


def _catch_termination() -> dict[int, Any]:
    """Raise :class:`Terminated` on SIGTERM, and on SIGHUP unless it is ignored (``nohup`` keeps that); returns
    the handlers replaced."""
    previous: dict[int, Any] = {signal.SIGTERM: signal.signal(signal.SIGTERM, _terminate)}
    if signal.getsignal(signal.SIGHUP) is signal.SIG_DFL:
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, _terminate)
    return previous


class HostplugGroup(click.Group):
    """A group that loads a command's module only when the command is asked for, and turns engine errors raised
    anywhere in a command into one line and an exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module_name, attribute = COMMANDS[cmd_name]
        module = importlib.import_module(f"hostplug.commands.{module_name}")
        command = getattr(module, attribute)
        assert isinstance(command, click.Command)
        return command

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        """Click's own, except that a wrong option or argument is one error line like every other error (click
        prints a usage block of three), with the exit status 2 click gives it. A caller that passes
        ``standalone_mode=False`` gets click's behaviour unchanged (the return value, or the exception)."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as e:
            if type(e).__name__ == "NoArgsIsHelpError":  # a bare `hostplug` or group: the help, as click shows it
                e.show()
                raise SystemExit(e.exit_code) from None
            given = list(args) if args is not None else sys.argv[1:]
            where = e.ctx.command_path if e.ctx is not None else _command_given(self, given)
            fail(f"{e.format_message()}{_from_environment(e, given)} (see: {where} --help)", e.exit_code)
        except click.ClickException as e:
            fail(e.format_message(), e.exit_code)
        except click.Abort:
            fail("aborted", 1)
        raise SystemExit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        # The last thing before the interpreter tears down: freeze every object, so that its shutdown skips the
        # garbage collections over all of numba's and scipy's objects (0.3-0.8 s after a render) and only frees
        # memory, which the exiting process gives back anyway. Registered first, it runs after every other handler.
        atexit.register(gc.freeze)
        keep_freed_memory()
        _check_current_folder()
        # the daemon and the service set their own when they start; the previous one is back for a caller in-process
        # (only the main thread may set one: a caller running a command on another thread keeps its own)
        main_thread = threading.current_thread() is threading.main_thread()
        previous = _catch_termination() if main_thread else {}
        try:
            return super().invoke(ctx)
        except HostplugError as e:
            fail(str(e), e.exit_code)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except MemoryError:  # numpy's allocation, or a model's weights: one line, not a traceback or "reinstall"
            fail("out of memory: this process may not have what the render needs; close other programs, or render "
                 "smaller (--long-edge), or with the classical denoiser (--use denoise=classical)", 1)
        except Terminated as e:
            e.fail()
        except SystemError as e:  # a compiled (numba) function the signal's exception reached, wrapped by it
            reason = _signal_behind(e)  # numba may wrap it more than once (the upsample stage's kernel does)
            if isinstance(reason, Terminated):
                reason.fail()
            if isinstance(reason, KeyboardInterrupt):
                fail("interrupted", 130)
            raise
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def _signal_behind(error: BaseException) -> BaseException | None:
    """The interrupt (KeyboardInterrupt, :class:`Terminated`) somewhere in ``error``'s chain of causes, or None."""
    seen: set[int] = set()
    reason: BaseException | None = error
    while reason is not None and id(reason) not in seen:
        if isinstance(reason, (KeyboardInterrupt, Terminated)):
            return reason
        seen.add(id(reason))
        reason = reason.__cause__ or reason.__context__
    return None


def _check_current_folder() -> None:
    """One line (exit 2) when this process's folder was deleted: relative names would mean nothing, and the render
    service, given no folder, read and wrote them under / ."""
    try:
        os.getcwd()
    except FileNotFoundError:
        fail("the current folder no longer exists (deleted or moved away); cd into a folder that does", 2)


def _command_given(group: click.Group, args: list[str]) -> str:
    """The (sub)command ``args`` name from their start: click's parser gives an option without its value no
    context, so its hint named `hostplug --help` where every other error names the command's."""
    path, command = ["hostplug"], group
    for arg in args:
        if not isinstance(command, click.Group) or arg not in command.list_commands(click.Context(command)):
            break
        path.append(arg)
        command = command.get_command(click.Context(command), arg)
    return " ".join(path)


def _from_environment(error: click.UsageError, args: list[str]) -> str:
    """Where a bad value came from when it was not the command line: a tester's HOSTPLUG_SERVICE_CACHE_MB=xyz was
    reported as a bad --cache-mb, an option they had not given."""
    param = getattr(error, "param", None)
    envvar = getattr(param, "envvar", None)
    names = [envvar] if isinstance(envvar, str) else list(envvar or [])
    set_there = [name for name in names if os.environ.get(name)]
    given = any(arg == opt or arg.startswith(opt + "=") for arg in args for opt in getattr(param, "opts", []))
    return f" (from the environment variable {set_there[0]})" if set_there and not given else ""


@click.group(cls=HostplugGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hostplug")
def main() -> None:
    """Render camera raws through hostplug's modular neural ISP."""

