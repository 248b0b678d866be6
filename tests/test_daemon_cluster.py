"""``hostplug watch --cluster``: render workers as Ray actors on the nodes of a Ray cluster (issue 14).

The cluster tests start two Ray nodes on this machine, each on its own loopback address (Ray replaces 127.0.0.1
with the machine's network address; other 127.x addresses it keeps), 1 CPU each, with token authentication, so no
traffic leaves 127.0.0.0/8. The nodes' processes are found by their temporary folder and stopped in teardown
(``ray stop`` would stop every Ray on the machine). Without Ray these tests are skipped, saying why.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from daemon_helpers import COMMAND, SAMPLE_DNG, events, rows, states, wait_for, write_config

from hostplug.daemon.config import parse_config
from hostplug.daemon.errors import ConfigError

HAVE_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="Ray is not installed (pip install 'hostplug[cluster]'; CI "
                                                    "installs it with the test extra)")
HEAD, SECOND = "127.0.0.2", "127.0.0.3"
OUTPUT = [{"folder": "out", "template": "{name}", "format": "jpeg", "long_edge": 200}]


# -- without Ray ----------------------------------------------------------------------------------------------


def test_cluster_settings_parse(tmp_path: Path) -> None:
    config = parse_config({"daemon": {"cluster": "ray://head:10001", "cpus_per_worker": 2,
                                      "path_map": {"10.0.0.12": {"share": "/mnt/share"}}},
                           "folder": [{"path": "in", "output": [{"folder": "out"}]}]}, tmp_path)
    assert config.cluster == "ray://head:10001" and config.cpus_per_worker == 2
    assert config.path_map == {"10.0.0.12": {str(tmp_path / "share"): "/mnt/share"}}
    with pytest.raises(ConfigError, match="path_map"):
        parse_config({"daemon": {"path_map": {"n": "x"}}, "folder": [{"path": "in", "output": [{"folder": "o"}]}]},
                     tmp_path)
    with pytest.raises(ConfigError, match="cpus_per_worker"):
        parse_config({"daemon": {"cpus_per_worker": 0}, "folder": [{"path": "in", "output": [{"folder": "o"}]}]},
                     tmp_path)


def test_path_map_translates_both_ways() -> None:
    from hostplug.daemon.cluster import PathMap

    paths = PathMap.for_node({"10.0.0.12": {"/studio": "/Volumes/studio", "/studio/web": "/srv/web"}},
                             "10.0.0.12", "render2")
    assert paths.there("/studio/in/a.dng") == Path("/Volumes/studio/in/a.dng")
    assert paths.there("/studio/web/a.jpg") == Path("/srv/web/a.jpg")  # the longest prefix wins
    assert paths.here("/srv/web/a.jpg") == Path("/studio/web/a.jpg")
    assert paths.here("/Volumes/studio/out/a.tif") == Path("/studio/out/a.tif")
    assert PathMap.for_node({"*": {"/a": "/b"}}, "10.0.0.13").there("/a/x") == Path("/b/x")
    assert PathMap.for_node({}, "10.0.0.13").there("/a/x") == Path("/a/x")


def test_joining_a_busy_head_is_tried_again_for_a_while(monkeypatch: pytest.MonkeyPatch) -> None:
    """A head whose Ray Client server cannot start a session yet is asked again, waiting longer each time, until
    JOIN_SECONDS have passed; then its error stands. Other errors are not retried."""
    from hostplug.daemon import cluster

    clock, waits = [0.0], list[float]()
    monkeypatch.setattr(cluster.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(cluster.time, "sleep", lambda s: (waits.append(s), clock.__setitem__(0, clock[0] + s)))

    class Ray:
        def __init__(self, failures: int, error: type[Exception] = ConnectionAbortedError) -> None:
            self.failures, self.error, self.calls = failures, error, 0

        def init(self, **_: Any) -> None:
            self.calls += 1
            if self.calls <= self.failures:
                raise self.error("the Ray Client server failed to start")

    busy = Ray(failures=4)
    cluster._join(busy, "ray://127.0.0.2:10001")
    assert busy.calls == 5 and waits == [2.0, 4.0, 8.0, 10.0]
    waits.clear()
    with pytest.raises(ConnectionAbortedError):
        cluster._join(Ray(failures=1000), "ray://127.0.0.2:10001")
    assert sum(waits) <= cluster.JOIN_SECONDS and sum(waits) + 10.0 > cluster.JOIN_SECONDS
    refused = Ray(failures=1, error=PermissionError)
    with pytest.raises(PermissionError):
        cluster._join(refused, "ray://127.0.0.2:10001")
    assert refused.calls == 1


def test_public_bind_refused_without_the_flag() -> None:
    from hostplug.daemon.cluster import address_host, check_bind, node_command

    assert address_host("ray://10.0.0.5:10001") == "10.0.0.5" and address_host("auto") is None
    assert address_host("ray://[::]:10001") == "::"
    with pytest.raises(ConfigError, match="--allow-public-bind"):
        check_bind(address_host("ray://0.0.0.0:10001"), allow_public_bind=False)
    check_bind("0.0.0.0", allow_public_bind=True)
    with pytest.raises(ConfigError, match="every network interface"):
        node_command(bind="0.0.0.0", head_port=6379, head=True)
    command = node_command(bind="127.0.0.2", head_port=6379, head=True, client_port=10001)
    assert command[1:3] == ["start", "--node-ip-address"] and command[3] == "127.0.0.2"
    assert command[command.index("--include-dashboard") + 1] == "false"


def test_journal_records_nodes_and_workers(tmp_path: Path) -> None:
    """The journal keeps each file's node and the daemon's workers; an older journal gains the column."""
    import sqlite3

    from hostplug.daemon.journal import Journal

    old = tmp_path / "old.sqlite"
    with sqlite3.connect(old) as db:  # a journal from before the cluster: no files.node
        db.execute("CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT UNIQUE NOT NULL, folder TEXT NOT NULL, "
                   "state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, size INTEGER, mtime_ns INTEGER, "
                   "content_hash TEXT, recipe_hash TEXT, rendered_hash TEXT, outputs TEXT NOT NULL DEFAULT '[]', "
                   "error TEXT, error_kind TEXT, moved_to TEXT, not_before REAL NOT NULL DEFAULT 0, "
                   "queued_at REAL, started_at REAL, finished_at REAL)")
    journal = Journal(old)
    try:
        first = journal.enqueue(tmp_path / "a.dng", tmp_path, 1, 1, "h1")
        second = journal.enqueue(tmp_path / "b.dng", tmp_path, 1, 1, "h2")
        journal.start(first.id, node="10.0.0.11")
        journal.finish(first.id, "r", [str(tmp_path / "a.jpg")])
        journal.start(second.id, node="10.0.0.12")
        journal.set_workers([{"slot": 0, "node": "10.0.0.11", "pid": 7, "state": "idle"},
                             {"slot": 1, "node": "10.0.0.12", "pid": 8, "state": "rendering", "file_id": second.id,
                              "since": time.time()}])
        view = journal.nodes()
    finally:
        journal.close()
    assert view["rendered"] == [
        {"path": str(tmp_path / "a.dng"), "node": "10.0.0.11", "finished_at": view["rendered"][0]["finished_at"]}]
    by_node = {n["node"]: n for n in view["nodes"]}
    assert by_node["10.0.0.11"]["workers"] == 1 and by_node["10.0.0.11"]["files_per_minute"] == 0.2
    assert by_node["10.0.0.12"]["rendering"] == [str(tmp_path / "b.dng")]
    assert [w["node"] for w in view["workers"]] == ["10.0.0.11", "10.0.0.12"]


def test_no_ray_without_a_cluster(tmp_path: Path) -> None:
    """Without --cluster the daemon uses the local process pool and never imports Ray."""
    (tmp_path / "in").mkdir()
    config = write_config(tmp_path / "studio.toml", tmp_path / "in", OUTPUT)
    code = ("import sys; from pathlib import Path; from hostplug.daemon.config import load_config; "
            "from hostplug.daemon.daemon import Daemon; from hostplug.daemon.workers import WorkerPool; "
            f"d = Daemon(load_config(Path({str(config)!r}))); "
            "assert isinstance(d.pool, WorkerPool); assert 'ray' not in sys.modules, 'ray imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# -- on a two-node loopback cluster ---------------------------------------------------------------------------


@dataclass
class Cluster:
    address: str  # ray://, through the head's Ray Client server
    gcs: str
    env: dict[str, str]
    temp: Path


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _loopback_cluster(head: str, second: str) -> Iterator[Cluster]:
    """Two one-CPU Ray nodes on two loopback addresses, token authentication on; stopped afterwards."""
    if not HAVE_RAY:
        pytest.skip("Ray is not installed (pip install 'hostplug[cluster]')")
    try:
        _free_port(second)
    except OSError:
        pytest.skip(f"{second} is not a loopback address here (Linux routes all of 127.0.0.0/8 to lo)")
    from hostplug.daemon import cluster as hc

    temp = Path(tempfile.mkdtemp(prefix="hpray", dir="/tmp"))  # short: Ray's socket paths have a length limit
    env = hc.node_env(hc.make_token(temp / "auth_token"))
    gcs, client = _free_port(head), _free_port(head)
    try:
        hc.start_node(hc.node_command(bind=head, head_port=gcs, head=True, num_cpus=1, client_port=client,
                                      temp_dir=temp, object_store_mb=100), env)
        hc.start_node(hc.node_command(bind=second, head_port=gcs, head=False, head_address=f"{head}:{gcs}",
                                      num_cpus=1, temp_dir=temp, object_store_mb=100), env)
        yield Cluster(address=f"ray://{head}:{client}", gcs=f"{head}:{gcs}", temp=temp,
                      env={k: env[k] for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH") if k in env})
    finally:
        hc.stop_nodes(temp)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Cluster]:
    with _loopback_cluster(HEAD, SECOND) as cluster:
        yield cluster


class Watch:
    """The daemon as a real process, on the cluster."""

    def __init__(self, config: Path, cluster: Cluster, address: str | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.err = config.parent / f"watch-{time.monotonic_ns()}.err"
        with self.err.open("w") as stderr:
            self.process = subprocess.Popen([*COMMAND, "watch", "--config", str(config), "--cluster",
                                             address or cluster.address],
                                            stdout=subprocess.DEVNULL, stderr=stderr,
                                            env={**os.environ, **cluster.env, **(env or {})})

    def output(self) -> str:
        return self.err.read_text()

    def stop(self, timeout: float = 120) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(30)


def _queue(config: Path, *args: str) -> Any:
    """``hostplug queue --config CONFIG [args]``: its JSON, or its text."""
    done = subprocess.run([*COMMAND, "queue", "--config", str(config), *args], capture_output=True, text=True,
                          timeout=60, check=True)
    return json.loads(done.stdout) if "--json" in args else done.stdout


def test_public_cluster_address_needs_the_flag(tmp_path: Path) -> None:
    """`hostplug watch --cluster ray://0.0.0.0:...` is refused in one line unless --allow-public-bind is given."""
    (tmp_path / "in").mkdir()
    config = write_config(tmp_path / "studio.toml", tmp_path / "in", OUTPUT)
    done = subprocess.run([*COMMAND, "watch", "--config", str(config), "--cluster", "ray://0.0.0.0:10001"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--allow-public-bind" in done.stderr, done.stderr
    assert len([line for line in done.stderr.splitlines() if line.startswith("hostplug: error:")]) == 1


def test_a_cluster_address_where_nothing_listens_is_one_line_at_once(tmp_path: Path) -> None:
    """Ray gives up on such an address after half a minute, with a warning and a hint about tokens; hostplug
    looks first (on loopback only: port 1, where nothing listens)."""
    (tmp_path / "in").mkdir()
    config = write_config(tmp_path / "studio.toml", tmp_path / "in", OUTPUT)
    start = time.monotonic()
    done = subprocess.run([*COMMAND, "watch", "--config", str(config), "--cluster", "ray://127.0.0.1:1"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and time.monotonic() - start < 20
    assert [line for line in done.stderr.splitlines() if line.strip()] == [
        "hostplug: error: cannot join the Ray cluster at ray://127.0.0.1:1: nothing answers at 127.0.0.1:1 "
        "(Connection refused); start the Ray head there first (docs/cluster.md), or check the address"]


@pytest.mark.skipif(not HAVE_RAY, reason="Ray is not installed (the cluster extra)")
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_while_joining_the_cluster_stops_at_once_and_cleanly(tmp_path: Path, stop: int) -> None:
    """A tester's SIGTERM while the daemon joined (30-45 s on a busy head) exited 15 without a word (ray.init's own
    handler), and his Ctrl-C waited out the join. Here the "head" accepts connections and never answers."""
    (tmp_path / "in").mkdir()
    config = write_config(tmp_path / "studio.toml", tmp_path / "in", OUTPUT)
    token = tmp_path / "token"
    token.write_text("0" * 64)
    token.chmod(0o600)
    with socket.socket() as head:
        head.bind(("127.0.0.6", 0))
        head.listen(8)
        head.settimeout(60)
        env = {**os.environ, "RAY_AUTH_TOKEN_PATH": str(token)}
        watch = subprocess.Popen([*COMMAND, "watch", "--config", str(config), "--cluster",
                                  f"ray://127.0.0.6:{head.getsockname()[1]}"], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, env=env)
        try:
            held = [head.accept()[0] for _ in range(2)]  # the daemon's reachability check, then Ray's client
            time.sleep(1.0)
            watch.send_signal(stop)
            start = time.monotonic()
            output, _ = watch.communicate(timeout=30)
        finally:
            watch.kill()
            for connection in held if "held" in locals() else []:
                connection.close()
    assert watch.returncode == 0 and time.monotonic() - start < 5, output
    assert "stopped" in output and "error" not in output, output


def test_a_cluster_address_ray_cannot_use_is_one_line_and_ray_without_a_port_takes_10001() -> None:
    """A tester's: ray://HOST waited half a minute for Ray's timeout; ray:// was called a public bind; http://x
    gave Ray's internal message."""
    from hostplug.daemon.cluster import checked_address
    from hostplug.daemon.errors import ConfigError

    assert checked_address("ray://127.0.0.2") == "ray://127.0.0.2:10001"
    assert checked_address("127.0.0.2:6379") == "127.0.0.2:6379" and checked_address("auto") == "auto"
    for address, says in (("ray://", "names no host"), ("http://x", "http:// is not a Ray address"),
                          ("127.0.0.2", "names no port"), ("ray://h:", "not HOST:PORT"), ("ray://h/x", "not HOST:PORT"),
                          ("ray://h:x", "not HOST:PORT"), ("127.0.0.2:0", "not HOST:PORT"),
                          ("ray://127.0.0.2:65536", "not HOST:PORT"), ("", "leave out cluster")):
        with pytest.raises(ConfigError, match=says):
            checked_address(address)


