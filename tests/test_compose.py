"""docker-compose.yml: valid against the Compose spec, and every command exists in its image.

No Docker engine runs here, so the file is checked statically: against the Compose JSON schema
(vendored in tests/schemas/, Apache-2.0, see its README), the variables it needs are in
.env.example, its services run in the image's working directory with nothing mounted over it,
every ``python -m`` module of a service built from docker/Dockerfile imports, and every
``prefect ...`` command is accepted by the installed Prefect CLI with the options used.
tests/test_integration_postgres.py runs the server, worker and deploy commands for real.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jsonschema
import pytest
import yaml
from dockerfile_model import parse, split_shell

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yml"
SCHEMA = REPO / "tests" / "schemas" / "compose-spec.json"
PREFECT = Path(sys.executable).with_name("prefect")
IMAGE = "countclip:latest"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_validates_against_spec(compose: dict) -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.validate(compose, schema)


def test_the_schema_rejects_a_broken_file(compose: dict) -> None:
    """The vendored schema is the real one, not an empty object that accepts anything."""
    schema = json.loads(SCHEMA.read_text())
    broken = {**compose, "services": {"server": {"image": IMAGE, "restart": ["never"]}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


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
    used = set(re.findall(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)", text))
    example = REPO / ".env.example"
    defined = {
        line.split("=", 1)[0].strip()
        for line in example.read_text().splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    }
    assert used <= defined, f"variables missing from .env.example: {sorted(used - defined)}"
    assert not (REPO / ".env").exists() or ".env" in (REPO / ".gitignore").read_text()


def _image_services(compose: dict) -> dict[str, dict]:
    return {n: s for n, s in compose["services"].items() if s.get("image") == IMAGE}


def test_services_run_in_the_image_workdir_with_no_code_mounted(compose: dict) -> None:
    """The deployments record /opt/countclip; the flows there import the installed wheel, and a
    mounted checkout would put a countclip/ source folder in front of it (tests/test_docker.py)."""
    workdir = parse((REPO / "docker" / "Dockerfile").read_text())[-1].workdir
    for name, service in _image_services(compose).items():
        assert service.get("working_dir", workdir) == workdir, name
        for volume in service.get("volumes", []):
            source, _, target = volume.partition(":")
            assert not source.startswith((".", "/")), f"{name}: bind mount {volume}"
            assert target.rstrip("/") != workdir, f"{name}: {volume} hides the image's files"


def _commands(compose: dict) -> list[list[str]]:
    """Every simple command a service of the project image runs (``sh -c`` opened up)."""
    found: list[list[str]] = []
    for service in _image_services(compose).values():
        entrypoint, command = service.get("entrypoint") or [], service.get("command") or []
        if isinstance(command, str):
            command = [command]
        words = [*entrypoint, *command]
        if len(words) >= 3 and words[0] in {"sh", "/bin/sh"} and words[1] == "-c":
            found += [list(c.words) for c in split_shell(" ".join(words[2:]))]
        elif words:
            found.append(words)
    return found


def test_every_python_module_imports(compose: dict) -> None:
    modules = [c[2] for c in _commands(compose) if c[0] == "python" and c[1] == "-m"]
    assert "countclip_flows.server_preflight" in modules
    for module in modules:
        assert importlib.util.find_spec(module) is not None, module


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
    commands = [c for c in _commands(compose) if c[0] == "prefect"]
    assert any(c[1:3] == ["server", "start"] for c in commands)
    assert any(c[1:3] == ["worker", "start"] for c in commands)
    assert any("deploy" in c for c in commands)
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


def test_the_ui_binds_to_loopback_unless_a_host_is_set() -> None:
    from compose_env import env_example, load

    server = load(env_example())["services"]["server"]
    assert server["ports"] == ["127.0.0.1:4200:4200"]
    unset = {k: v for k, v in env_example().items() if k != "PREFECT_UI_HOST"}
    assert load(unset)["services"]["server"]["ports"] == ["127.0.0.1:4200:4200"]
    chosen = {**env_example(), "PREFECT_UI_HOST": "0.0.0.0"}
    assert load(chosen)["services"]["server"]["ports"] == ["0.0.0.0:4200:4200"]


def test_the_server_refuses_the_example_secrets(tmp_path: Path) -> None:
    """``cp .env.example .env; docker compose up`` must not run Postgres and the UI behind
    passwords anyone can read here: the server's preflight (the service's first command), run
    with the server service's environment from the example, refuses in one line naming them."""
    from compose_env import env_example, environment, load

    server = load(env_example())["services"]["server"]
    env = {**os.environ, **env_example(), **environment(server), "PREFECT_HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "countclip_flows.server_preflight", "--wait", "0"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert proc.returncode == 2
    line = proc.stderr.strip()
    assert len(line.splitlines()) == 1, line
    for name in ("POSTGRES_PASSWORD", "PREFECT_SERVER_API_AUTH_STRING"):
        assert name in line
    assert "still the example's value" in line
