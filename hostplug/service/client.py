"""Asking the render service for a render: find it, start it when asked to, send one request, read one answer.

Standard library only (and :mod:`engine.errors`, which is light): a command that renders through the service
never loads numpy's heavy friends, torch, numba or rawpy.

:func:`call` returns the service's result, raises :class:`RemoteError` (an :class:`engine.errors.HostplugError`
with the service's one line and exit status) when the engine refused the request, and raises
:class:`~hostplug.service.protocol.ServiceError` when the service cannot be used at all: no safe folder, none
running (and ``start`` not asked), it would not start, it went away mid-request, or it is from another
version. Callers then render in their own process (:func:`render`, :func:`open_file` return None for that).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.errors import HostplugError
from hostplug.service.protocol import (
    LOG_NAME,
    PROTOCOL,
    SOCKET_NAME,
    ProtocolError,
    ServiceError,
    build_id,
    is_gone,
    peer_allowed,
    peer_credentials,
    process_context,
    receive_message,
    receive_payload,
    root_id,
    send_message,
    service_dir,
)

START_TIMEOUT_S = 30.0  # how long a client waits for a service it started to open its socket
CONNECT_TIMEOUT_S = 5.0
# A service that is alive answers a request, or says it is working on it, at once, and says so again every
# WORKING_EVERY_S while the request waits or runs. Silence this long means it is stopped or hung: the client
# renders in its own process instead of waiting for ever.
FIRST_FRAME_TIMEOUT_S = 5.0
SILENCE_TIMEOUT_S = 30.0
LOG_KEEP_BYTES = 1 << 20
ENV_DISABLE = "HOSTPLUG_NO_SERVICE"  # 1, yes, true: never use the service (see disabled())


class NotAnsweringError(ServiceError):
    """The service took the request and then fell silent (stopped, or hung): no answer and no "working" frame
    within ``FIRST_FRAME_TIMEOUT_S`` of asking, or ``SILENCE_TIMEOUT_S`` later on."""

    def __init__(self, pid: int, silence: float, waited: float, heard: bool = False) -> None:
        self.pid, self.silence, self.waited = pid, silence, waited  # waited: since asking, silence included
        if heard:
            what = f"went silent for {silence:g} s ({waited:.0f} s after it was asked)"
        else:
            what = f"did not answer in {silence:g} s"
        super().__init__(f"the render service (pid {pid}) {what}")


class ServiceLostError(ServiceError):
    """The service (``pid``; 0 when unknown) took the request and its connection broke before the answer (it was
    killed, or crashed)."""

    def __init__(self, message: str, pid: int = 0) -> None:
        super().__init__(message)
        self.pid = pid


class StartError(ServiceError):
    """No service could be started: its log cannot be written, its process not made, or it exited at once (see its
    log) or never opened its socket."""


class ForeignServiceError(ServiceError):
    """The service on this user's socket runs in another context (:func:`.protocol.process_context`: a chroot's,
    GIMP's test root sharing this /tmp, another mount namespace, or with groups or capabilities this process does
    not have) and refused the request: it serves only processes like the one that started it."""

    def __init__(self, pid: int, path: Path, reason: str = "root") -> None:
        self.pid, self.path, self.reason = pid, path, reason
        what = "root folder" if reason == "root" else "mount namespace, groups or capabilities"
        super().__init__(f"the render service on {path} (pid {pid}) runs under another {what} than this process, "
                         "and serves only processes that share them")


class RemoteError(HostplugError):
    """The engine in the service refused the request: its one-line message and exit status."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def disabled() -> bool:
    """Whether ``HOSTPLUG_NO_SERVICE`` says never to use the service, or this system cannot have one (the
    peer-credential check is Linux's ``SO_PEERCRED``)."""
    supported = hasattr(socket, "AF_UNIX") and hasattr(socket, "SO_PEERCRED") and hasattr(os, "getuid")
    # "false" or "no" switched it off too: a user who wrote HOSTPLUG_NO_SERVICE=false meant the opposite
    return not supported or os.environ.get(ENV_DISABLE, "").strip().lower() not in ("", "0", "false", "no", "off")