def test_a_token_other_users_can_read_is_warned_of(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A tester's: the docs' recipe left ~/.ray/auth_token at 0644, and nothing said so."""
    import logging

    from hostplug.daemon.cluster_auth import _warn_if_others_read

    token = tmp_path / "auth_token"
    token.write_text("secret")
    token.chmod(0o644)
    logger = logging.getLogger("hostplug.watch")  # not propagated once the daemon's logging was set up
    logger.addHandler(caplog.handler)
    propagate, logger.propagate = logger.propagate, False  # (so each record is caught once, in any test order)
    try:
        with caplog.at_level(logging.WARNING, logger="hostplug.watch"):
            _warn_if_others_read(str(token))
            token.chmod(0o620)  # group-writable, not readable: no warning
            _warn_if_others_read(str(token))
    finally:
        logger.removeHandler(caplog.handler)
        logger.propagate = propagate
    assert [r.getMessage() for r in caplog.records] == [
        f"the Ray token {token} can be read by other users of this machine (mode 644): chmod 600 it"]


def test_auto_whose_head_on_this_machine_has_gone_is_one_line_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Ray retried the dead head's GCS for ever: the daemon hung, printing Ray's warnings and no line of its own
    from hostplug.daemon import cluster, cluster_auth
    from hostplug.daemon.errors import ConfigError

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(cluster_auth, "_local_cluster", lambda: "127.0.0.1:1")  # ray_current_cluster's address
    with pytest.raises(ConfigError, match=r"at auto \(127.0.0.1:1\): nothing answers at 127.0.0.1:1"):
        cluster.check_reachable("auto")
    monkeypatch.setattr(cluster_auth, "_local_cluster", lambda: None)  # no cluster here: ray.init says so itself
    cluster.check_reachable("auto")
    for named, message in (("ray://127.0.0.1", "nothing answers at 127.0.0.1:10001"),
                           ("127.0.0.1:abc", "the port 'abc' is not a number")):
        monkeypatch.setenv("RAY_ADDRESS", named)  # what auto stands for, checked as that address is
        with pytest.raises(ConfigError, match=message):
            cluster.check_reachable("auto")


@pytest.mark.parametrize(("address", "message"), [
    ("ray://127.0.0.1:abc", "the port 'abc' is not a number"),
    ("ray://127.0.0.1", "nothing answers at 127.0.0.1:10001"),  # Ray Client's own default port
])
def test_a_cluster_address_without_a_usable_port_is_one_line_at_once(address: str, message: str) -> None:
    from hostplug.daemon import cluster
    from hostplug.daemon.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        cluster.check_reachable(address)


def test_a_failed_ray_start_names_rays_reason_not_its_last_info_line() -> None:
    from hostplug.daemon.cluster import _failure_reason

    stderr = "Failed to start the grpc server. The specified port is 26390. Address already in use\n"
    stdout = "2026-12-06 20:21:55,572\tINFO scripts.py:1043 -- Local node IP: 127.0.0.64\n"
    assert "Address already in use" in _failure_reason(stderr, stdout)
    assert _failure_reason("", stdout) == stdout.strip()


def _render_workers(cluster: Cluster) -> list[int]:
    """This cluster's Ray worker processes running our actor (titled ``ray::RenderWorker...``, children of the
    raylets started in the cluster's folder): other Ray clusters on the machine do not count."""
    parents, raylets, workers = {}, set(), []
    for pid, argv in _processes():
        with contextlib.suppress(OSError, IndexError, ValueError):
            parents[pid] = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        if argv[0].endswith("/raylet") and any(str(cluster.temp) in a for a in argv):
            raylets.add(pid)
        elif argv[0].startswith("ray::RenderWorker"):
            workers.append(pid)
    return [pid for pid in workers if parents.get(pid) in raylets]


def _studio(tmp_path: Path, path_map: dict[str, dict[str, str]] | None = None, recipe: dict | None = None,
            **daemon: object) -> tuple[Path, Path]:
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    folder = {"recipe": recipe} if recipe else {}
    config = write_config(tmp_path / "studio.toml", tmp_path / "in", OUTPUT, {"retry_seconds": 0.5, **daemon},
                          **folder)
    for node, table in (path_map or {}).items():  # quoted keys: addresses and paths are not bare TOML keys
        lines = [f"[daemon.path_map.{json.dumps(node)}]", *(f"{json.dumps(k)} = {json.dumps(v)}"
                                                            for k, v in table.items())]
        config.write_text(config.read_text() + "\n" + "\n".join(lines) + "\n")
    return tmp_path, config


def _ready_workers(log: Path) -> dict[str, int]:
    """node -> pid of the latest worker that said it is ready there (one worker per node here)."""
    return {e["node"]: e["pid"] for e in events(log, "worker_ready")}


def _count(journal: Path, state: str) -> int:
    return sum(s == state for s in states(journal).values())


def _wait_running(watch: Watch, condition: Any, timeout: float, what: str) -> Any:
    """``wait_for``, failing at once, with what the daemon said, if it exits meanwhile (it may stop before its
    workers are ready: a join the head's Ray Client server refuses three times, under load)."""
    def met() -> Any:
        if watch.process.poll() is not None:
            raise AssertionError(f"the daemon exited ({watch.process.returncode}) while waiting for {what}:\n"
                                 f"{watch.output()[-3000:]}")
        return condition()

    return wait_for(met, timeout, what)


def _wait_done(watch: Watch, journal: Path, total: int, stall: float) -> None:
    """Wait until ``total`` files are done, failing once none has finished for ``stall`` seconds (a file stuck or
    dropped stops the count short), or when the daemon exits. Not a deadline for the whole batch: on this 2-core
    machine under load one worker's renders take from a fraction of a second to over a minute each."""
    done, since = -1, time.monotonic()
    while True:
        if watch.process.poll() is not None:
            raise AssertionError(f"the daemon exited ({watch.process.returncode}) with {done} of {total} files "
                                 f"done:\n{watch.output()[-3000:]}")
        count = _count(journal, "done")
        if count >= total:
            return
        if count != done:
            done, since = count, time.monotonic()
        elif time.monotonic() - since > stall:
            raise AssertionError(f"no file finished for {stall:g} s ({done} of {total} done): "
                                 f"{states(journal)}\n{watch.output()[-3000:]}")
        time.sleep(0.2)


@needs_ray
def test_sixty_raws_on_two_nodes_survive_a_killed_worker_and_a_killed_daemon(ray_cluster: Cluster,
                                                                             tmp_path: Path) -> None:
    """Every raw ends with exactly one output, rendered on both nodes, though a worker and the daemon die."""
    alias = tmp_path.parent / f"{tmp_path.name}-as-mounted-on-{SECOND}"
    alias.symlink_to(tmp_path)  # the second node "mounts the share elsewhere": path_map
    studio, config = _studio(tmp_path, path_map={SECOND: {str(tmp_path): str(alias)}})
    staging = studio / "staging"
    staging.mkdir()
    names = [f"shot_{i:03d}" for i in range(60)]
    for name in names:
        shutil.copyfile(SAMPLE_DNG, staging / f"{name}.dng")
    journal, log = studio / "journal.sqlite", studio / "log.jsonl"

    watch = Watch(config, ray_cluster)
    try:
        workers = wait_for(lambda: len(_ready_workers(log)) == 2 and _ready_workers(log), 180, "two ready workers")
        assert set(workers) == {HEAD, SECOND}
        assert sorted(_render_workers(ray_cluster)) == sorted(workers.values())  # (the check below can see them)
        for name in names:
            os.replace(staging / f"{name}.dng", studio / "in" / f"{name}.dng")
        _wait_done(watch, journal, 6, stall=180)
        for _ in range(5):  # kill -9 the second node's worker mid-render (again if the render had just finished)
            wait_for(lambda: any(r["state"] == "rendering" and r["node"] == SECOND for r in rows(journal)), 60,
                     "a render on the second node")
            killed = _ready_workers(log)[SECOND]
            os.kill(killed, signal.SIGKILL)
            with contextlib.suppress(AssertionError):  # (unreachable, Ray waits to say its node lives on: 60 s)
                wait_for(lambda: events(log, "retry"), 90, "the lost render queued again")
                break
            wait_for(lambda pid=killed: _ready_workers(log)[SECOND] != pid, 120, "the worker restarted")
        # its node lives on: a crash of the worker, which counts against the file (a raw that kills its worker)
        assert events(log, "retry"), "no render was lost on the second node"
        _wait_done(watch, journal, 30, stall=180)
        watch.kill()  # kill -9 the daemon: its actors are left on the cluster
        watch = Watch(config, ray_cluster)
        _wait_done(watch, journal, 40, stall=300)  # the stall includes the new daemon's start
        # (40 may have been done before the kill: the first daemon went on while a lost render's verdict waited)
        _wait_running(watch, lambda: {w["node"] for w in _queue(config, "--json")["workers"]} == {HEAD, SECOND},
                      300, "the new daemon's workers on both nodes")
        shown = _queue(config, "--json")  # the cluster, as `hostplug queue` shows it to scripts
        assert {w["node"] for w in shown["workers"]} == {HEAD, SECOND}
        assert {n["node"] for n in shown["nodes"]} == {HEAD, SECOND}
        assert len(shown["rendered"]) >= 40 and {r["node"] for r in shown["rendered"]} == {HEAD, SECOND}
        text = _queue(config)
        assert f"{HEAD}: 1 worker(s)" in text and f"{SECOND}: 1 worker(s)" in text, text
        _wait_done(watch, journal, 60, stall=180)
        assert watch.stop() == 0, watch.output()
    finally:
        if watch.process.poll() is None:
            watch.kill()
        alias.unlink()

    found = rows(journal)
    assert len(found) == 60 and {r["state"] for r in found} == {"done"}
    assert {r["node"] for r in found} == {HEAD, SECOND}  # both nodes rendered
    assert all(o.startswith(str(studio / "out")) for r in found for o in json.loads(r["outputs"]))  # the daemon's paths
    outputs = sorted(p.name for p in (studio / "out").iterdir())
    assert outputs == sorted(f"{n}.jpg" for n in names)  # exactly one each; no temporaries, no probe files
    assert not [p for p in (studio / "in").iterdir() if p.name.startswith(".hostplug-probe")]
    retried = events(log, "retry")  # the killed worker's render: an attempt used, its node alive
    assert any("stopped answering" in e["error"] and SECOND in e["error"] for e in retried), retried
    wait_for(lambda: not _render_workers(ray_cluster), 30, "no render worker left after the clean stop")


@needs_ray
@pytest.mark.parametrize("elsewhere", ["missing", "another folder"])
def test_refuses_a_node_that_does_not_see_the_share(ray_cluster: Cluster, tmp_path: Path, elsewhere: str) -> None:
    """The daemon refuses to start, in one line naming the node, when a node cannot see the hot folder; the node
    makes no folder (under an unmounted mount point, say) and leaves no probe file where it looked."""
    share = tmp_path / "studio"
    share.mkdir()
    mapped = tmp_path / "elsewhere" / "share"
    if elsewhere == "another folder":  # a local disk where the share should be mounted: the same names
        (mapped / "out").mkdir(parents=True)
        (mapped / "in").mkdir()
    _, config = _studio(share, path_map={SECOND: {str(share): str(mapped)}})
    watch = Watch(config, ray_cluster)
    assert watch.process.wait(180) != 0
    message = [line for line in watch.output().splitlines() if line.startswith("hostplug: error:")]
    assert len(message) == 1 and f"cluster node {SECOND}" in message[0], message
    if elsewhere == "missing":
        assert f"cannot see the hot folder {share / 'in'} at {mapped / 'in'}" in message[0], message
    else:  # it was "cannot see ... (No such file or directory)" of a folder that is there (a tester's)
        assert f"sees another folder at {mapped / 'in'} than the daemon's {share / 'in'}" in message[0], message
        assert "(and 1 more problem(s), in the daemon's log)" in message[0]  # said nowhere before
        assert f"writes its output folder {share / 'out'} somewhere this machine does not see" in watch.output()
    assert not [p for p in (share / "in").iterdir() if p.name.startswith(".hostplug-probe")]
    left = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "elsewhere").rglob("*")) \
        if (tmp_path / "elsewhere").exists() else []
    assert left == ([] if elsewhere == "missing" else ["elsewhere/share", "elsewhere/share/in",
                                                       "elsewhere/share/out"])
    wait_for(lambda: not _render_workers(ray_cluster), 30, "no render worker left")


