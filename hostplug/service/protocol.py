"""What client and service share: where the socket lives, how a message is framed, who may connect.

Standard library only, so a client that imports it stays light (no numpy, torch, numba or rawpy).

**Where.** ``$XDG_RUNTIME_DIR/hostplug/`` when the runtime folder is usable (a folder owned by the user, not
writable by others unless sticky, with a path short enough for a Unix socket's), else ``/tmp/hostplug-<uid>/``.
The folder is mode 0700 and must be owned by the user; one that is not is refused, never used. It holds
``render.sock`` (the socket, mode 0700), ``serve.lock`` (held by the running service, so there is one per user)
and ``serve.log``.

**Framing.** One request and one response per connection, each a 4-byte big-endian length followed by that
many bytes of UTF-8 JSON (an object). A request is ``{"protocol": 1, "version": ..., "op": ..., "args": {...},
"cwd": ..., "env": {...}}``; a response is ``{"ok": true, "result": {...}}`` or ``{"ok": false, "error":
"one line", "exit_code": n}``. A successful response whose result has ``payload_bytes`` is followed by that many
raw bytes on the same connection (a preview's pixels, which would be wasteful as JSON).

**Who.** The service accepts a connection only from a process of its own user (``SO_PEERCRED``), on top of
the folder's mode; a client checks the same of the service before it sends anything.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import socket
import stat
import struct
from pathlib import Path
from typing import Any

from hostplug.printable import printable

PROTOCOL = 2  # 2: "working" frames while a request waits or runs (WORKING_EVERY_S)
SOCKET_NAME = "render.sock"
LOCK_NAME = "serve.lock"
LOG_NAME = "serve.log"
FOLDER_NAME = "hostplug"  # in $XDG_RUNTIME_DIR
MAX_SOCKET_PATH = 107  # bytes: a Unix socket's path, in sockaddr_un's 108 with its terminating NUL
MAX_MESSAGE = 4 * 1024 * 1024  # a request or response is a few kilobytes of JSON; anything bigger is refused
MAX_PAYLOAD = 256 * 1024 * 1024  # a preview's pixels: 8-bit RGB at up to 8192 px on the long edge
DEFAULT_IDLE_TIMEOUT_S = 600.0
# While a request waits for the main thread or runs there, its connection thread sends a {"working": true} frame
# this often: a client then tells a busy service (frames keep coming) from a stopped or hung one (silence).
WORKING_EVERY_S = 1.0
# Full-size stage checkpoints the service keeps (MB): three per raw, 660 MB for an 18 MP one, 2.2 GB for 61 MP.
# Two 18 MP raws' worth: until the budget is full every checkpoint is fresh memory to fault in, and with 4 GB a
# series of new 18 MP raws opened through the service slowed from 5.8 to 9-11 s each before it settled (1.5 GB:
# 3.5-4.8 s from the fourth on; docs/service.md). ``hostplug serve --cache-mb``, or this variable for a service
# a command starts; 0 keeps none.
DEFAULT_CACHE_MB = 1536
ENV_CACHE_MB = "HOSTPLUG_SERVICE_CACHE_MB"
ENV_IDLE = "HOSTPLUG_SERVICE_IDLE_TIMEOUT"  # seconds; the idle timeout of a service a client starts
_HEADER = struct.Struct(">I")
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


class ServiceError(Exception):
    """The service cannot be used (no safe folder, not running, not reachable, broken reply): the caller
    renders in its own process instead."""


class ProtocolError(ServiceError):
    """A message that is not a well-formed frame of JSON, or a connection closed half-way."""


# ----- where ---------------------------------------------------------------------------------------------


def _usable_runtime_base(uid: int) -> Path | None:
    """``$XDG_RUNTIME_DIR`` when it names an existing folder owned by ``uid``, that no one else may rename or
    delete in (not writable by others, or sticky as /tmp is), and short enough for the socket's path in it
    (:data:`MAX_SOCKET_PATH`); else None."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if not base or not os.path.isabs(base):
        return None
    if len(os.fsencode(os.path.join(base, FOLDER_NAME, SOCKET_NAME))) > MAX_SOCKET_PATH:
        return None
    try:
        info = os.stat(base)
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid:
        return None
    if info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX:  # others could rename our folder away
        return None
    return Path(base)


