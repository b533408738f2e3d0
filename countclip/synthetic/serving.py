"""Serving the synthetic world on a port fixed by its config.

The image URLs in the metadata name the server's port, so a world's port is part of its
identity and must never change silently: :func:`serve_world` always serves a world on the
port derived from its config (:func:`stable_port`), reuses a server of the *same* world that
another run already started there (and takes over when that run ends), and fails with a clear
error when a foreign program holds the port. Two runs of one config therefore build the same
URLs, the same fingerprints and the same data.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import threading
import urllib.request
from collections.abc import Iterator

from countclip.config import WorldConfig
from countclip.fingerprints import fingerprint
from countclip.synthetic.image_server import ImageServer

log = logging.getLogger(__name__)
PORT_RANGE = (20_000, 40_000)
TAKEOVER_INTERVAL = 0.5
"""Seconds between attempts to take over the port of a world another run serves."""


class WorldPortBusy(OSError):
    """The world's port is held by something that does not serve this world."""


def stable_port(world: WorldConfig) -> int:
    """A port in PORT_RANGE chosen from the world config (same world, same URLs)."""
    lo, hi = PORT_RANGE
    return lo + int(fingerprint("world-port", world), 16) % (hi - lo)


def served_world(world: WorldConfig) -> WorldConfig:
    """``world`` with its port fixed: ``world.port``, or :func:`stable_port` when it is 0."""
    if world.port:
        return world
    return world.model_copy(update={"port": stable_port(world)})


def world_identity(world: WorldConfig) -> str:
    """What the server's ``/world`` endpoint answers: the served world's fingerprint."""
    return fingerprint("world", served_world(world))


def _identity_at(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/world", timeout=2) as response:
            return response.read().decode().strip()
    except OSError:
        return None


@contextlib.contextmanager
def serve_world(world: WorldConfig) -> Iterator[str]:
    """Serve ``world`` on its port for the block; yield the base URL (the same every time)."""
    world = served_world(world)
    server = ImageServer(world, identity=world_identity(world))
    try:
        server.start()
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        if _identity_at(world.port) != world_identity(world):
            raise WorldPortBusy(
                errno.EADDRINUSE,
                f"world.port {world.port}: the port is in use by a program that does not serve "
                "this world; free it or set world.port to another port",
            ) from exc
        log.info("world port %s: another run serves this world; sharing it", world.port)
        with _standby(server):
            yield f"http://127.0.0.1:{world.port}"
        return
    try:
        yield server.base_url
    finally:
        server.close()


@contextlib.contextmanager
def _standby(server: ImageServer) -> Iterator[None]:
    """While another run serves the world, try to take its port over every
    :data:`TAKEOVER_INTERVAL` seconds, so the URLs keep answering after that run ends."""
    stop = threading.Event()

    def take_over() -> None:
        while not stop.wait(TAKEOVER_INTERVAL):
            try:
                server.start()
            except OSError:
                continue
            log.info("world port %s: took over serving the world", server.world.port)
            return

    thread = threading.Thread(target=take_over, name="countclip-world-standby", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()
