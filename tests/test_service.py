"""The resident render service (``hostplug serve``, :mod:`hostplug.service`): its folder and socket are private,
other users are refused, it starts on demand and exits when idle, a render through it is the in-process render
pixel for pixel, an engine error comes back as one line, a crashed, stale or killed service is replaced or
leaves nothing behind, and ``--no-service`` never touches its socket.

Every test has its own short ``XDG_RUNTIME_DIR`` (a Unix socket path must stay under 108 bytes) and kills
every service process started with it. Only Unix sockets are used.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from hostplug.cli import main
from hostplug.service import client, protocol
from hostplug.service.protocol import SOCKET_NAME, ServiceError
from tests.conftest import SAMPLE_DNG, SONY, error_lines, hostplug, hostplug_process, need

pytestmark = pytest.mark.skipif(not hasattr(socket, "SO_PEERCRED"), reason="SO_PEERCRED is Linux's")


def service_pids(runtime: Path) -> list[int]:
    """Processes running the service with ``runtime`` as their XDG_RUNTIME_DIR."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"hostplug.service" in cmdline and f"XDG_RUNTIME_DIR={runtime}".encode() in environ:
            pids.append(int(entry.name))
    return pids


def wait_for(condition, timeout: float = 60.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def listening(path: Path) -> bool:
    """Whether a process accepts connections on the socket at ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) counts as gone
        return (Path("/proc") / str(pid) / "stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private runtime folder for this test's services; every service started in it is killed after."""
    folder = Path(tempfile.mkdtemp(prefix="hps", dir="/tmp"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(folder))
    monkeypatch.delenv(client.ENV_DISABLE, raising=False)
    monkeypatch.setenv(protocol.ENV_IDLE, "120")
    monkeypatch.setenv("HOSTPLUG_SERVICE_BUILD", "test-1")  # others' edits of the tree must not make it stale
    yield folder
    for pid in service_pids(folder):
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not [p for p in service_pids(folder) if alive(p)], timeout=10)
    shutil.rmtree(folder, ignore_errors=True)


def service_folder(runtime: Path) -> Path:
    return runtime / "hostplug"


def start_service(runtime: Path) -> dict:
    status = client.call("ping", start=True)
    assert status["pid"] in service_pids(runtime)
    return status


def render_args(source: Path, target: Path, **options: object) -> dict:
    return {"input": str(source), "output": str(target), "options": {"bits": 16, **options}, "changes": {},
            "device": "cpu", "stages_dir": None}


# ----- the folder, the socket and who may use them -------------------------------------------------------------


def test_folder_and_socket_are_private_to_the_user(runtime: Path) -> None:
    start_service(runtime)
    folder = service_folder(runtime)
    for path in (folder, folder / SOCKET_NAME):
        info = os.lstat(path)
        assert info.st_uid == os.getuid()
        assert stat.S_IMODE(info.st_mode) == 0o700, f"{path}: {oct(info.st_mode)}"
    assert stat.S_ISSOCK(os.lstat(folder / SOCKET_NAME).st_mode)


def test_without_a_runtime_folder_it_uses_a_private_folder_in_tmp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    folder = protocol.service_dir()
    assert folder == Path("/tmp") / f"hostplug-{os.getuid()}"
    assert stat.S_IMODE(os.lstat(folder).st_mode) == 0o700 and os.lstat(folder).st_uid == os.getuid()


def test_a_runtime_folder_others_may_write_in_is_not_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # a tester's: XDG_RUNTIME_DIR of mode 0777 was used, where another user could rename the service's folder away
    shared = tmp_path / "run"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(shared))
    assert protocol.service_dir(create=False) == Path("/tmp") / f"hostplug-{os.getuid()}"  # the documented fallback
    shared.chmod(0o1777)  # sticky, as /tmp: only the owner renames or deletes
    assert protocol.service_dir() == shared / "hostplug"


def test_a_folder_that_is_not_ours_or_is_a_link_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(tmp_path)
    with pytest.raises(ServiceError, match="is a symbolic link, not a folder"):
        protocol.check_private_dir(link)
    with pytest.raises(ServiceError, match="belongs to uid"):
        protocol.check_private_dir(tmp_path, uid=os.getuid() + 1)
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    protocol.check_private_dir(loose)  # ours: tightened, not refused
    assert stat.S_IMODE(loose.stat().st_mode) == 0o700


def test_peer_credential_check() -> None:
    left, right = socket.socketpair(socket.AF_UNIX)
    with left, right:
        pid, uid, _gid = protocol.peer_credentials(left)
    assert (pid, uid) == (os.getpid(), os.getuid())
    assert protocol.peer_allowed(uid)
    assert not protocol.peer_allowed(uid + 1)
    assert not protocol.peer_allowed(65534, own_uid=1000)
    assert protocol.peer_allowed(1000, own_uid=1000)


def test_protocol_frames() -> None:
    left, right = socket.socketpair(socket.AF_UNIX)
    with left, right:
        protocol.send_message(left, {"op": "ping", "path": Path("/x")})
        assert protocol.receive_message(right) == {"op": "ping", "path": "/x"}
        left.sendall(b"\x7f\xff\xff\xff")  # a length over the limit: refused before reading it
        with pytest.raises(protocol.ProtocolError, match="over the"):
            protocol.receive_message(right)
    left, right = socket.socketpair(socket.AF_UNIX)
    with left, right:
        left.sendall(b"\x00\x00\x00\x02[]")
        with pytest.raises(protocol.ProtocolError, match="not a JSON object"):
            protocol.receive_message(right)
        left.sendall(b"\x00\x00\x00\x09{")
        left.close()
        with pytest.raises(protocol.ProtocolError, match="closed"):
            protocol.receive_message(right)
    # a file name's line break stays in the one line, escaped, as the command's own errors write it
    assert protocol.error_response("two\nlines", 3) == {"ok": False, "error": "two\\nlines", "exit_code": 3}


def test_a_request_of_garbage_does_not_disturb_the_service(runtime: Path) -> None:
    pid = start_service(runtime)["pid"]
    for garbage in (b"\x00\x00\x00\x05hello", b"\xff\xff\xff\xff", b""):
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(service_folder(runtime) / SOCKET_NAME))
            sock.sendall(garbage)
    with socket.socket(socket.AF_UNIX) as sock:  # an unknown request is one line back
        sock.connect(str(service_folder(runtime) / SOCKET_NAME))
        protocol.send_message(sock, client.request("dance"))
        answer = client._answer(sock, pid, time.monotonic())  # past the "working" frame that says it was heard
    assert answer["ok"] is False and "does not know the request 'dance'" in answer["error"]
    assert client.status()["pid"] == pid


def test_connections_beyond_the_limit_are_refused_without_a_thread_each(runtime: Path) -> None:
    # a soak tester's 1500 silent connections made 1500 threads; beyond MAX_CONNECTIONS a client is told at once
    # and renders in its own process
    from hostplug.service.server import MAX_CONNECTIONS

    pid = start_service(runtime)["pid"]
    silent = []
    try:
        for _ in range(MAX_CONNECTIONS):
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(str(service_folder(runtime) / SOCKET_NAME))
            silent.append(sock)
        assert wait_for(lambda: _threads(pid) >= MAX_CONNECTIONS, timeout=30)
        with pytest.raises(ServiceError, match=f"{MAX_CONNECTIONS} connections open already"):
            client.call("ping")
        assert client.render("x.dng", "x.tif") is None  # "use one if running": rendered in its own process
        assert _threads(pid) < MAX_CONNECTIONS + 16
    finally:
        for sock in silent:
            sock.close()
    assert wait_for(lambda: client.status() is not None and client.status()["pid"] == pid, timeout=30)


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


