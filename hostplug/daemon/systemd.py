"""systemd's notification protocol (sd_notify), without libsystemd: one datagram to ``$NOTIFY_SOCKET``.

Messages the daemon sends: ``READY=1`` once it watches its folders, ``STATUS=...`` with its counts,
``WATCHDOG=1`` at half the unit's ``WatchdogSec`` (while its main loop turns), ``STOPPING=1`` on SIGTERM, and
``EXTEND_TIMEOUT_USEC=`` once it stops, so that a ``grace_seconds`` above the unit's ``TimeoutStopSec`` is kept.
"""

from __future__ import annotations

import os
import socket


def notify(message: str, socket_path: str | None = None) -> bool:
    """Send ``message`` (``KEY=VALUE`` lines) to systemd; False when not run by systemd or the send failed."""
    address = socket_path if socket_path is not None else os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError:
        return False
    return True


def watchdog_interval() -> float | None:
    """Seconds between ``WATCHDOG=1`` pings (half of ``$WATCHDOG_USEC``), or None when no watchdog is set."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid.isdigit() and int(pid) != os.getpid()):
        return None
    return int(usec) / 2e6
