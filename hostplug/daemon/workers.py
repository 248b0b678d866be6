"""Render worker processes: started with 'spawn' (numba and torch are not fork-safe), kept warm, replaceable.

Each worker imports the engine once (and warms it up with one small render), limits its own address space
(``RLIMIT_AS``), dies with the daemon (``PR_SET_PDEATHSIG``), ignores SIGTERM, SIGINT and SIGHUP (the daemon
decides when a render is abandoned), and then renders the jobs it is sent, one at a time, over its own pipe. The
pool notices a worker that crashed (its sentinel) or overran its time limit (it is killed), reports the job it
was on, and starts a replacement.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import multiprocessing
import os
import resource
import signal
import socket
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Protocol

from hostplug.daemon.config import DaemonConfig
from hostplug.daemon.errors import ConfigError
from hostplug.daemon.job import Job, Outcome, output_devices

log = logging.getLogger("hostplug.watch")
_PR_SET_PDEATHSIG = 1
MAX_FAILED_STARTS = 3


def _die_with_parent(parent: int) -> None:
    """Ask Linux to kill this process when the daemon dies (so no orphan keeps rendering after ``kill -9``)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:
        os._exit(1)


def out_of_memory(limit_mb: int, error: MemoryError) -> str:
    """Why a render ran out of memory, naming the setting that decides it (a fuzzer's 18 MP raw under 1200 MB
    read "MemoryError: Unable to allocate 30.4 MiB", which looked like a crash)."""
    return (f"out of memory under memory_limit_mb = {limit_mb} (the configuration's [daemon] table: raise it for "
            f"raws this large): {error}")


def limit_memory(megabytes: int) -> None:
    """Cap this process's address space; allocations beyond it raise MemoryError instead of swapping."""
    limit = megabytes * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def limit_threads(threads: int) -> None:
    """Size the thread pools of numba, OpenCV and torch, so that workers share the CPU instead of fighting.

    torch is not imported for this (1.6 s, and a default CPU render does without it): when a render first imports
    it, it sizes its pool from these variables (both: with MKL it asks MKL, which numba's OpenMP threads would
    otherwise have set to every core). They are set after cv2 imported numpy, whose BLAS pool stays as it was."""
    import cv2

    from engine import kernels

    kernels.set_threads(threads)
    cv2.setNumThreads(threads)
    os.environ.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))


