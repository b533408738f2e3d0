"""Prefect on PostgreSQL, run the way docker-compose.yml runs it, with real processes on loopback.

docker-compose.yml is the source of every setting: with .env.example standing in for .env (its
two secrets replaced by fresh ones, as a user must), the test starts a PostgreSQL set up as the
``postgres`` service sets itself up, checks it with that service's healthcheck, runs the
``server`` service's command with its environment (preflight, then ``prefect server start`` on
``PREFECT_API_DATABASE_CONNECTION_URL`` with asyncpg, basic auth on) and waits on the server's
own healthcheck, runs the ``deploy`` service's command (pools, ``prefect deploy --all``) and the
``worker-cpu`` service's command with the client environment, then ``prefect deployment run
build-count-dataset/synthetic --watch`` to COMPLETED. The artifacts are read back from the API,
and the run from PostgreSQL itself. Only hosts and ports (``postgres:5432``, ``server:4200``,
``0.0.0.0``) become loopback ones, each replacement failing if the file no longer has the value.
Test-only additions: PREFECT_HOME in the temp dir, faster worker polling, a data root in the
temp dir. tests/test_integration_server.py is the SQLite version.

Without PostgreSQL's server binaries the tests skip, unless COUNTCLIP_REQUIRE_POSTGRES=1
(.ci/run installs Debian's postgresql and sets it).
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import yaml
from compose_env import env_example, environment, load, replace_once
from postgres_server import Postgres, postgres_server
from prefect_stack import (
    BIN,
    REPO,
    basic_auth,
    check_artifacts,
    free_port,
    process,
    run_and_watch,
    tail,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

RUN_NAME = "integration-postgres-build"


@pytest.fixture(scope="module")
def variables() -> dict[str, str]:
    """.env.example as the user's .env, with the secrets changed (URL-safe, as it asks)."""
    return {
        **env_example(),
        "POSTGRES_PASSWORD": secrets.token_urlsafe(18),
        "PREFECT_AUTH_STRING": f"admin:{secrets.token_urlsafe(18)}",
    }


@pytest.fixture(scope="module")
def pg(variables: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    log = tmp_path_factory.mktemp("postgres") / "postgres.log"
    with postgres_server(
        variables["POSTGRES_USER"], variables["POSTGRES_PASSWORD"], variables["POSTGRES_DB"], log
    ) as server:
        yield server


def _base_env(variables: dict, tmp_path: Path, pg: Postgres) -> dict[str, str]:
    """The process environment of a container of the image: the .env (env_file), plus what a
    test needs to run on this machine (this venv and the database binaries on PATH, a private
    PREFECT_HOME), minus any Prefect API or server settings of the caller."""
    home = tmp_path / "prefect-home"
    home.mkdir(exist_ok=True)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PREFECT_API_", "PREFECT_SERVER_"))
    }
    path = os.pathsep.join([str(BIN), str(pg.bindir), os.environ.get("PATH", "")])
    return {**env, **variables, "PREFECT_HOME": str(home), "PATH": path}


