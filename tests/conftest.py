"""Test-session hygiene: offline settings, and PREFECT_HOME/TMPDIR inside a per-run temp dir.

Set at import time, before any test module imports Prefect or creates a temp file, so nothing a
test does leaks into ~/.prefect or /tmp. The directory is removed when the session ends.
"""

from __future__ import annotations

import atexit
import json
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


DURATIONS = REPO / "tests" / "durations.json"
"""Seconds each test took in a measured run (``scripts/record_test_durations.py`` writes it from
a ``--durations=0`` log): the order in which xdist hands files out."""


@pytest.hookimpl(trylast=True)  # after ``-m`` deselected: a file's time in this tier
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Longest files first. ``make test`` hands whole files to 2 workers (``--dist loadfile``,
    ``--no-loadscope-reorder``) in collection order; xdist's own order (most tests first) left
    the one-test files of minutes (the rehearsal, the Prefect server stacks) for last, and the
    suite then waited on one worker. pytest leaves tests under 5 ms out of its report, so a
    test not in the record counts as nothing; a file with no test in it, as a minute (new files
    are often end-to-end ones, and a short file started early costs little)."""
    seconds = json.loads(DURATIONS.read_text()) if DURATIONS.is_file() else {}
    per_file: dict[Path, float] = {}
    for item in items:
        per_file[item.path] = per_file.get(item.path, 0.0) + seconds.get(item.nodeid, 0.0)
    per_file = {path: total or 60.0 for path, total in per_file.items()}
    items.sort(key=lambda item: -per_file[item.path])  # stable: a file keeps its tests' order


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def prefect_harness():
    """A temporary Prefect API for the session (real server, SQLite, in this run's temp dir)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