def _one_error_line(output: str) -> str:
    """The output's only line, which must be a ``hostplug: error:`` line."""
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("hostplug: error: "), output
    return lines[0]


@needs_ray
def test_wrong_token_is_refused_at_once(ray_cluster: Cluster, tmp_path: Path) -> None:
    """A daemon with a mistyped token gets one line naming the token, within seconds: Ray took the refusal for
    a head not up yet and retried for 30 s, then blamed the port."""
    _, config = _studio(tmp_path)
    wrong = tmp_path / "other_token"
    wrong.write_text("not-the-token")
    wrong.chmod(0o600)  # as a token is kept (a readable one is warned of)
    start = time.monotonic()
    watch = Watch(config, ray_cluster, env={"RAY_AUTH_TOKEN_PATH": str(wrong)})
    code = watch.process.wait(120)
    took = time.monotonic() - start
    assert code == 2 and took < 10, (code, took, watch.output())
    line = _one_error_line(watch.output())
    assert line.startswith(f"hostplug: error: wrong Ray token: the cluster at {ray_cluster.address} refused the "
                           f"token from {wrong}; copy the head's ~/.ray/auth_token"), line


@needs_ray
def test_a_node_with_the_wrong_token_is_refused_at_once(ray_cluster: Cluster, tmp_path: Path) -> None:
    """`hostplug cluster start --join` with a mistyped token: one line within seconds, not `ray start`'s 20 s of
    retries and traceback (the address is one no node uses: on a regression nothing joins either)."""
    wrong = tmp_path / "other_token"
    wrong.write_text("not-the-token")
    wrong.chmod(0o600)  # as a token is kept (a readable one is warned of)
    start = time.monotonic()
    done = subprocess.run([*COMMAND, "cluster", "start", "--bind", "127.0.0.6", "--join", ray_cluster.gcs],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **ray_cluster.env, "RAY_AUTH_TOKEN_PATH": str(wrong)})
    took = time.monotonic() - start
    assert done.returncode == 2 and took < 10, (done.returncode, took, done.stderr)
    assert not done.stdout.strip(), done.stdout
    line = _one_error_line(done.stderr)
    assert f"wrong Ray token: the cluster at {ray_cluster.gcs} refused the token from {wrong}" in line, line


