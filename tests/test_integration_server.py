"""The production path on Prefect's default database (SQLite), with real processes on loopback.

``prefect server start`` (SQLite in a temp PREFECT_HOME) -> ``prefect work-pool create cpu`` ->
``prefect deploy`` of ``build-count-dataset/synthetic`` from prefect.yaml -> ``prefect worker
start`` -> ``prefect deployment run ... --watch`` -> the run is Completed and its artifacts are
in the API -> headless Chromium renders the flow run page of the UI (DOM has the run's name;
screenshot in the test's temp dir, and in docs/prefect-ui.png when
COUNTCLIP_UPDATE_DOCS_SCREENSHOT=1).

The UI test needs Debian's ``chromium``: without it, it skips, unless COUNTCLIP_REQUIRE_UI=1
(.ci/run installs chromium and sets it), which makes a missing browser a failure.
tests/test_integration_postgres.py runs the same path on PostgreSQL, as docker-compose.yml does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest
from prefect_stack import (
    BIN,
    DEPLOYMENT,
    PREFECT,
    REPO,
    check_artifacts,
    cli,
    free_port,
    process,
    require,
    run_and_watch,
    wait_for_server,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

RUN_NAME = "integration-synthetic-build"


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A server on SQLite with the deployment run to completion; it answers until the module's
    tests are done."""
    tmp_path = tmp_path_factory.mktemp("sqlite-stack")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    home = tmp_path / "prefect-home"
    home.mkdir()
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
    for name in ("PREFECT_API_AUTH_STRING", "PREFECT_API_DATABASE_CONNECTION_URL"):
        env.pop(name, None)
    server_log = tmp_path / "server.log"
    with process([PREFECT, "server", "start"], env, server_log, tmp_path) as server:
        wait_for_server(api, server, server_log)
        cli(env, "work-pool", "create", "cpu", "--type", "process")
        cli(env, "--no-prompt", "deploy", "--name", DEPLOYMENT, timeout=180)
        worker = [PREFECT, "worker", "start", "--pool", "cpu", "--type", "process"]
        flow_run = run_and_watch(env, api, worker, tmp_path, RUN_NAME)
        yield {"api": api, "port": port, "flow_run": flow_run, "tmp_path": tmp_path}


def test_deploy_run_watch(stack: dict) -> None:
    check_artifacts(stack["api"], stack["flow_run"]["id"])


def test_ui_shows_the_run(stack: dict) -> None:
    browser = chromium()
    require(
        browser,
        "chromium (for the UI screenshot)",
        "COUNTCLIP_REQUIRE_UI",
        "apt-get install chromium (.ci/run does)",
    )
    url = f"http://127.0.0.1:{stack['port']}/runs/flow-run/{stack['flow_run']['id']}"
    profile = stack["tmp_path"] / "chromium-profile"
    flags = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
        "--window-size=1400,900", "--virtual-time-budget=20000",
    ]  # fmt: skip
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert RUN_NAME in dom.stdout, dom.stdout[-3000:] + dom.stderr[-2000:]
    shot = stack["tmp_path"] / "prefect-ui.png"
    subprocess.run([*flags, f"--screenshot={shot}", url], capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000
    if os.environ.get("COUNTCLIP_UPDATE_DOCS_SCREENSHOT") == "1":
        shutil.copyfile(shot, REPO / "docs" / "prefect-ui.png")