# A client in another user's process: only the standard library (it may not be able to read the repository).
_FOREIGN_CLIENT = """
import json, socket, struct, sys
sock = socket.socket(socket.AF_UNIX)
try:
    sock.connect(sys.argv[1])
except PermissionError:
    print(json.dumps({"connect": "EACCES"})); raise SystemExit
data = json.dumps({"protocol": 1, "version": sys.argv[2], "op": "ping"}).encode()
sock.sendall(struct.pack(">I", len(data)) + data)
head = sock.recv(4)
size = struct.unpack(">I", head)[0] if len(head) == 4 else 0
body = b""
while len(body) < size:
    chunk = sock.recv(size - len(body))
    if not chunk:
        break
    body += chunk
print(json.dumps({"connect": "ok", "response": json.loads(body) if body else None}))
"""


@pytest.mark.skipif(os.getuid() != 0, reason="switching to another user needs root")
def test_a_connection_from_another_user_is_refused(runtime: Path) -> None:
    import pwd

    nobody = pwd.getpwnam("nobody")
    start_service(runtime)
    folder = service_folder(runtime)
    sock = str(folder / SOCKET_NAME)
    foreign = ["python3", "-I", "-c", _FOREIGN_CLIENT, sock, protocol.build_id()]
    os.chmod(runtime, 0o755)  # let nobody reach the folder: its 0700 mode is the first wall
    as_nobody = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": [], "cwd": "/",
                 "capture_output": True, "text": True, "timeout": 60}
    done = subprocess.run(foreign, **as_nobody)
    assert json.loads(done.stdout) == {"connect": "EACCES"}, done.stderr
    # Open the walls: the service itself still refuses by the peer's uid.
    os.chmod(folder, 0o755)
    os.chmod(sock, 0o777)
    done = subprocess.run(foreign, **as_nobody)
    answer = json.loads(done.stdout)
    assert answer["connect"] == "ok", done.stderr
    assert answer["response"]["ok"] is False
    assert f"belongs to uid {os.getuid()}" in answer["response"]["error"]
    assert "refused a connection from uid" in (folder / protocol.LOG_NAME).read_text()
    assert client.call("ping")["pid"]  # its own user is still served


# ----- life cycle ------------------------------------------------------------------------------------------


