"""``hostplug serve``: the resident render service (:mod:`hostplug.service`), and how the commands reach it."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from hostplug.commands.common import FiniteRange
from hostplug.service.protocol import DEFAULT_CACHE_MB, DEFAULT_IDLE_TIMEOUT_S, ENV_CACHE_MB, ENV_IDLE


def service_option(command: Callable[..., Any] | None = None, *, starts: bool = False) -> Any:
    """``--service/--no-service``, passed as ``service``: None (no flag) uses a running service (``starts``: starts
    one, as ``open`` does for the editor that waits on it), True starts one when none is running, False renders in
    this process without touching the service's socket."""
    default = "default: started if none is running" if starts else "default: when one is running"
    option = click.option("--service/--no-service", "service", default=None,
                          help=f"Render through the resident service ({default}); --service starts one if needed, "
                               "--no-service never uses it.")
    return option if command is None else option(command)


@click.command()
@click.option("--idle-timeout", type=FiniteRange(1, None), default=None,
              help=f"Exit after this many seconds without a request (default: ${ENV_IDLE}, else "
                   f"{DEFAULT_IDLE_TIMEOUT_S:g}).")
@click.option("--cache-mb", type=click.IntRange(0, None), default=None,
              help=f"MB of full-size stage checkpoints kept for re-renders, 0: none (default: ${ENV_CACHE_MB}, else "
                   f"{DEFAULT_CACHE_MB}).")
@click.option("--status", is_flag=True, help="Print the running service's status as JSON and exit (1: none).")
@click.option("--stop", is_flag=True, help="Ask the running service to stop and exit (1: none was running).")
def serve(idle_timeout: float | None, cache_mb: int | None, status: bool, stop: bool) -> None:
    """Run the render service: keeps the engine, models and recent raws warm for 'render', 'open' and GIMP.

    One per user, on a Unix socket in $XDG_RUNTIME_DIR/hostplug/ (else /tmp/hostplug-UID/), answering only
    this user's processes. Commands start it on demand; it exits after --idle-timeout seconds without a request.
    It keeps up to --cache-mb of full-size stage outputs, so rendering a raw again, or again after a change of
    exposure, style or white balance, resumes after the last unchanged stage.
    See docs/service.md.
    """
    import os

    from hostplug.service import client

    # HOSTPLUG_NO_SERVICE keeps renders from using a service; this command is about the service itself (a tester's
    # --status and --stop called a healthy service "stopped or hung" with it set)
    os.environ.pop(client.ENV_DISABLE, None)
    if status or stop:
        click.echo(json.dumps(_ask("shutdown" if stop else "ping")))
        return
    from hostplug.commands.common import fail
    from hostplug.printable import log_to_stderr
    from hostplug.service.protocol import ServiceError
    from hostplug.service.server import ALREADY_RUNNING, cache_mb_from_env, cache_mb_limit, idle_timeout_from_env
    from hostplug.service.server import serve as run

    # read here, not by the options: a bad value must not keep --status and --stop from a running service
    idle_timeout = idle_timeout if idle_timeout is not None else _checked(
        idle_timeout_from_env(), ENV_IDLE, "a number of seconds, 1 or more")
    limit = cache_mb_limit()
    if cache_mb is not None and cache_mb > limit:
        raise click.BadParameter(f"{cache_mb} MB is more than this machine's memory ({limit} MB)",
                                 param_hint="'--cache-mb'")
    cache_mb = cache_mb if cache_mb is not None else _checked(
        cache_mb_from_env(), ENV_CACHE_MB, f"a whole number of MB, 0 to {limit} (this machine's memory)")
    log_to_stderr("%(asctime)s hostplug serve: %(message)s")
    try:
        code = run(idle_timeout, cache_mb=cache_mb)
    except ServiceError as e:  # its folder, lock or socket cannot be used: one line saying what to do
        fail(str(e))
    if code == ALREADY_RUNNING:
        running = client.status()
        fail("a render service is already running for this user"
             + (f" (pid {running['pid']})" if running else "") + "; 'hostplug serve --stop' stops it")
    if code:
        raise click.exceptions.Exit(code)


def _checked(value: Any, variable: str, wanted: str) -> Any:
    """``value`` read from the environment variable ``variable``; a usage error (exit 2) naming it when it is None
    (not ``wanted``)."""
    import os

    if value is None:
        raise click.UsageError(f"invalid value {os.environ.get(variable)!r} (from the environment variable "
                               f"{variable}): {wanted}")
    return value


def _ask(op: str) -> dict[str, Any]:
    """The running service's answer to ``ping`` (--status, with ``stale``) or ``shutdown`` (--stop); when there is
    none, one error line saying why: none running, it does not answer, or it serves another root folder."""
    from hostplug.commands.common import fail
    from hostplug.service import client
    from hostplug.service.protocol import ServiceError, build_id

    try:
        answer = client.call(op)
    except client.NotAnsweringError as e:
        fail(f"the render service (pid {e.pid}) does not answer (stopped or hung?); nothing came in {e.silence:g} s")
    except client.ForeignServiceError as e:
        fail(f"{e}; " + ("stop it from inside that root" if op == "shutdown" else "ask it from inside that root"))
    except ServiceError:
        unanswering = client.listening_socket()
        if unanswering is not None:
            fail(f"the render service does not answer (stopped or hung?); its socket is {unanswering}")
        fail("no render service is running for this user" + (" (nothing to stop)" if op == "shutdown" else ""))
    return {**answer, "stale": answer.get("version") != build_id()} if op == "ping" else answer


def render_through_service(service: bool | None, path: Path, target: Path, options: Any, changes: dict[str, Any],
                           device: str, stages_dir: Path | None) -> dict[str, Any] | None:
    """``hostplug render``'s use of the service for one input: what ``--json`` prints, or None to render in this
    process (``--no-service``, or no service running and ``--service`` not given, or it cannot be used)."""
    if service is False:
        return None
    from hostplug.service import client

    return client.render(path, target, options=dataclasses.asdict(options), changes=changes, device=device,
                         stages_dir=stages_dir, start=bool(service))


def open_through_service(service: bool | None, file: Path, search: tuple[Path, ...], changes: dict[str, Any],
                         device: str) -> dict[str, Any] | None:
    """``hostplug open``'s use of the service (started when none is running, unless ``--no-service``): what
    ``--json`` prints, or None to render in this process."""
    if service is False:
        return None
    from hostplug.service import client

    return client.open_file(file, search, changes, device=device, start=True)
