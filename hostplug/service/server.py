"""The render service: one process per user that keeps the engine, its models and recently opened raws warm.

    python -m hostplug.service [--idle-timeout SECONDS] [--foreground]      (or ``hostplug serve``)

Threads: one accepts connections and checks each peer's uid (``SO_PEERCRED``); one per connection reads the
request and waits for its answer; the main thread does the work, one request at a time, in arrival order
(:class:`Service`). So renders queue instead of competing for two cores, a slow or dead client holds only its
own thread (a request whose client left is dropped, or stopped at its next stage), and SIGTERM or Ctrl-C lands
in the main thread, where the output writer's ``finally`` removes its partial file (the output appears only
complete, by rename; see :func:`engine.output.write.write_image`).

A request runs in the client's working folder, with its umask, its ``HOME``/``XDG_CONFIG_HOME`` (where
presets live) and its ``HOSTPLUG_*`` settings (decoding limits), so relative paths, file modes and error
messages are what the command would have given in its own process. Any :class:`engine.errors.HostplugError`
goes back as one line with its exit status; anything else is logged with its traceback in ``serve.log`` and
goes back as one line; the service lives on.

After ``idle_timeout`` seconds without a connection the service closes its socket and exits.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import fcntl
import json
import logging
import math
import os
import queue
import select
import signal
import socket
import stat
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hostplug.memory import keep_freed_memory
from hostplug.printable import log_to_stderr
from hostplug.service.protocol import (
    DEFAULT_CACHE_MB,
    DEFAULT_IDLE_TIMEOUT_S,
    ENV_CACHE_MB,
    ENV_IDLE,
    LOCK_NAME,
    LOG_NAME,
    MAX_SOCKET_PATH,
    PROTOCOL,
    SOCKET_NAME,
    WORKING_EVERY_S,
    ProtocolError,
    ServiceError,
    build_id,
    error_response,
    peer_allowed,
    peer_credentials,
    process_context,
    receive_message,
    root_id,
    send_message,
    send_payload,
    service_dir,
)

log = logging.getLogger("hostplug.service")

REQUEST_READ_TIMEOUT_S = 30.0  # a client that connects must send its request within this
MAX_CONNECTIONS = 64  # at once, each a thread: a soak tester's 1500 silent connections made 1500 threads
# A render that passed no stage boundary for this long is stuck (a deadlock, a raw on a hung NFS mount): its clients
# hear no more "working" frames, so each gives up after its silence timeout and renders in its own process. The
# slowest stage measured, the learned denoiser on a 61 MP raw on 2 cores, takes well under a minute.
STUCK_AFTER_S = 300.0
# A client reads its answer (a preview's pixels: up to 100 MB) as it comes; one that stops reading for this long is
# dropped, so it holds neither the answer's memory nor the service past its idle timeout
ANSWER_SEND_TIMEOUT_S = 60.0
LOCK_WAIT_S = 30.0  # a service that is shutting down (finishing a render) may hold the lock this long
ENV_KEYS = ("HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME")  # what a request may set (where presets are found)
ENV_PREFIX = "HOSTPLUG_"  # and the engine's own settings (HOSTPLUG_DECODE_SECONDS, HOSTPLUG_MAX_PIXELS...)
PREVIEW_LONG_EDGE = 1732  # 1732 x 1155 = 2 MP for a 3:2 frame
ALREADY_RUNNING = 3  # serve()'s status when this user's service was running already (a client's start raced one)
JOURNAL_NAME = "rendering.json"  # the output being written; a service killed mid-write leaves its partial file


# ----- the opened-source cache ---------------------------------------------------------------------------


class SourceCache:
    """The last few opened sources (:func:`engine.open`), keyed by the file's real path, device, inode, size and
    modification time (so an edited or replaced raw is opened again) and the client's ``HOSTPLUG_*`` settings
    (a decoding limit applies to a cached raw too), bounded by count and by sensor bytes."""

    def __init__(self, max_count: int = 4, max_bytes: int = 1 << 30) -> None:
        self.max_count = max_count
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def _key(path: Path) -> tuple | None:
        from engine.filehash import file_identity

        identity = file_identity(path)
        if identity is None:
            return None
        settings = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(ENV_PREFIX)))  # limits
        return (*identity, settings)

    @staticmethod
    def _size(source: Any) -> int:
        sensor = getattr(source, "sensor", None)
        return int(getattr(sensor, "nbytes", 0))

    def open(self, path: str | Path) -> Any:
        """The opened source for ``path`` (from the cache when the file is unchanged), with ``path`` as given."""
        from engine.io.source import open_source

        path = Path(path)
        key = self._key(path)
        if key is None:  # let the engine say what is wrong with it
            return open_source(path)
        cached = self._entries.get(key)
        if cached is None:
            self.misses += 1
            cached = open_source(path)  # as typed, in the client's folder: an error names the file as the client does
            self._entries[key] = cached
            self._trim()
        else:
            self.hits += 1
            self._entries.move_to_end(key)
        source = copy.copy(cached)  # shares the sensor data; the path is the one the client typed
        source.path = path
        return source

    def _trim(self) -> None:
        while self._entries and (len(self._entries) > self.max_count
                                 or sum(self._size(s) for s in self._entries.values()) > self.max_bytes):
            if len(self._entries) == 1:  # one source bigger than the bound: keep it only until the next one
                break
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def stats(self) -> dict[str, Any]:
        return {"sources": len(self._entries), "bytes": sum(self._size(s) for s in self._entries.values()),
                "hits": self.hits, "misses": self.misses}


# ----- requests ------------------------------------------------------------------------------------------


class ClientLeftError(Exception):
    """Raised in the main thread at the next stage of a running request whose client has gone (a killed
    command, or a client that stopped waiting and renders in its own process), so the service neither spends
    the cores nor publishes an output that the client may be writing itself."""


@dataclass
class Job:
    """One request waiting for (or getting) the main thread."""

    request: dict[str, Any]
    conn: socket.socket | None = None  # the client's connection: closed when it left
    done: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    started: bool = False
    cancelled: bool = False
    response: dict[str, Any] | None = None


@contextlib.contextmanager
def _as_client(request: dict[str, Any]) -> Iterator[None]:
    """Run in the client's folder with its umask and environment (see the module docstring); restored after."""
    cwd = request.get("cwd")
    given = request.get("env") or {}
    if not isinstance(given, dict):
        given = {}
    # The client's HOSTPLUG_* settings (decode limits...) replace the service's own for the request.
    names = set(ENV_KEYS) | {k for k in os.environ if k.startswith(ENV_PREFIX)}
    names |= {k for k in given if isinstance(k, str) and k.startswith(ENV_PREFIX)}
    env = {k: given.get(k) for k in names if k in given or k.startswith(ENV_PREFIX)}
    umask = request.get("umask")
    saved_env = {k: os.environ.get(k) for k in env}
    saved_umask = os.umask(int(umask)) if isinstance(umask, int) else None
    try:
        from engine.errors import HostplugError

        if not cwd:  # relative names would be read and written under the service's own folder, /
            raise HostplugError("the current folder no longer exists (deleted or moved away); cd into a folder "
                                "that does")
        try:
            os.chdir(cwd)
        except OSError as e:
            raise HostplugError(f"cannot work in {cwd} ({e.strerror})") from e
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = str(v)
        yield
    finally:
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if saved_umask is not None:
            os.umask(saved_umask)
        os.chdir("/")