@pytest.mark.parametrize("code", ["UNAUTHENTICATED", "UNAVAILABLE"])
@needs_ray
def test_only_a_refused_token_is_refused_at_once(tmp_path: Path, code: str) -> None:
    """Against a stand-in server answering every call with ``code``: a refused token is one line at once; a head
    that is not ready (UNAVAILABLE) is left to Ray's own connection, which retries."""
    import grpc

    class Answer(grpc.GenericRpcHandler):
        def service(self, handler_call_details: Any) -> Any:
            return grpc.unary_unary_rpc_method_handler(
                lambda request, context: context.abort(getattr(grpc.StatusCode, code), "stand-in"))

    server = grpc.server(ThreadPoolExecutor(2))
    server.add_generic_rpc_handlers([Answer()])
    port = server.add_insecure_port(f"{HEAD}:0")
    server.start()
    token = tmp_path / "token"
    token.write_text("some-token")
    check = ("from hostplug.daemon.cluster import enable_token_auth; enable_token_auth(); import ray; "
             "from hostplug.daemon.cluster_auth import check_token; "
             f"check_token('ray://{HEAD}:{port}'); check_token('{HEAD}:{port}')")
    try:
        done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "RAY_AUTH_TOKEN_PATH": str(token), "RAY_AUTH_MODE": "token"})
    finally:
        server.stop(None)
    if code == "UNAVAILABLE":
        assert done.returncode == 0, done.stderr
    else:
        assert done.returncode != 0 and "ConfigError: wrong Ray token" in done.stderr, done.stderr


