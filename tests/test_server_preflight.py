"""``countclip_flows.server_preflight``: a bad database setting stops the server in one line.

Each case runs the module as docker-compose.yml does (a real process, real sockets): a loopback
port nothing listens on, a driver Prefect's server cannot use, text that is no URL, and SQLite
(nothing to check). The slow test runs the compose ``server`` command itself
against an unreachable PostgreSQL: it must exit with the one line, and never start the server.
tests/test_integration_postgres.py covers a wrong password against a real PostgreSQL.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from compose_env import env_example, environment, load, replace_once
from prefect_stack import free_port

BIN = Path(sys.executable).parent
SETTING = "PREFECT_API_DATABASE_CONNECTION_URL"
SECRET = "s3cret-not-to-print"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API_", "PREFECT_SERVER_"))
    }
    return {
        **env,
        "PREFECT_HOME": str(tmp_path),
        "PATH": f"{BIN}{os.pathsep}{env['PATH']}",
        **extra,
    }


def _preflight(url: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "python"), "-m", "countclip_flows.server_preflight", "--wait", "0"],
        env=_env(tmp_path, **{SETTING: url}),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (f"postgresql+asyncpg://prefect:{SECRET}@127.0.0.1:{{port}}/prefect",
         "cannot reach PostgreSQL at 127.0.0.1:{port}: connection refused"),
        (f"postgresql://prefect:{SECRET}@127.0.0.1:5432/prefect",
         "driver 'postgresql' is not one Prefect's server uses"),
        (f"prefect:{SECRET}@postgres", "not a database URL"),
    ],
    ids=["refused", "sync-driver", "not-a-url"],
)  # fmt: skip
def test_bad_database_url_is_one_line_naming_the_setting(url, problem, tmp_path: Path) -> None:
    port = free_port()  # nothing listens on it once the probe socket is closed
    proc = _preflight(url.format(port=port), tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"{SETTING}: {problem.format(port=port)}"), lines[0]
    assert SECRET not in proc.stderr + proc.stdout


def test_sqlite_needs_no_check(tmp_path: Path) -> None:
    proc = _preflight(f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "SQLite" in proc.stdout


def test_wait_must_not_be_negative(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(BIN / "python"), "-m", "countclip_flows.server_preflight", "--wait", "-1"],
        env=_env(tmp_path), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and "--wait must be >= 0" in proc.stderr, proc.stderr


@pytest.mark.slow
def test_compose_server_command_stops_before_the_server_starts(tmp_path: Path) -> None:
    """The ``server`` service's command and environment, its database on a closed port: one
    line naming the setting after the preflight's retries, and no server."""
    variables = {**env_example(), "POSTGRES_PASSWORD": SECRET, "PREFECT_AUTH_STRING": "admin:x1"}
    server = load(variables)["services"]["server"]
    env = _env(tmp_path, **variables, **environment(server))
    closed = free_port()
    env[SETTING] = replace_once(env[SETTING], "@postgres:5432/", f"@127.0.0.1:{closed}/", SETTING)
    env["PREFECT_SERVER_API_HOST"] = "127.0.0.1"
    env["PREFECT_SERVER_API_PORT"] = str(free_port())
    proc = subprocess.run(
        server["command"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [
        f"{SETTING}: cannot reach PostgreSQL at 127.0.0.1:{closed}: connection refused "
        "(is PostgreSQL running and listening there?) "
        f"(URL: postgresql+asyncpg://prefect:***@127.0.0.1:{closed}/prefect)"
    ]
    assert "dashboard" not in proc.stdout and SECRET not in proc.stdout + proc.stderr
