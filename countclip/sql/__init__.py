"""The DuckDB queries of the pipeline (``countclip/sql/*.sql``), shipped as package data.

Every value is a bound parameter (``$name``); no query is built by string formatting. The files
live inside the package, so a checkout and an installed wheel find them the same way (and a
checkout on ``sys.path`` never hides an installed package that has them).
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path


def path(name: str) -> Path:
    """Filesystem path of ``name`` (e.g. ``"candidates.sql"``) inside this package."""
    return Path(str(resources.files(__name__).joinpath(name)))


@cache
def load(name: str) -> str:
    """Text of the query file ``name``; a clear error when the install lacks it."""
    file = path(name)
    if not file.is_file():
        raise FileNotFoundError(f"SQL file not found: {file} (broken install of countclip?)")
    return file.read_text(encoding="utf-8")
