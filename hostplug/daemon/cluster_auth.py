"""Is this machine's Ray token the cluster's? Asked once, before joining, so that a wrong token is refused at once.

Ray treats a refused token like a head that is not up yet: its client retries until its connection timeout (the
Ray Client about 30 s, ``ray.init`` and ``ray start`` with a GCS address about 20 s), then blames the port. One
gRPC call, authenticated the way Ray authenticates its own, tells the two apart: ``UNAUTHENTICATED`` is a token
the head does not accept, anything else is left to Ray's own connection (and its retries). Ray is imported by the
caller, with token authentication already set up (:func:`hostplug.daemon.cluster.enable_token_auth`).
"""

from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path
from typing import Any

from hostplug.daemon.errors import ConfigError

log = logging.getLogger("hostplug.watch")

CHECK_SECONDS = 5.0  # one call; a head that does not answer in this time is left to Ray's own retries
FIX = "copy the head's ~/.ray/auth_token to this machine (or point RAY_AUTH_TOKEN_PATH at a copy), then start again"


def token_source() -> str:
    """Where Ray reads this machine's token, in its own order: RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "RAY_AUTH_TOKEN"
    if os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return os.environ["RAY_AUTH_TOKEN_PATH"]
    return str(Path.home() / ".ray" / "auth_token")


def resolved_auto() -> str | None:
    """The address ``auto`` stands for (``RAY_ADDRESS``, else the cluster started on this machine), or None."""
    address = os.environ.get("RAY_ADDRESS") or _local_cluster() or ""
    return None if not address or address == "auto" else address


def probe_target(address: str) -> tuple[str, str] | None:
    """What to ask for ``address``: ``("client", HOST:PORT)`` for a Ray Client address, ``("gcs", HOST:PORT)``
    for a GCS address, None when ``auto`` finds no cluster (``ray.init`` then says so itself)."""
    if address == "auto":
        address = resolved_auto() or ""
        if not address:
            return None
    if address.startswith("ray://"):
        return "client", address.removeprefix("ray://")
    return "gcs", address


def _local_cluster() -> str | None:
    """The GCS address of the cluster started on this machine, as ``ray.init("auto")`` finds it."""
    try:
        from ray._private.services import canonicalize_bootstrap_address

        return canonicalize_bootstrap_address("auto")
    except Exception:  # none, or a Ray without this helper: ray.init decides
        return None


def check_token(address: str, timeout: float = CHECK_SECONDS) -> None:
    """Raise :class:`ConfigError` at once when the Ray cluster at ``address`` refuses this machine's token, or
    when this machine has none to send; return otherwise (a head that does not answer yet included)."""
    target = probe_target(address)
    if target is None:
        return
    kind, host_port = target
    _warn_if_others_read(token_source())
    import grpc
    from ray.exceptions import AuthenticationError

    where = f"{address} ({host_port})" if address == "auto" else address
    try:
        _ask(kind, host_port, timeout)
    except AuthenticationError as e:  # token authentication is on here, but there is no token to send
        raise ConfigError(f"cannot join the Ray cluster at {where}: no Ray token at {token_source()} (token "
                          f"authentication is on); {FIX}") from e
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.UNAUTHENTICATED:
            raise ConfigError(refusal(where)) from e
        # unavailable, slow, or not a Ray port: Ray's own connection retries and reports it


def _warn_if_others_read(source: str) -> None:
    """A warning when the token file can be read by other users of this machine (Ray writes it as the umask says,
    0644 by default, and `scp -p` keeps that): whoever reads it may join the cluster and run code on its nodes."""
    if source == "RAY_AUTH_TOKEN":  # the token is in the environment, not in a file
        return
    try:
        mode = os.stat(source).st_mode
    except OSError:
        return  # no file: the check that follows says so
    if mode & 0o044:
        log.warning("the Ray token %s can be read by other users of this machine (mode %o): chmod 600 it", source,
                    mode & 0o777, extra={"event": "token_readable", "fields": {"path": source}})


def refusal(address: str) -> str:
    """The one line for a token the cluster refused (or for none sent, token authentication being off here)."""
    mode = os.environ.get("RAY_AUTH_MODE", "")
    if mode != "token":  # hostplug turns it on unless RAY_AUTH_MODE says otherwise
        return (f"the Ray cluster at {address} requires a token, and token authentication is off here "
                f"(RAY_AUTH_MODE={mode or 'unset'}): unset RAY_AUTH_MODE and {FIX}")
    return f"wrong Ray token: the cluster at {address} refused the token from {token_source()}; {FIX}"


def _ask(kind: str, host_port: str, timeout: float) -> Any:
    """One cheap authenticated call: the Ray Client server's ping, or the GCS's cluster id."""
    from ray._private.grpc_utils import init_grpc_channel

    channel = init_grpc_channel(host_port)  # adds Ray's token header when token authentication is on
    try:
        if kind == "client":
            client = _generated("ray_client_pb2")
            request = client.ClusterInfoRequest(type=client.ClusterInfoType.PING)
            return _generated("ray_client_pb2_grpc").RayletDriverStub(channel).ClusterInfo(request, timeout=timeout)
        return _generated("gcs_service_pb2_grpc").NodeInfoGcsServiceStub(channel).GetClusterId(
            _generated("gcs_service_pb2").GetClusterIdRequest(), timeout=timeout)
    finally:
        channel.close()


def _generated(name: str) -> Any:
    """One of Ray's generated gRPC modules (their classes are made at import: nothing for a type checker)."""
    return importlib.import_module(f"ray.core.generated.{name}")
