"""Where img2dataset's download processes run: its own ``distributor`` (multiprocessing on this
machine, or Ray), and the checks that make a bad cluster setting fail before anything is written.

Ray is the engine for a LAION-scale run on a cluster (docs/distributed-downloads.md says
why). img2dataset's ray distributor submits one Ray task per shard to whatever cluster the
driver joined, so the img2dataset child (:mod:`countclip.data.download.runner`) calls
``ray.init`` first, with what :func:`engine_setup` returns:

- ``download.ray_address`` None: the child starts a **local** Ray cluster of
  ``processes_count`` CPUs for the pass. Ray's services (GCS, raylet, agents) are the child's
  descendants in its process group, with the kernel told to kill them when their parent dies;
  Ray's workers get process groups of their own and exit when their raylet dies (measured:
  within 2 s). So the cluster goes down with the pass, a ``kill -9`` of the caller included.
- ``"auto"`` or ``"host:port"``: the child joins a running cluster (``ray start --head``);
  its workers are not this process's to kill. A killed caller takes its driver down and Ray
  ends that driver's tasks (measured on a local ``ray start`` cluster: their workers gone
  within 1 s, no shard finished after). A shard that still finished would not be in the
  pass's ledger, so a rerun redoes it.

A shard task that dies with its worker (killed, out of memory) is re-executed by Ray itself
(``max_retries``); a shard that fails inside img2dataset leaves no stats file and is re-queued
by the stage's retry-failed pass as ``shard_failed``, like with multiprocessing.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import socket
import tempfile
from pathlib import Path
from typing import Any

from countclip.config import DownloadConfig

__all__ = ["CLUSTER_EXIT", "ClusterUnreachable", "check_cluster", "engine_setup"]

CONNECT_SECONDS = 60.0
"""How long the child may take to join a running Ray cluster (Ray itself retries for minutes)."""
CLUSTER_EXIT = 75
"""Exit status of an img2dataset child that could not join its cluster (EX_TEMPFAIL)."""
PROBE_SECONDS = 5.0
"""TCP connect timeout of the preflight check of ``download.ray_address``."""
LOCAL_OBJECT_STORE_BYTES = 256 << 20
"""A local cluster's object store: tasks carry a small pickled downloader, not images (Ray's
default, 30 % of the RAM, reserves shared memory a shared machine needs elsewhere)."""


UNIX_SOCKET_PATH_MAX = 107
"""Longest AF_UNIX socket path Linux accepts (``sun_path`` is 108 bytes with its NUL)."""
_SESSION_SOCKET = "/ray/session_2026-12-01_10-15-33_123456_4194304/sockets/plasma_store"
"""The longest socket path Ray puts under its temp dir (a session name with a 7-digit pid)."""


class ClusterUnreachable(ValueError):
    """The cluster a distributed download should run on cannot be used: a setting is wrong
    (a ValueError, so no task retry repeats it), the message names it."""


def engine_setup(cfg: DownloadConfig) -> dict[str, Any]:
    """What the img2dataset child needs to start or join its engine (JSON data), and under
    ``env`` the environment defaults it needs (kept out of its command line: a token)."""
    if cfg.distributor != "ray":
        return {"distributor": cfg.distributor, "env": {}}
    init: dict[str, Any] = {"logging_level": "WARNING", "configure_logging": True}
    env = {"RAY_USAGE_STATS_ENABLED": "0"}
    if cfg.ray_address is None:
        init |= {
            "address": "local",  # a new cluster, whatever RAY_ADDRESS says
            "num_cpus": cfg.processes_count,
            "include_dashboard": False,
            "object_store_memory": LOCAL_OBJECT_STORE_BYTES,
        }
        if (temp_dir := local_temp_dir()) is not None:
            init["_temp_dir"] = temp_dir
        # Ray (>= 2.5x) guards a new local cluster with a token it would save to
        # ~/.ray/auth_token; a pass's private cluster gets its own, written nowhere
        env["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    else:
        init["address"] = cfg.ray_address
        if _token_available():  # Ray sends its token to a host:port only in token mode
            env["RAY_AUTH_MODE"] = "token"
    return {
        "distributor": "ray",
        "ray_init": init,
        "connect_seconds": CONNECT_SECONDS,
        "exit_status": CLUSTER_EXIT,
        "setting": f"download.ray_address={cfg.ray_address!r}",
        "env": env,
    }


def local_temp_dir(base: str | None = None) -> str | None:
    """A temp dir for a local cluster when Ray's default would not work, else None.

    Ray puts its sockets under ``$RAY_TMPDIR`` or ``$TMPDIR/ray``; a deep ``TMPDIR`` (a CI
    checkout's per-run folder, say) makes a socket path longer than AF_UNIX allows and the
    cluster fails to start with an error about a socket, not the folder. Then the pass's
    cluster lives in a short per-user folder under /tmp instead (its session logs stay there,
    as Ray's do in /tmp/ray).
    """
    if os.environ.get("RAY_TMPDIR"):
        return None  # the user chose; Ray reports it if it is too long
    base = base or tempfile.gettempdir()
    if len(base) + len(_SESSION_SOCKET) <= UNIX_SOCKET_PATH_MAX:
        return None
    return f"/tmp/countclip-ray-{os.getuid()}"


def _token_available() -> bool:
    """Whether Ray would find a cluster token here (its variables, or ``ray start``'s file)."""
    return (
        bool(os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"))
        or (Path.home() / ".ray" / "auth_token").is_file()
    )


def check_cluster(cfg: DownloadConfig) -> None:
    """Raise :class:`ClusterUnreachable` (naming the setting) unless the engine can be used:
    Ray installed, and ``download.ray_address`` resolving to something that accepts a
    connection. Called before a stage writes anything; the child checks again when it joins."""
    if cfg.distributor != "ray":
        if cfg.ray_address is not None:
            raise ClusterUnreachable(
                f"download.ray_address={cfg.ray_address!r} is set but download.distributor is "
                f"{cfg.distributor!r}: set download.distributor=ray, or drop ray_address"
            )
        return
    if importlib.util.find_spec("ray") is None:
        raise ClusterUnreachable(
            "download.distributor=ray needs Ray in this environment: pip install 'countclip[ray]'"
        )
    if cfg.ray_address is None:
        return
    host, port = _resolve(cfg.ray_address)
    try:
        socket.create_connection((host, port), timeout=PROBE_SECONDS).close()
    except OSError as exc:
        raise ClusterUnreachable(
            f"download.ray_address={cfg.ray_address!r}: no Ray cluster answers at {host}:{port} "
            f"({exc.strerror or exc}). Start one (`ray start --head`), fix the address, or set "
            "download.ray_address to null for a local cluster"
        ) from exc


def _resolve(address: str) -> tuple[str, int]:
    """host and port of ``address`` as ``ray.init`` would resolve it ("auto": ``RAY_ADDRESS``,
    then the cluster ``ray start`` last started on this machine)."""
    from ray._private.services import canonicalize_bootstrap_address_or_die

    if "://" in address:  # ray:// is Ray Client: another protocol, untested here
        raise ClusterUnreachable(
            f"download.ray_address={address!r}: expected 'auto' or the head's 'host:port' "
            "(its GCS, port 6379 unless `ray start --port` said otherwise)"
        )
    try:
        resolved = canonicalize_bootstrap_address_or_die(address)
    except (ConnectionError, ValueError) as exc:
        raise ClusterUnreachable(f"download.ray_address={address!r}: {exc}") from exc
    host, _, port = resolved.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterUnreachable(
            f"download.ray_address={address!r}: expected 'auto' or the head's 'host:port'"
        )
    return host.strip("[]"), int(port)