@needs_ray
def test_cluster_auto_joins_the_cluster_on_this_machine(ray_cluster: Cluster, tmp_path: Path) -> None:
    """``--cluster auto`` joins the cluster RAY_ADDRESS names, as a driver on this machine's node."""
    studio, config = _studio(tmp_path)
    for name in ("one", "two", "three"):
        shutil.copyfile(SAMPLE_DNG, studio / "in" / f"{name}.dng")
    watch = Watch(config, ray_cluster, address="auto", env={"RAY_ADDRESS": ray_cluster.gcs})
    try:
        wait_for(lambda: _count(studio / "journal.sqlite", "done") == 3, 240, "three files done")
        assert watch.stop() == 0, watch.output()
    finally:
        if watch.process.poll() is None:
            watch.kill()
    assert sorted(p.name for p in (studio / "out").iterdir()) == ["one.jpg", "three.jpg", "two.jpg"]
    assert {r["node"] for r in rows(studio / "journal.sqlite")} <= {HEAD, SECOND}
    assert "on the cluster auto" in watch.output()


@needs_ray
def test_cluster_start_refuses_unsafe_addresses() -> None:
    """`hostplug cluster start` binds where it is told: never every interface unasked, never 127.0.0.1 (which
    Ray would swap for the machine's network address)."""
    from click.testing import CliRunner

    from hostplug.commands.cluster import cluster

    public = CliRunner().invoke(cluster, ["start", "--bind", "0.0.0.0"])
    assert public.exit_code != 0 and "--allow-public-bind" in str(public.exception)
    swapped = CliRunner().invoke(cluster, ["start", "--bind", "127.0.0.1"])
    assert swapped.exit_code != 0 and "127.0.0.2" in str(swapped.exception)


