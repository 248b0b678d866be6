"""Render farms: the watch daemon's render workers as Ray actors on the nodes of a Ray cluster.

``hostplug watch --cluster ray://HEAD:10001`` (or ``cluster = ...`` in ``[daemon]``) swaps the local process pool
(:mod:`.workers`) for :class:`RayPool`, which has the same interface, so the daemon's loop does not change. Ray is
imported here only, and only then (``pip install 'hostplug[cluster]'``).

* **Workers.** One :class:`RenderWorker` actor per ``cpus_per_worker`` CPU cores of each node (``device = "cuda"``:
  one per GPU, ``num_gpus=1``), each with the engine imported (and warmed up) once. An actor is restarted by Ray
  when its process or node dies (``max_restarts=-1``); its calls are *not* retried by Ray (``max_task_retries=0``):
  the daemon sees the crash and retries the file itself, through the journal, a bounded number of times, as it
  does for a local worker. A transparent retry would hide the crash from the journal, leave the killed render's
  temporary files behind, and retry a file that kills every worker for ever.
* **Paths, not pixels.** Jobs carry paths on the shared storage; a node that mounts the share elsewhere maps them
  (``path_map``). At start, every node must read a probe file the daemon wrote in each hot folder and write one
  the daemon can read in each output folder, or the daemon refuses to start, naming the node.
* **One journal, one writer.** The daemon alone writes the journal. The one journal write a render needs
  (:meth:`.Journal.claim`, reserving its output names before anything is written) is asked of the daemon: the
  actor's job waits on :meth:`RenderWorker.next_claim`, which the daemon polls, and the daemon answers with
  :meth:`RenderWorker.answer`. :func:`hostplug.daemon.job.run_job` itself runs unchanged in the actor.
* **Security.** Ray's token authentication is turned on (``RAY_AUTH_MODE=token``) where the installed Ray has it,
  unless ``RAY_AUTH_MODE`` says otherwise, and a token the cluster refuses is refused at once
  (:mod:`.cluster_auth`); an address on every interface (``0.0.0.0``) is refused without ``allow_public_bind``.
  :func:`node_command` starts nodes bound to the address given (see docs/cluster.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import queue
import secrets
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hostplug.daemon.cluster_auth import check_token
from hostplug.daemon.config import DaemonConfig, FolderConfig
from hostplug.daemon.errors import ClusterLostError, ConfigError
from hostplug.daemon.job import Job, Outcome
from hostplug.daemon.journal import Conflict
from hostplug.daemon.workers import MAX_FAILED_STARTS, Event, describe_slots

log = logging.getLogger("hostplug.watch")
# Without this, ray.wait, ray.get and ray.kill after the head went away call ray.init(), which starts a local Ray
# cluster of its own (listening on the machine's address; its agents outlive the daemon) or joins whichever one
# this machine runs. Ray reads it when it is imported, so it is set before any import of ray.
os.environ.setdefault("RAY_ENABLE_AUTO_CONNECT", "0")
RAY_VERSION = "2.60.0"  # pinned by the 'cluster' extra: every node and the daemon must run the same Ray
INSTALL = "pip install 'hostplug[cluster]'"
NAMESPACE = "hostplug"
RAY_CLIENT_PORT = 10001  # what ray://HOST without a port connects to
CLAIM_POLL_SECONDS = 20.0  # how long one next_claim call waits before the daemon asks again
UNPLACED_WARN_S = 60.0  # no worker started after this long: say why files wait
CLAIM_ANSWER_SECONDS = 300.0  # how long a worker waits for the daemon to answer a claim
PROBE_SECONDS = 180.0  # how long the start-up probe may take (a node starts a Python worker for it)
PUBLIC = ("0.0.0.0", "::", "[::]", "")
# How long ray.init is tried again: a busy head's Ray Client server sometimes fails to start a session, for longer
# than three quick tries covered on a loaded machine (a daemon restarted beside running renders)
JOIN_SECONDS = 90.0
NODE_CHECK_SECONDS = 5.0  # how often the daemon asks Ray which nodes are alive (for workers on a dead node)
# How long a render whose worker stopped answering waits for Ray to say whether its node died: Ray counts a node
# whose raylet was killed (a power cut) gone only once its health checks fail, 15-30 s later (see _decided)
NODE_VERDICT_SECONDS = 60.0
_STOPS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)  # what stops the daemon (SIGHUP: a closed terminal)


# -- Ray, its address and its security ------------------------------------------------------------------------


def import_ray() -> Any:
    """Ray, or a ConfigError that says how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(f"rendering on a cluster needs Ray here and on every node: {INSTALL}") from None
    # its log channel's own logger (which ray.init's logging_level does not reach) printed "Log channel is
    # reconnecting..." before the daemon's one line about a lost head (a tester's)
    logging.getLogger("ray.util.client.logsclient").setLevel(logging.ERROR)
    return ray


def _split(address: str) -> tuple[str, str]:
    """``ray://HOST:PORT`` or ``HOST:PORT`` as its host and its port as written ("" when it names none)."""
    rest = address.split("://", 1)[1] if "://" in address else address
    if ":" not in rest or rest.endswith("]"):  # none, or an IPv6 address in brackets without one
        return rest, ""
    host, port = rest.rsplit(":", 1)
    return host, port


def address_host(address: str) -> str | None:
    """The host of ``ray://HOST:PORT`` or ``HOST:PORT`` (None for ``auto``)."""
    if address == "auto":
        return None
    host = _split(address)[0]
    return host.strip("[]") if host.startswith("[") else host


def address_port(address: str) -> int | None:
    """The port of ``ray://HOST:PORT`` or ``HOST:PORT`` (None when it names none)."""
    port = _split(address)[1]
    return int(port) if port.isdigit() else None