def _output_options(options: dict[str, Any] | None) -> Any:
    from engine.output.formats import OutputOptions

    allowed = {"format", "bits", "quality", "space", "long_edge", "overwrite", "compression"}
    return OutputOptions(**{k: v for k, v in (options or {}).items() if k in allowed})


class Service:
    """The service's state and its three kinds of thread (see the module docstring)."""

    def __init__(self, folder: Path, idle_timeout: float = DEFAULT_IDLE_TIMEOUT_S,
                 cache: SourceCache | None = None, warm_up: bool = True, cache_mb: int = DEFAULT_CACHE_MB) -> None:
        self.folder = folder
        self.socket_path = folder / SOCKET_NAME
        self.idle_timeout = idle_timeout
        self.cache = cache or SourceCache()
        self.warm_up = warm_up
        self.jobs: queue.Queue[Job] = queue.Queue()
        self.lock = threading.Lock()
        self.active = 0  # connections accepted and not yet answered
        self.last_activity = time.monotonic()
        self.closing = False
        self.stop_reason = ""  # what made it stop, for serve.log's last line ("idle for 600 s", "asked to stop")
        self.started = time.time()
        self.version = build_id()
        self.root, self.context = root_id(), process_context()  # whom it may act for (see answer)
        self.listener: socket.socket | None = None
        self._lock_file: Any = None
        self._socket_inode: int | None = None
        self.running: Job | None = None  # the job the main thread is on
        self.progressed = time.monotonic()  # when the main thread last started a job or passed a stage
        self.previews: Any = None  # the previews' engine.stage_cache.StageCache, made with the first preview
        self.cache_mb = cache_mb
        self.renders: Any = None  # full-size renders' StageCache (cache_mb), made with the first render
        self.handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "render": self.render,
            "open": self.open,
            "preview": self.preview,
        }  # run in turn by the main thread; ping and shutdown are answered at once (answer)

    # -- life cycle --

    def acquire(self) -> bool:
        """Take the per-user lock (waiting a little for a service that is shutting down); False when another
        service holds it. ServiceError when the lock file cannot be opened (a folder in its place, say)."""
        path = self.folder / LOCK_NAME
        try:
            self._lock_file = open(path, "a+")  # noqa: SIM115 - held for the service's life
        except OSError as e:
            raise ServiceError(f"cannot use {path} for the render service's lock ({e.strerror}); remove it") from e
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() > deadline or self._someone_serves():
                    self._lock_file.close()
                    self._lock_file = None
                    return False
                time.sleep(0.05)

    def _someone_serves(self) -> bool:
        """Whether a service answers on the socket (the lock's holder is serving, not shutting down)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(1.0)
            try:
                probe.connect(str(self.socket_path))
            except OSError:
                return False
        return True

    def bind(self, umask: bool = True) -> None:
        """Listen on the socket (a stale one left by a crashed service is replaced: we hold the lock).
        ServiceError, saying what to do, when the path cannot be a socket: too long, or something else is there.
        ``umask``: make the socket under umask 077, which is the whole process's: not while a render runs (made
        again on the accept thread, the folder's 0700 keeps others out until the chmod)."""
        path = self.socket_path
        if len(os.fsencode(path)) > MAX_SOCKET_PATH:
            raise ServiceError(f"the socket path {path} is longer than the {MAX_SOCKET_PATH} bytes a Unix socket "
                               "allows; set a shorter XDG_RUNTIME_DIR")
        with contextlib.suppress(OSError):  # a stale socket is replaced; a file is somebody's (a tester's went)
            if stat.S_ISREG(os.lstat(path).st_mode):
                raise ServiceError(f"{path} is a file, not the render service's socket; move it away")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o077) if umask else None
        # made under another name and moved into place once it listens: a client that found the socket file
        # between the bind and the listen was refused (seen in the full suite, after a socket was removed)
        fresh = Path(path).with_name(".new.sock")  # (shorter than the socket's own name: never too long)
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(fresh)
            listener.bind(str(fresh))
            listener.listen(64)
            os.chmod(fresh, 0o700)
            os.replace(fresh, path)
            self._socket_inode = os.stat(path).st_ino
        except OSError as e:
            listener.close()
            with contextlib.suppress(OSError):
                os.unlink(fresh)
            raise ServiceError(f"cannot use {path} for the render service's socket ({e.strerror or e}); remove "
                               "it") from e
        finally:
            if old_umask is not None:
                os.umask(old_umask)
        listener.settimeout(0.5)  # the acceptor looks at ``closing`` twice a second
        self.listener = listener

    def close_listener(self, reason: str = "") -> None:
        """Stop accepting: remove our socket (only ours, not a successor's) so new clients start afresh."""
        with self.lock:
            self.closing = True
            self.stop_reason = self.stop_reason or reason
        with contextlib.suppress(OSError):
            if os.stat(self.socket_path).st_ino == self._socket_inode:
                os.unlink(self.socket_path)
        if self.listener is not None:
            with contextlib.suppress(OSError):
                self.listener.close()

    def run(self) -> int:
        """Serve until idle for ``idle_timeout`` seconds (or asked to stop); 0, or :data:`ALREADY_RUNNING`."""
        if not self.acquire():
            return ALREADY_RUNNING
        try:
            remove_leftovers(self.folder)
            self.bind()
        except BaseException:  # it never served: no "stopped" line
            self._lock_file.close()
            raise
        try:
            log.info("serving on %s (pid %d, idle timeout %g s)", self.socket_path, os.getpid(),
                     self.idle_timeout)
            threading.Thread(target=self.accept_loop, name="accept", daemon=True).start()
            if self.warm_up:
                self.warm()
            with self.lock:  # idle from now: waiting for the lock and loading the engine were no idleness
                self.last_activity = time.monotonic()
            self.work_loop()
        except SystemExit as stop:  # SIGTERM (see _stop_on_signal), or Ctrl-C in a terminal
            self.stop_reason = self.stop_reason or f"stopped by a signal (exit {stop.code})"
            raise
        except KeyboardInterrupt:
            self.stop_reason = self.stop_reason or "interrupted (Ctrl-C)"
            raise
        except Exception as e:
            self.stop_reason = self.stop_reason or f"an unexpected error ({type(e).__name__}: {e})"
            raise
        finally:
            self.close_listener()
            self._lock_file.close()
            log.info("stopped (pid %d): %s", os.getpid(), self.stop_reason or "idle")
        return 0

    @contextlib.contextmanager
    def journal(self, output: str) -> Iterator[None]:
        """Record the output being written while a render runs, and the name of each partial file its writer
        starts, before the file exists (see :func:`remove_leftovers`); and stop before the complete output takes
        its name when the client has gone (:meth:`stop_if_client_left`): a client stopped by its user wants no
        output, and one that stopped waiting writes it itself."""
        from engine.output.write import watching_writes

        journal = self.folder / JOURNAL_NAME
        entry: dict[str, Any] = {"output": _real(output), "pid": os.getpid(), "partials": []}

        def record() -> None:  # a journal that cannot be written (runtime folder full or gone) loses only clean-up
            try:
                _write_json(journal, entry)
            except OSError as e:
                log.warning("cannot record the output being written in %s (%s): a partial file of it is not "
                            "removed if this service is killed", journal, e.strerror or e)

        def started(partial: Path) -> None:
            entry["partials"].append(_real(partial))
            record()

        record()
        try:
            with watching_writes(started, self.stop_if_client_left):
                yield
        finally:
            with contextlib.suppress(OSError):
                journal.unlink(missing_ok=True)

    def warm(self) -> None:
        """Load the engine (the pipeline, its stages, numba's compiled kernels, LibRaw) before the first request
        needs it; torch loads with the first render that uses it (a default CPU render does not)."""
        start = time.perf_counter()
        import engine.output.export  # noqa: F401 - the writer; it leaves the pipeline to a render (tests/test_startup.py)
        import engine.pipeline  # noqa: F401 - the stages and their libraries
        from engine import kernels

        kernels.load_compiled()

        log.info("engine loaded in %.2f s", time.perf_counter() - start)

    def work_loop(self) -> None:
        """The main thread: one job at a time; exits when idle long enough with nothing in flight."""
        while True:
            try:
                job = self.jobs.get(timeout=0.25)
            except queue.Empty:
                with self.lock:
                    idle = self.active == 0 and self.jobs.empty()
                    expired = time.monotonic() - self.last_activity >= self.idle_timeout
                    if idle and (self.closing or expired):
                        self.closing = True
                        self.stop_reason = self.stop_reason or f"idle for {self.idle_timeout:g} s"
                        break
                continue
            with job.lock:
                if job.cancelled:
                    continue
                job.started = True
            self.running, self.progressed = job, time.monotonic()
            try:
                job.response = self.handle(job.request)
            finally:
                self.running = None
            job.done.set()

    def accept_loop(self) -> None:
        assert self.listener is not None
        while not self.closing:
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                self._bind_again_if_removed()
                continue
            except OSError:
                if self.closing:
                    return
                time.sleep(0.1)  # out of descriptors, say: try again shortly
                continue
            with self.lock:
                if self.closing:
                    conn.close()
                    continue
                busy = self.active >= MAX_CONNECTIONS
                if not busy:
                    self.active += 1
            if busy:  # said and closed here: no thread for it (the client renders in its own process)
                log.warning("refused a connection: %d are open already", MAX_CONNECTIONS)
                with contextlib.suppress(OSError), conn:
                    conn.settimeout(1.0)
                    send_message(conn, {**error_response(f"the render service has {MAX_CONNECTIONS} connections "
                                                         "open already"), "busy": True})
                continue
            threading.Thread(target=self.serve_connection, args=(conn,), name="connection", daemon=True).start()

    def _bind_again_if_removed(self) -> None:
        """Listen again when the socket file was removed (a clean-up of the runtime folder, a user's ``rm``): the
        service, holding the lock, was unreachable, and every command waited 30 s for a new one that the lock
        kept from starting (a tester's)."""
        try:
            there = os.stat(self.socket_path).st_ino == self._socket_inode
        except OSError:
            there = False
        if there or self.closing:
            return
        old = self.listener
        try:
            self.bind(umask=False)
        except (OSError, ServiceError) as e:  # unreachable for good: make way (release the lock) for a new one
            log.warning("its socket %s was removed and cannot be made again (%s); stopping", self.socket_path, e)
            self.close_listener(f"its socket was removed and cannot be made again ({e})")
            return
        log.info("its socket %s was removed; listening there again", self.socket_path)
        if old is not None:
            with contextlib.suppress(OSError):
                old.close()

    # -- one connection --

    def serve_connection(self, conn: socket.socket) -> None:
        served = False  # only this user's well-formed requests from this root keep the service from idling out
        try:
            with conn:
                _pid, uid, _gid = peer_credentials(conn)
                if not peer_allowed(uid):
                    log.warning("refused a connection from uid %d (pid %d)", uid, _pid)
                    with contextlib.suppress(OSError):
                        send_message(conn, error_response(f"this render service belongs to uid {os.getuid()}"))
                        # what the client sent, read before closing: closed unread, it resets the connection, and
                        # the client may lose the answer before it reads it
                        conn.shutdown(socket.SHUT_WR)
                        conn.settimeout(1.0)
                        conn.recv(65536)
                    return
                conn.settimeout(REQUEST_READ_TIMEOUT_S)
                request = receive_message(conn)
                served = self.foreign(request) is None
                conn.settimeout(None)
                response = self.answer(request, conn)
                if response is not None:
                    conn.settimeout(ANSWER_SEND_TIMEOUT_S)  # a client that stops reading must not hold the service
                    payload = response.pop("payload", None)  # a preview's pixels follow the JSON
                    send_message(conn, response)
                    if payload is not None:
                        send_payload(conn, payload)
        except (OSError, ProtocolError) as e:  # the client went away or sent garbage: its problem only
            log.info("connection dropped: %s", e)
        finally:
            with self.lock:
                self.active -= 1
                if served:
                    self.last_activity = time.monotonic()

    def answer(self, request: dict[str, Any], conn: socket.socket) -> dict[str, Any] | None:
        """The response to ``request``; None when the client left before its job started."""
        op = request.get("op")
        foreign = self.foreign(request)
        if foreign == "root":  # a chroot's service is no use outside it, and back
            return {**error_response("the render service runs under another root folder (a chroot)"),
                    "foreign": "root"}
        if op == "ping":  # answered at once, even while a render runs, and whatever the client's version
            return {"ok": True, "result": self.status()}
        if op == "shutdown":  # at once too: requests already queued are still answered, then the service exits
            if _client_gone(conn):  # read late (the service was stopped, SIGSTOP): its client was told it failed
                log.info("a stop request whose client had left was ignored")
                return None
            return {"ok": True, "result": self.shutdown(request.get("args") or {})}
        if not isinstance(request.get("version"), str):  # not a hostplug client: no reason to make way
            return error_response("the request names no hostplug version")
        if request.get("protocol") != PROTOCOL or request.get("version") != self.version:
            log.info("a client of version %s (protocol %s) asked; this service is %s: stopping so a fresh one "
                     "starts", request.get("version"), request.get("protocol"), self.version)
            self.close_listener(f"a client of version {request.get('version')} asked: making way for a fresh "
                                "service")  # now, even while the engine loads: the client starts a fresh service
            return {**error_response(f"the running render service is version {self.version}"), "stale": True}
        if foreign == "context":  # checked after the version: an older service makes way first
            return {**error_response("the render service runs under another mount namespace, groups or "
                                     "capabilities"), "foreign": "context"}
        job = Job(request, conn)
        self.jobs.put(job)
        working = 0.0  # when the last "working" frame went: the first goes at once, so the client knows it is heard
        while not job.done.wait(0.2):
            if time.monotonic() - working >= WORKING_EVERY_S and not self.stuck():
                working = time.monotonic()
                if not _still_working(conn):
                    self._cancel(job)
                    return None
            if _client_gone(conn):
                self._cancel(job)
                return None
        return job.response

    @staticmethod
    def _cancel(job: Job) -> None:
        """Drop the job of a client that left: at once if it has not started, else at its next stage
        (:class:`ClientLeftError`)."""
        with job.lock:
            job.cancelled = True
            when = "during" if job.started else "before"
        log.info("a client left %s its %s", when, job.request.get("op"))

    def foreign(self, request: dict[str, Any]) -> str | None:
        """Why this service may not act for the process that sent ``request``: "root" (another root folder),
        "context" (another mount namespace, groups or capabilities: :func:`.protocol.process_context`), or None.
        A request without them (a client of an older protocol) is judged by its version alone."""
        if request.get("root") not in (None, self.root):
            return "root"
        if request.get("context") not in (None, self.context):
            return "context"
        return None

    def stuck(self) -> bool:
        """Whether the main thread has been on one job for :data:`STUCK_AFTER_S` without passing a stage."""
        return self.running is not None and time.monotonic() - self.progressed > STUCK_AFTER_S

    def stop_if_client_left(self, _stage: str = "", _index: int = 0, _count: int = 0) -> None:
        """The engine's progress callback for a request (at every stage, and once more before the output is
        written): raises :class:`ClientLeftError` when its client has gone. It looks at the connection itself, so
        a service resumed after a stall stops at once, not after the connection thread has noticed."""
        self.progressed = time.monotonic()
        job = self.running
        if job is not None and (job.cancelled or (job.conn is not None and _client_gone(job.conn))):
            raise ClientLeftError

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """Run one request in the main thread; every failure becomes one line."""
        from engine.errors import HostplugError

        op = request.get("op")
        handler = self.handlers.get(op) if isinstance(op, str) else None
        if handler is None:
            return error_response(f"the render service does not know the request {op!r}")
        start = time.perf_counter()
        log.info("%s started", op)
        try:
            with _as_client(request):
                result = handler(request.get("args") or {})
            log.info("%s done in %.2f s", op, time.perf_counter() - start)
            payload = result.pop("payload", None)
            return {"ok": True, "result": result, **({"payload": payload} if payload is not None else {})}
        except ClientLeftError:
            log.info("%s stopped after %.2f s: its client left", op, time.perf_counter() - start)
            return error_response("the client left")
        except HostplugError as e:
            log.info("%s failed: %s", op, e)
            return error_response(str(e), e.exit_code)
        except Exception as e:  # noqa: BLE001 - a bug must not take the service (or the client) down
            log.error("%s failed", op, exc_info=True)
            return error_response(f"the render service failed ({type(e).__name__}: {e}); details in "
                                  f"{self.folder / LOG_NAME}")

    # -- requests --

    def status(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "version": self.version, "protocol": PROTOCOL, "socket": str(self.socket_path),
                "uptime_s": round(time.time() - self.started, 1), "idle_timeout_s": self.idle_timeout,
                "queued": self.jobs.qsize(), "stuck": self.stuck(), "cache": self.cache.stats(),
                "previews": self.previews.stats() if self.previews is not None else None,
                "renders": self.renders.stats() if self.renders is not None else None}

    def render(self, args: dict[str, Any]) -> dict[str, Any]:
        """What ``hostplug render`` does for one input: :func:`engine.render_file` with a cached source, resumed
        from the full-size stage checkpoints of an earlier render of the same raw where its settings allow
        (``--stages`` renders every stage, so it neither uses nor fills them)."""
        from engine.output.export import render_file
        from engine.xmp.sidecar import read_sidecar

        start = time.perf_counter()
        hits = self.cache.hits
        read_sidecar(Path(args["input"]))  # a bad sidecar is named first, as in-process, before a bad raw
        source = self.cache.open(args["input"])
        opened = time.perf_counter()
        stages_dir = args.get("stages_dir")
        with self.journal(args["output"]):
            result = render_file(source, args["output"], options=_output_options(args.get("options")),
                                 changes=args.get("changes") or None,
                                 device=args.get("device", "cpu"),
                                 stages_dir=Path(stages_dir) if stages_dir else None,
                                 cache=None if stages_dir else self.full_size_cache(),
                                 progress=self.stop_if_client_left)
        stages = sum(result.timings.values())
        log.info("render of %s: open %.2f s (%s), stages %.2f s (ran %s), the rest (recipe, output, metadata) "
                 "%.2f s", args["input"], opened - start, "cached" if self.cache.hits > hits else "read",
                 stages, ", ".join(result.timings) or "none", time.perf_counter() - opened - stages)
        return result.as_dict()

    def full_size_cache(self) -> Any:
        """The full-size renders' :class:`engine.stage_cache.StageCache` (made on first use); None when
        ``cache_mb`` is 0."""
        from engine.stage_cache import FULL_SIZE_STAGES, StageCache

        if self.renders is None and self.cache_mb:
            self.renders = StageCache(self.cache_mb << 20, stages=FULL_SIZE_STAGES)
        return self.renders

    def open(self, args: dict[str, Any]) -> dict[str, Any]:
        """What ``hostplug open`` does (:func:`hostplug.handoff.open_file`): the engine and models are warm, and
        the raw and its full-size checkpoints come from the caches, as for ``render``."""
        from hostplug.handoff import open_file

        search = tuple(Path(p) for p in args.get("search") or ())
        return open_file(Path(args["file"]), search, args.get("changes") or None,
                         device=args.get("device", "cpu"), opener=self.cache.open,
                         cache=self.full_size_cache(), writing=self.journal, progress=self.stop_if_client_left)

    def preview(self, args: dict[str, Any]) -> dict[str, Any]:
        """A preview of ``input`` for an interactive editor: rendered at ``long_edge`` pixels (default about
        2 MP) through the stage cache, so a change re-runs only the stages from the first it affects; the
        pixels (8-bit sRGB, rows top down, RGB interleaved; or a PNG) follow the answer as its payload.

        ``recipe`` is a whole recipe (JSON form); without it the raw's sidecar recipe (or the defaults) is used.
        ``changes`` apply on top, as for ``render``. The orientation is the sidecar's or the raw's, as a render's."""
        import cv2

        from engine.edits import apply_changes
        from engine.errors import HostplugError
        from engine.pipeline import render
        from engine.recipe import Recipe
        from engine.stage_cache import StageCache
        from engine.stages.white_balance import white_decided
        from engine.xmp.sidecar import sidecar_orientation, sidecar_render

        start, cpu = time.perf_counter(), time.process_time()
        long_edge, pixel_format = args.get("long_edge", PREVIEW_LONG_EDGE), args.get("format", "rgb8")
        if not isinstance(long_edge, int) or not 16 <= long_edge <= 8192:
            raise HostplugError(f"preview long_edge {long_edge!r} is not a whole number of pixels from 16 to 8192")
        if pixel_format not in ("rgb8", "png"):
            raise HostplugError(f"preview format {pixel_format!r} is not rgb8 or png")
        source = self.cache.open(args["input"])
        given, changes = args.get("recipe"), args.get("changes") or None
        if given is not None:
            recipe = apply_changes(Recipe.from_dict(given), changes)
            turned = sidecar_orientation(source.path)
        else:  # the recipe and the orientation from one reading of the sidecars
            read = sidecar_render(source.path, changes)
            recipe, turned = read.recipe, read.orientation
        if self.previews is None:
            self.previews = StageCache()
        with _one_torch_thread():
            rendered = render(source, recipe, device=args.get("device", "cpu"), preview=long_edge,
                              cache=self.previews, orientation=turned)
        pixels = cv2.convertScaleAbs(rendered.pixels, alpha=255.0)  # to 8 bits, rounded, a pass over the pixels
        if pixel_format == "png":
            payload = cv2.imencode(".png", pixels[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1])[1].tobytes()
        else:
            payload = pixels.tobytes()
        height, width = pixels.shape[:2]
        return {"input": str(args["input"]), "width": width, "height": height, "format": pixel_format,
                "recipe": recipe.to_dict(), "ran": list(rendered.timings),
                "white_balance": white_decided(rendered.notes),  # what a dialog's greyed fields show
                "timings": {k: round(v, 4) for k, v in rendered.timings.items()},
                "seconds": round(time.perf_counter() - start, 4),
                "cpu_seconds": round(time.process_time() - cpu, 4),  # all threads': what it costs on a loaded machine
                "payload_bytes": len(payload), "payload": payload}

    def shutdown(self, args: dict[str, Any]) -> dict[str, Any]:
        """Stop accepting; queued requests are still answered, then the service exits."""
        self.close_listener("asked to stop (hostplug serve --stop)")
        return {"pid": os.getpid(), "stopping": True}