@needs_ray
def test_cluster_stop_with_a_temp_dir_stops_that_node_only(tmp_path: Path, ray_cluster: Cluster) -> None:
    """A tester's: `cluster stop` ran `ray stop`, which as root stops every user's Ray on the machine. A node
    started with --temp-dir is stopped alone; the test cluster beside it goes on."""
    temp = Path(tempfile.mkdtemp(prefix="hp-ray-", dir="/tmp"))  # short: Ray's socket paths have a length limit
    env = {**os.environ, "RAY_AUTH_TOKEN_PATH": str(tmp_path / "token")}
    try:
        started = subprocess.run([*COMMAND, "cluster", "start", "--bind", "127.0.0.8", "--port",
                                  str(_free_port("127.0.0.8")), "--client-port", str(_free_port("127.0.0.8")),
                                  "--num-cpus", "0", "--temp-dir", str(temp)], capture_output=True, text=True,
                                 env=env, timeout=180)
        assert started.returncode == 0, started.stderr
        assert [pid for pid, argv in _processes() if any(str(temp) in a for a in argv)]
        # through a wrapper whose own command line names the folder (sudo, sh -c): the wrapper, and the command
        # under it, are not taken for Ray's (a reviewer's was killed, exit 143)
        stopped = subprocess.run(["sh", "-c", shlex.join([*COMMAND, "cluster", "stop", "--temp-dir", str(temp)])],
                                 capture_output=True, text=True, env=env, timeout=120)
        assert stopped.returncode == 0 and stopped.stdout.startswith(f"stopped the Ray node of {temp}"), stopped
        assert not [pid for pid, argv in _processes() if any(str(temp) in a for a in argv)]
        assert [pid for pid, argv in _processes() if any(str(ray_cluster.temp) in a for a in argv)]  # goes on
        again = subprocess.run([*COMMAND, "cluster", "stop", "--temp-dir", str(temp)], capture_output=True,
                               text=True, env=env, timeout=120)
        assert again.returncode == 2 and f"no Ray node started with --temp-dir {temp} runs here" in again.stderr
        broad = subprocess.run([*COMMAND, "cluster", "stop", "--temp-dir", "/tmp"], capture_output=True, text=True,
                               env=env, timeout=120)  # a folder that is no node's: refused, nothing signalled
        assert broad.returncode == 2 and "/tmp is not the folder of a Ray node" in broad.stderr
    finally:
        from hostplug.daemon.cluster import stop_nodes

        stop_nodes(temp)
        shutil.rmtree(temp, ignore_errors=True)


@needs_ray
def test_a_killed_node_costs_only_its_files(tmp_path: Path) -> None:
    """kill -9 of a node's raylet (the node is gone, and its worker with it): its file is rendered elsewhere."""
    head, second = "127.0.0.4", "127.0.0.5"  # a cluster of its own: this one loses a node
    with _loopback_cluster(head, second) as cluster:
        # Renders slow enough (the full-resolution learned denoiser) that the kill lands during one: the sample's
        # default render is over in a fraction of a second on a quiet machine, before the raylet can be killed.
        studio, config = _studio(tmp_path, recipe={"stages": {"denoise": {"implementation": "learned",
                                                                          "params": {"model": "base"}}}})
        staging = studio / "staging"
        staging.mkdir()
        names = [f"node_{i:02d}" for i in range(12)]
        for name in names:
            shutil.copyfile(SAMPLE_DNG, staging / f"{name}.dng")
        journal, log = studio / "journal.sqlite", studio / "log.jsonl"
        watch = Watch(config, cluster)
        try:
            # Generous limits, and the waits fail at once if the daemon exits: on this 2-core machine, under load
            # (other test runs, other Ray clusters), starting takes up to a minute and more, and each render of
            # the one worker left from under a second to over a minute (the first loads the denoiser's model).
            _wait_running(watch, lambda: len(_ready_workers(log)) == 2, 300, "two ready workers")
            for name in names:
                os.replace(staging / f"{name}.dng", studio / "in" / f"{name}.dng")
            _wait_running(watch, lambda: any(r["state"] == "rendering" and r["node"] == second for r in rows(journal)),
                          180, "a render on the second node")
            raylets = [pid for pid, argv in _processes() if argv[0].endswith("/raylet")
                       and f"--node_ip_address={second}" in argv and any(str(cluster.temp) in a for a in argv)]
            assert len(raylets) == 1, raylets
            os.kill(raylets[0], signal.SIGKILL)
            # The dead node's worker cannot restart (the head's one CPU is its own worker's): `queue` says it is
            # lost, not "starting" as if it were about to render.
            _wait_running(watch, lambda: _lost_on(config, second), 180, "the dead node's worker shown as lost")
            # Every file done, none stuck (a file waiting for render_timeout, 600 s, stops the count) or dropped:
            # the limit is on a pause between two files finishing, not on the whole batch.
            _wait_done(watch, journal, len(names), stall=300)
            assert _lost_on(config, second), _queue(config, "--json")["workers"]  # and still, not "starting"
            assert f"  {second}: 1 worker(s) (1 lost), " in _queue(config), _queue(config)
            assert watch.stop() == 0, watch.output()
        finally:
            if watch.process.poll() is None:
                watch.kill()
    assert sorted(p.name for p in (studio / "out").iterdir()) == sorted(f"{n}.jpg" for n in names)
    # its file stays queued without using an attempt (a tester's kill -9 of a raylet cost one; a clean shutdown
    # of the node does not)
    lost = {e["path"] for e in events(log, "node_lost") if e["node"] == second}
    assert lost and not [e for e in events(log, "retry") if second in e["error"]], events(log)
    assert {r["attempts"] for r in rows(journal) if r["path"] in lost} == {1}  # the render that was done
    for path in lost:  # the file lost on the second node was rendered once more, here, and only once
        assert [e["node"] for e in events(log, "done") if e["path"] == path] == [head], events(log)