def checked_address(address: str) -> str:
    """``address`` as Ray is given it: ``auto``, ``ray://HOST:PORT`` (the Ray Client port, 10001 when it names
    none: without it a tester's daemon waited half a minute for Ray's timeout) or ``HOST:PORT``; ConfigError in
    one line for another scheme or a missing host (Ray's own messages for these read as its internals)."""
    if address == "auto":
        return address
    usage = ("give ray://HOST:PORT (the head's Ray Client port, 10001 by default), HOST:PORT (its GCS port, 6379) "
             "or auto")
    scheme = address.split("://", 1)[0] if "://" in address else None
    if scheme is not None and scheme != "ray":
        raise ConfigError(f"cluster address {address!r}: {scheme}:// is not a Ray address; {usage}")
    host, port = _split(address)
    if not address.strip():
        raise ConfigError("the cluster address is empty; leave out cluster (and --cluster) to render on this machine, "
                          f"or {usage}")
    if not host.strip("[] "):
        raise ConfigError(f"cluster address {address!r} names no host; {usage}")
    if "/" in host or address.endswith(":") or (port and not (port.isdigit() and 1 <= int(port) <= 65535)):
        raise ConfigError(f"cluster address {address!r} is not HOST:PORT (a port from 1 to 65535); {usage}")
    if not port:
        if scheme is None:
            raise ConfigError(f"cluster address {address!r} names no port; {usage}")
        return f"{address}:{RAY_CLIENT_PORT}"
    return address


def check_reachable(address: str, timeout: float = 3.0, named: str | None = None) -> None:
    """Refuse at once an address where nothing listens, or that names no port it could listen on: Ray gives up
    on such an address only after half a minute, and on ``auto`` whose head on this machine has gone, never.
    ``named`` is what the message calls the address (``auto`` and what it stands for)."""
    if address == "auto":
        from hostplug.daemon.cluster_auth import resolved_auto

        resolved = resolved_auto()  # the cluster ray.init("auto") would join, if any (else it says so itself)
        if resolved is not None:
            check_reachable(resolved, timeout, named=f"auto ({resolved})")
        return
    named = named or address
    port_text = _split(address)[1]
    if port_text and not port_text.isdigit():
        raise ConfigError(f"cluster address {named}: the port {port_text!r} is not a number; give "
                          "ray://HOST:PORT (the head's Ray Client port, 10001 by default) or HOST:PORT (its GCS port, "
                          "6379)")
    host = address_host(address)
    port = address_port(address) or (RAY_CLIENT_PORT if address.startswith("ray://") else None)
    if host is None or port is None:
        return
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        raise ConfigError(f"cannot join the Ray cluster at {named}: nothing answers at {host}:{port} "
                          f"({e.strerror or e}); start the Ray head there first (docs/cluster.md), or check the "
                          "address") from e


def check_bind(host: str | None, allow_public_bind: bool, what: str = "the Ray head") -> None:
    """Refuse an address on every interface unless the user said so explicitly."""
    if host is not None and host in PUBLIC and not allow_public_bind:
        raise ConfigError(f"{what} would listen on every network interface ({host or 'no address'}): give the "
                          "address of the studio network's interface, or pass --allow-public-bind after reading "
                          "docs/cluster.md (firewall)")


def token_auth_available() -> bool:
    """Whether the installed Ray has token authentication (Ray 2.52 and later)."""
    try:
        import ray._private.authentication.authentication_token_setup  # noqa: F401
    except ImportError:
        return False
    return True


def enable_token_auth() -> str:
    """Ask Ray for token authentication in this process (and the processes it starts), unless ``RAY_AUTH_MODE``
    is set already; returns the mode in force. Call before ``ray.init``."""
    if os.environ.get("RAY_AUTH_MODE"):
        return os.environ["RAY_AUTH_MODE"]
    if not token_auth_available():
        log.warning("the installed Ray has no token authentication: anyone who can reach the cluster's ports can "
                    "run code on it; firewall them (docs/cluster.md)")
        return "disabled"
    os.environ["RAY_AUTH_MODE"] = "token"
    try:  # Ray already imported: make it read the environment again
        from ray._raylet import Config  # type: ignore[attr-defined]  # Ray's stub of _raylet leaves Config out

        Config.initialize("")
    except Exception:  # older or newer Ray: the environment is read at ray.init anyway
        pass
    return "token"


def node_command(*, bind: str, head_port: int, head: bool, head_address: str | None = None,
                 num_cpus: int | None = None, num_gpus: int | None = None, client_port: int | None = None,
                 temp_dir: Path | None = None, object_store_mb: int | None = None,
                 allow_public_bind: bool = False) -> list[str]:
    """``ray start`` for a hostplug node bound to ``bind`` (the head's GCS on ``head_port``, the Ray Client
    server on ``client_port``), with no dashboard and no usage statistics. Run it with :func:`node_env`."""
    check_bind(bind, allow_public_bind, "this Ray node")
    if bind in ("127.0.0.1", "localhost", "::1"):
        raise ConfigError(f"Ray replaces {bind} with this machine's network address; for a cluster on this machine "
                          "only, bind another loopback address, such as 127.0.0.2")
    ray_script = Path(sys.executable).with_name("ray")  # the Ray of this Python, not whichever is first in PATH
    command = [str(ray_script) if ray_script.is_file() else "ray", "start", "--node-ip-address", bind,
               "--disable-usage-stats"]
    if head:
        command += ["--head", "--port", str(head_port), "--include-dashboard", "false", "--dashboard-host", bind]
        if client_port:
            command += ["--ray-client-server-port", str(client_port)]
    else:
        command += ["--address", head_address or f"{bind}:{head_port}"]
    if num_cpus is not None:
        command += ["--num-cpus", str(num_cpus)]
    if num_gpus is not None:
        command += ["--num-gpus", str(num_gpus)]
    if temp_dir is not None:
        command += ["--temp-dir", str(temp_dir)]
    if object_store_mb is not None:
        command += ["--object-store-memory", str(object_store_mb * 1024 * 1024)]
    return command


def node_env(token_file: Path | None = None) -> dict[str, str]:
    """The environment for ``ray start``: token authentication on (where Ray has it), with ``token_file``."""
    env = dict(os.environ)
    if token_auth_available():
        env.setdefault("RAY_AUTH_MODE", "token")
    if token_file is not None:
        env["RAY_AUTH_TOKEN_PATH"] = str(token_file)
    return env


def start_node(command: list[str], env: dict[str, str], timeout: float = 180.0) -> None:
    """Run a :func:`node_command` (``ray start`` returns once the node is up); ConfigError when it fails."""
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ConfigError(f"{' '.join(command[:3])}: {e}") from e
    if done.returncode != 0:
        raise ConfigError(f"{' '.join(command)} failed: {_failure_reason(done.stderr, done.stdout) or done.returncode}")


