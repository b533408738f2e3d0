"""The synthetic world as a pipeline stage: serve it, and write its metadata + CountBench.

Flows, the CLI and benchmarks share this so that the same world config always gives the same
URLs (a stable port) and therefore the same fingerprints and cache hits downstream.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from countclip.config import WorldConfig
from countclip.stage import Timer, fingerprint, read_manifest, stage_dir, write_manifest
from countclip.synthetic.countbench import write_countbench
from countclip.synthetic.metadata import generate_metadata
from countclip.synthetic.server import ImageServer

log = logging.getLogger(__name__)
STAGE = "world"
PORT_RANGE = (20_000, 40_000)


def stable_port(world: WorldConfig) -> int:
    """A port in PORT_RANGE chosen from the world config (same world, same URLs)."""
    lo, hi = PORT_RANGE
    return lo + int(fingerprint("world-port", world), 16) % (hi - lo)


@contextlib.contextmanager
def serve_world(world: WorldConfig) -> Iterator[str]:
    """Run the loopback image server; yield its base URL.

    ``world.port == 0`` asks for the stable port of :func:`stable_port`; if that is taken, any
    free port works (only the cache is lost: new URLs are a new world).
    """
    candidates = [world]
    if world.port == 0:
        candidates.insert(0, world.model_copy(update={"port": stable_port(world)}))
    server = None
    for i, candidate in enumerate(candidates):
        try:
            server = ImageServer(candidate)
            server.__enter__()
            break
        except OSError as exc:
            if i == len(candidates) - 1:
                raise
            log.warning(
                "port %s busy (%s); using a free port: the URLs change, so this is a new world "
                "and every cached stage after it (downloads, baseline) is recomputed. Another "
                "run of the same config is the usual cause: let it finish first.",
                candidate.port,
                exc,
            )
    assert server is not None
    try:
        yield str(server.base_url)
    finally:
        server.__exit__(None, None, None)


def run_world_stage(world: WorldConfig, data_root: str, base_url: str) -> dict:
    """Stage "world": the metadata parquet parts and CountBench JSON, pointing at ``base_url``."""
    fp = fingerprint(STAGE, world, base_url)
    out = stage_dir(data_root, STAGE, fp)
    done = read_manifest(out)
    if done is not None:
        return done
    with Timer() as timer:
        parts = [Path(p).resolve() for p in generate_metadata(out / "metadata", world, base_url)]
        countbench = Path(write_countbench(out / "countbench.json", world, base_url)).resolve()
    return write_manifest(
        out,
        {
            "stage": STAGE,
            "fingerprint": fp,
            "directory": str(out.resolve()),
            "outputs": {
                "metadata": str((out / "metadata").resolve()),
                "countbench": str(countbench),
            },
            "parts": [str(p) for p in parts],
            "source": str((out / "metadata").resolve() / "*.parquet"),
            "inputs": {},
            "config": world,
            "base_url": base_url,
            "seconds": timer.seconds,
        },
    )