def remove_leftovers(folder: Path) -> None:
    """Remove the hidden partial file of a render that a killed service (SIGKILL, power cut) left behind; only
    while holding the service's lock (so no live service's journal is read): at a service's start, or from a client
    that lost its service (:func:`remove_leftovers_of`).

    Only the partial files the journal names: the ones that service's writer started (see :meth:`Service.journal`).
    Another process may be writing the same output under another partial name at this very moment (the
    client that service left, rendering it itself), and its file is not ours to delete."""
    from engine.output.publish import is_partial_of

    journal = folder / JOURNAL_NAME
    try:
        entry = json.loads(journal.read_text())
        target = Path(entry["output"])
        partials = [Path(name) for name in entry.get("partials", [])]
    except FileNotFoundError:
        return
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        partials = []  # unreadable: delete nothing
    for partial in partials:
        if partial.parent != target.parent or not is_partial_of(partial.name, target.name):
            continue  # a journal names only its output's own partial files
        try:
            partial.unlink()
            log.info("removed %s, left by a render that was killed", partial)
        except FileNotFoundError:
            pass  # published (or not yet made) before the kill
        except OSError as e:
            log.info("could not remove %s, left by a render that was killed (%s)", partial, e.strerror)
    with contextlib.suppress(OSError):
        journal.unlink(missing_ok=True)