def _failure_reason(stderr: str, stdout: str) -> str | None:
    """The line of ``ray start``'s output that says why it failed: the last that names an error (a port in use,
    a failed check), else its last line (stdout's, where its INFO lines go, when it printed any)."""
    lines = [line.strip() for text in (stderr, stdout) for line in text.splitlines() if line.strip()]
    telling = [line for line in lines if any(w in line.lower() for w in ("error", "failed", "in use", "check"))]
    return (telling or lines)[-1] if lines else None


def make_token(path: Path) -> Path:
    """Write a new random token (readable by its owner only) unless ``path`` has one; returns ``path``."""
    if not path.is_file() or not path.read_text().strip():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path


def stop_nodes(temp_dir: Path, timeout: float = 5.0) -> int:
    """Stop the Ray processes of the nodes started with ``--temp-dir temp_dir`` (and their children), and only
    those: ``ray stop`` would stop every Ray on the machine. A process is one of them when an option of its command
    line names that folder or a session in it, or it holds a file of a session open (the Ray Client server); never
    this process, its parents (a wrapper whose command line names the folder), nor another user's. Returns how many
    processes were signalled."""
    folder = str(temp_dir).rstrip("/") or "/"
    parents: dict[int, int] = {}
    roots = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            stat = (entry / "stat").read_text()
            uid = entry.stat().st_uid
        except OSError:
            continue
        pid = int(entry.name)
        parents[pid] = int(stat.rsplit(")", 1)[1].split()[1])
        if uid == os.getuid() and (_names_node_folder(argv, folder) or _writes_under(entry, folder + "/session_")):
            roots.append(pid)
    found = set(roots)
    grew = True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in found} - found
        found |= children
        grew = bool(children)
    found -= _this_and_parents(parents)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in found:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 5.0)
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() and not _zombie(p) for p in found):
            time.sleep(0.1)
    return len(found)


def _names_node_folder(argv: list[str], folder: str) -> bool:
    """Whether a command line gives an option the value ``folder`` (``--temp-dir=DIR``, ``--temp-dir DIR``) or a
    path in one of its sessions (``--session-dir=DIR/session_...``), as Ray's processes are started: not any text
    that merely holds the folder's name (a shell's ``sh -c '... DIR'``)."""
    for option, value in zip(argv, [*argv[1:], ""], strict=True):
        key, equals, given = option.partition("=")
        if not key.startswith("--"):
            continue
        given = given if equals else value
        if given.rstrip("/") == folder or given.startswith(folder + "/session_"):
            return True
    return False


def _this_and_parents(parents: dict[int, int]) -> set[int]:
    """This process and its ancestors."""
    chain, pid = set(), os.getpid()
    while pid > 0 and pid not in chain:
        chain.add(pid)
        pid = parents.get(pid, 0)
    return chain


