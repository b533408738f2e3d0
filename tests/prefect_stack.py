"""Helpers for the integration tests that run the real stack as processes on loopback.

Shared by tests/test_integration_server.py (Prefect on SQLite, plus the UI) and
tests/test_integration_postgres.py (Prefect on PostgreSQL, configured from docker-compose.yml),
so both drive the server, worker and ``prefect deployment run --watch`` the same way. Every wait
is bounded; every child runs in its own process group and is stopped when its block ends (the
worker before the server: the other order hangs the worker).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PREFECT = str(BIN / "prefect")
DEPLOYMENT = "build-count-dataset/synthetic"
# Keys the stages of build-count-dataset publish (tasks/artifacts.py); a run missing one did
# not run that stage through Prefect.
EXPECTED_ARTIFACTS = {
    "captions-rejected-by-reason",
    "download-counting-results",
    "download-common-results",
    "lambdas-per-count",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 1.0, what: str = ""):
    """Poll ``predicate`` until it returns something truthy; TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # not up yet
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last error: {last_error})")


@contextlib.contextmanager
def process(
    args: list[str], env: dict, log: Path, cwd: Path, **popen: Any
) -> Iterator[subprocess.Popen]:
    """A child process (own process group) stopped with SIGINT, then SIGTERM/SIGKILL."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            args,
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **popen,
        )
        try:
            yield proc
        finally:
            for sig, wait in ((signal.SIGINT, 15), (signal.SIGTERM, 10), (signal.SIGKILL, 5)):
                if proc.poll() is not None:
                    break
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=wait)


def tail(path: Path, n: int = 3000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else ""


def require(found: object, what: str, env_var: str, hint: str) -> None:
    """Skip when a machine lacks ``what``, or fail when ``env_var=1`` (CI sets it, so a missing
    browser or database there is a failure, never a silent skip)."""
    if found:
        return
    message = f"{what} not found: {hint}"
    if os.environ.get(env_var) == "1":
        pytest.fail(f"{message} ({env_var}=1: required here)")
    pytest.skip(f"{message} (set {env_var}=1 to make this a failure)")


def basic_auth(auth_string: str | None) -> tuple[str, str] | None:
    """``user:password`` (PREFECT_API_AUTH_STRING) as httpx's basic-auth pair."""
    if not auth_string:
        return None
    user, _, password = auth_string.partition(":")
    return user, password


def cli(env: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``prefect ARGS`` from the repository root (where prefect.yaml is); must succeed."""
    proc = subprocess.run(
        [PREFECT, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"prefect {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def wait_for_server(api: str, server: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    def healthy() -> bool:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode}\n{tail(log)}")
        return httpx.get(f"{api}/health", timeout=2).status_code == 200

    wait_for(healthy, timeout=timeout, what=f"the server at {api}\n{tail(log)}")


def run_and_watch(
    env: dict, api: str, worker: list[str], tmp_path: Path, run_name: str, auth=None
) -> dict:
    """Start ``worker``, ``prefect deployment run DEPLOYMENT --watch`` with the data root in
    ``tmp_path``, stop the worker; the flow run (from the API), asserted COMPLETED."""
    worker_log = tmp_path / "worker.log"
    with process(worker, env, worker_log, REPO):
        run = subprocess.run(
            [PREFECT, "deployment", "run", DEPLOYMENT,
             "--param", f'data_root="{tmp_path / "data"}"',
             "--flow-run-name", run_name,
             "--watch", "--watch-interval", "2", "--watch-timeout", "240"],
            env=env, cwd=REPO, capture_output=True, text=True, timeout=270,
        )  # fmt: skip
        flow_runs = httpx.post(
            f"{api}/flow_runs/filter",
            json={"flow_runs": {"name": {"any_": [run_name]}}},
            auth=auth,
            timeout=10,
        ).json()
        assert len(flow_runs) == 1, flow_runs
        flow_run = flow_runs[0]
        assert flow_run["state"]["type"] == "COMPLETED", (
            f"{flow_run['state']}\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}\n"
            f"worker log:\n{tail(worker_log, 6000)}"
        )
        assert run.returncode == 0, run.stdout + run.stderr
    assert (tmp_path / "data" / ".prefect-results").is_dir()
    return flow_run


def check_artifacts(api: str, flow_run_id: str, auth=None) -> list[dict]:
    """The run's artifacts, read back from the API: every stage's key and a progress bar."""
    artifacts = httpx.post(
        f"{api}/artifacts/filter",
        json={"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}},
        auth=auth,
        timeout=10,
    ).json()
    keys = {a["key"] for a in artifacts if a.get("key")}
    assert keys >= EXPECTED_ARTIFACTS, keys
    assert any(a["type"] == "progress" for a in artifacts)
    return artifacts