def remove_leftovers_of(pid: int, folder: Path, wait: float = 2.0) -> None:
    """:func:`remove_leftovers` for a client whose service (``pid``) went away mid-request, so no partial file of
    the dead service stays beside its output until the next service starts. Only once ``pid`` has exited (waited
    for, ``wait`` seconds at most: one that lives on only dropped the connection) and with the service's lock,
    which an exited service has let go of: a successor holding it cleaned up at its start."""
    deadline = time.monotonic() + wait
    while _running(pid):
        if time.monotonic() > deadline:
            return
        time.sleep(0.02)
    try:
        with open(folder / LOCK_NAME, "a+") as lock:
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:  # a successor's, or the dead one's other threads are still closing files
                    if time.monotonic() > deadline:
                        return
                    time.sleep(0.02)
            remove_leftovers(folder)
    except OSError:
        return


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists and has not exited (a zombie, not yet reaped, has)."""
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except ProcessLookupError:
        return False
    except (OSError, IndexError):
        return True  # another user's process, or no /proc: assume it runs
    return state not in ("Z", "X")


def _write_json(path: Path, value: Any) -> None:
    """Write ``value`` as JSON to ``path`` whole or not at all (a kill mid-write leaves the old file)."""
    temporary = path.with_name(path.name + ".new")
    try:
        temporary.write_text(json.dumps(value))
        os.replace(temporary, path)
    except OSError:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    """torch on one thread inside the block, if it is loaded: a preview's reduced-resolution tensors are small, so
    one thread does them as fast as two, and never waits at a barrier for a second core that a busy machine has
    given to someone else (10x slower, measured). Not loaded, it is not imported for this (1.6 s): a default CPU
    render runs no torch, and a preview that loads it (a learned stage) runs with torch's own thread count."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _still_working(conn: socket.socket) -> bool:
    """Tell the client its request is queued or running (see ``WORKING_EVERY_S``); False when it left."""
    try:
        send_message(conn, {"working": True})
        return True
    except OSError:
        return False