def _lost_on(config: Path, node: str) -> bool:
    """Whether `hostplug queue --json` shows the one worker of ``node`` as lost."""
    shown = _queue(config, "--json")
    on = [w["state"] for w in shown["workers"] if w["node"] == node]
    return on == ["lost"] and [n["states"] for n in shown["nodes"] if n["node"] == node] == [{"lost": 1}]


def _processes() -> list[tuple[int, list[str]]]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
                if argv and argv[0]:
                    found.append((int(entry.name), argv))
    return found


def test_workers_that_no_node_places_are_reported_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # a second daemon on a cluster whose CPUs another one holds waited in silence, its files queued for ever
    from hostplug.daemon import cluster

    config = parse_config({"daemon": {"cluster": "ray://127.0.0.2:10001"},
                           "folder": [{"path": "in", "output": [{"folder": "o"}]}]}, tmp_path)
    pool = cluster.RayPool(config)
    pool.slots = [cluster.RaySlot(actor=None, name="w0")]
    pool.spawned_at = time.monotonic() - cluster.UNPLACED_WARN_S - 1
    with caplog.at_level("WARNING", logger="hostplug.watch"):
        pool._warn_if_unplaced()
        pool._warn_if_unplaced()
    [warning] = [r.getMessage() for r in caplog.records]
    assert "no render worker has started" in warning and "another daemon" in warning


