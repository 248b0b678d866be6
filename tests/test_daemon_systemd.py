"""sd_notify: readiness, status, watchdog and stopping messages reach systemd's socket."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from hostplug.daemon.systemd import notify, watchdog_interval

UNIT = Path(__file__).resolve().parents[1] / "integrations" / "systemd" / "hostplug-watch.service"


def test_notify_sends_one_datagram_to_the_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(tmp_path / "notify"))
        monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
        for message in ("READY=1\nSTATUS=watching", "WATCHDOG=1", "STOPPING=1"):
            assert notify(message)
            assert server.recv(4096).decode() == message


def test_notify_reaches_an_abstract_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"hostplug-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify("READY=1")
        assert server.recv(64) == b"READY=1"


def test_notify_is_a_no_op_outside_systemd(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1") is False
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))
    assert notify("READY=1") is False


def test_watchdog_pings_at_half_the_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", "1")  # meant for another process
    assert watchdog_interval() is None
    monkeypatch.delenv("WATCHDOG_USEC")
    assert watchdog_interval() is None


def test_unit_runs_the_daemon_as_a_notify_service_with_a_watchdog() -> None:
    text = UNIT.read_text()
    for line in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "ExecStart=", "watch --config",
                 "KillMode=mixed"):
        assert line in text


def test_unit_says_it_is_a_user_unit_and_how_its_stop_timeout_relates_to_the_grace_period() -> None:
    # it said "user or system unit" but used %h (root's home as a system unit) and had no User=; and its
    # TimeoutStopSec=120 SIGKILLed a graceful stop of a grace_seconds up to 3600
    text = UNIT.read_text()
    assert "user or system unit" not in text and "systemd user service" in text and "User=" in text
    assert "grace_seconds + 30 s" in text and "EXTEND_TIMEOUT_USEC" in text
    # in a system unit %E is /etc, not root's ~/.config (only %h is root's: /root)
    assert "%h and %E would be root's" not in text and "%E is /etc" in text