def _client_gone(conn: socket.socket) -> bool:
    """Whether the client closed its end of the connection: hung up, not only stopped sending (a client such as
    ``nc -N`` or ``socat`` shuts down its sending side after the request and still reads the answer)."""
    poller = select.poll()
    poller.register(conn, select.POLLIN)
    try:
        return any(events & (select.POLLHUP | select.POLLERR | select.POLLNVAL) for _fd, events in poller.poll(0))
    except OSError:
        return True


# ----- running it ----------------------------------------------------------------------------------------


def _stop_on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)  # in the main thread: the render in progress unwinds, its partial file goes


def serve(idle_timeout: float = DEFAULT_IDLE_TIMEOUT_S, folder: Path | None = None, warm_up: bool = True,
          cache_mb: int = DEFAULT_CACHE_MB) -> int:
    """Run the service in this process until it is idle for ``idle_timeout`` seconds, keeping up to
    ``cache_mb`` MB of full-size stage checkpoints. ServiceError, one line saying why, when its folder, lock or
    socket cannot be used."""
    folder = folder or service_dir()
    signal.signal(signal.SIGTERM, _stop_on_signal)
    with contextlib.suppress(ValueError, OSError):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    os.chdir("/")
    keep_freed_memory()
    return Service(folder, idle_timeout, warm_up=warm_up, cache_mb=cache_mb).run()


