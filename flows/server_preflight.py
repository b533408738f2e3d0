"""``python -m countclip_flows.server_preflight``: check the Prefect server's secrets and
database first.

Secrets: a value still holding the ``change-me`` placeholder of ``.env.example`` (copied to
``.env`` and started as it is) is refused with one line naming the variable: the database and
the UI would otherwise run behind passwords anyone can read in this repository.

Why: against a PostgreSQL it cannot reach, ``prefect server start`` prints about 180 lines of an
alembic/asyncpg traceback ending in ``ConnectionRefusedError`` and never names the setting to fix
(seen with Prefect 3.9). This check connects the way the server will (Prefect's own engine for
the configured URL, so TLS and timeout settings apply) and, when that fails, prints one line that
names the setting, the problem and the URL without its password, and exits 2.
docker-compose.yml and docker/Dockerfile run it before ``prefect server start``. A SQLite URL
needs no server and passes at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Iterator, Sequence

import asyncpg.exceptions as pg_errors
from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

# Prefect reads the first of these that is set (its settings' alias order).
SETTING_NAMES = ("PREFECT_SERVER_DATABASE_CONNECTION_URL", "PREFECT_API_DATABASE_CONNECTION_URL")
DRIVERS = ("postgresql+asyncpg", "sqlite+aiosqlite")
EXIT_BAD_DATABASE = 2
SECRETS = ("POSTGRES_PASSWORD", "PREFECT_SERVER_API_AUTH_STRING", "PREFECT_AUTH_STRING")
EXAMPLE_MARK = "change-me"
"""What every secret in .env.example holds until the user sets their own."""


def example_secrets(environ: dict[str, str]) -> list[str]:
    """The secret variables (and the database URL's password) still set to the example's."""
    found = [name for name in SECRETS if EXAMPLE_MARK in environ.get(name, "")]
    raw = next((environ[n] for n in SETTING_NAMES if environ.get(n)), "")
    with contextlib.suppress(ArgumentError):
        if raw and EXAMPLE_MARK in (make_url(raw).password or ""):
            found.append(setting_name())
    return found


class DatabaseProblem(Exception):
    """The database setting is wrong or the server cannot use it; ``retry`` if it may pass later
    (the database still starting, a refused connection)."""

    def __init__(self, message: str, retry: bool = False) -> None:
        super().__init__(message)
        self.retry = retry


def setting_name() -> str:
    """The environment variable the user set (the name an error message must show)."""
    return next((name for name in SETTING_NAMES if os.environ.get(name)), SETTING_NAMES[0])


def parse_url(raw: str) -> URL:
    try:
        url = make_url(raw)
    except ArgumentError as exc:
        raise DatabaseProblem(f"not a database URL ({exc})") from None
    if url.drivername not in DRIVERS:
        raise DatabaseProblem(
            f"driver {url.drivername!r} is not one Prefect's server uses; "
            f"write the URL as {DRIVERS[0]}://USER:PASSWORD@HOST:PORT/DATABASE"
        )
    return url


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    """The exception, its causes and the driver error SQLAlchemy wraps (``.orig``)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = getattr(exc, "orig", None) or exc.__cause__ or exc.__context__


def explain(exc: BaseException, url: URL) -> DatabaseProblem:
    """One sentence for a failed connection (asyncpg and socket errors, however wrapped)."""
    where = f"{url.host}:{url.port or 5432}"
    for cause in _chain(exc):
        if isinstance(cause, pg_errors.InvalidPasswordError):
            return DatabaseProblem(f"PostgreSQL at {where} rejected {url.username!r}'s password")
        if isinstance(cause, pg_errors.InvalidAuthorizationSpecificationError):
            return DatabaseProblem(f"PostgreSQL at {where} rejected the login: {cause}")
        if isinstance(cause, pg_errors.InvalidCatalogNameError):
            return DatabaseProblem(f"database {url.database!r} does not exist on {where}")
        if isinstance(cause, pg_errors.CannotConnectNowError):
            return DatabaseProblem(f"PostgreSQL at {where} is not ready: {cause}", retry=True)
        if isinstance(cause, OSError):  # refused, unreachable, unknown host, timed out
            reason = cause.strerror or str(cause) or type(cause).__name__
            if isinstance(cause, TimeoutError):
                reason = "timed out"
            elif isinstance(cause, ConnectionRefusedError):
                reason = "connection refused (is PostgreSQL running and listening there?)"
            return DatabaseProblem(f"cannot reach PostgreSQL at {where}: {reason}", retry=True)
    return DatabaseProblem(f"cannot connect to PostgreSQL at {where}: {type(exc).__name__}: {exc}")


async def _server_version(raw: str) -> str:
    """Connect with the engine the server builds for ``raw``; PostgreSQL's version."""
    from prefect.server.database.configurations import AsyncPostgresConfiguration

    engine = await AsyncPostgresConfiguration(connection_url=raw).engine()
    try:
        async with engine.connect() as connection:
            return (await connection.execute(text("show server_version"))).scalar_one()
    finally:
        await engine.dispose()


def check(raw: str, wait: float) -> str:
    """A line saying what answered, or :class:`DatabaseProblem` once ``wait`` seconds pass."""
    url = parse_url(raw)
    if url.drivername.startswith("sqlite"):
        return f"server preflight: SQLite database {url.database}; nothing to check"
    deadline = time.monotonic() + wait
    while True:
        try:
            version = asyncio.run(_server_version(raw))
        except Exception as exc:
            problem = explain(exc, url)
            if not problem.retry or time.monotonic() >= deadline:
                raise problem from None
            time.sleep(1.0)
        else:
            where = f"{url.host}:{url.port or 5432}/{url.database}"
            return f"server preflight: PostgreSQL {version} at {where} answers"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m countclip_flows.server_preflight",
        description="Check that the Prefect server's database answers before starting the server.",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=10.0,
        help="seconds to keep retrying an unreachable or starting database (default 10)",
    )
    args = parser.parse_args(argv)
    if args.wait < 0:
        parser.error(f"--wait must be >= 0 seconds, got {args.wait}")
    if leftovers := example_secrets(dict(os.environ)):
        print(
            f"{', '.join(leftovers)}: still the example's value from .env.example "
            f"({EXAMPLE_MARK}-...): set your own secret in .env before starting the server",
            file=sys.stderr,
        )
        return EXIT_BAD_DATABASE
    raw = PREFECT_API_DATABASE_CONNECTION_URL.value()
    try:
        print(check(raw, args.wait), flush=True)
    except DatabaseProblem as problem:
        print(f"{setting_name()}: {problem} (URL: {_without_password(raw)})", file=sys.stderr)
        return EXIT_BAD_DATABASE
    return 0


def _without_password(raw: str) -> str:
    try:
        return make_url(raw).render_as_string(hide_password=True)
    except ArgumentError:
        return "not shown: it does not parse, and may hold a password"


if __name__ == "__main__":
    raise SystemExit(main())