def service_dir(create: bool = True) -> Path:
    """The user's service folder (see the module docstring), created mode 0700 when ``create``.

    ServiceError when it exists but is not a folder owned by this user, or cannot be made private.
    """
    uid = os.getuid()
    base = _usable_runtime_base(uid)
    folder = base / FOLDER_NAME if base is not None else Path("/tmp") / f"hostplug-{uid}"
    if create:
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            pass
        except OSError as e:
            raise ServiceError(f"cannot create the service folder {folder} ({e.strerror})") from e
    check_private_dir(folder, uid)
    return folder


def check_private_dir(folder: Path, uid: int | None = None) -> None:
    """ServiceError unless ``folder`` is a real folder (not a link) owned by ``uid`` with mode 0700; a folder
    of ours with a looser mode is tightened."""
    uid = os.getuid() if uid is None else uid
    try:
        info = os.lstat(folder)
    except FileNotFoundError as e:
        raise ServiceError(f"no render service is running ({folder} does not exist)") from e
    except OSError as e:
        raise ServiceError(f"cannot inspect {folder} ({e.strerror})") from e
    if stat.S_ISLNK(info.st_mode):  # another user could point it anywhere: only a folder of its own is trusted
        raise ServiceError(f"{folder} is a symbolic link, not a folder; not using it for the render service (remove "
                           "the link: the service makes the folder itself)")
    if not stat.S_ISDIR(info.st_mode):
        raise ServiceError(f"{folder} is not a folder; not using it for the render service (move it away: the "
                           "service makes the folder itself)")
    if info.st_uid != uid:
        raise ServiceError(f"{folder} belongs to uid {info.st_uid}, not {uid}; not using it for the render service "
                           "(have it removed, or set XDG_RUNTIME_DIR to a private folder of your own)")
    if stat.S_IMODE(info.st_mode) != 0o700:
        try:
            os.chmod(folder, 0o700)
        except OSError as e:
            raise ServiceError(f"cannot make {folder} private ({e.strerror})") from e


def socket_path(folder: Path | None = None) -> Path:
    """The service's socket (in :func:`service_dir` unless ``folder`` is given)."""
    return (folder if folder is not None else service_dir()) / SOCKET_NAME


# ----- which code ---------------------------------------------------------------------------------------

_CODE_SUFFIXES = (".py", ".json", ".safetensors", ".xmp", ".icc", ".icm")


def build_id() -> str:
    """The installed version plus a fingerprint of the engine's and hostplug's files (code, weights, presets:
    names, sizes, modification times), so a service started before an upgrade, an edit of an editable install
    or a retrained model is recognised as stale and replaced. A walk of the folders, a few milliseconds.

    ``HOSTPLUG_SERVICE_BUILD``, when set, is used instead (tests pin it: a tree others edit meanwhile would
    otherwise make every service they start stale)."""
    pinned = os.environ.get("HOSTPLUG_SERVICE_BUILD")
    if pinned:
        return pinned
    import engine
    import hostplug

    digest = hashlib.sha1()
    for package in (engine, hostplug):
        root = os.path.dirname(os.path.abspath(package.__file__ or ""))
        for folder, subfolders, files in os.walk(root):
            subfolders[:] = sorted(d for d in subfolders if d != "__pycache__" and not d.startswith("."))
            for name in sorted(files):
                if name.endswith(_CODE_SUFFIXES):
                    path = os.path.join(folder, name)
                    try:
                        info = os.stat(path)
                    except OSError:
                        continue
                    digest.update(f"{os.path.relpath(path, root)}:{info.st_size}:{info.st_mtime_ns}\n".encode())
    return f"{engine.__version__}+{digest.hexdigest()[:12]}"


# ----- who -----------------------------------------------------------------------------------------------


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a connected Unix socket, from the kernel."""
    data = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(data)
    return pid, uid, gid


def root_id() -> list[int]:
    """The root folder's device and inode: what tells a process in a chroot from one outside it (sent as a
    request's ``root`` by every version of the protocol)."""
    root = os.stat("/")
    return [root.st_dev, root.st_ino]