def test_workers_lost_long_after_they_started_are_not_called_unplaced(tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    # two workers killed minutes after start-up got "no render worker has started ... (another daemon?)"
    from hostplug.daemon import cluster

    config = parse_config({"daemon": {"cluster": "ray://127.0.0.2:10001"},
                           "folder": [{"path": "in", "output": [{"folder": "o"}]}]}, tmp_path)
    pool = cluster.RayPool(config)
    pool.slots = [cluster.RaySlot(actor=None, name="w0", ready=True)]
    pool.spawned_at = time.monotonic() - cluster.UNPLACED_WARN_S - 1
    with caplog.at_level("WARNING", logger="hostplug.watch"):
        pool._warn_if_unplaced()  # placed
        pool.slots[0].ready = False  # lost, and restarting
        pool._warn_if_unplaced()
    assert not caplog.records


def test_worker_names_belong_to_one_journal_file_on_one_machine(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # a daemon elsewhere whose journal had the same path killed another daemon's live workers as its leftovers
    from hostplug.daemon import cluster

    journal = tmp_path / "journal.sqlite"
    journal.write_bytes(b"")
    first = cluster.actor_prefix(journal)
    assert cluster.actor_prefix(journal) == first  # a restarted daemon finds its own leftovers
    other = tmp_path / "other.sqlite"
    other.write_bytes(b"")
    other.replace(journal)  # another file at the same path (another machine's mount, a container's)
    assert cluster.actor_prefix(journal) != first
    again = cluster.actor_prefix(journal)
    monkeypatch.setattr(cluster.socket, "gethostname", lambda: "render2")
    assert cluster.actor_prefix(journal) != again


def test_ray_never_starts_a_cluster_of_its_own_when_the_head_goes_away() -> None:
    # after the head died, ray.wait and ray.kill called ray.init(), which started a local cluster listening on
    # the machine's address, whose agents outlived the daemon
    import os

    from hostplug.daemon import cluster  # noqa: F401 - importing it sets what Ray reads when it is imported

    assert os.environ["RAY_ENABLE_AUTO_CONNECT"] == "0"


def _pool_on_two_nodes(tmp_path: Path, alive: dict[str, bool]) -> Any:
    """A RayPool with a stand-in Ray: ready idle workers on 10.0.0.11 and 10.0.0.12, and a busy one on 10.0.0.12."""
    from types import SimpleNamespace

    from hostplug.daemon import cluster
    from hostplug.daemon.job import Job

    config = parse_config({"daemon": {"cluster": "ray://10.0.0.10:10001"},
                           "folder": [{"path": "in", "output": [{"folder": "o"}]}]}, tmp_path)
    pool = cluster.RayPool(config)
    pool.ray = SimpleNamespace(nodes=lambda: [{"NodeManagerAddress": ip, "Alive": up} for ip, up in alive.items()],
                               get=lambda ref: ref)
    actor = SimpleNamespace(next_claim=SimpleNamespace(remote=lambda timeout: "claim"),
                            ready=SimpleNamespace(remote=lambda: "ready"))
    job = Job(id=1, path=tmp_path / "in" / "a.dng", folder=tmp_path / "in", size=1, mtime_ns=1, content_hash="h")
    pool.slots = [cluster.RaySlot(actor=actor, name="w0", node="10.0.0.11", pid=10, ready=True),
                  cluster.RaySlot(actor=actor, name="w1", node="10.0.0.12", pid=11, ready=True),
                  cluster.RaySlot(actor=actor, name="w2", node="10.0.0.12", pid=12, ready=True, job=job,
                                  started=time.monotonic())]
    return pool


def test_workers_of_a_dead_node_are_lost_until_they_come_back(tmp_path: Path) -> None:
    # a dead node's worker waits, restarting, for room elsewhere: it was listed as "starting" (or "idle") for good
    pool = _pool_on_two_nodes(tmp_path, {"10.0.0.11": True, "10.0.0.12": False})
    pool._check_nodes()
    assert [w["state"] for w in pool.describe()] == ["idle", "lost", "lost"]
    assert pool.idle() == [pool.slots[0]]  # no file for a lost worker
    assert all(w["since"] is not None for w in pool.describe()[1:])
    back = pool.slots[1]
    pool._pending(back, {"node": "10.0.0.11", "hostname": "render2", "pid": 13, "error": None})  # restarted
    assert [w["state"] for w in pool.describe()] == ["idle", "idle", "lost"] and back.node == "10.0.0.11"


def test_an_idle_worker_that_died_is_lost(tmp_path: Path) -> None:
    pool = _pool_on_two_nodes(tmp_path, {"10.0.0.11": True, "10.0.0.12": True})
    pool._check_nodes()
    assert [w["state"] for w in pool.describe()] == ["idle", "idle", "rendering"]

    def died(ref: Any) -> Any:
        raise RuntimeError("ActorDiedError: the actor died")

    pool.ray.get = died
    pool._claim(pool.slots[0], "claim")  # its outstanding next_claim fails: nothing else would tell
    assert [w["state"] for w in pool.describe()] == ["lost", "idle", "rendering"]
    assert pool.slots[0] not in pool.idle()


def test_a_claim_poll_that_failed_during_a_render_is_asked_again(tmp_path: Path) -> None:
    # a worker's next_claim failed while it rendered and the render still came back: the now idle worker had no
    # next_claim outstanding, so its death went unseen until it was given a file (and a live worker's next claim
    # went unanswered)
    from hostplug.daemon.job import Outcome

    pool = _pool_on_two_nodes(tmp_path, {"10.0.0.11": True, "10.0.0.12": True})
    busy = pool.slots[2]

    def unavailable(ref: Any) -> Any:
        raise RuntimeError("ActorUnavailableError: the actor is temporarily unavailable")

    pool.ray.get = unavailable
    pool._claim(busy, "claim")
    assert busy.claim is None and busy.job is not None and busy.ready  # its render reports what became of it
    pool.ray.get = lambda ref: Outcome(1, "done", outputs=("a.jpg",))
    [event] = pool._render(busy, "render")
    assert event.kind == "outcome" and busy.job is None
    assert busy.claim == "claim"  # asked again: its answer, or its failure, tells what became of the worker


def test_queue_lists_lost_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`hostplug queue` counts a node's lost workers in its line, and --json gives each worker's state."""
    from click.testing import CliRunner

    from hostplug.commands.watch import queue
    from hostplug.daemon import daemon
    from hostplug.daemon.journal import Journal

    journal = Journal(tmp_path / "journal.sqlite")
    try:
        journal.set_workers([{"slot": 0, "node": "10.0.0.11", "pid": 7, "state": "idle"},
                             {"slot": 1, "node": "10.0.0.12", "pid": 8, "state": "lost", "since": time.time()}])
    finally:
        journal.close()
    monkeypatch.setattr(daemon, "running_pid", lambda path: 4242)  # worker rows are shown while the daemon runs
    text = CliRunner().invoke(queue, ["--journal", str(tmp_path / "journal.sqlite")])
    assert "  10.0.0.11: 1 worker(s), 0 files/min" in text.output, text.output
    assert "  10.0.0.12: 1 worker(s) (1 lost), 0 files/min" in text.output, text.output
    shown = json.loads(CliRunner().invoke(queue, ["--journal", str(tmp_path / "journal.sqlite"), "--json"]).output)
    assert [(w["node"], w["state"]) for w in shown["workers"]] == [("10.0.0.11", "idle"), ("10.0.0.12", "lost")]
    assert [n["states"] for n in shown["nodes"]] == [{"idle": 1}, {"lost": 1}]
    monkeypatch.setattr(daemon, "running_pid", lambda path: None)  # a stopped daemon has no workers to list
    stopped = CliRunner().invoke(queue, ["--journal", str(tmp_path / "journal.sqlite")]).output
    assert "daemon not running" in stopped and "worker(s)" not in stopped, stopped


def _worker_on_a_mac(tmp_path: Path) -> Any:
    """A RenderWorker (without Ray) on a node that sees the daemon's /studio as /Volumes/studio."""
    from hostplug.daemon import cluster

    worker = object.__new__(cluster.RenderWorker)
    worker.paths = cluster.PathMap((("/studio", "/Volumes/studio"),))
    worker.claims, worker.answers, worker.threads, worker.node = __import__("queue").Queue(), {}, 1, "10.0.0.11"
    config = parse_config({"folder": [{"path": "in", "output": [{"folder": "o"}]}]}, tmp_path)
    worker.config = config
    worker.folders = {Path("/studio/in"): config.folders[0]}
    worker.bases, worker.devices = {Path("/studio/in"): None}, {}
    return worker


def test_a_node_s_outcome_names_the_output_folders_in_the_daemon_s_paths(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # `place` and `remade` stayed the node's: an outage's end (output_folder_back) never matched a render's outputs
    from hostplug.daemon import job as job_module
    from hostplug.daemon.job import Job, Outcome

    worker = _worker_on_a_mac(tmp_path)
    waiting = Outcome(1, "no_output", "gone", place="/Volumes/studio/out", remade=("/Volumes/studio/web",))
    monkeypatch.setattr(job_module, "run_job", lambda *args, **kwargs: waiting)
    job = Job(id=1, path=Path("/studio/in/a.dng"), folder=Path("/studio/in"), size=1, mtime_ns=1, content_hash="h")
    outcome = worker.render(job)
    assert outcome.place == "/studio/out" and outcome.remade == ("/studio/web",)


def test_a_name_clash_on_a_node_compares_the_two_raws_folders_in_one_set_of_paths(tmp_path: Path) -> None:
    # the daemon's path of the raw holding the names was compared with the node's of the job: two raws of one
    # folder were told that {dir} would tell them apart
    import threading

    from hostplug.daemon import cluster
    from hostplug.daemon.job import Job, _clash_advice
    from hostplug.daemon.journal import Conflict

    worker = _worker_on_a_mac(tmp_path)

    def daemon() -> None:
        file_id, _targets = worker.claims.get(timeout=10)
        while file_id not in worker.answers:
            time.sleep(0.01)
        worker.answer(file_id, Conflict("x (already the output of ...)", False, owner=Path("/studio/in/IMG_5.dng")))

    threading.Thread(target=daemon, daemon=True).start()
    conflict = cluster._DaemonClaims(worker, 2).claim(2, ["/Volumes/studio/out/IMG_5.jpg"])
    job = Job(id=2, path=Path("/Volumes/studio/in/IMG 5.dng"), folder=Path("/Volumes/studio/in"), size=1,
              mtime_ns=1, content_hash="h")
    assert "rename one of the two raws" in _clash_advice(job, conflict)
