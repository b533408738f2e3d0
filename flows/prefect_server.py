"""Prefect's temporary API server, started so that it cannot outlive the run that needs it.

With no ``PREFECT_API_URL``, Prefect starts ``uvicorn`` itself
(``prefect.server.api.server.SubprocessASGIServer``) the first time a client needs an API,
and stops it from an ``atexit`` hook. A ``kill -9`` (or the out-of-memory killer) skips
``atexit``: the server lived on, an orphan holding its port and the SQLite database.

:func:`prefect_api` starts the same server, with ``PR_SET_PDEATHSIG=SIGKILL`` set in the
server process, so the kernel kills it when the thread that started it (this process's main
thread) dies, however it dies. Prefect is pointed at it three ways, for the three kinds of
reader: ``PREFECT_API_URL`` in the settings context (the flow and its task threads), in the
environment (subprocesses, such as Dask workers), and as the instance ``SubprocessASGIServer()``
returns (it is a singleton per port; Prefect's own threads that read the process-wide settings,
without the context, ask it for "the" temporary server and get this one). Prefect's own test
harness (``prefect.testing.utilities.prefect_test_harness``) points Prefect at its server the
same way.
"""

from __future__ import annotations

import contextlib
import ctypes
import inspect
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import prefect
from prefect.server.api.server import SubprocessASGIServer
from prefect.settings import (
    PREFECT_API_URL,
    PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
    get_current_settings,
    temporary_settings,
)

PR_SET_PDEATHSIG = 1
"""``<linux/prctl.h>``: the signal the kernel sends a process when its parent thread exits."""


def die_with_parent(signum: int = signal.SIGKILL) -> Callable[[], None]:
    """A ``preexec_fn`` that has the kernel send ``signum`` to the child when the calling
    thread of this process exits, and kills the child at once if this process is already gone.

    It only calls ``prctl`` through a pointer resolved here, before the fork: no import, no
    lock and no allocation happen between ``fork`` and ``exec`` (what makes ``preexec_fn``
    unsafe in a threaded process is code that takes locks another thread held at the fork).
    """
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()
    getppid, kill, getpid = os.getppid, os.kill, os.getpid

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signum)
        if getppid() != parent:  # the parent died before prctl took effect
            kill(getpid(), signum)

    return preexec


class OrphanFreeServer(SubprocessASGIServer):
    """Prefect's temporary server, killed by the kernel when the process that started it dies."""

    def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
        # Prefect's own command (SubprocessASGIServer._run_uvicorn_command in Prefect 3.9),
        # plus the pre-exec hook: check it again when upgrading Prefect
        server_env = {
            "PREFECT_UI_ENABLED": "0",
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT__SERVER_FINAL": "1",
        }
        return subprocess.Popen(
            args=[
                sys.executable,
                "-m",
                "uvicorn",
                "--app-dir",
                str(prefect.__module_path__.parent),
                "--factory",
                "prefect.server.api.server:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "error",
                "--lifespan",
                "on",
            ],
            env={
                **os.environ,
                **server_env,
                **get_current_settings().to_environment_variables(exclude_unset=True),
            },
            preexec_fn=die_with_parent(signal.SIGKILL),
            # Its own session: a SIGTERM to the run's process group (timeout, SLURM and
            # Kubernetes send one) must reach the run, which stops its work and reports it,
            # not the server the run reports to; the kernel still kills the server with us.
            start_new_session=True,
        )


STARTUP_SECONDS = 120
"""How long the temporary server may take to start, unless
``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS`` says otherwise. Prefect's 20 s is too
short on 2 busy cores (measured: a demo started beside a running benchmark failed with
"Timed out while attempting to connect to ephemeral Prefect API server")."""


def _start(server: SubprocessASGIServer) -> None:
    chosen = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS" in os.environ
    seconds = PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()
    if chosen or seconds >= STARTUP_SECONDS:
        server.start()
        return
    with temporary_settings(
        updates={PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: STARTUP_SECONDS}
    ):
        server.start()


@contextlib.contextmanager
def prefect_api() -> Iterator[str]:
    """For the block, a Prefect API: the configured ``PREFECT_API_URL`` if there is one, else
    a temporary server that dies with this process (stopped at the end of the block).

    Call it from the main thread: ``PR_SET_PDEATHSIG`` fires when the *thread* that started
    the server exits, and only the main thread lives as long as the process.
    """
    configured = PREFECT_API_URL.value()
    if configured:
        yield configured
        return
    server = OrphanFreeServer()  # port None: the instance SubprocessASGIServer() hands out
    if not isinstance(server, OrphanFreeServer):  # Prefect started its own before: keep it
        _start(server)
        yield server.api_url
        return
    try:
        _start(server)
    except BaseException:  # a signal while it starts: do not leave it running
        server.stop()
        raise
    previous = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            yield server.api_url
    finally:
        if previous is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = previous
        _drain_prefect_workers()
        server.stop()


def _drain_prefect_workers() -> None:
    """Send the logs and events still queued before the server goes (as Prefect's own test
    harness does): otherwise they fail at exit with "Error logging to API"."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def drain() -> None:
        with contextlib.suppress(RuntimeError):  # never started
            result = APILogWorker.instance().drain()
            if inspect.isawaitable(result):
                await result
        result = EventsWorker.drain_all()
        if inspect.isawaitable(result):
            await result

    with contextlib.suppress(Exception):  # best effort: the run's outcome is already decided
        run_coro_as_sync(drain())
