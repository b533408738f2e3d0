"""docker-compose.yml as the tests read it: variables interpolated the way Compose does.

The integration tests run the services' own commands and environments from the file (with
.env.example standing in for .env), so the deployment and the tests cannot drift apart: change
a setting in docker-compose.yml and the tests run with the change. Only what must differ on
loopback (hosts, ports) and the secrets are substituted, each by a helper that fails when the
value it replaces is no longer in the file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from dotenv import dotenv_values

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"

# Compose interpolation: $$, $VAR, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error},
# ${VAR?error}, ${VAR:+other}, ${VAR+other} (compose-spec, "Interpolation").
_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(value: Any, variables: dict[str, str]) -> Any:
    """``value`` (a string, or every string inside lists and mappings) with variables filled."""
    if isinstance(value, dict):
        return {key: interpolate(item, variables) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, variables) for item in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["named"]
        op, arg = match["op"] or "", match["arg"] or ""
        current = variables.get(name)
        missing = current is None or (op.startswith(":") and current == "")
        if op.endswith("-"):
            return arg if missing else current
        if op.endswith("?"):
            if missing:
                raise KeyError(f"docker-compose.yml needs {name}: {arg}")
            return current
        if op.endswith("+"):
            return "" if missing else arg
        if current is None:
            raise KeyError(f"docker-compose.yml uses {name}, which .env.example does not set")
        return current

    return _VARIABLE.sub(replace, value)


def env_example() -> dict[str, str]:
    """.env.example, parsed as Compose parses the .env a user copies from it."""
    return {key: value or "" for key, value in dotenv_values(ENV_EXAMPLE).items()}


def load(variables: dict[str, str]) -> dict:
    """docker-compose.yml (anchors and merge keys resolved) with ``variables`` interpolated."""
    return interpolate(yaml.safe_load(COMPOSE.read_text()), variables)


def environment(service: dict) -> dict[str, str]:
    """A service's ``environment`` as a mapping (Compose allows a mapping or KEY=VALUE list)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def replace_once(value: str, old: str, new: str, what: str) -> str:
    """``value`` with ``old`` -> ``new``; fails if docker-compose.yml no longer has ``old``."""
    assert value.count(old) == 1, f"{what}: expected {old!r} once in {value!r}"
    return value.replace(old, new)