def test_started_on_demand_and_only_once(runtime: Path) -> None:
    with pytest.raises(ServiceError, match="no render service is running"):
        client.call("ping")
    assert not (service_folder(runtime) / SOCKET_NAME).exists()
    results: list[dict] = []
    threads = [threading.Thread(target=lambda: results.append(client.call("ping", start=True))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({r["pid"] for r in results}) == 1  # three clients at once, one service
    assert wait_for(lambda: len([p for p in service_pids(runtime) if alive(p)]) == 1, timeout=10)
    assert client.status()["pid"] == results[0]["pid"]


def test_exits_after_the_idle_timeout(runtime: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(protocol.ENV_IDLE, "2")
    pid = start_service(runtime)["pid"]
    assert wait_for(lambda: not alive(pid), timeout=90)
    assert not (service_folder(runtime) / SOCKET_NAME).exists()
    assert client.status() is None


def test_refused_and_foreign_connections_do_not_keep_it_alive(runtime: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(protocol.ENV_IDLE, "3")
    pid = start_service(runtime)["pid"]
    sock_path = str(service_folder(runtime) / SOCKET_NAME)
    deadline = time.monotonic() + 90
    while alive(pid) and time.monotonic() < deadline:  # a client from a chroot sharing /tmp, and garbage
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as sock:
            sock.connect(sock_path)
            protocol.send_message(sock, {**client.request("ping"), "root": [0, 0]})
            protocol.receive_message(sock)
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as sock:
            sock.connect(sock_path)
            sock.sendall(b"\xff\xff\xff\xff")
        time.sleep(0.3)
    assert not alive(pid)


def test_stop(runtime: Path) -> None:
    pid = start_service(runtime)["pid"]
    assert client.stop()["stopping"] is True
    assert wait_for(lambda: not alive(pid), timeout=30)
    assert client.stop() is None


def test_status_and_stop_answer_for_a_running_service_whatever_hostplug_no_service_says(
        runtime: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a tester: with HOSTPLUG_NO_SERVICE set, --status and --stop called a healthy service "stopped or hung"
    pid = start_service(runtime)["pid"]
    monkeypatch.setenv(client.ENV_DISABLE, "1")
    status = CliRunner().invoke(main, ["serve", "--status"])
    assert status.exit_code == 0 and json.loads(status.stdout)["pid"] == pid
    assert CliRunner().invoke(main, ["serve", "--stop"]).exit_code == 0
    assert wait_for(lambda: not alive(pid), timeout=30)


def test_a_service_asked_for_whose_folder_is_refused_is_one_note(runtime: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # a tester: with the service folder not the user's, --service and open rendered in-process without a word
    monkeypatch.setattr(client, "_passed_by", None)
    monkeypatch.setattr(client, "service_dir", lambda create=False: protocol.check_private_dir(runtime, uid=1)
                        or runtime)
    assert client.render("x.dng", "x.tif", start=True) is None
    assert client.render("y.dng", "y.tif", start=True) is None  # said once
    note = capsys.readouterr().err
    assert note.count("hostplug: note:") == 1 and "belongs to uid" in note and "XDG_RUNTIME_DIR" in note
    monkeypatch.setattr(client, "_passed_by", None)
    assert client.render("x.dng", "x.tif", start=False) is None and capsys.readouterr().err == ""  # not asked for


def test_an_open_stopped_by_ctrl_c_returns_once_the_services_partial_is_gone(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # a tester: a Ctrl-C on hostplug open exited while the service's hidden partial TIFF was still beside the raw
    partial = tmp_path / ".o_hostplug.tif.f1bdbaad.part"

    def interrupted(*args: object) -> None:
        partial.write_bytes(b"half")
        threading.Timer(0.3, partial.unlink).start()  # the service removes it once its client has gone
        raise KeyboardInterrupt

    monkeypatch.setattr(client, "_or_here", interrupted)
    monkeypatch.delenv(client.ENV_DISABLE, raising=False)
    with pytest.raises(KeyboardInterrupt):
        client.open_file(tmp_path / "o.ARW")
    assert not partial.exists()


def test_a_stop_read_after_its_client_gave_up_is_ignored(runtime: Path) -> None:
    # serve --stop against a stopped (SIGSTOP) service said it failed, and the service stopped once it went on
    pid = start_service(runtime)["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(service_folder(runtime) / SOCKET_NAME))
            protocol.send_message(sock, client.request("shutdown"))
    finally:
        os.kill(pid, signal.SIGCONT)
    time.sleep(1.0)
    assert alive(pid) and client.status()["pid"] == pid
    assert client.stop()["stopping"] is True
    assert wait_for(lambda: not alive(pid), timeout=30)


def test_a_service_lost_mid_render_is_said_once_and_the_render_runs_here(monkeypatch: pytest.MonkeyPatch,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    # a service killed mid-render made `hostplug render` start again in its own process without a word, and the
    # user waited twice as long not knowing why
    def lost(op: str, args: object, start: bool = False) -> dict:
        raise client.ServiceLostError("the render service (pid 4242) went away during the request (reset)")

    monkeypatch.setattr(client, "call", lost)
    assert client._or_here("render", {}, start=False) is None
    assert capsys.readouterr().err == ("hostplug: note: the render service (pid 4242) went away during the request "
                                       "(reset); rendering in this process instead\n")


def test_a_crashed_service_is_replaced(runtime: Path) -> None:
    folder = protocol.service_dir()
    dead = socket.socket(socket.AF_UNIX)  # a socket file nobody listens on: what a killed service leaves
    dead.bind(str(folder / SOCKET_NAME))
    dead.close()
    assert client.status() is None  # not running: "use one if running" renders in-process
    assert client.render("x.dng", "x.tif") is None
    assert start_service(runtime)["pid"]


def test_the_build_id_changes_with_the_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOSTPLUG_SERVICE_BUILD", raising=False)
    marker = Path(protocol.__file__).with_name("__init__.py")  # the fingerprint covers the packages' files
    before = marker.stat()
    first = protocol.build_id()
    try:
        os.utime(marker, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
        assert protocol.build_id() != first
    finally:
        os.utime(marker, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_a_service_under_another_root_folder_is_not_used(runtime: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    pid = start_service(runtime)["pid"]
    real_request = client.request

    def from_a_chroot(op: str, args: dict | None = None) -> dict:
        return {**real_request(op, args), "root": [0, 0]}

    monkeypatch.setattr(client, "request", from_a_chroot)
    assert client.status() is None
    for flag, then in (("--status", "ask it"), ("--stop", "stop it")):  # says what happened, not "does not answer"
        done = CliRunner().invoke(main, ["serve", flag])
        assert done.exit_code == 1
        assert error_lines(done.stderr) == [
            f"hostplug: error: the render service on {service_folder(runtime) / SOCKET_NAME} (pid {pid}) runs under "
            f"another root folder than this process, and serves only processes that share them; {then} from inside "
            "that root"]
    assert client.render(tmp_path / "x.dng", tmp_path / "x.tif", start=True) is None  # in-process instead
    monkeypatch.setattr(client, "request", real_request)
    assert client.status() is not None  # and the service is left alone


def test_a_client_with_other_groups_or_capabilities_renders_in_its_own_process(
        runtime: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # the service wrote with its own groups and capabilities for a client that had given them up (a sandbox, sg)
    start_service(runtime)
    context = protocol.process_context()
    assert len(context) == 4  # mount namespace, Gid, Groups, CapEff: Linux's /proc says them
    without_capabilities = [*context[:3], "0000000000000000"]
    monkeypatch.setattr(client, "process_context", lambda: without_capabilities)
    monkeypatch.setattr(client, "_passed_by", None)
    assert client.render(tmp_path / "x.dng", tmp_path / "x.tif", start=True) is None  # in-process instead
    assert "groups changed since it started?" in capsys.readouterr().err  # said once, not silently slower
    monkeypatch.setattr(client, "process_context", protocol.process_context)
    assert client.status() is not None  # and the service is left alone


def test_a_client_that_shuts_down_its_sending_side_still_gets_its_answer(runtime: Path) -> None:
    # nc -N and socat send the request, then shut down their sending side: they were told "the client left"
    pid = start_service(runtime)["pid"]
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(service_folder(runtime) / SOCKET_NAME))
        protocol.send_message(sock, client.request("dance"))
        sock.shutdown(socket.SHUT_WR)
        answer = client._answer(sock, pid, time.monotonic())
    assert answer["ok"] is False and "does not know the request 'dance'" in answer["error"]


def test_a_bad_raw_with_a_bad_sidecar_gets_the_same_error_through_the_service(runtime: Path, tmp_path: Path) -> None:
    # the service opened the raw first and named it (exit 3) where a render in-process names the sidecar (exit 4)
    raw = tmp_path / "bad.dng"
    raw.write_bytes(SAMPLE_DNG.read_bytes()[:100_000])
    raw.with_name("bad.dng.xmp").write_text("junk")
    start_service(runtime)
    here = hostplug_process("render", raw, "-o", tmp_path / "a.tif", "--no-service")
    there = hostplug_process("render", raw, "-o", tmp_path / "b.tif", "--service")
    assert here.returncode == there.returncode == 4
    assert error_lines(here.stderr) == error_lines(there.stderr)


def test_a_client_of_another_build_stops_the_service_whatever_its_context(runtime: Path) -> None:
    # the context checked before the version kept an older service running after an upgrade, refusing everyone
    pid = start_service(runtime)["pid"]
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(service_folder(runtime) / SOCKET_NAME))
        protocol.send_message(sock, {**client.request("render"), "version": "0.9+older", "context": ["other"]})
        answer = client._answer(sock, pid, time.monotonic())
    assert answer.get("stale") is True and not answer.get("foreign")
    assert wait_for(lambda: pid not in service_pids(runtime), timeout=30)


def test_odd_requests_get_an_error_and_leave_the_service_running(runtime: Path) -> None:
    # a request naming no version stopped the service (as a client of another build does); deep JSON killed a thread
    pid = start_service(runtime)["pid"]
    deep = b"[" * 100_000
    for frame in ({"op": "render"}, {**client.request("render"), "version": 3}):
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(service_folder(runtime) / SOCKET_NAME))
            protocol.send_message(sock, frame)
            answer = protocol.receive_message(sock)
        assert answer["ok"] is False and "names no hostplug version" in answer["error"]
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(service_folder(runtime) / SOCKET_NAME))
        sock.sendall(struct.pack(">I", len(deep)) + deep)
    assert client.status()["pid"] == pid
    assert protocol.error_response("dam  aged.dng: bad")["error"] == "dam  aged.dng: bad"  # names keep their spaces
    with socket.socket(socket.AF_UNIX) as sock:  # a library client whose folder was deleted: not a render under /
        sock.connect(str(service_folder(runtime) / SOCKET_NAME))
        protocol.send_message(sock, {**client.request("render", {"input": "a.dng", "output": "a.tif"}), "cwd": None})
        answer = client._answer(sock, pid, time.monotonic())
    assert answer["ok"] is False and "the current folder no longer exists" in answer["error"]


def test_a_stale_service_is_not_used_and_stops(runtime: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    old = start_service(runtime)
    monkeypatch.setenv("HOSTPLUG_SERVICE_BUILD", "test-2")  # this client is newer than the service
    assert client.status()["stale"] is True
    assert client.render(tmp_path / "x.dng", tmp_path / "x.tif") is None  # not used: in-process instead
    assert wait_for(lambda: not alive(old["pid"]), timeout=60)  # and it stops itself
    assert client.status() is None


def test_a_stale_service_is_replaced_by_a_client_that_starts_one(runtime: Path, sample_dng: Path,
                                                                  tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    old = start_service(runtime)
    monkeypatch.setenv("HOSTPLUG_SERVICE_BUILD", "test-2")
    assert client.call("render", render_args(sample_dng, tmp_path / "x.tif"), start=True)["output"]
    new = client.status()
    assert new["pid"] != old["pid"] and new["version"] == "test-2" and not new["stale"]


# ----- renders -------------------------------------------------------------------------------------------------


def test_a_render_through_the_service_equals_the_in_process_render(runtime: Path, sample_dng: Path,
                                                                   tmp_path: Path) -> None:
    import engine

    start_service(runtime)
    via = tmp_path / "service.tif"
    result = client.call("render", render_args(sample_dng, via))
    assert Path(result["output"]) == via and via.is_file()
    again = client.call("render", render_args(sample_dng, via, overwrite=True))  # the raw from the cache
    assert again["recipe"] == result["recipe"]
    assert list(again["timings"]) == ["detail"]  # resumed from the full-size checkpoint after upsampling
    status = client.status()
    assert status["cache"]["hits"] >= 1 and status["renders"]["hits"] == 1
    local = tmp_path / "local.tif"
    engine.render_file(sample_dng, local, options=engine.OutputOptions(bits=16))
    a, b = tifffile.imread(via), tifffile.imread(local)
    assert a.dtype == np.uint16 and a.shape == b.shape
    assert np.array_equal(a, b)
    assert stat.S_IMODE(via.stat().st_mode) == stat.S_IMODE(local.stat().st_mode)  # the client's umask
    # A changed exposure resumes after the colour stage, and gives what a render in this process gives.
    brighter = client.call("render", {**render_args(sample_dng, via, overwrite=True), "changes": {"exposure": 0.5}})
    assert list(brighter["timings"]) == ["photofinish", "upsample", "detail"]
    engine.render_file(sample_dng, local, options=engine.OutputOptions(bits=16, overwrite=True),
                       changes={"exposure": 0.5})
    assert np.array_equal(tifffile.imread(via), tifffile.imread(local))
    # the saturate kernel too (compiled with fastmath, a tester's service render differed by 1/65535 in 207 pixels)
    for saturation in (60, -60):
        client.call("render", {**render_args(sample_dng, via, overwrite=True), "changes": {"saturation": saturation}})
        engine.render_file(sample_dng, local, options=engine.OutputOptions(bits=16, overwrite=True),
                           changes={"saturation": saturation})
        assert np.array_equal(tifffile.imread(via), tifffile.imread(local)), saturation


def test_open_through_the_service_equals_open_in_process(runtime: Path, sample_dng: Path, tmp_path: Path) -> None:
    from hostplug.handoff import open_file

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        shutil.copy(sample_dng, tmp_path / name / "IMG_1.dng")
    via = client.open_file(tmp_path / "a" / "IMG_1.dng", changes={"exposure": 0.5})  # starts the service
    assert via is not None and client.status() is not None
    local = open_file(tmp_path / "b" / "IMG_1.dng", changes={"exposure": 0.5})
    assert Path(via["output"]).name == Path(local["output"]).name == "IMG_1_hostplug.tif"
    assert via["mode"] == local["mode"] == "render" and via.keys() == local.keys()
    assert np.array_equal(tifffile.imread(via["output"]), tifffile.imread(local["output"]))
    # Opened again with another exposure, the raw and its checkpoints come from the service's caches.
    again = client.open_file(tmp_path / "a" / "IMG_1.dng", changes={"exposure": 0.8})
    local = open_file(tmp_path / "b" / "IMG_1.dng", changes={"exposure": 0.8})
    assert list(again["timings"]) == ["photofinish", "upsample", "detail"]
    assert np.array_equal(tifffile.imread(again["output"]), tifffile.imread(local["output"]))


def test_relative_paths_are_the_clients(runtime: Path, sample_dng: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    start_service(runtime)
    shutil.copy(sample_dng, tmp_path / "in.dng")
    monkeypatch.chdir(tmp_path)
    result = client.call("render", render_args(Path("in.dng"), Path("out.tif")))
    assert result["output"] == "out.tif" and (tmp_path / "out.tif").is_file()


def test_an_engine_error_comes_back_as_one_line(runtime: Path, tmp_path: Path) -> None:
    start_service(runtime)
    junk = tmp_path / "junk.dng"
    junk.write_bytes(b"II*\0" + b"\x17" * 4096)
    with pytest.raises(client.RemoteError) as caught:
        client.call("render", render_args(junk, tmp_path / "junk.tif"))
    assert "\n" not in str(caught.value) and str(junk) in str(caught.value)
    assert caught.value.exit_code == 3
    with pytest.raises(client.RemoteError) as caught:
        client.call("render", render_args(tmp_path / "missing.dng", tmp_path / "m.tif"))
    assert caught.value.exit_code == 2 and "no such file" in str(caught.value)
    assert not (tmp_path / "junk.tif").exists()
    assert client.status() is not None  # still serving


def test_the_clients_engine_settings_apply(runtime: Path, sample_dng: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    start_service(runtime)
    assert client.call("render", render_args(sample_dng, tmp_path / "a.tif"))["output"]
    monkeypatch.setenv("HOSTPLUG_MAX_PIXELS", "1000")  # this client's limit, the raw already in the cache
    with pytest.raises(client.RemoteError, match="HOSTPLUG_MAX_PIXELS"):
        client.call("render", render_args(sample_dng, tmp_path / "b.tif"))
    monkeypatch.delenv("HOSTPLUG_MAX_PIXELS")
    assert client.call("render", render_args(sample_dng, tmp_path / "c.tif"))["output"]


def test_a_client_killed_mid_request_does_not_kill_the_service(runtime: Path, sample_dng: Path,
                                                               tmp_path: Path) -> None:
    pid = start_service(runtime)["pid"]
    code = ("import sys; from hostplug.service import client; "
            "client.call('render', {'input': sys.argv[1], 'output': sys.argv[2], 'options': {}})")
    killed = subprocess.Popen([sys.executable, "-c", code, str(sample_dng), str(tmp_path / "a.tif")])
    log = service_folder(runtime) / protocol.LOG_NAME
    assert wait_for(lambda: log.read_text().count("render started") >= 1, timeout=60)
    killed.kill()
    killed.wait()
    # A second render queued behind it is answered, and the service is still the same process.
    assert client.call("render", render_args(sample_dng, tmp_path / "b.tif"))["output"]
    assert client.status()["pid"] == pid and alive(pid)


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_killing_the_service_mid_render_leaves_no_partial_output(runtime: Path, tmp_path: Path,
                                                                 how: signal.Signals) -> None:
    raw = need(SONY)  # 18 MP: seconds of rendering to interrupt
    pid = start_service(runtime)["pid"]
    target = tmp_path / "big.tif"
    answers: list[object] = []

    def ask() -> None:
        try:
            answers.append(client.call("render", render_args(raw, target)))
        except ServiceError as e:
            answers.append(e)

    thread = threading.Thread(target=ask)
    thread.start()
    log = service_folder(runtime) / protocol.LOG_NAME
    assert wait_for(lambda: "render started" in log.read_text(), timeout=60)
    time.sleep(1.0)
    os.kill(pid, how)
    thread.join(60)
    assert isinstance(answers[0], ServiceError)  # the client is told the service went away (it falls back)
    # Gone, and its socket closed: the main thread of a killed process is a zombie before its last thread has
    # given back the memory and closed the files (a connection in that window is reset).
    assert wait_for(lambda: not alive(pid) and not listening(service_folder(runtime) / SOCKET_NAME), timeout=30)
    assert not target.exists()
    client.call("ping", start=True)  # the next service removes a partial file a killed one left
    assert not target.exists() and not list(tmp_path.glob(".big.tif.*.part"))


def test_a_client_that_stops_waiting_for_a_stalled_service_keeps_its_own_output(
        runtime: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = need(SONY)  # 18 MP: seconds of rendering, so the stall lands mid-render
    pid = start_service(runtime)["pid"]
    target = tmp_path / "big.tif"
    log = service_folder(runtime) / protocol.LOG_NAME
    monkeypatch.setattr(client, "SILENCE_TIMEOUT_S", 2.0)
    answers: list[object] = []

    def ask() -> None:
        try:
            answers.append(client.call("render", render_args(raw, target, overwrite=True)))
        except ServiceError as e:
            answers.append(e)

    thread = threading.Thread(target=ask)
    thread.start()
    assert wait_for(lambda: "render started" in log.read_text(), timeout=60)
    os.kill(pid, signal.SIGSTOP)  # stalled mid-render: the client hears nothing
    try:
        thread.join(60)
        assert isinstance(answers[0], client.NotAnsweringError)  # it stopped waiting, and renders in its own process:
        assert answers[0].pid == pid and "went silent for 2 s (" in str(answers[0])
        target.write_bytes(b"the client's own render")
    finally:
        os.kill(pid, signal.SIGCONT)
    # The service, running again, stops that render at its next stage instead of replacing the client's file.
    assert wait_for(lambda: "render stopped after" in log.read_text(), timeout=120), log.read_text()[-2000:]
    assert "its client left" in log.read_text()
    assert target.read_bytes() == b"the client's own render"
    assert not list(tmp_path.glob(".big.tif.*.part"))
    assert client.status()["pid"] == pid  # and serves on


def test_a_render_stuck_in_a_running_service_is_passed_by(runtime: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # a deadlocked render (a raw on a hung NFS mount): its connection thread went on saying "working" every
    # second, so its client, and every client queued behind it, waited for ever
    script = ("import sys, threading; from hostplug.service import server; server.STUCK_AFTER_S = 1.0; "
              "server.Service.render = lambda self, args: threading.Event().wait(); sys.exit(server.main())")
    process = subprocess.Popen([sys.executable, "-c", script, "--no-warm-up"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: client.status() is not None, timeout=60)
        monkeypatch.setattr(client, "SILENCE_TIMEOUT_S", 2.0)
        started = time.monotonic()
        with pytest.raises(client.NotAnsweringError):
            client.call("render", render_args(tmp_path / "a.dng", tmp_path / "a.tif"))
        assert time.monotonic() - started < 30  # 1 s to be stuck, 2 s of silence: then it renders in-process
        assert client.status()["stuck"] is True  # what --status shows
    finally:
        process.kill()
        process.wait()


def test_a_client_that_stops_reading_its_preview_does_not_hold_the_service(runtime: Path) -> None:
    # the send had no time limit: the service kept the preview in memory and outlived its idle timeout
    script = ("import sys; from hostplug.service import server; server.ANSWER_SEND_TIMEOUT_S = 1.0; "
              "sys.exit(server.main())")
    process = subprocess.Popen([sys.executable, "-c", script, "--no-warm-up", "--idle-timeout", "2"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: client.status() is not None, timeout=60)
        with socket.socket(socket.AF_UNIX) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(str(service_folder(runtime) / SOCKET_NAME))
            protocol.send_message(sock, client.request("preview", {"input": str(SAMPLE_DNG), "long_edge": 900,
                                                                   "format": "rgb8"}))
            # never read: the 1.6 MB of pixels cannot all be sent
            assert process.wait(timeout=120) == 0  # dropped after 1 s, then idle for 2 s: it exits
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_partial_file_left_by_a_killed_service_is_removed_at_the_next_start(runtime: Path,
                                                                             tmp_path: Path) -> None:
    folder = protocol.service_dir()
    target = tmp_path / "IMG_1.tif"
    partial = tmp_path / ".IMG_1.tif.0123abcd.part"  # the killed service's, named in its journal
    fallback = tmp_path / ".IMG_1.tif.89abcdef.part"  # its client's, rendering the same output itself right now
    unrelated = tmp_path / ".IMG_1.tif.keep"
    for path in (partial, fallback, unrelated):
        path.write_bytes(b"half")
    journal = {"output": str(target), "pid": 1, "partials": [str(partial), str(tmp_path / "other.tif")]}
    (folder / "rendering.json").write_text(json.dumps(journal))
    start_service(runtime)
    assert not partial.exists()
    assert fallback.exists() and unrelated.exists() and not (tmp_path / "other.tif").exists()
    assert not (folder / "rendering.json").exists()


def test_a_journal_that_names_no_partial_file_removes_none(runtime: Path, tmp_path: Path) -> None:
    folder = protocol.service_dir()
    someone_elses = tmp_path / ".IMG_1.tif.0123abcd.part"
    someone_elses.write_bytes(b"half")
    (folder / "rendering.json").write_text(json.dumps({"output": str(tmp_path / "IMG_1.tif")}))  # killed before writing
    start_service(runtime)
    assert someone_elses.exists() and not (folder / "rendering.json").exists()


def _stop_while_writing(runtime: Path, target: Path) -> tuple[int, Path]:
    """Wait until the service writes ``target`` and stop it (SIGSTOP) there: its pid and the partial file being
    written (which exists: the service was stopped before publishing it)."""
    journal = service_folder(runtime) / "rendering.json"

    def partials() -> list[str]:
        with contextlib.suppress(OSError, ValueError):
            return json.loads(journal.read_text()).get("partials", [])
        return []

    assert wait_for(partials, timeout=240, interval=0.01), "the service never started writing"
    pid = json.loads(journal.read_text())["pid"]
    os.kill(pid, signal.SIGSTOP)
    partial = Path(partials()[-1])
    if not partial.exists():  # published in the moment between looking and stopping: too fast to test here
        os.kill(pid, signal.SIGCONT)
        pytest.skip("the service wrote the whole output before it could be stopped")
    return pid, partial


def test_a_killed_service_leaves_a_partial_that_a_client_writes_alone(runtime: Path, tmp_path: Path) -> None:
    raw = need(SONY)  # 18 MP: writing its 108 MB TIFF takes long enough to stop the service in the middle
    start_service(runtime)
    target = tmp_path / "race.tif"
    thread = threading.Thread(target=lambda: client.render(raw, target, options={"bits": 16}))
    thread.start()
    pid, partial = _stop_while_writing(runtime, target)
    os.kill(pid, signal.SIGKILL)
    thread.join(60)
    assert wait_for(lambda: not alive(pid), timeout=30)
    # The client that service left renders the output itself: its partial file exists while the next service starts.
    fallback = tmp_path / ".race.tif.89abcdef.part"
    fallback.write_bytes(b"the client's render, being written")
    start_service(runtime)
    assert not partial.exists()  # the killed service's own partial is removed,
    assert fallback.read_bytes() == b"the client's render, being written"  # the client's is not
    assert not target.exists()


def test_a_client_stopped_with_ctrl_c_while_the_service_writes_gets_no_output(runtime: Path,
                                                                             tmp_path: Path) -> None:
    raw = need(SONY)
    start_service(runtime)
    target = tmp_path / "kept.tif"
    target.write_bytes(b"the old render")
    command = [sys.executable, "-c", "from hostplug.cli import main; main()", "render", str(raw), "-o", str(target),
               "--overwrite", "--service"]
    render = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pid, partial = _stop_while_writing(runtime, target)
    try:
        render.send_signal(signal.SIGINT)  # the user's Ctrl-C, while the service is in the middle of writing
        assert render.wait(60) == 130
    finally:
        os.kill(pid, signal.SIGCONT)
    log = service_folder(runtime) / protocol.LOG_NAME
    assert wait_for(lambda: "render stopped after" in log.read_text(), timeout=120), log.read_text()[-2000:]
    assert target.read_bytes() == b"the old render"  # as with --no-service: the old file stays, nothing new
    assert not partial.exists() and not list(tmp_path.glob(".kept.tif.*.part"))
    assert client.status()["pid"] == pid  # and it serves on


def test_the_raw_cache_is_bounded_and_sees_a_changed_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from hostplug.service.server import SourceCache

    opened: list[str] = []

    def fake_open(path: Path) -> SimpleNamespace:
        opened.append(Path(path).name)
        return SimpleNamespace(path=Path(path), sensor=np.zeros(100, dtype=np.uint8))  # 100 bytes each

    monkeypatch.setattr("engine.io.source.open_source", fake_open)
    files = []
    for index in range(4):
        files.append(tmp_path / f"{index}.raw")
        files[-1].write_bytes(b"x" * (index + 1))
    cache = SourceCache(max_count=2, max_bytes=1000)
    assert cache.open(files[0]).path == files[0] and cache.open(files[0]) is not None
    assert opened == ["0.raw"]  # the second from the cache
    cache.open(files[1])
    cache.open(files[2])  # over the count: the least recently used (0) goes
    assert cache.stats()["sources"] == 2
    cache.open(files[0])
    assert opened == ["0.raw", "1.raw", "2.raw", "0.raw"]
    files[0].write_bytes(b"changed, and longer")  # a new size: read again
    cache.open(files[0])
    assert opened[-1] == "0.raw" and len(opened) == 5
    small = SourceCache(max_count=10, max_bytes=250)  # two of 100 bytes fit, the third pushes the first out
    for path in files[:3]:
        small.open(path)
    assert small.stats()["sources"] == 2 and small.stats()["bytes"] == 200


def test_the_client_imports_nothing_heavy() -> None:
    code = ("import sys; from hostplug.service import client; "
            "print(sorted(m for m in ('torch', 'numba', 'rawpy', 'numpy', 'cv2') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_service_can_be_disabled(runtime: Path, monkeypatch: pytest.MonkeyPatch, sample_dng: Path,
                                     tmp_path: Path) -> None:
    start_service(runtime)
    monkeypatch.setenv(client.ENV_DISABLE, "1")
    assert client.render(sample_dng, tmp_path / "x.tif", start=True) is None
    assert not (tmp_path / "x.tif").exists()



# ----- the commands ---------------------------------------------------------------------------------------------


def test_hostplug_render_uses_a_running_service_and_equals_no_service(runtime: Path, sample_dng: Path,
                                                                     tmp_path: Path) -> None:
    start_service(runtime)
    via, local = tmp_path / "via.tif", tmp_path / "local.tif"
    done = hostplug_process("render", sample_dng, "-o", via, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["output"] == str(via)
    assert client.status()["cache"]["misses"] == 1  # the service rendered it
    done = hostplug_process("render", sample_dng, "-o", local, "--no-service")
    assert done.returncode == 0, done.stderr
    assert client.status()["cache"]["misses"] == 1  # ... and not this one
    assert np.array_equal(tifffile.imread(via), tifffile.imread(local))


def test_hostplug_render_without_a_service_renders_in_process_and_starts_none(runtime: Path, sample_dng: Path,
                                                                              tmp_path: Path) -> None:
    done = hostplug_process("render", sample_dng, "-o", tmp_path / "x.tif")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "x.tif").is_file()
    assert not service_pids(runtime) and not service_folder(runtime).exists()


def test_hostplug_render_service_flag_starts_one(runtime: Path, sample_dng: Path, tmp_path: Path) -> None:
    done = hostplug_process("render", "--service", sample_dng, "-o", tmp_path / "x.tif")
    assert done.returncode == 0, done.stderr
    assert client.status()["cache"]["misses"] == 1


Process = subprocess.CompletedProcess[str]


def _junk_rendered_both_ways(tmp_path: Path, name: str) -> tuple[Path, Process, Process]:
    """A damaged DNG named ``name``, rendered through the running service and in the client's own process."""
    junk = tmp_path / name
    junk.write_bytes(b"II*\0" + b"\x17" * 4096)
    through = hostplug_process("render", junk, "-o", tmp_path / "a.tif")
    local = hostplug_process("render", junk, "-o", tmp_path / "b.tif", "--no-service")
    return junk, through, local


def test_an_engine_error_through_the_service_is_one_line_and_a_nonzero_exit(runtime: Path, tmp_path: Path) -> None:
    start_service(runtime)
    junk, through, local = _junk_rendered_both_ways(tmp_path, "junk.dng")
    assert through.returncode == local.returncode != 0
    lines = error_lines(through.stderr)
    assert len(lines) == 1 and lines[0].startswith("hostplug: error: ") and str(junk) in lines[0]
    assert lines == error_lines(local.stderr)
    assert "render failed" in (service_folder(runtime) / protocol.LOG_NAME).read_text()  # it went through it
    # named as typed, relative to the client's folder, through the service as in the client's own process
    through = hostplug_process("render", junk.name, "-o", "c.tif", cwd=tmp_path)
    local = hostplug_process("render", junk.name, "-o", "d.tif", "--no-service", cwd=tmp_path)
    assert error_lines(through.stderr) == error_lines(local.stderr)
    assert error_lines(through.stderr)[0].startswith(f"hostplug: error: {junk.name}: ")


def test_a_line_break_in_a_file_name_stays_escaped_through_the_service(runtime: Path, tmp_path: Path) -> None:
    # the service flattened it to a space in the error and wrote it raw in its log, where it faked a log line
    start_service(runtime)
    _junk, through, local = _junk_rendered_both_ways(tmp_path, "junk\nrender done.dng")
    assert error_lines(through.stderr) == error_lines(local.stderr)
    assert "junk\\nrender done.dng" in error_lines(through.stderr)[0]
    log = (service_folder(runtime) / protocol.LOG_NAME).read_text()
    assert "junk\\nrender done.dng" in log and not any(line.startswith("render done") for line in log.splitlines())


def test_no_service_never_touches_the_socket(runtime: Path, sample_dng: Path, tmp_path: Path) -> None:
    folder = protocol.service_dir()
    fake = socket.socket(socket.AF_UNIX)  # a "service" that counts connections and answers none
    fake.bind(str(folder / SOCKET_NAME))
    fake.listen(8)
    fake.setblocking(False)
    try:
        done = hostplug_process("render", sample_dng, "-o", tmp_path / "a.tif", "--no-service")
        assert done.returncode == 0, done.stderr
        with pytest.raises(BlockingIOError):
            fake.accept()  # nobody connected
        # Without the flag the command does try it; the fake hangs up, and the command renders in-process.
        closer = threading.Thread(target=lambda: _hang_up(fake))
        closer.start()
        done = hostplug_process("render", sample_dng, "-o", tmp_path / "b.tif")
        closer.join()
        assert done.returncode == 0, done.stderr
        assert (tmp_path / "b.tif").is_file()
    finally:
        fake.close()


def _hang_up(listener: socket.socket) -> None:
    """Accept one connection and close it at once: a service that dies with the request."""
    listener.setblocking(True)
    listener.settimeout(120)
    conn, _ = listener.accept()
    conn.close()


def test_hostplug_open_starts_the_service(runtime: Path, sample_dng: Path, tmp_path: Path) -> None:
    raw = Path(shutil.copy(sample_dng, tmp_path / "IMG_2.dng"))
    done = hostplug_process("open", raw)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path / "IMG_2_hostplug.tif")
    assert client.status() is not None
    done = hostplug_process("open", raw, "--no-service", "--json")
    assert done.returncode == 0, done.stderr


def test_hostplug_serve_status_and_stop(runtime: Path) -> None:
    for flag in ("--status", "--stop"):
        done = hostplug_process("serve", flag)
        assert done.returncode == 1
        assert error_lines(done.stderr)[0].startswith("hostplug: error: no render service is running")
    pid = start_service(runtime)["pid"]
    done = hostplug_process("serve", "--status")
    assert done.returncode == 0 and json.loads(done.stdout)["pid"] == pid
    assert hostplug_process("serve", "--stop").returncode == 0
    assert wait_for(lambda: not alive(pid), timeout=30)


def test_hostplug_serve_in_the_foreground_exits_when_idle(runtime: Path) -> None:
    done = subprocess.run([sys.executable, "-c", "from hostplug.cli import main; main()", "serve",
                           "--idle-timeout", "1"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "serving on" in done.stderr and "stopped" in done.stderr
    assert not (service_folder(runtime) / SOCKET_NAME).exists()
    # why it stopped (a tester could not tell an idle exit from a kill), and idle counted from when it serves
    assert ": idle for 1 s" in done.stderr.splitlines()[-1]


def test_a_service_whose_socket_was_removed_listens_again(runtime: Path) -> None:
    """A tester's: with the socket file removed, the running service (holding the lock) was unreachable, and every
    command waited 30 s for a new one that could not start."""
    pid = start_service(runtime)["pid"]
    (service_folder(runtime) / SOCKET_NAME).unlink()
    assert wait_for(lambda: (service_folder(runtime) / SOCKET_NAME).exists(), timeout=10)
    assert client.call("ping")["pid"] == pid


def test_a_file_where_the_socket_goes_is_kept_and_named(runtime: Path) -> None:
    """A tester's file at the socket's path was deleted without a word."""
    folder = service_folder(runtime)
    folder.mkdir(mode=0o700)
    (folder / SOCKET_NAME).write_text("precious")
    done = hostplug_process("serve", "--idle-timeout", "1")
    assert done.returncode == 1 and "is a file, not the render service's socket; move it away" in done.stderr
    assert (folder / SOCKET_NAME).read_text() == "precious"


@pytest.mark.parametrize(("value", "off"), [("1", True), ("yes", True), ("false", False), ("no", False),
                                             ("0", False), ("", False), ("OFF", False)])
def test_hostplug_no_service_reads_as_people_write_it(monkeypatch: pytest.MonkeyPatch, value: str,
                                                      off: bool) -> None:
    monkeypatch.setenv(client.ENV_DISABLE, value)
    assert client.disabled() is off


def test_a_second_hostplug_serve_says_one_is_running(runtime: Path) -> None:
    pid = start_service(runtime)["pid"]
    done = hostplug_process("serve")
    assert done.returncode == 1
    assert error_lines(done.stderr) == [f"hostplug: error: a render service is already running for this user "
                                        f"(pid {pid}); 'hostplug serve --stop' stops it"]
    assert done.stderr.count("\n") == 1 and client.status()["pid"] == pid


def test_a_busy_service_says_so_and_a_stopped_one_is_passed_by(runtime: Path, sample_dng: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    pid = start_service(runtime)["pid"]
    frames: list[dict] = []

    def counted(sock: socket.socket) -> dict:
        frames.append(protocol.receive_message(sock))
        return frames[-1]

    monkeypatch.setattr(client, "receive_message", counted)
    assert client.render(sample_dng, tmp_path / "via.tif") is not None
    assert frames[0] == {"working": True} and frames[-1]["ok"]  # heard at once, then answered
    os.kill(pid, signal.SIGSTOP)  # stopped (or hung): it accepts connections but never answers
    try:
        start = time.monotonic()
        assert client.status() is None
        assert time.monotonic() - start < client.FIRST_FRAME_TIMEOUT_S + 5
        done = hostplug_process("serve", "--status")
        assert done.returncode == 1
        assert error_lines(done.stderr) == [f"hostplug: error: the render service (pid {pid}) does not answer "
                                            "(stopped or hung?); nothing came in 5 s"]
        done = hostplug_process("render", sample_dng, "-o", tmp_path / "here.tif")
        assert done.returncode == 0, done.stderr  # rendered in the client's own process instead, saying why it waited
        assert error_lines(done.stderr)[0] == (
            f"hostplug: note: the render service (pid {pid}) did not answer in 5 s; rendering in this process "
            f"instead (stopped or hung? 'kill -9 {pid}' ends it)")
        assert tifffile.imread(tmp_path / "here.tif").shape == tifffile.imread(tmp_path / "via.tif").shape
        second = Path(shutil.copy(sample_dng, tmp_path / "second.dng"))
        (tmp_path / "batch").mkdir()
        done = hostplug_process("render", sample_dng, second, "--out-dir", tmp_path / "batch")
        assert done.returncode == 0, done.stderr
        assert done.stderr.count("hostplug: note:") == 1  # a batch waits for it once, not once per file
    finally:
        os.kill(pid, signal.SIGCONT)


def test_the_write_journal_names_the_folder_a_path_through_a_link_and_dotdot_really_is(tmp_path: Path) -> None:
    # link/../out.tif is out.tif beside the link's target's folder, where the writer puts its partial: the journal
    # named the folder the link is in, so a service killed mid-write left the partial for good
    from hostplug.service.server import _real

    (tmp_path / "real" / "sub").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real" / "sub")
    assert _real(tmp_path / "link" / ".." / ".out.tif.1a2b.part") == str(tmp_path / "real" / ".out.tif.1a2b.part")


def test_a_stopped_client_waits_for_the_service_to_drop_its_partial_output(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # the client said "nothing half-written was left" and exited while the service's .part was still there
    import threading

    from engine.output.publish import partial_name

    output = tmp_path / "IMG_0001.tif"
    partial = tmp_path / partial_name(output.name)
    partial.write_bytes(b"half")

    def interrupted(op: str, args: dict, start: bool) -> None:
        threading.Timer(0.3, partial.unlink).start()  # the service, seeing its client gone, removes it
        raise KeyboardInterrupt

    monkeypatch.setattr(client, "_or_here", interrupted)
    monkeypatch.setattr(client, "disabled", lambda: False)
    with pytest.raises(KeyboardInterrupt):
        client.render(tmp_path / "IMG_0001.dng", output)
    assert not partial.exists()


# ----- bad conditions around the service: each is one line, and the commands still work ------------------------


def test_a_service_that_cannot_write_its_journal_still_renders(runtime: Path, sample_dng: Path,
                                                              tmp_path: Path) -> None:
    # a full runtime folder (ENOSPC) made every render through the service fail, though the output's disk was fine
    start_service(runtime)
    folder = service_folder(runtime)
    (folder / "rendering.json.new").mkdir()  # the journal cannot be written: as with no space left
    result = client.call("render", render_args(sample_dng, tmp_path / "a.tif"))
    assert Path(result["output"]).is_file()
    assert "cannot record the output being written" in (folder / protocol.LOG_NAME).read_text()
    assert not (folder / "rendering.json").exists()


def test_a_service_log_that_cannot_be_written_renders_in_process_with_one_note(runtime: Path, sample_dng: Path,
                                                                               tmp_path: Path) -> None:
    log = protocol.service_dir() / protocol.LOG_NAME
    log.mkdir()  # or a full runtime folder: the client could not start a service, and crashed with a traceback
    raw = Path(shutil.copy(sample_dng, tmp_path / "IMG_3.dng"))
    done = hostplug_process("open", raw)
    assert done.returncode == 0, done.stderr
    assert error_lines(done.stderr) == [f"hostplug: note: the render service cannot be started: cannot write its "
                                        f"log {log} (Is a directory); rendering in this process instead"]
    assert (tmp_path / "IMG_3_hostplug.tif").is_file() and not service_pids(runtime)


@pytest.mark.parametrize("blocked", ["render.sock", "serve.lock", "link"])
def test_hostplug_serve_says_in_one_line_why_it_cannot_serve(runtime: Path, blocked: str) -> None:
    # a folder where the socket or lock goes gave a traceback (after a misleading "stopped" line); a folder that
    # is a link, a timestamped log line
    folder = service_folder(runtime)
    if blocked == "link":
        (runtime / "elsewhere").mkdir(mode=0o700)
        folder.symlink_to(runtime / "elsewhere")
        expected = f"hostplug: error: {folder} is a symbolic link, not a folder"
    else:
        (folder / blocked).mkdir(parents=True)
        expected = f"hostplug: error: cannot use {folder / blocked} "
    done = hostplug_process("serve", "--idle-timeout", "1")
    assert done.returncode == 1
    assert len(error_lines(done.stderr)) == 1 and done.stderr.startswith(expected), done.stderr
    assert blocked == "link" or done.stderr.rstrip().endswith("remove it")


def test_a_runtime_folder_too_long_for_a_socket_is_not_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from hostplug.service.server import Service

    long = tmp_path / ("L" * (protocol.MAX_SOCKET_PATH - len(str(tmp_path))))
    long.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(long))
    assert protocol.service_dir(create=False) == Path("/tmp") / f"hostplug-{os.getuid()}"  # the documented fallback
    (long / "hostplug").mkdir(mode=0o700)
    with pytest.raises(ServiceError, match="is longer than the 107 bytes a Unix socket allows; set a shorter "
                                           "XDG_RUNTIME_DIR"):
        Service(long / "hostplug").bind()  # a service given such a folder says so, in one line


def test_a_client_that_loses_its_service_removes_the_partial_it_left(runtime: Path, tmp_path: Path) -> None:
    # the killed service's hidden partial file stayed beside the output until some later command started a service
    raw = need(SONY)
    start_service(runtime)
    target = tmp_path / "lost.tif"
    results: list[object] = []
    thread = threading.Thread(target=lambda: results.append(client._or_here("render", render_args(raw, target),
                                                                            start=False)))
    thread.start()
    pid, partial = _stop_while_writing(runtime, target)
    os.kill(pid, signal.SIGKILL)
    thread.join(60)
    assert results == [None]  # the client renders it in its own process now
    assert not partial.exists() and not target.exists() and not service_pids(runtime)


def test_the_partials_of_a_live_service_are_never_removed_by_a_client(runtime: Path, tmp_path: Path) -> None:
    from hostplug.service.server import LOCK_NAME, remove_leftovers_of

    folder = protocol.service_dir()
    partial = tmp_path / ".IMG_1.tif.0123abcd.part"
    partial.write_bytes(b"half")
    journal = folder / "rendering.json"
    journal.write_text(json.dumps({"output": str(tmp_path / "IMG_1.tif"), "pid": os.getpid(),
                                   "partials": [str(partial)]}))
    with open(folder / LOCK_NAME, "a+") as held:  # a live service (this process) holds the lock
        import fcntl

        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        remove_leftovers_of(os.getpid(), folder)
        assert partial.exists() and journal.exists()
    dead = subprocess.Popen(["true"])
    dead.wait()
    remove_leftovers_of(dead.pid, folder)  # the lock is free: the service that held it is gone
    assert not partial.exists() and not journal.exists()


@pytest.mark.parametrize("flags", [(), ("--no-service",)])
def test_open_on_a_device_that_is_not_here_is_refused_before_any_service_starts(runtime: Path, sample_dng: Path,
                                                                                flags: tuple[str, ...]) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    # through the service it said "device cuda: ...; use device cpu", after starting a service just to say it
    result = hostplug("open", sample_dng, "--device", "cuda", *flags)
    assert result.exit_code == 2
    assert error_lines(result.stderr) == ["hostplug: error: --device cuda: no CUDA GPU is available here; use "
                                          "--device cpu"]
    assert not service_pids(runtime) and not service_folder(runtime).exists()


def test_a_bad_value_from_the_environment_names_the_variable(runtime: Path) -> None:
    # a tester's HOSTPLUG_SERVICE_CACHE_MB=xyz was reported as a bad --cache-mb, an option they had not given
    from hostplug.service.server import ENV_CACHE_MB

    result = CliRunner().invoke(main, ["serve", "--idle-timeout", "1"], env={ENV_CACHE_MB: "xyz"})
    assert result.exit_code == 2 and f"(from the environment variable {ENV_CACHE_MB})" in result.stderr
    given = CliRunner().invoke(main, ["serve", "--cache-mb", "abc"], env={ENV_CACHE_MB: "xyz"})
    assert given.exit_code == 2 and "environment" not in given.stderr  # the option given wins, and is named


def test_a_cache_larger_than_the_machine_s_memory_is_refused(runtime: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a tester's HOSTPLUG_SERVICE_CACHE_MB=100000000 was taken: the service would grow until killed for memory
    from hostplug.service.server import ENV_CACHE_MB, cache_mb_from_env, cache_mb_limit

    too_much = str(cache_mb_limit() + 1)
    result = CliRunner().invoke(main, ["serve", "--idle-timeout", "1"], env={ENV_CACHE_MB: too_much})
    assert result.exit_code == 2 and "this machine's memory" in result.stderr and ENV_CACHE_MB in result.stderr
    given = CliRunner().invoke(main, ["serve", "--cache-mb", too_much])
    assert given.exit_code == 2 and "--cache-mb" in given.stderr and "more than this machine's memory" in given.stderr
    assert not service_pids(runtime)
    monkeypatch.setenv(ENV_CACHE_MB, str(cache_mb_limit()))
    assert cache_mb_from_env() == cache_mb_limit()  # all of it is the user's choice to make


@pytest.mark.parametrize("seconds", ["abc", "nan", "inf", "0.5"])
def test_a_bad_idle_timeout_is_refused_not_passed_over(runtime: Path, seconds: str) -> None:
    # a tester's HOSTPLUG_SERVICE_IDLE_TIMEOUT=abc started a service of the default timeout, inf one that never
    # exited, nan one of 1 s; --idle-timeout nan started one that never exited and whose status was no JSON
    from hostplug.service.server import ENV_IDLE, idle_timeout_from_env

    result = CliRunner().invoke(main, ["serve"], env={ENV_IDLE: seconds})
    assert result.exit_code == 2 and f"(from the environment variable {ENV_IDLE})" in result.stderr
    assert CliRunner().invoke(main, ["serve", "--idle-timeout", seconds]).exit_code == 2
    status = CliRunner().invoke(main, ["serve", "--status"], env={ENV_IDLE: seconds})
    assert status.exit_code == 1 and "no render service is running" in status.stderr  # asked, not refused
    with pytest.MonkeyPatch.context() as env:
        env.setenv(ENV_IDLE, seconds)
        assert idle_timeout_from_env() is None  # a service a client starts refuses it, and the client renders
    assert not service_pids(runtime)


def test_an_output_the_service_wrote_before_it_went_away_is_the_renders_result(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tester's: the service, killed between naming the output and answering, left a whole output, and the
    render in this process that followed failed with "exists; pass --overwrite" (exit 5)."""
    import engine

    monkeypatch.delenv(client.ENV_DISABLE, raising=False)
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")  # the raw named through a link (a reviewer's)
    shutil.copy(SAMPLE_DNG, tmp_path / "real" / "a.dng")
    raw = tmp_path / "link" / "a.dng"
    out = tmp_path / "a.jpg"

    def written_then_lost(op: str, args: dict, start: bool = False) -> dict:
        engine.render_file(args["input"], args["output"], options=engine.OutputOptions(long_edge=64))
        raise client.ServiceLostError("the render service (pid 0) went away during the request")

    monkeypatch.setattr(client, "call", written_then_lost)
    monkeypatch.setattr(client, "_passed_by", None)
    result = hostplug("render", raw, "-o", out, "--long-edge", "64", "--service", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[-1])["output"] == str(out)
    assert "had finished" in result.stderr and out.exists()
    other = Path(shutil.copy(SAMPLE_DNG, tmp_path / "b.dng"))  # a file there that is not this input's render
    (tmp_path / "b.jpg").write_bytes(out.read_bytes())
    monkeypatch.setattr(client, "call", lambda *a, **k: (_ for _ in ()).throw(client.ServiceLostError("lost")))
    result = hostplug("render", other, "-o", tmp_path / "b.jpg", "--long-edge", "64", "--service")
    assert result.exit_code == 5 and "exists" in result.stderr