def test_compose_stack_on_postgres(variables: dict, pg: Postgres, tmp_path: Path) -> None:
    compose_major = re.search(r"postgres:(\d+)", load(variables)["services"]["postgres"]["image"])
    local_major = re.search(r"\(PostgreSQL\) (\d+)", pg.version)
    if compose_major and local_major and compose_major[1] != local_major[1]:
        warnings.warn(
            f"docker-compose.yml runs postgres:{compose_major[1]}, this test {pg.version}",
            stacklevel=1,
        )
    port = free_port()
    compose = load({**variables, "PREFECT_UI_PORT": str(port)})
    services = compose["services"]
    api = f"http://127.0.0.1:{port}/api"
    auth = basic_auth(variables["PREFECT_AUTH_STRING"])
    base = _base_env(variables, tmp_path, pg)

    # the postgres service's healthcheck, against this server
    check = services["postgres"]["healthcheck"]["test"]
    assert check[0] == "CMD-SHELL", check
    pg_env = {**base, "PGHOST": pg.host, "PGPORT": str(pg.port)}
    probe = subprocess.run(["sh", "-c", check[1]], env=pg_env, capture_output=True, text=True)
    assert probe.returncode == 0, f"{check[1]}: {probe.stdout}{probe.stderr}"

    server = services["server"]
    server_env = {**base, **environment(server)}
    url = server_env["PREFECT_API_DATABASE_CONNECTION_URL"]
    server_env["PREFECT_API_DATABASE_CONNECTION_URL"] = replace_once(
        url, "@postgres:5432/", f"@{pg.host}:{pg.port}/", "the server's database URL"
    )
    for key, old, new in (
        ("PREFECT_SERVER_API_HOST", "0.0.0.0", "127.0.0.1"),
        ("PREFECT_SERVER_API_PORT", "4200", str(port)),
    ):
        server_env[key] = replace_once(server_env[key], old, new, key)
    client_env = {**base, **environment(services["worker-cpu"])}
    client_env["PREFECT_API_URL"] = replace_once(
        client_env["PREFECT_API_URL"], "http://server:4200/", f"http://127.0.0.1:{port}/", "API"
    )
    client_env |= {"PREFECT_WORKER_QUERY_SECONDS": "2", "PREFECT_WORKER_PREFETCH_SECONDS": "2"}
    health = services["server"]["healthcheck"]["test"]
    assert health[0] == "CMD", health
    health = [replace_once(w, ":4200/", f":{port}/", "healthcheck") if ":4200/" in w else w
              for w in health[1:]]  # fmt: skip

    server_log = tmp_path / "server.log"
    with process(server["command"], server_env, server_log, tmp_path) as proc:

        def healthy() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with {proc.returncode}\n{tail(server_log)}")
            return subprocess.run(health, env=server_env, capture_output=True).returncode == 0

        wait_for(healthy, timeout=180, what=f"the server's healthcheck\n{tail(server_log)}")
        assert "server preflight: PostgreSQL" in server_log.read_text()
        denied = httpx.post(f"{api}/flow_runs/filter", json={}, timeout=10)
        assert denied.status_code == 401, "the API answered without the auth string"

        deploy = services["deploy"]
        deployed = subprocess.run(
            [*deploy["entrypoint"], *deploy["command"]],
            env=client_env, cwd=REPO, capture_output=True, text=True, timeout=400,
        )  # fmt: skip
        assert deployed.returncode == 0, deployed.stdout[-4000:] + deployed.stderr[-4000:]
        registered = httpx.post(f"{api}/deployments/filter", json={}, auth=auth, timeout=10)
        expected = yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
        assert len(registered.json()) == len(expected), registered.text[-2000:]

        flow_run = run_and_watch(
            client_env, api, services["worker-cpu"]["command"], tmp_path, RUN_NAME, auth
        )
        artifacts = check_artifacts(api, flow_run["id"], auth)

    # the run and its artifacts are rows in PostgreSQL, not in some SQLite file
    rows = asyncio.run(_stored(pg, flow_run["id"]))
    assert rows == ("COMPLETED", len(artifacts)), rows


async def _stored(pg: Postgres, flow_run_id: str) -> tuple[str, int]:
    connection = await asyncpg.connect(
        host=pg.host, port=pg.port, user=pg.user, password=pg.password, database=pg.database
    )
    try:
        state = await connection.fetchval(
            "select state_type::text from flow_run where id = $1::uuid", flow_run_id
        )
        count = await connection.fetchval(
            "select count(*) from artifact where flow_run_id = $1::uuid", flow_run_id
        )
        return state, count
    finally:
        await connection.close()


def test_preflight_names_the_setting_for_a_wrong_password(
    variables: dict, pg: Postgres, tmp_path: Path
) -> None:
    server = load(variables)["services"]["server"]
    server_env = {**_base_env(variables, tmp_path, pg), **environment(server)}
    wrong = secrets.token_urlsafe(12)
    url = replace_once(
        server_env["PREFECT_API_DATABASE_CONNECTION_URL"],
        f":{variables['POSTGRES_PASSWORD']}@postgres:5432/",
        f":{wrong}@{pg.host}:{pg.port}/",
        "the server's database URL",
    )
    server_env["PREFECT_API_DATABASE_CONNECTION_URL"] = url
    proc = subprocess.run(
        [str(BIN / "python"), "-m", "countclip_flows.server_preflight", "--wait", "0"],
        env=server_env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("PREFECT_API_DATABASE_CONNECTION_URL: PostgreSQL at 127.0.0.1:")
    assert f"rejected '{variables['POSTGRES_USER']}''s password" in lines[0]
    assert wrong not in proc.stderr + proc.stdout