def _connect(path: Path) -> socket.socket:
    """A connection to the service at ``path`` (OSError as connect() gives it); ServiceError when the process
    listening there is not this user's."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(CONNECT_TIMEOUT_S)
        sock.connect(str(path))
        _pid, uid, _gid = peer_credentials(sock)
        if not peer_allowed(uid):
            raise ServiceError(f"the process listening on {path} belongs to uid {uid}; not using it")
        sock.settimeout(None)
        return sock
    except BaseException:
        sock.close()
        raise


def _said(log: Path) -> str:
    """What a service that did not start said last (its log's last line, as ": ..."), or ""."""
    try:
        with log.open("rb") as f:
            f.seek(max(0, log.stat().st_size - 2000))
            lines = f.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return f": {lines[-1].strip()[:300]}" if lines else ""


def spawn(folder: Path) -> subprocess.Popen:
    """Start a detached service (its own session, no terminal; output to ``serve.log`` in ``folder``);
    :class:`StartError` when its log cannot be written (a folder in its place, the runtime folder full) or the
    process cannot be made."""
    log_path = folder / LOG_NAME
    try:
        if log_path.stat().st_size > LOG_KEEP_BYTES:  # keep one earlier log, not an ever-growing one
            os.replace(log_path, log_path.with_suffix(".log.old"))
    except OSError:
        pass
    try:
        log_file = open(log_path, "ab")  # noqa: SIM115 - closed below, once the service has it
    except OSError as e:
        raise StartError(f"the render service cannot be started: cannot write its log {log_path} "
                         f"({e.strerror or e})") from e
    with log_file:
        try:
            os.chmod(log_path, 0o600)
            return subprocess.Popen(
                [sys.executable, "-m", "hostplug.service"],  # its idle timeout and cache: from the environment
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, cwd="/", start_new_session=True,
                close_fds=True,
            )
        except OSError as e:
            raise StartError(f"the render service cannot be started ({e.strerror or e})") from e


def connect(start: bool = False) -> socket.socket:
    """A connection to this user's service; with ``start``, one is started when none is running."""
    if disabled():
        raise ServiceError("the render service is switched off (HOSTPLUG_NO_SERVICE) or not supported here")
    folder = service_dir(create=start)  # only looking: a missing folder means no service, and stays missing
    path = folder / SOCKET_NAME
    try:
        return _connect(path)
    except OSError as e:
        if not is_gone(e):
            raise ServiceError(f"cannot reach the render service at {path} ({e.strerror or e})") from e
        if not start:
            raise ServiceError("no render service is running") from e
    process = spawn(folder)
    try:
        return _wait_for_socket(process, folder)
    finally:  # reap the service when it exits, so a long-lived client (GIMP, a test run) keeps no zombie
        threading.Thread(target=process.wait, name="hostplug-service-reaper", daemon=True).start()


def _wait_for_socket(process: subprocess.Popen, folder: Path) -> socket.socket:
    path = folder / SOCKET_NAME
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            return _connect(path)
        except OSError as e:
            if not is_gone(e):
                raise ServiceError(f"cannot reach the render service at {path} ({e.strerror or e})") from e
        code = process.poll()
        if code not in (None, 0):  # 0: another client's service won the race; keep looking for its socket
            raise StartError(f"the render service did not start (exit status {code}{_said(folder / LOG_NAME)}; see "
                             f"{folder / LOG_NAME})")
        if time.monotonic() > deadline:
            raise StartError(f"the render service did not open its socket within {START_TIMEOUT_S:g} s")
        time.sleep(0.02)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def request(op: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    """The request for ``op`` as this process would run it: its folder, umask and preset locations."""
    try:
        cwd = os.getcwd()
    except OSError:
        cwd = None
    return {"protocol": PROTOCOL, "version": build_id(), "op": op, "args": args or {}, "cwd": cwd,
            "root": root_id(), "context": process_context(), "umask": _umask(), "env": _environment()}


def _environment() -> dict[str, str | None]:
    """What the service takes from the client's environment: where presets are, the engine's settings."""
    env: dict[str, str | None] = {k: os.environ.get(k) for k in ("HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME")}
    env.update({k: v for k, v in os.environ.items() if k.startswith("HOSTPLUG_")})
    return env


def call(op: str, args: dict[str, Any] | None = None, *, start: bool = False) -> dict[str, Any]:
    """Send one request and return the service's result (see the module docstring for what it raises); a
    payload that follows the answer (a preview's pixels) is the result's ``payload``.

    A service of another version stops itself when asked; with ``start`` a fresh one is then started, once.
    """
    for attempt in range(2):
        sock = connect(start=start)
        pid, asked = _peer_pid(sock), time.monotonic()
        try:
            send_message(sock, request(op, args))
            response = _answer(sock, pid, asked)
            payload = receive_payload(sock, response)
        except TimeoutError as e:  # the payload stopped half-way
            raise NotAnsweringError(pid, SILENCE_TIMEOUT_S, time.monotonic() - asked, heard=True) from e
        except (OSError, ProtocolError) as e:
            raise ServiceLostError(f"the render service (pid {pid}) went away during the request ({e})", pid) from e
        finally:
            sock.close()
        if response.get("ok"):
            result = response.get("result")
            result = result if isinstance(result, dict) else {}
            return result if payload is None else {**result, "payload": payload}
        if response.get("busy"):  # too many connections at once: this one renders in its own process
            raise ServiceError(str(response.get("error", "the render service is busy")))
        if response.get("foreign"):  # a service in a chroot (GIMP's, say) that shares this /tmp, or with other rights
            raise ForeignServiceError(pid, service_dir(create=False) / SOCKET_NAME, str(response["foreign"]))
        if response.get("stale"):
            if start and attempt == 0:
                _wait_until_gone(service_dir() / SOCKET_NAME)
                continue
            raise ServiceError(str(response.get("error", "the render service is of another version")))
        raise RemoteError(str(response.get("error") or "the render service failed"),
                          int(response.get("exit_code") or 1))
    raise ServiceError("the render service could not be replaced")


def _peer_pid(sock: socket.socket) -> int:
    """The pid of the process at the other end (0 when the socket cannot say)."""
    try:
        return peer_credentials(sock)[0]
    except OSError:
        return 0


def _answer(sock: socket.socket, pid: int, asked: float) -> dict[str, Any]:
    """The service's answer to the request just sent (at ``asked``, monotonic), past its "working" frames;
    :class:`NotAnsweringError` when the service (``pid``) falls silent (see ``SILENCE_TIMEOUT_S``)."""
    heard = False
    sock.settimeout(FIRST_FRAME_TIMEOUT_S)
    while True:
        try:
            message = receive_message(sock)
        except TimeoutError:
            raise NotAnsweringError(pid, sock.gettimeout() or 0.0, time.monotonic() - asked, heard) from None
        heard = True
        sock.settimeout(SILENCE_TIMEOUT_S)  # after the answer too: a payload that follows flows at once
        if not message.get("working"):
            return message


def _wait_until_gone(path: Path, timeout: float = 10.0) -> None:
    """Wait for a stopping service to remove its socket."""
    deadline = time.monotonic() + timeout
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def status() -> dict[str, Any] | None:
    """The running service's status (pid, version, cache...; ``stale`` when it is of another version and
    would stop at its next render request), or None when none is running."""
    try:
        answer = call("ping")
    except ServiceError:
        return None
    return {**answer, "stale": answer.get("version") != build_id()}


def listening_socket() -> Path | None:
    """The service's socket when something this user runs accepts connections on it (a stopped or hung service
    does, without answering); None when nothing does."""
    try:
        path = service_dir(create=False) / SOCKET_NAME
        _connect(path).close()
    except (OSError, ServiceError):
        return None
    return path


def stop() -> dict[str, Any] | None:
    """Ask the running service to stop; its answer, or None when none was running."""
    try:
        return call("shutdown")
    except ServiceError:
        return None


def render(input: str | Path, output: str | Path, *, options: dict[str, Any] | None = None,
           changes: dict[str, Any] | None = None, device: str = "cpu", stages_dir: str | Path | None = None,
           start: bool = False) -> dict[str, Any] | None:
    """Render ``input`` into ``output`` through the service: what :meth:`engine.RenderResult.as_dict` gives,
    or None when the service cannot be used (render in this process then). RemoteError for an engine error.

    ``options`` are :class:`engine.OutputOptions` fields; ``changes`` as for :func:`engine.apply_changes`.
    """
    if disabled():
        return None
    args = {"input": str(input), "output": str(output), "options": options or {}, "changes": _jsonable(changes),
            "device": device, "stages_dir": str(stages_dir) if stages_dir else None}
    output = Path(output)
    there_before, asked = output.exists(), time.monotonic()

    def ours(name: str) -> bool:  # (its imports only when a stopped client waits: a client starts light)
        from engine.output.publish import is_partial_of

        return is_partial_of(name, output.name)

    result = _or_here_leaving_nothing("render", args, start, output.parent, ours)
    if result is None and not there_before and output.exists():
        return _written_before_it_went(Path(input), output, time.monotonic() - asked)
    return result


def _written_before_it_went(input: Path, output: Path, seconds: float) -> dict[str, Any] | None:
    """The result of a render the service finished (the output took its name, which happens once it is whole)
    before it went away without answering (killed, out of memory): a tester's render then failed in this process
    with "exists; pass --overwrite". None when the file there is not this input's render (rendered here then,
    which says the file exists)."""
    from engine.errors import HostplugError
    from engine.output.metadata import xmp_file_name
    from engine.rerender import read_record
    from engine.xmp.provenance import read_provenance

    try:
        record = read_record(output)
    except HostplugError:
        return None
    provenance = read_provenance(output)
    if provenance.path is None or str(provenance.path) != xmp_file_name(str(input.resolve())):  # as recorded
        return None
    sys.stderr.write(f"hostplug: note: ... but the render service had finished {output} before it went away: it "
                     "is kept, not rendered again\n")
    return {"input": str(input), "output": str(output), "seconds": round(seconds, 3),
            "recipe": record.recipe.to_dict(), "timings": {}} | (
        {"source_sha256": provenance.sha256} if provenance.sha256 else {})


PARTIAL_WAIT_S = 5.0  # how long a stopped client waits for the service to remove its partial output


def _or_here_leaving_nothing(op: str, args: dict[str, Any], start: bool, folder: Path,
                             partial: Callable[[str], bool]) -> dict[str, Any] | None:
    """:func:`_or_here`; when this process is stopped meanwhile (Ctrl-C, SIGTERM: it was told "nothing
    half-written"), it first waits until the service, which stops a request once its client has gone, has removed
    its partial output from ``folder`` (the names ``partial`` says are its): a script that copies the folder next
    must not find half a file."""
    try:
        return _or_here(op, args, start)
    except BaseException as stop:
        if not isinstance(stop, Exception):
            _await_gone(folder, partial)
        raise


def _await_gone(folder: Path, partial: Callable[[str], bool]) -> None:
    """Wait (PARTIAL_WAIT_S at most) until no name in ``folder`` is one of the ``partial`` names."""
    deadline = time.monotonic() + PARTIAL_WAIT_S
    while time.monotonic() < deadline:
        try:
            if not any(partial(name) for name in os.listdir(folder or ".")):
                return
        except OSError:
            return
        time.sleep(0.05)


def _jsonable(value: Any) -> Any:
    """Changes as JSON: paths become strings, tuples lists."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def open_file(file: str | Path, search: tuple[str | Path, ...] = (), changes: dict[str, Any] | None = None, *,
              device: str = "cpu", start: bool = True) -> dict[str, Any] | None:
    """What ``hostplug open FILE`` does, through the service (started when none is running, unless ``start`` is
    False): what :func:`hostplug.handoff.open_file` returns, or None when the service cannot be used."""
    if disabled():
        return None
    args = {"file": str(file), "search": [str(p) for p in search], "changes": _jsonable(changes), "device": device}
    file = Path(file)

    def ours(name: str) -> bool:  # its output: a TIFF beside it named after it (IMG_hostplug.tif, IMG_hostplug-2.tif)
        from engine.output.publish import PARTIAL_SUFFIX
        from hostplug.handoff import OUTPUT_TAG

        return name.startswith(f".{file.stem}{OUTPUT_TAG}") and name.endswith(PARTIAL_SUFFIX)

    return _or_here_leaving_nothing("open", args, start, file.parent, ours)


# The service that did not answer this process: the rest of its renders are done here without asking it again
# (a batch would wait for it once per file).
_passed_by: ServiceError | None = None


def _or_here(op: str, args: dict[str, Any], start: bool) -> dict[str, Any] | None:
    """:func:`call` for a command that can do ``op`` in its own process: None to do it there. A service that does
    not answer is passed by for the rest of this process, with one note on stderr: the wait was not the render's."""
    global _passed_by
    if _passed_by is not None:
        return None
    try:
        return call(op, args, start=start)
    except NotAnsweringError as e:
        _passed_by = e
        sys.stderr.write(f"hostplug: note: {e}; rendering in this process instead (stopped or hung? "
                         f"'kill -9 {e.pid}' ends it)\n")
        sys.stderr.flush()
        return None
    except ServiceLostError as e:  # the render starts again here: say why it takes twice as long
        _remove_leftovers_of(e.pid)
        sys.stderr.write(f"hostplug: note: {e}; rendering in this process instead\n")
        sys.stderr.flush()
        return None
    except StartError as e:
        _passed_by = e
        sys.stderr.write(f"hostplug: note: {e}; rendering in this process instead\n")
        sys.stderr.flush()
        return None
    except ForeignServiceError as e:
        if e.reason != "root":  # a chroot's service is expected beside it; groups changed since a start are not
            _passed_by = e
            sys.stderr.write(f"hostplug: note: {e} (groups changed since it started?); rendering in this process "
                             f"instead ('kill {e.pid}' ends it, and the next command starts one like itself)\n")
            sys.stderr.flush()
        return None
    except ServiceError as e:  # none running (when none was asked for), or its folder cannot be used
        if start:  # asked for (--service, open, GIMP): say why every render pays the start-up
            _passed_by = e
            sys.stderr.write(f"hostplug: note: {e}; rendering in this process instead\n")
            sys.stderr.flush()
        return None


def _remove_leftovers_of(pid: int) -> None:
    """Remove the partial output files that the service ``pid``, lost mid-request, recorded and left
    (:func:`hostplug.service.server.remove_leftovers_of`: never a live service's)."""
    if pid <= 0:
        return
    try:
        folder = service_dir(create=False)
    except ServiceError:
        return
    from hostplug.service.server import remove_leftovers_of

    remove_leftovers_of(pid, folder)


def preview(input: str | Path, *, recipe: dict[str, Any] | None = None, changes: dict[str, Any] | None = None,
            long_edge: int | None = None, format: str = "rgb8", device: str = "cpu",
            start: bool = True, why: bool = False) -> dict[str, Any] | None:
    """A preview of ``input`` from the service (started when none is running, unless ``start`` is False): its
    ``width``, ``height``, ``format``, ``recipe``, the stages that ``ran`` and their ``timings``, and the pixels as
    ``payload`` (``rgb8``: 8-bit sRGB rows, top down, RGB interleaved; ``png``: a PNG file's bytes). ``recipe`` is
    a whole recipe (default: the raw's sidecar recipe), ``changes`` apply on top; ``long_edge`` defaults to about
    2 MP. None when the service cannot be used (there is no in-process preview), or with ``why`` the ServiceError
    that says why; RemoteError for an engine error. A service lost during the request (killed) is asked once more: a
    fresh one when ``start``.
    """
    args: dict[str, Any] = {"input": str(input), "recipe": _jsonable(recipe), "changes": _jsonable(changes),
                            "format": format, "device": device}
    if long_edge is not None:
        args["long_edge"] = long_edge
    try:
        try:
            return call("preview", args, start=start)
        except ServiceLostError:
            return call("preview", args, start=start)
    except ServiceError:
        if why:
            raise
        return None
