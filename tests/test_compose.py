"""docker-compose.yml: valid against the Compose spec, and every command exists in its image.

No Docker engine runs here (STACK.md), so the file is checked statically: the Compose JSON
schema (../shared/schemas/compose-spec.json, next to the repository), the variables it needs are
in .env.example, and every ``prefect ...`` command of a service built from docker/Dockerfile
(this project + its venv) is accepted by the installed Prefect CLI with the options used.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yml"
PREFECT = Path(sys.executable).with_name("prefect")


def _schema_path() -> Path:
    for base in (REPO.parent, REPO):
        candidate = base / "shared" / "schemas" / "compose-spec.json"
        if candidate.exists():
            return candidate
    pytest.fail("compose-spec.json not found in ../shared/schemas (next to the repository)")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_validates_against_spec(compose: dict) -> None:
    schema = json.loads(_schema_path().read_text())
    jsonschema.validate(compose, schema)


def test_services_and_requirements(compose: dict) -> None:
    services = compose["services"]
    assert {"postgres", "server", "worker-cpu", "worker-gpu"} <= set(services)
    server = services["server"]
    assert any(p.endswith(":4200") for p in server["ports"])
    env = server["environment"]
    assert env["PREFECT_API_DATABASE_CONNECTION_URL"].startswith("postgresql+asyncpg://")
    assert "@postgres:5432/" in env["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert "PREFECT_SERVER_API_AUTH_STRING" in env
    worker = services["worker-cpu"]
    assert worker["environment"]["PREFECT_API_AUTH_STRING"]
    gpu = services["worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    for name in ("server", "worker-cpu", "worker-gpu", "postgres"):
        assert services[name]["env_file"] == ".env"
    mounts = " ".join(worker["volumes"])
    assert "/opt/countclip/data" in mounts and "/opt/countclip/results" in mounts
    assert (REPO / "docker" / "Dockerfile").exists()


def test_env_example_defines_every_variable(compose: dict) -> None:
    text = COMPOSE.read_text()
    used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", text))
    example = REPO / ".env.example"
    defined = {
        line.split("=", 1)[0].strip()
        for line in example.read_text().splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    }
    assert used <= defined, f"variables missing from .env.example: {sorted(used - defined)}"
    assert not (REPO / ".env").exists() or ".env" in (REPO / ".gitignore").read_text()


def _prefect_commands(compose: dict) -> list[list[str]]:
    """Every ``prefect ...`` invocation in a service of the project image."""
    found: list[list[str]] = []
    for service in compose["services"].values():
        if service.get("image") != "countclip:latest":
            continue
        command = service.get("command")
        if command is None:
            continue
        if isinstance(command, list) and command[0] == "prefect":
            found.append(command)
            continue
        text = " ".join(command) if isinstance(command, list) else command
        for segment in re.split(r"&&|\|\||;|\(|\)", text):
            words = shlex.split(segment.split(">")[0])
            if words and words[0] == "prefect":
                found.append(words)
    return found


def _check(words: list[str]) -> tuple[list[str], int, str]:
    """Run ``prefect <command path> --help`` (the words before the first option)."""
    path: list[str] = []
    for word in words[1:]:
        if word.startswith("-"):
            break
        path.append(word)
    env = {**os.environ, "PREFECT_API_URL": "", "COLUMNS": "200"}
    proc = subprocess.run(
        [str(PREFECT), *path, "--help"], capture_output=True, text=True, timeout=120, env=env
    )
    return words, proc.returncode, proc.stdout + proc.stderr


def test_every_prefect_command_exists(compose: dict) -> None:
    commands = _prefect_commands(compose)
    assert any(c[1:3] == ["server", "start"] for c in commands)
    assert any(c[1:3] == ["worker", "start"] for c in commands)
    # "prefect --no-prompt deploy --all": check the global option on its own
    global_options = {w for c in commands if len(c) > 1 and c[1].startswith("-") for w in [c[1]]}
    normalised = [[c[0], *(w for w in c[1:] if w not in global_options)] for c in commands]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(_check, [*normalised, ["prefect"]]))
    for option in global_options:
        assert option in results[-1][2], f"prefect: global option {option} not in --help"
    for words, code, help_text in results:
        assert code == 0, f"{' '.join(words)}: --help failed\n{help_text[-2000:]}"
        for option in (w.split("=")[0] for w in words if w.startswith("--")):
            assert option in help_text, f"{' '.join(words)}: option {option} not in --help"