def process_context() -> list[str]:
    """What must be the same, beside the root folder, for the service to act for a process of its user (sent as a
    request's ``context``): the mount namespace (the same paths name other files there), and the process's groups
    and capabilities (a client that gave some up must not write with the service's rights). From Linux's /proc;
    empty where there is none."""
    try:
        namespace = str(os.stat("/proc/self/ns/mnt").st_ino)
        status = Path("/proc/self/status").read_text(encoding="ascii", errors="replace").splitlines()
    except OSError:
        return []
    wanted = ("Gid:", "Groups:", "CapEff:")
    return [namespace] + [" ".join(line.split()[1:]) for line in status if line.startswith(wanted)]


def peer_allowed(peer_uid: int, own_uid: int | None = None) -> bool:
    """Whether a peer with ``peer_uid`` may use (or serve) this user's service: only the same user, root
    included (root has its own service)."""
    return peer_uid == (os.getuid() if own_uid is None else own_uid)


# ----- framing -------------------------------------------------------------------------------------------


def send_message(sock: socket.socket, message: dict[str, Any]) -> None:
    """Send one frame: the length, then the JSON."""
    data = json.dumps(message, separators=(",", ":"), default=str).encode("utf-8")
    if len(data) > MAX_MESSAGE:
        raise ProtocolError(f"message of {len(data)} bytes is over the {MAX_MESSAGE}-byte limit")
    sock.sendall(_HEADER.pack(len(data)) + data)


def _receive_exactly(sock: socket.socket, count: int) -> bytes:
    chunks = []
    while count:
        chunk = sock.recv(min(count, 1 << 16))
        if not chunk:
            raise ProtocolError("the connection closed before the whole message arrived")
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


def receive_message(sock: socket.socket) -> dict[str, Any]:
    """Read one frame; ProtocolError for a closed connection, an oversized frame or JSON that is no object."""
    (length,) = _HEADER.unpack(_receive_exactly(sock, _HEADER.size))
    if length > MAX_MESSAGE:
        raise ProtocolError(f"message of {length} bytes is over the {MAX_MESSAGE}-byte limit")
    try:
        message = json.loads(_receive_exactly(sock, length).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ProtocolError(f"the message is not JSON ({e})") from e
    except RecursionError:  # json recurses once per level of nesting: no request of ours nests deeply
        raise ProtocolError("the message nests JSON too deeply") from None
    if not isinstance(message, dict):
        raise ProtocolError("the message is not a JSON object")
    return message


def send_payload(sock: socket.socket, payload: bytes) -> None:
    """Send the raw bytes that follow a response announcing ``payload_bytes``."""
    sock.sendall(payload)


def receive_payload(sock: socket.socket, response: dict[str, Any]) -> bytes | None:
    """The raw bytes that follow ``response`` when its result announces ``payload_bytes``; else None."""
    result = response.get("result") if response.get("ok") else None
    count = result.get("payload_bytes") if isinstance(result, dict) else None
    if count is None:
        return None
    if not isinstance(count, int) or not 0 <= count <= MAX_PAYLOAD:
        raise ProtocolError(f"a payload of {count!r} bytes is not one this client reads")
    payload = bytearray(count)
    view, done = memoryview(payload), 0
    while done < count:  # straight into one buffer: a 2 MP preview is 6 MB
        got = sock.recv_into(view[done:], min(count - done, 1 << 20))
        if not got:
            raise ProtocolError("the connection closed before the whole payload arrived")
        done += got
    return bytes(payload)


def error_response(message: str, exit_code: int = 1) -> dict[str, Any]:
    """A failure response: one line of text (a line break or escape sequence in a file's name written as an escape,
    ``\\n``, as the command's own errors write it) and the exit status the client should end with."""
    return {"ok": False, "error": printable(str(message).strip()), "exit_code": int(exit_code)}


def is_gone(error: OSError) -> bool:
    """Whether an error from connect() means nothing is listening (no socket file, or a stale one)."""
    return error.errno in (errno.ENOENT, errno.ECONNREFUSED, errno.ENOTSOCK)