def _writes_under(proc: Path, prefix: str) -> bool:
    """Whether the process has a file open whose path begins with ``prefix``."""
    try:
        fds = list((proc / "fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(fd).startswith(prefix):
                return True
    return False


def _zombie(pid: int) -> bool:
    try:
        return ") Z " in Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True


# -- paths on the shared storage ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PathMap:
    """Where a node sees the daemon's folders: ``(here, there)`` prefixes, longest first."""

    pairs: tuple[tuple[str, str], ...] = ()

    @classmethod
    def for_node(cls, path_map: Mapping[str, Mapping[str, str]], *names: str) -> PathMap:
        """The map of the node known by any of ``names`` (address, host name), else ``"*"``, else none."""
        table: Mapping[str, str] = next((path_map[n] for n in (*names, "*") if n in path_map), {})
        return cls(tuple(sorted(((str(k), str(v)) for k, v in table.items()), key=lambda p: -len(p[0]))))

    @staticmethod
    def _swap(path: Path | str, pairs: tuple[tuple[str, str], ...]) -> Path:
        path = Path(path)
        for old, new in pairs:
            if path.is_relative_to(old):
                return Path(new) / path.relative_to(old)
        return path

    def there(self, path: Path | str) -> Path:
        """The daemon's path as the node sees it."""
        return self._swap(path, self.pairs)

    def here(self, path: Path | str) -> Path:
        """The node's path as the daemon sees it."""
        return self._swap(path, tuple((b, a) for a, b in sorted(self.pairs, key=lambda p: -len(p[1]))))

    def folder(self, folder: FolderConfig) -> FolderConfig:
        """A hot folder's configuration with the node's paths."""
        outputs = tuple(dataclasses.replace(o, folder=self.there(o.folder) if o.folder else None)
                        for o in folder.outputs)
        return dataclasses.replace(folder, path=self.there(folder.path), outputs=outputs,
                                   archive=self.there(folder.archive) if folder.archive else None,
                                   library_roots=tuple(self.there(r) for r in folder.library_roots))

    def job(self, job: Job) -> Job:
        """A job with the node's paths."""
        return dataclasses.replace(job, path=self.there(job.path), folder=self.there(job.folder),
                                   previous_outputs=tuple(str(self.there(p)) for p in job.previous_outputs))


def probe_folders(config: DaemonConfig) -> tuple[list[Path], list[Path]]:
    """The folders every node must read (hot folders) and write (output folders, library roots)."""
    hot = [f.path for f in config.folders]
    written: list[Path] = []
    for folder in config.folders:
        written += [o.folder for o in folder.outputs if o.folder is not None] + list(folder.library_roots)
    return hot, list(dict.fromkeys(written))


def probe_node(path_map: Mapping[str, Mapping[str, str]], hot: list[tuple[str, str]], outputs: list[str],
               token: str) -> dict[str, Any]:
    """Runs on a node: read each hot folder's probe file, write one in each output folder (the daemon checks it
    sees them). Returns the node's address and name, the problems, and the files written (the daemon's paths)."""
    import ray

    ip, name = ray.util.get_node_ip_address(), socket.gethostname()
    paths = PathMap.for_node(path_map, ip, name)
    problems, written = [], []
    for folder, probe in hot:
        there = paths.there(Path(folder) / probe)
        try:
            if there.read_text() != token:
                problems.append(f"sees another folder at {there.parent} than the daemon's {folder}")
        except FileNotFoundError:  # the folder is there, but not the daemon's probe file in it: another folder
            problems.append(f"sees another folder at {there.parent} than the daemon's {folder}" if
                            there.parent.is_dir() else f"cannot see the hot folder {folder} at {there.parent} "
                            "(no such folder)")
        except OSError as e:
            problems.append(f"cannot see the hot folder {folder} at {there.parent} ({e.strerror or e})")
    for folder in outputs:  # made by the daemon's start checks: a node makes none (under an unmounted mount)
        there = paths.there(Path(folder))
        mine = there / f".hostplug-probe-{token}-{ip}"
        try:
            mine.write_text(ip)
            written.append((folder, str(mine.name), str(mine)))
        except OSError as e:
            problems.append(f"cannot write the output folder {folder} at {there} ({e.strerror or e})")
    return {"node": ip, "hostname": name, "problems": problems, "written": written}


def remove_probes(paths: list[str]) -> None:
    """Runs on a node: remove the probe files it wrote where the daemon did not find them (another folder)."""
    for path in paths:
        Path(path).unlink(missing_ok=True)


# -- the actor ------------------------------------------------------------------------------------------------


class _DaemonClaims:
    """Stands in for the journal inside an actor: :func:`run_job` only claims output names, which the daemon
    (the journal's one writer) does on the actor's behalf."""

    def __init__(self, worker: RenderWorker, file_id: int) -> None:
        self.worker, self.file_id = worker, file_id

    def claim(self, file_id: int, targets: list[str]) -> Conflict | None:
        box: queue.Queue = queue.Queue()
        self.worker.answers[file_id] = box
        self.worker.claims.put((file_id, [str(self.worker.paths.here(t)) for t in targets]))
        try:
            conflict = box.get(timeout=CLAIM_ANSWER_SECONDS)
        except queue.Empty:
            raise RuntimeError(f"the daemon did not answer the claim of {targets} within "
                               f"{CLAIM_ANSWER_SECONDS:g} s") from None
        finally:
            self.worker.answers.pop(file_id, None)
        if conflict is None or conflict.owner is None:
            return conflict
        # the raw holding the names, in the node's paths as the job's own are (_clash_advice compares their folders)
        return dataclasses.replace(conflict, owner=self.worker.paths.there(conflict.owner))


class RenderWorker:
    """A render worker on a cluster node (a Ray actor): the engine imported once, one raw at a time."""

    def __init__(self, config: DaemonConfig, threads: int) -> None:
        import ray

        self.config, self.threads = config, threads
        self.node, self.hostname = ray.util.get_node_ip_address(), socket.gethostname()
        self.paths = PathMap.for_node(config.path_map, self.node, self.hostname)
        self.claims: queue.Queue = queue.Queue()
        self.answers: dict[int, queue.Queue] = {}
        self.error: str | None = None
        try:
            from hostplug.daemon.recipes import folder_recipe
            from hostplug.daemon.workers import limit_threads, warm_up

            limit_threads(threads)
            import engine  # noqa: F401  (warm: the engine stays imported for every job)

            if config.warm_up:
                warm_up()
            self.folders = {f.path: self.paths.folder(f) for f in config.folders}  # keyed by the daemon's path
            from hostplug.daemon.job import output_devices

            self.devices = output_devices(self.folders.values())  # this node's, at its start
            self.bases = {f.path: folder_recipe(f) for f in config.folders}
        except BaseException as e:  # tell the daemon why, rather than just vanishing
            self.error = f"{type(e).__name__}: {e}"

    def ready(self) -> dict[str, Any]:
        """Where this worker runs, and whether it could start."""
        return {"node": self.node, "hostname": self.hostname, "pid": os.getpid(), "error": self.error}

    def render(self, job: Job) -> Outcome:
        """Render one raw (the daemon's paths in, the daemon's paths out)."""
        from hostplug.daemon.job import run_job
        from hostplug.daemon.workers import limit_threads

        start = time.perf_counter()
        limit_threads(self.threads)  # numba's thread count belongs to the calling thread
        try:
            outcome = run_job(self.paths.job(job), self.folders[job.folder], self.bases[job.folder],
                              _DaemonClaims(self, job.id), device=self.config.device,  # type: ignore[arg-type]
                              devices=self.devices)
        except MemoryError as e:
            outcome = Outcome(job.id, "retry", f"out of memory on {self.node} (Ray's workers run without "
                              f"memory_limit_mb: give the node more memory, or run fewer workers on it): {e}")
        except Exception as e:
            last = traceback.format_exception_only(e)[-1].strip()
            outcome = Outcome(job.id, "retry", f"unexpected error on {self.node}: {last}")
        return self._in_daemon_paths(outcome, round(time.perf_counter() - start, 3))

    def _in_daemon_paths(self, outcome: Outcome, seconds: float) -> Outcome:
        """An outcome's paths as the daemon sees them: its outputs, and the output folders it waits for or made
        again (left in the node's, an outage never ended: output_folder_back never matched)."""
        here = self.paths.here
        return dataclasses.replace(outcome, outputs=tuple(str(here(p)) for p in outcome.outputs),
                                   place=str(here(outcome.place)) if outcome.place else "",
                                   remade=tuple(str(here(p)) for p in outcome.remade), seconds=seconds)

    def next_claim(self, timeout: float) -> tuple[int, list[str]] | None:
        """The claim the render in progress waits on (file id, output paths), or None after ``timeout`` s."""
        try:
            return self.claims.get(timeout=timeout)
        except queue.Empty:
            return None

    def answer(self, file_id: int, conflict: Conflict | None) -> None:
        """The daemon's answer to a claim: None, or the :class:`.Conflict` with the raw that owns an output."""
        box = self.answers.get(file_id)
        if box is not None:
            box.put(conflict)


# -- the pool, on the daemon's side ---------------------------------------------------------------------------


@dataclass(eq=False)
class RaySlot:
    """A worker actor and the job it is on (the attributes of :class:`.workers.Slot` the daemon uses)."""

    actor: Any
    name: str
    node: str = "?"
    pid: int | None = None
    ready: bool = False
    job: Job | None = None
    started: float = 0.0
    targets: list[str] = field(default_factory=list)
    pending: Any = None  # ready() until the actor has answered
    render: Any = None  # the render in progress
    claim: Any = None  # the outstanding next_claim()
    killed_pid: int | None = None  # the instance the daemon killed: its late answers do not count
    ask_at: float | None = None  # when to ask a restarting actor again whether it is ready
    lost: str | None = None  # why the worker is gone (died, or its node did), until an instance is ready again
    lost_at: float = 0.0  # when (monotonic)


def actor_prefix(journal: Path) -> str:
    """The prefix of a daemon's worker names in the cluster's one namespace: of its machine, its journal's path and
    the journal file itself. A daemon elsewhere whose journal has the same path (``/var/lib/hostplug/journal.sqlite``
    on every machine, or the default in a hot folder of the same path) then never kills another's live workers as
    its own leftovers; one restarted on the same journal still finds those its killed run left."""
    try:
        info = os.stat(journal)
        identity = f"{info.st_dev}:{info.st_ino}"
    except OSError:  # not made yet
        identity = ""
    key = f"{socket.gethostname()}\0{journal}\0{identity}"
    return "hostplug-" + hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:10]


class RayPool:
    """Render workers as Ray actors on the nodes of a cluster; the interface of :class:`.workers.WorkerPool`."""

    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.slots: list[RaySlot] = []
        self.failed_starts = 0
        self.spawned_at = 0.0  # when the workers were asked for (monotonic)
        self.unplaced_warned = False
        self.placed = False  # a worker has started since the workers were asked for
        self.nodes_checked = 0.0  # when the nodes' liveness was last asked (monotonic)
        self.ray: Any = None
        self.journal: Any = None
        self.prefix = actor_prefix(config.journal)
        self.undecided: list[tuple[Event, float]] = []  # renders lost to an unreachable worker, and until when
        self.verdicts_checked = 0.0  # when Ray was last asked about their nodes (monotonic)

    # -- start -----------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Join the cluster, check every node sees the shared folders, and start the workers. A SIGTERM or SIGINT
        while joining (up to a minute) ends the join at once and is handed to the handler in place before (the
        daemon's: it stops), with no worker started."""
        handlers = {s: signal.getsignal(s) for s in _STOPS}
        stopped_by = None
        try:
            mode, address = self._join()
        except _StoppedWhileJoining as stop:
            with contextlib.suppress(Exception):
                self.ray.shutdown()
            stopped_by = stop.signum
        finally:
            for sig, handler in handlers.items():  # ray.init sets its own SIGTERM handler (sys.exit): the daemon's
                if handler is not None:  # stops gracefully, letting renders finish
                    signal.signal(sig, handler)
        if stopped_by is not None:  # the daemon's own handler takes it now
            signal.raise_signal(stopped_by)
            return
        from hostplug.daemon.journal import Journal

        self.journal = Journal(self.config.journal)  # this process's own connection: the daemon still writes
        self.prefix = actor_prefix(self.config.journal)  # now of the journal file itself
        nodes = self._capacity()
        self._kill_leftovers()
        self._probe(nodes)
        self._spawn(nodes)
        log.info("cluster %s: %d worker(s) on %d node(s) (token authentication %s)", address, len(self.slots),
                 len(nodes), "on" if mode == "token" else "off",
                 extra={"event": "cluster", "fields": {"address": address, "workers": len(self.slots),
                                                        "nodes": {n["ip"]: n["workers"] for n in nodes},
                                                        "auth": mode}})

    def _join(self) -> tuple[str, str]:
        """Check the address and the token, and join the cluster (:func:`_join_until_stopped`): the token
        authentication mode in force and the address. ConfigError when it cannot be joined."""
        def stop(signum: int, frame: object) -> None:
            raise _StoppedWhileJoining(signum)

        for sig in _STOPS:  # importing Ray alone takes seconds (one ignored stays so: nohup's SIGHUP)
            if signal.getsignal(sig) is not signal.SIG_IGN:
                signal.signal(sig, stop)
        address = checked_address(self.config.cluster or "")  # (validate() refused an empty one already)
        check_bind(address_host(address), self.config.allow_public_bind)
        check_reachable(address)
        mode = enable_token_auth()
        ray = self.ray = import_ray()
        if ray.__version__ != RAY_VERSION:
            log.warning("Ray %s is installed; hostplug[cluster] pins %s: every node must run the same Ray",
                        ray.__version__, RAY_VERSION)
        check_token(address)  # Ray would take a refused token for a head not up yet, and retry for 30 s
        try:
            _join_until_stopped(ray, address)
        except Exception as e:  # connection, version and authentication errors alike
            if address == "auto" and "could not find any running ray instance" in _one_line(e).lower():
                raise ConfigError("no Ray cluster runs on this machine (--cluster auto): start one with hostplug "
                                  "cluster start, or give the head's address, ray://HEAD:10001") from e
            about_auth = mode == "token" and any(w in _one_line(e).lower() for w in ("auth", "token", "permission"))
            raise ConfigError(f"cannot join the Ray cluster at {address}: {_one_line(e)}"
                              + (" (token authentication: every node and this machine need the same token, "
                                 "~/.ray/auth_token or RAY_AUTH_TOKEN_PATH)" if about_auth else "")) from e
        return mode, address

    def _capacity(self) -> list[dict[str, Any]]:
        """The live nodes that can hold workers, and how many each holds."""
        nodes = []
        for node in self.ray.nodes():
            if not node.get("Alive"):
                continue
            resources = node.get("Resources", {})
            if self.config.device == "cuda":
                count = int(resources.get("GPU", 0))
            else:
                count = int(resources.get("CPU", 0) // self.config.cpus_per_worker)
            if count:
                nodes.append({"id": node["NodeID"], "ip": node["NodeManagerAddress"], "workers": count})
        if not nodes:
            need = "a GPU" if self.config.device == "cuda" else f"{self.config.cpus_per_worker} CPU core(s)"
            raise ConfigError(f"no node of the Ray cluster {self.config.cluster} has {need} for a render worker")
        return nodes

    def _kill_leftovers(self) -> None:
        """Kill this journal's workers a killed daemon left behind (Ray Client keeps them a while)."""
        try:
            names = self.ray.util.list_named_actors()
        except Exception:
            return
        killed = []
        for name in names:
            if isinstance(name, str) and name.startswith(self.prefix + "-"):
                with contextlib.suppress(Exception):  # already gone
                    self.ray.kill(self.ray.get_actor(name, namespace=NAMESPACE), no_restart=True)
                    killed.append(name)
                    log.info("killed the worker %s a previous daemon left behind", name)
        deadline = time.monotonic() + 30
        while killed and time.monotonic() < deadline:  # gone before their temporary files are cleaned up
            killed = [n for n in killed if self._alive(n)]
            time.sleep(0.2)

    def _alive(self, name: str) -> bool:
        try:
            self.ray.get_actor(name, namespace=NAMESPACE)
        except ValueError:
            return False
        return True

    def _probe(self, nodes: list[dict[str, Any]]) -> None:
        """Every node reads a probe file in each hot folder and writes one in each output folder."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        ray = self.ray
        token = secrets.token_hex(8)
        hot, outputs = probe_folders(self.config)
        name = f".hostplug-probe-{token}"
        for folder in hot:
            (folder / name).write_text(token)
        remote = ray.remote(num_cpus=0, max_retries=0)(probe_node)
        refs = {remote.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["id"], soft=False)).remote(
            dict(self.config.path_map), [(str(f), name) for f in hot], [str(o) for o in outputs], token): n
            for n in nodes}
        problems: list[str] = []
        cleanup: list[Any] = []
        try:
            ready, late = ray.wait(list(refs), num_returns=len(refs), timeout=PROBE_SECONDS)
            problems += [f"cluster node {refs[r]['ip']}: did not answer the storage probe within "
                         f"{PROBE_SECONDS:g} s" for r in late]
            for ref in ready:
                try:
                    report = ray.get(ref)
                except Exception as e:
                    problems.append(f"cluster node {refs[ref]['ip']}: the storage probe failed ({_one_line(e)})")
                    continue
                node = f"cluster node {report['node']} ({report['hostname']})"
                problems += [f"{node} {p}" for p in report["problems"]]
                unseen = []
                for folder, probe_name, there in report["written"]:
                    here = Path(folder) / probe_name
                    try:
                        seen = here.read_text() == report["node"]
                        here.unlink()
                    except OSError:
                        seen = False
                    if not seen:
                        unseen.append(there)
                        problems.append(f"{node} writes its output folder {folder} somewhere this machine does "
                                        "not see: not the same shared storage (path_map?)")
                if unseen:  # the node's own probe files, in the folders only it sees
                    cleanup.append(ray.remote(num_cpus=0, max_retries=0)(remove_probes).options(
                        scheduling_strategy=NodeAffinitySchedulingStrategy(refs[ref]["id"], soft=False)).remote(unseen))
        finally:
            if cleanup:
                ray.wait(cleanup, num_returns=len(cleanup), timeout=PROBE_SECONDS)
            for folder in hot:
                (folder / name).unlink(missing_ok=True)
        if problems:
            for problem in problems[1:]:  # each said: a tester's "(and 1 more problem(s))" was said nowhere
                log.error("%s", problem, extra={"event": "cluster_probe", "fields": {"problem": problem}})
            more = f" (and {len(problems) - 1} more problem(s), in the daemon's log)" if len(problems) > 1 else ""
            raise ConfigError(f"{problems[0]}{more}; every node must mount the hot folders and output folders "
                              "(path_map maps other mount points)")

    def _spawn(self, nodes: list[dict[str, Any]]) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        gpu = self.config.device == "cuda"
        threads = self.config.threads_per_worker or self.config.cpus_per_worker
        actor_class = self.ray.remote(RenderWorker)
        self.spawned_at = time.monotonic()
        for node in nodes:
            for _ in range(node["workers"]):
                name = f"{self.prefix}-{len(self.slots)}"
                actor = actor_class.options(
                    name=name, namespace=NAMESPACE, num_cpus=1 if gpu else self.config.cpus_per_worker,
                    num_gpus=1 if gpu else 0, max_restarts=-1, max_task_retries=0, max_concurrency=4,
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node["id"], soft=True),
                ).remote(self.config, threads)
                self.slots.append(RaySlot(actor=actor, name=name, node=node["ip"], pending=actor.ready.remote()))

    # -- the pool interface ----------------------------------------------------------------------------------

    def idle(self) -> list[RaySlot]:
        """Ready workers without a job."""
        return [s for s in self.slots if s.ready and s.job is None]

    def busy(self) -> list[RaySlot]:
        """Workers on a job."""
        return [s for s in self.slots if s.job is not None]

    def describe(self) -> list[dict[str, Any]]:
        """Each worker as ``hostplug queue`` shows it; a lost one as ``lost`` (since it was lost), not as one
        still starting or rendering: its actor died or its node is gone, and no instance has come back yet."""
        rows = describe_slots(self.slots)
        now, clock = time.time(), time.monotonic()
        for row, slot in zip(rows, self.slots, strict=True):
            if slot.lost is not None:
                row.update(state="lost", since=now - (clock - slot.lost_at))
        return rows

    def submit(self, slot: RaySlot, job: Job) -> None:
        """Give a job to an idle worker."""
        slot.job, slot.started, slot.targets = job, time.monotonic(), []
        slot.render = slot.actor.render.remote(job)

    def poll(self, timeout: float) -> list[Event]:
        """Wait up to ``timeout`` seconds for workers; returns finished, crashed and timed-out jobs.
        :class:`ClusterLostError` when the cluster itself went away (the head stopped, the network broke)."""
        try:
            return self._poll(timeout)
        except ConnectionError as e:  # Ray's client gives up after its own reconnection attempts (about 30 s)
            raise ClusterLostError(f"lost the Ray cluster at {self.config.cluster} ({_one_line(e)}); the files it "
                                   "was rendering stay queued: start the daemon again once the cluster is back") from e

    def _poll(self, timeout: float) -> list[Event]:
        self._warn_if_unplaced()
        self._check_nodes()
        ray = self.ray
        now = time.monotonic()
        for slot in self.slots:
            if slot.ask_at is not None and now >= slot.ask_at:
                slot.ask_at, slot.pending = None, slot.actor.ready.remote()
        refs: dict[str, tuple[RaySlot, str, Any]] = {}  # by id: ray.wait may hand back other ObjectRef objects
        for slot in self.slots:
            for kind in ("pending", "render", "claim"):
                ref = getattr(slot, kind)
                if ref is not None:
                    refs[ref.hex()] = (slot, kind, ref)
        events: list[Event] = []
        if refs:
            every = [r for _, _, r in refs.values()]
            ready, _ = ray.wait(every, num_returns=1, timeout=timeout)
            if ready:
                ready, _ = ray.wait(every, num_returns=len(every), timeout=0)
            order = {"claim": 0, "pending": 1, "render": 2}  # a claim before the render that waited on it
            for done in sorted(ready, key=lambda r: order[refs[r.hex()][1]]):
                slot, kind, ref = refs[done.hex()]
                if getattr(slot, kind) is ref:
                    setattr(slot, kind, None)
                    events += getattr(self, f"_{kind}")(slot, ref)
        else:
            time.sleep(timeout)
        for slot in self.slots:
            if slot.job is not None and time.monotonic() - slot.started > self.config.render_timeout:
                events.append(self._lost(slot, "timeout", f"render took longer than {self.config.render_timeout:g} "
                                                          f"s on {slot.node}", kill=True))
        return events + self._decided()

    def _decided(self) -> list[Event]:
        """The renders lost to an unreachable worker whose verdict is in: its node gone (``node_lost``, the file's
        attempt given back), or, still alive after :data:`NODE_VERDICT_SECONDS`, a crash of the worker (counted:
        a raw that kills its worker must end as a failure)."""
        decided, now = [], time.monotonic()
        due = any(now >= deadline for _lost, deadline in self.undecided)
        if not self.undecided or (now - self.verdicts_checked < NODE_CHECK_SECONDS and not due):
            return decided  # Ray is asked every NODE_CHECK_SECONDS, not at every 0.25 s poll
        self.verdicts_checked = now
        for lost, deadline in list(self.undecided):
            gone = not self._node_alive(lost.slot.node)
            if gone or now >= deadline:
                self.undecided.remove((lost, deadline))
                decided.append(dataclasses.replace(lost, kind="node_lost", detail=f"its node {lost.slot.node} left "
                                                   "the cluster") if gone else lost)
        return decided

    def _warn_if_unplaced(self) -> None:
        """Say so, once, when no worker has started long after they were asked for: Ray places an actor only where
        its CPUs are free, and waits in silence while another job or daemon holds them."""
        if self.unplaced_warned or self.placed or not self.spawned_at:
            return
        if any(s.ready for s in self.slots):  # workers lost later come back, or are named as lost, not unplaced
            self.placed = True
            return
        if time.monotonic() - self.spawned_at > UNPLACED_WARN_S:
            self.unplaced_warned = True
            log.warning("no render worker has started on the Ray cluster %s after %g s: its nodes' CPUs are "
                        "probably taken by other work (another daemon?); 'ray status' shows them. Files stay "
                        "queued until workers start", self.config.cluster, UNPLACED_WARN_S)

    def _check_nodes(self) -> None:
        """Mark lost the workers whose node Ray no longer counts alive. Their actors wait, restarting, for room
        on another node (perhaps for good), and an idle one's death may not surface until it is given a file."""
        now = time.monotonic()
        if now - self.nodes_checked < NODE_CHECK_SECONDS:
            return
        self.nodes_checked = now
        try:
            nodes = self.ray.nodes()
        except ConnectionError:
            raise
        except Exception:  # a passing hiccup: ask again next time
            return
        alive = {n.get("NodeManagerAddress") for n in nodes if n.get("Alive")}
        for slot in self.slots:
            if slot.node in alive or slot.node == "?":
                continue
            self._mark_lost(slot, f"its node {slot.node} is gone")
            if slot.ready and slot.job is None:  # give it no file; ask when an instance is ready again
                slot.ready, slot.claim = False, None
                if slot.pending is None and slot.ask_at is None:
                    slot.ask_at = now

    def _node_alive(self, node: str) -> bool:
        """Whether Ray counts ``node`` alive (True when it cannot tell: a render lost there then counts against
        its file, as a crash does)."""
        try:
            return node in {n.get("NodeManagerAddress") for n in self.ray.nodes() if n.get("Alive")}
        except Exception:  # noqa: BLE001 - the head not answering now: judge by the render alone
            return True

    def _mark_lost(self, slot: RaySlot, why: str) -> None:
        """Record (and log, once) that ``slot``'s worker is gone until an instance of its actor is ready again."""
        if slot.lost is not None:
            return
        slot.lost, slot.lost_at = why, time.monotonic()
        log.warning("render worker %s on %s lost: %s; Ray starts it again where a node has room", slot.name,
                    slot.node, why, extra={"event": "worker_lost", "fields": {"actor": slot.name, "node": slot.node,
                                                                               "pid": slot.pid, "why": why}})

    def _pending(self, slot: RaySlot, ref: Any) -> list[Event]:
        try:
            info = self.ray.get(ref)
        except Exception as e:
            self._mark_lost(slot, f"not answering ({_one_line(e)})")
            if not isinstance(e, self.ray.exceptions.ActorDiedError):  # restarting, or its node unreachable
                slot.ask_at = time.monotonic() + 1.0
                return []
            self.failed_starts += 1  # died for good: its constructor failed, or Ray gave up on it
            if self.failed_starts >= MAX_FAILED_STARTS:
                raise ConfigError(f"render workers on the cluster keep dying before they are ready "
                                  f"({_one_line(e)})") from e
            slot.ask_at = time.monotonic() + 1.0
            return []
        if info["error"]:
            raise ConfigError(f"a render worker on cluster node {info['node']} cannot start: {info['error']}")
        if info["pid"] == slot.killed_pid:  # the instance being killed answered: wait for its successor
            slot.ask_at = time.monotonic() + 0.5
            return []
        slot.ready, slot.node, slot.pid, self.failed_starts = True, info["node"], info["pid"], 0
        slot.lost = None
        slot.claim = slot.actor.next_claim.remote(CLAIM_POLL_SECONDS)
        log.debug("worker %s ready on %s", info["pid"], info["node"],
                  extra={"event": "worker_ready", "fields": {"pid": info["pid"], "node": info["node"],
                                                              "hostname": info["hostname"], "actor": slot.name}})
        return []

    def _claim(self, slot: RaySlot, ref: Any) -> list[Event]:
        try:
            request = self.ray.get(ref)
        except Exception as e:  # the actor died: a busy one's render reports it; an idle one must say so itself
            if slot.job is None and slot.ready:
                self._mark_lost(slot, f"died ({_one_line(e)})")
                slot.ready, slot.ask_at = False, time.monotonic() + 1.0
            return []
        if slot.ready:
            slot.claim = slot.actor.next_claim.remote(CLAIM_POLL_SECONDS)
        if request is None:
            return []
        file_id, targets = request
        if slot.job is None or slot.job.id != file_id:
            return []
        conflict = self.journal.claim(file_id, targets)
        if conflict is None:
            slot.targets = list(targets)
        slot.actor.answer.remote(file_id, conflict)
        return []

    def _render(self, slot: RaySlot, ref: Any) -> list[Event]:
        try:
            outcome = self.ray.get(ref)
        except Exception as e:  # the actor's process or node died (Ray restarts the actor)
            if slot.job is None:
                return []
            died = isinstance(e, self.ray.exceptions.ActorDiedError)  # else unreachable: maybe still rendering
            if not self._node_alive(slot.node):  # the node left (maintenance, a reboot): not the file's fault
                return [self._lost(slot, "node_lost", f"its node {slot.node} left the cluster", kill=not died)]
            if not died:  # unreachable: its node may be dying (a raylet killed, a power cut), which Ray says only
                # later; a tester's kill -9 of a raylet used up an attempt where a clean shutdown did not. The verdict
                # waits for Ray (_decided): the node gone, or a crash of the worker itself, which counts
                lost = self._lost(slot, "crashed", f"worker on {slot.node} stopped answering", kill=True)
                self.undecided.append((lost, time.monotonic() + NODE_VERDICT_SECONDS))
                return []
            return [self._lost(slot, "crashed", f"worker on {slot.node} died ({_one_line(e)})", kill=False)]
        event = Event("outcome", slot, slot.job, outcome=outcome, targets=tuple(slot.targets))
        slot.job, slot.targets = None, []
        if slot.ready and slot.claim is None:
            # its next_claim failed during the render (_claim does not ask again then): without one, the death of
            # the now idle worker would go unseen until it is given a file, and a live worker's next claim would go
            # unanswered (its render waiting CLAIM_ANSWER_SECONDS, then failing)
            slot.claim = slot.actor.next_claim.remote(CLAIM_POLL_SECONDS)
        return [event]

    def _lost(self, slot: RaySlot, kind: str, detail: str, kill: bool) -> Event:
        """The job on ``slot`` is lost: make sure its render is dead, and wait for the restarted actor."""
        event = Event(kind, slot, slot.job, detail=detail, targets=tuple(slot.targets))
        if kind in ("crashed", "node_lost"):  # (a timed-out worker is killed on purpose, and restarts)
            self._mark_lost(slot, detail)
        if kill:
            with contextlib.suppress(Exception):  # already dead
                self.ray.kill(slot.actor, no_restart=False)
        slot.killed_pid, slot.ready, slot.job, slot.targets = slot.pid, False, None, []
        slot.render = slot.claim = slot.pending = None
        slot.ask_at = time.monotonic() + 0.5
        return event

    def abandon(self) -> list[Event]:
        """Kill every busy worker now (end of the grace period); returns their jobs, and those lost to a worker
        whose verdict is not in (:meth:`_decided`)."""
        events = [dataclasses.replace(lost, kind="abandoned", detail="abandoned at shutdown")
                  for lost, _ in self.undecided]
        self.undecided.clear()
        for slot in self.busy():
            with contextlib.suppress(Exception):
                self.ray.kill(slot.actor, no_restart=True)
            events.append(Event("abandoned", slot, slot.job, detail="abandoned at shutdown",
                                targets=tuple(slot.targets)))
            slot.job = None
        return events

    def close(self) -> None:
        """Kill every worker actor and leave the cluster."""
        if self.ray is None:
            return
        for slot in self.slots:
            with contextlib.suppress(Exception):
                self.ray.kill(slot.actor, no_restart=True)
        self.slots = []
        if self.journal is not None:
            self.journal.close()
            self.journal = None
        with contextlib.suppress(Exception):
            self.ray.shutdown()


class _StoppedWhileJoining(BaseException):
    """SIGTERM or SIGINT came while ``ray.init`` joined the cluster (not an Exception: Ray's code must not take it
    for a connection error of its own)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _join_until_stopped(ray: Any, address: str) -> None:
    """:func:`_join`, under handlers of the signals that stop the daemon that raise :class:`_StoppedWhileJoining`
    (:meth:`RayPool._join` puts them in place): a join can take 30-45 s, and a tester's SIGTERM then met the
    handler ray.init sets (``sys.exit(15)``: exit status 15, without a word), his Ctrl-C waited out the join."""
    try:
        _join(ray, address)
    except SystemExit as e:  # Ray's own SIGTERM handler, which ray.init put in place of ours
        if e.code != signal.SIGTERM:
            raise
        raise _StoppedWhileJoining(signal.SIGTERM) from None


def _join(ray: Any, address: str) -> None:
    """``ray.init`` at ``address``, tried again for :data:`JOIN_SECONDS` while the head's Ray Client server cannot
    start a session (each wait twice the last, at most 10 s); any other error is raised at once."""
    deadline, wait = time.monotonic() + JOIN_SECONDS, 2.0
    while True:
        try:
            # Ray's own warnings (a data channel reconnecting, no SIGTERM handler off the main thread) came around
            # the daemon's one error line; the daemon reports what they mean itself
            ray.init(address=address, namespace=NAMESPACE, log_to_driver=False, logging_level=logging.ERROR)
            return
        except ConnectionAbortedError as e:  # the head's Ray Client server could not start a session
            if time.monotonic() + wait > deadline:
                raise
            log.warning("cannot join the Ray cluster at %s (%s); trying again in %.0f s", address, _one_line(e),
                        wait)
            time.sleep(wait)
            wait = min(wait * 2.0, 10.0)


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[-1] if lines else ''}"[:300]
