"""``hostplug cluster``: start or stop this machine's Ray node for ``hostplug watch --cluster`` (docs/cluster.md)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from hostplug.daemon.errors import ConfigError


@click.group(short_help="Start or stop this machine's node of a render farm (Ray).")
def cluster() -> None:
    """A render farm for `hostplug watch --cluster`: a Ray head and worker nodes (docs/cluster.md).

    \b
      hostplug cluster start --bind 10.0.0.10                       # the head
      hostplug cluster start --bind 10.0.0.11 --join 10.0.0.10:6379 # each worker
      hostplug watch --config studio.toml --cluster ray://10.0.0.10:10001

    Nodes start with Ray's token authentication on (the token in ~/.ray/auth_token, or RAY_AUTH_TOKEN_PATH:
    the head makes one if there is none; copy it to every node and to the daemon's machine), no dashboard,
    at the address --bind (default 127.0.0.2: nodes of this machine only find each other). Ray's GCS, raylets
    and workers listen on every interface whatever the address: firewall them (docs/cluster.md, What listens).
    """


@cluster.command(short_help="Start this machine's Ray node (the head, or one that joins it).")
@click.option("--bind", default="127.0.0.2", show_default=True,
              help="This node's address on the studio network (127.0.0.2: within this machine; Ray still "
                   "listens on every interface, docs/cluster.md).")
@click.option("--join", "head", metavar="HEAD:PORT", help="Join the head at HEAD:PORT instead of being the head.")
@click.option("--port", type=click.IntRange(1, 65535), default=6379, show_default=True,
              help="The head's port (GCS).")
@click.option("--client-port", type=click.IntRange(1, 65535), default=10001, show_default=True,
              help="The head's Ray Client port (ray://HEAD:PORT for hostplug watch --cluster).")
@click.option("--num-cpus", type=click.IntRange(0, None), help="CPU cores Ray may use here (default: all).")
@click.option("--num-gpus", type=click.IntRange(0, None), help="GPUs Ray may use here (default: detected).")
@click.option("--allow-public-bind", is_flag=True, help="Accept --bind 0.0.0.0 (every interface; see docs).")
@click.option("--temp-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Ray's folder for this node (default: Ray's /tmp/ray); `cluster stop --temp-dir` then stops "
                   "this node only.")
def start(bind: str, head: str | None, port: int, client_port: int, num_cpus: int | None, num_gpus: int | None,
          allow_public_bind: bool, temp_dir: Path | None) -> None:
    """Start this machine's Ray node for `hostplug watch --cluster`: the head, or (--join) a node that joins it."""
    from hostplug.daemon.cluster import (
        import_ray,
        make_token,
        node_command,
        node_env,
        start_node,
        token_auth_available,
    )

    import_ray()
    command = node_command(bind=bind, head_port=port, head=head is None, head_address=head, num_cpus=num_cpus,
                           num_gpus=num_gpus, client_port=client_port, allow_public_bind=allow_public_bind,
                           temp_dir=temp_dir.absolute() if temp_dir else None)
    token = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    if token_auth_available():
        if head is None:
            make_token(token)
        else:
            _check_token_before_joining(head, token)
    start_node(command, node_env(token if token_auth_available() else None))
    if head is None:
        click.echo(f"Ray head on {bind}:{port}; nodes join with: hostplug cluster start --bind ADDRESS --join "
                   f"{bind}:{port}\nrender on it with: hostplug watch --config studio.toml --cluster "
                   f"ray://{bind}:{client_port}")
    else:
        click.echo(f"Ray node on {bind} joined {head}")


def _check_token_before_joining(head: str, token: Path) -> None:
    """Refuse at once a token the head does not accept: `ray start` takes it for a head that is not up yet and
    retries for about 20 s before it fails, blaming the connection."""
    from hostplug.daemon.cluster import enable_token_auth
    from hostplug.daemon.cluster_auth import check_token

    if not token.is_file():
        raise ConfigError(f"no Ray token at {token}: copy the head's ~/.ray/auth_token here first")
    enable_token_auth()  # as the node will run (RAY_AUTH_MODE, when set, wins), with the token it will send
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(token)
    check_token(head)


@cluster.command(short_help="Stop this machine's Ray node (ray stop).")
@click.option("--temp-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Stop only the node started with this --temp-dir (others' Ray on this machine goes on).")
def stop(temp_dir: Path | None) -> None:
    """Stop this machine's Ray node: with --temp-dir the one started with it, else `ray stop` (every Ray process
    of this user here; as root, every user's)."""
    import subprocess
    import sys

    from hostplug.daemon.cluster import import_ray, stop_nodes

    import_ray()
    if temp_dir is not None:
        if not (temp_dir / "session_latest").exists():  # (a mistyped /tmp would name every process with it)
            raise ConfigError(f"{temp_dir} is not the folder of a Ray node (no session_latest in it): give the "
                              "--temp-dir the node was started with")
        stopped = stop_nodes(temp_dir.absolute())
        if not stopped:
            raise ConfigError(f"no Ray node started with --temp-dir {temp_dir} runs here")
        click.echo(f"stopped the Ray node of {temp_dir} ({stopped} process(es))")
        return
    ray_script = Path(sys.executable).with_name("ray")
    subprocess.run([str(ray_script) if ray_script.is_file() else "ray", "stop"], check=False)