def _real(path: str | Path) -> str:
    """``path`` with its folder resolved as the kernel resolves it (``link/..`` is the parent of the link's target,
    not the folder the link is in), and its own name kept."""
    return os.path.join(os.path.realpath(os.path.dirname(path) or "."), os.path.basename(path))


def idle_timeout_from_env() -> float | None:
    """``HOSTPLUG_SERVICE_IDLE_TIMEOUT`` in seconds (the default when unset); None when it is no finite number of 1
    or more (a tester's 'abc' was passed over, 'inf' kept a service for ever, 'nan' made it 1 s)."""
    value = os.environ.get(ENV_IDLE, "").strip()
    try:
        seconds = float(value) if value else DEFAULT_IDLE_TIMEOUT_S
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 1.0 else None


def cache_mb_limit() -> int:
    """This machine's memory in MB (or the container's, where a cgroup limits it): a checkpoint cache allowed to
    grow past it ends with the service killed for memory, in the middle of someone's render."""
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        limit = "max"
    return min(memory, int(limit)) >> 20 if limit.isdigit() else memory >> 20


def cache_mb_from_env() -> int | None:
    """``HOSTPLUG_SERVICE_CACHE_MB`` as a number of MB (the default when unset); None when it is no whole number
    from 0 to :func:`cache_mb_limit`."""
    value = os.environ.get(ENV_CACHE_MB, "").strip()
    try:
        megabytes = int(value) if value else DEFAULT_CACHE_MB
    except ValueError:
        return None
    return megabytes if 0 <= megabytes <= cache_mb_limit() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hostplug.service", description=__doc__.splitlines()[0])
    parser.add_argument("--idle-timeout", type=float, default=None,
                        help=f"exit after this many seconds without a request (default: ${ENV_IDLE}, else "
                             f"{DEFAULT_IDLE_TIMEOUT_S:g})")
    parser.add_argument("--no-warm-up", action="store_true", help="load the engine with the first request")
    parser.add_argument("--cache-mb", type=int, default=None,
                        help=f"MB of full-size stage checkpoints to keep (default: ${ENV_CACHE_MB}, else "
                             f"{DEFAULT_CACHE_MB}; 0: none)")
    args = parser.parse_args(argv)
    idle = args.idle_timeout if args.idle_timeout is not None else idle_timeout_from_env()
    if idle is None or not math.isfinite(idle) or idle < 1.0:
        parser.error(f"the idle timeout must be a number of seconds, 1 or more (--idle-timeout, or "
                     f"{ENV_IDLE}={os.environ.get(ENV_IDLE)!r})")
    cache_mb = args.cache_mb if args.cache_mb is not None else cache_mb_from_env()
    if cache_mb is None or not 0 <= cache_mb <= cache_mb_limit():
        parser.error(f"the checkpoint cache size must be a whole number of MB, 0 to {cache_mb_limit()} (this "
                     f"machine's memory) (--cache-mb, or "
                     f"{ENV_CACHE_MB}={os.environ.get(ENV_CACHE_MB)!r})")
    log_to_stderr("%(asctime)s hostplug-serve[%(process)d] %(message)s")
    try:
        code = serve(idle, warm_up=not args.no_warm_up, cache_mb=cache_mb)
    except ServiceError as e:
        print(f"hostplug: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    if code == ALREADY_RUNNING:  # started by a client that raced another: one running is what it wanted
        log.info("a render service is already running for this user; not starting another")
        return 0
    return code