def threads_per_worker(config: DaemonConfig) -> int:
    """The configured threads per worker, or the CPUs shared evenly among the workers."""
    return config.threads_per_worker or max(1, (os.cpu_count() or 1) // config.workers)


def warm_up() -> None:
    """Render the bundled 900 x 600 sample once, so the first real file does not pay for lazy imports and JIT."""
    from pathlib import Path

    import engine

    sample = Path(engine.__file__).parent / "samples" / "hostplug_colorchecker.dng"
    try:
        engine.render(engine.open(sample))
    except Exception as e:  # a missing sample only costs the first file its speed
        log.debug("warm-up render failed: %s", e)


def worker_main(conn: Connection, config: DaemonConfig, parent: int,
                devices: dict[Path, int] | None = None) -> None:
    """A worker's whole life: set up, say ready, render jobs until told to stop (``None``) or the pipe closes.
    ``devices``: the output folders' devices when the daemon started (:func:`.job.output_devices`)."""
    _die_with_parent(parent)
    for stop in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # the daemon decides when its workers stop
        signal.signal(stop, signal.SIG_IGN)
    try:
        limit_memory(config.memory_limit_mb)
        limit_threads(threads_per_worker(config))
        import engine  # noqa: F401  (warm: the engine stays imported for every job)
        from hostplug.daemon.job import run_job
        from hostplug.daemon.journal import Journal
        from hostplug.daemon.recipes import folder_recipe

        if config.warm_up:
            warm_up()
        bases = {f.path: folder_recipe(f) for f in config.folders}
        folders = {f.path: f for f in config.folders}
        journal = Journal(config.journal)
    except BaseException as e:  # tell the daemon why, rather than just vanishing
        conn.send(("fatal", f"{type(e).__name__}: {e}"))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        start = time.perf_counter()

        def announce(targets: list[str], job_id: int = job.id) -> None:
            conn.send(("targets", job_id, targets))

        try:
            outcome = run_job(job, folders[job.folder], bases[job.folder], journal, device=config.device,
                              announce=announce, devices=devices)
        except MemoryError as e:
            outcome = Outcome(job.id, "retry", out_of_memory(config.memory_limit_mb, e))
        except Exception as e:
            last = traceback.format_exception_only(e)[-1].strip()
            outcome = Outcome(job.id, "retry", f"unexpected error: {last}")
        outcome = Outcome(**{**outcome.__dict__, "seconds": round(time.perf_counter() - start, 3)})
        try:
            conn.send(("outcome", outcome))
        except (OSError, ValueError):
            return


@dataclass
class Slot:
    """A worker process and the job it is on."""

    process: BaseProcess
    conn: Connection
    ready: bool = False
    job: Job | None = None
    started: float = 0.0
    targets: list[str] = field(default_factory=list)
    node: str = field(default_factory=socket.gethostname)  # where it runs (this machine)

    @property
    def pid(self) -> int | None:
        """The worker's process id."""
        return self.process.pid


@dataclass(frozen=True)
class Event:
    """Something the pool reports: ``outcome`` (a job finished), ``crashed`` or ``timeout`` (with the job lost), or
    on a cluster ``node_lost`` (the job lost with the node it ran on)."""

    kind: str
    slot: Any  # a Slot, or a cluster worker (hostplug.daemon.cluster.RaySlot): the same attributes
    job: Job | None = None
    outcome: Outcome | None = None
    detail: str = ""
    targets: tuple[str, ...] = ()


def describe_slots(slots: list[Any]) -> list[dict[str, Any]]:
    """Slots (of either pool) as rows for the journal's worker table."""
    now, clock = time.time(), time.monotonic()
    return [{"slot": i, "node": s.node, "pid": s.pid, "file_id": s.job.id if s.job else None,
             "state": "rendering" if s.job else "idle" if s.ready else "starting",
             "since": now - (clock - s.started) if s.job else None} for i, s in enumerate(slots)]


class WorkerSlot(Protocol):
    """What the daemon reads of a worker of either pool: a :class:`Slot`, or a cluster's RaySlot."""

    @property
    def node(self) -> str: ...
    @property
    def pid(self) -> int | None: ...
    @property
    def job(self) -> Job | None: ...


class Pool(Protocol):
    """The daemon's render workers: a :class:`WorkerPool`, or a cluster's RayPool (the same interface)."""

    @property
    def slots(self) -> Sequence[WorkerSlot]: ...
    def start(self) -> None: ...
    def idle(self) -> Sequence[WorkerSlot]: ...
    def busy(self) -> Sequence[WorkerSlot]: ...
    def describe(self) -> list[dict[str, Any]]: ...
    def submit(self, slot: Any, job: Job) -> None: ...  # slot: one of this pool's own idle() (its own slot type)
    def poll(self, timeout: float) -> list[Event]: ...
    def abandon(self) -> list[Event]: ...
    def close(self) -> None: ...


class WorkerPool:
    """A fixed number of warm worker processes."""

    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.context = multiprocessing.get_context("spawn")
        self.slots: list[Slot] = []
        self.failed_starts = 0
        # recorded once, for the workers that replace others too: one started during a share's outage would
        # take the local disk under its mount point for the output folder's (see job._ready_output_folders)
        self.devices = output_devices(config.folders)

    def start(self) -> None:
        """Start every worker (they become ready in the background); ConfigError when the process may not open
        the pipes and files that many workers need."""
        try:
            for _ in range(self.config.workers):
                self.slots.append(self._spawn())
        except OSError as e:
            if e.errno not in (errno.EMFILE, errno.ENFILE):
                raise
            raise ConfigError(f"cannot start {self.config.workers} workers: {e.strerror}; raise the limit of open "
                              "files (ulimit -n) or give fewer workers") from None

    def _spawn(self) -> Slot:
        ours, theirs = self.context.Pipe()
        process = self.context.Process(target=worker_main, args=(theirs, self.config, os.getpid(), self.devices),
                                       name="hostplug-worker", daemon=True)
        process.start()
        theirs.close()
        return Slot(process=process, conn=ours)

    def idle(self) -> list[Slot]:
        """Ready workers without a job."""
        return [s for s in self.slots if s.ready and s.job is None]

    def busy(self) -> list[Slot]:
        """Workers on a job."""
        return [s for s in self.slots if s.job is not None]

    def describe(self) -> list[dict[str, Any]]:
        """Each worker as ``hostplug queue`` shows it: slot, node, pid, state, file_id, since."""
        return describe_slots(self.slots)

    def submit(self, slot: Slot, job: Job) -> None:
        """Give a job to an idle worker."""
        slot.job, slot.started, slot.targets = job, time.monotonic(), []
        slot.conn.send(job)

    def poll(self, timeout: float) -> list[Event]:
        """Wait up to ``timeout`` seconds for workers; returns finished, crashed and timed-out jobs."""
        events: list[Event] = []
        handles: dict[Any, Slot] = {}
        for slot in self.slots:
            handles[slot.conn] = slot
            handles[slot.process.sentinel] = slot
        for handle in wait(list(handles), timeout):
            slot = handles[handle]
            if slot in self.slots and handle is slot.conn:
                events.extend(self._receive(slot))
        for slot in list(self.slots):
            if not slot.process.is_alive() and not slot.conn.poll():
                events.append(self._replace(slot, "crashed", self._death(slot)))
            elif slot.job is not None and time.monotonic() - slot.started > self.config.render_timeout:
                events.append(self._replace(slot, "timeout",
                                            f"render took longer than {self.config.render_timeout:g} s"))
        return events

    def _receive(self, slot: Slot) -> list[Event]:
        events = []
        while slot in self.slots:
            try:
                if not slot.conn.poll():
                    break
                message = slot.conn.recv()
            except (EOFError, OSError):
                slot.process.join(timeout=1)
                events.append(self._replace(slot, "crashed", self._death(slot)))
                break
            if message[0] == "ready":
                slot.ready, self.failed_starts = True, 0
                log.debug("worker %s ready", message[1], extra={"event": "worker_ready", "fields": {"pid": message[1]}})
            elif message[0] == "targets":
                slot.targets = list(message[2])
            elif message[0] == "outcome":
                events.append(Event("outcome", slot, slot.job, outcome=message[1], targets=tuple(slot.targets)))
                slot.job, slot.targets = None, []
            elif message[0] == "fatal":
                raise ConfigError(f"a render worker cannot start: {message[1]}")
        return events

    def _death(self, slot: Slot) -> str:
        code = slot.process.exitcode
        if code is not None and code < 0:
            try:
                return f"worker killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"worker killed by signal {-code}"
        return f"worker exited with status {code}"

    def _replace(self, slot: Slot, kind: str, detail: str) -> Event:
        """Kill a worker (if still alive) and start another in its place."""
        if slot.process.is_alive():
            slot.process.kill()
        slot.process.join(timeout=5)
        slot.conn.close()
        if not slot.ready:
            self.failed_starts += 1
            if self.failed_starts >= MAX_FAILED_STARTS:
                raise ConfigError(f"render workers keep dying before they are ready ({detail}); check "
                                  "memory_limit_mb and the installation")
        self.slots[self.slots.index(slot)] = self._spawn()
        return Event(kind, slot, slot.job, detail=detail, targets=tuple(slot.targets))

    def abandon(self) -> list[Event]:
        """Kill every busy worker now (end of the grace period); returns their jobs."""
        events = []
        for slot in self.busy():
            slot.process.kill()
            slot.process.join(timeout=5)
            events.append(Event("abandoned", slot, slot.job, detail="abandoned at shutdown",
                                targets=tuple(slot.targets)))
            slot.job = None
        return events

    def close(self) -> None:
        """Ask idle workers to exit, then make sure every worker is gone."""
        for slot in self.slots:
            try:
                if slot.job is None and slot.process.is_alive():
                    slot.conn.send(None)
            except OSError:
                pass
        for slot in self.slots:
            slot.process.join(timeout=5)
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join(timeout=5)
            slot.conn.close()
        self.slots = []
