"""The production path, with real processes on loopback.

``prefect server start`` (SQLite in a temp PREFECT_HOME) -> ``prefect work-pool create cpu`` ->
``prefect deploy`` of ``build-count-dataset/synthetic`` from prefect.yaml -> ``prefect worker
start`` -> ``prefect deployment run ... --watch`` -> the run is Completed and its artifacts are
in the API -> headless Chromium renders the flow run page of the UI (DOM has the run's name;
screenshot saved to docs/prefect-ui.png and the test's temp dir). The worker is stopped before
the server (STACK.md: the other order hangs). Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PREFECT = str(BIN / "prefect")
DEPLOYMENT = "build-count-dataset/synthetic"
RUN_NAME = "integration-synthetic-build"
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


def wait_for(predicate, timeout: float, interval: float = 1.0, what: str = "condition"):
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
def process(args: list[str], env: dict, log: Path, cwd: Path) -> Iterator[subprocess.Popen]:
    """A child process (own process group) stopped with SIGINT, then SIGTERM/SIGKILL."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
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


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_deploy_run_watch_and_ui(tmp_path: Path) -> None:
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    home = tmp_path / "prefect-home"
    home.mkdir()
    data_root = tmp_path / "data"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_UI_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_RUNNER_POLL_FREQUENCY": "2",
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "PREFECT_WORKER_PREFETCH_SECONDS": "2",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("PREFECT_API_AUTH_STRING", None)

    def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [PREFECT, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout
        )
        assert proc.returncode == 0, f"prefect {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
        return proc

    server_log, worker_log = tmp_path / "server.log", tmp_path / "worker.log"
    with process([PREFECT, "server", "start"], env, server_log, tmp_path) as server:
        wait_for(
            lambda: httpx.get(f"{api}/health", timeout=2).status_code == 200,
            timeout=120,
            what=f"the server on port {port}\n{tail(server_log)}",
        )
        assert server.poll() is None
        cli("work-pool", "create", "cpu", "--type", "process")
        cli("--no-prompt", "deploy", "--name", DEPLOYMENT, timeout=180)

        with process(
            [PREFECT, "worker", "start", "--pool", "cpu", "--type", "process"],
            env,
            worker_log,
            tmp_path,
        ):
            run = subprocess.run(
                [PREFECT, "deployment", "run", DEPLOYMENT,
                 "--param", f'data_root="{data_root}"',
                 "--flow-run-name", RUN_NAME,
                 "--watch", "--watch-interval", "2", "--watch-timeout", "240"],
                env=env, cwd=REPO, capture_output=True, text=True, timeout=270,
            )  # fmt: skip
            flow_runs = httpx.post(
                f"{api}/flow_runs/filter",
                json={"flow_runs": {"name": {"any_": [RUN_NAME]}}},
                timeout=10,
            ).json()
            assert len(flow_runs) == 1, flow_runs
            flow_run = flow_runs[0]
            assert flow_run["state"]["type"] == "COMPLETED", (
                f"{flow_run['state']}\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}\n"
                f"worker log:\n{tail(worker_log, 6000)}"
            )
            assert run.returncode == 0, run.stdout + run.stderr

        # the worker is stopped; the server still answers for the checks below
        artifacts = httpx.post(
            f"{api}/artifacts/filter",
            json={"artifacts": {"flow_run_id": {"any_": [flow_run["id"]]}}},
            timeout=10,
        ).json()
        keys = {a["key"] for a in artifacts if a.get("key")}
        assert keys >= EXPECTED_ARTIFACTS, keys
        assert any(a["type"] == "progress" for a in artifacts)
        assert (data_root / ".prefect-results").is_dir()

        browser = chromium()
        assert browser, "chromium is not installed (.ci/run installs it)"
        url = f"http://127.0.0.1:{port}/runs/flow-run/{flow_run['id']}"
        profile = tmp_path / "chromium-profile"
        flags = [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
            "--window-size=1400,900", "--virtual-time-budget=20000",
        ]  # fmt: skip
        dom = subprocess.run(
            [*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120
        ).stdout
        assert RUN_NAME in dom, dom[-3000:]
        shot = tmp_path / "prefect-ui.png"
        subprocess.run([*flags, f"--screenshot={shot}", url], capture_output=True, timeout=120)
        assert shot.exists() and shot.stat().st_size > 10_000
        shutil.copyfile(shot, REPO / "docs" / "prefect-ui.png")
