"""Test-session hygiene: offline settings, and PREFECT_HOME/TMPDIR inside a per-run temp dir.

Set at import time, before any test module imports Prefect or creates a temp file, so nothing a
test does leaks into ~/.prefect or /tmp. The directory is removed when the session ends.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from countclip.atomic import free_bytes
from countclip.offline import apply_offline_env

REPO = Path(__file__).resolve().parents[1]
_RUN_TMP = REPO / ".pytest-tmp" / f"run-{os.getpid()}"
_RUN_TMP.mkdir(parents=True, exist_ok=True)
os.environ["TMPDIR"] = str(_RUN_TMP / "tmp")
os.environ["PREFECT_HOME"] = str(_RUN_TMP / "prefect-home")
Path(os.environ["TMPDIR"]).mkdir(exist_ok=True)
Path(os.environ["PREFECT_HOME"]).mkdir(exist_ok=True)
tempfile.tempdir = None  # forget a cached /tmp
os.environ.pop("PREFECT_API_URL", None)
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_RESULTS_PERSIST_BY_DEFAULT", "true")
apply_offline_env()


def _remove_run_tmp() -> None:
    if os.environ.get("COUNTCLIP_KEEP_TEST_TMP") != "1":
        shutil.rmtree(_RUN_TMP, ignore_errors=True)


# atexit runs handlers last-in first-out: registered now, before any test starts Prefect's
# harness (which removes its own temp dir at exit), this one runs after it.
atexit.register(_remove_run_tmp)


def pytest_report_header() -> str:
    """Free disk where the tests write: a run that ends in ENOSPC says so in its first lines."""
    free = free_bytes(_RUN_TMP)
    shown = "unknown" if free is None else f"{free / 2**30:.1f} GiB"
    return f"countclip test temp: {_RUN_TMP} ({shown} free)"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def prefect_harness():
    """A temporary Prefect API for the session (real server, SQLite, in this run's temp dir)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
