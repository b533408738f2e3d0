"""Write ``tests/durations.json`` (seconds per test: setup, call and teardown) from the log of a
pytest run made with ``--durations=0``.

    make test PYTEST_ARGS=--durations=0 2>&1 | tee /tmp/test.log
    .venv/bin/python scripts/record_test_durations.py /tmp/test.log

``tests/conftest.py`` hands the longest files to the xdist workers first, so the suite does
not end waiting on one minute-long test that started last. Only the order matters, so a run on
a loaded machine serves as well as a quiet one. A log of part of the suite (``make test-slow``)
updates only the tests it ran.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DURATIONS = REPO / "tests" / "durations.json"
LINE = re.compile(r"^\s*([0-9.]+)s (?:call|setup|teardown)\s+(tests/\S+)$", re.MULTILINE)
"""One line of pytest's ``--durations`` report: ``12.34s call     tests/test_x.py::test_y``."""


def seconds_per_test(log: str) -> dict[str, float]:
    """Setup, call and teardown of every test, summed by its node id."""
    totals: dict[str, float] = defaultdict(float)
    for seconds, nodeid in LINE.findall(log):
        totals[nodeid] += float(seconds)
    return dict(totals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("log", type=Path, help="output of a pytest run with --durations=0")
    args = parser.parse_args()
    if not args.log.is_file():
        raise SystemExit(f"{args.log}: no such log")
    found = seconds_per_test(args.log.read_text(errors="replace"))
    if not found:
        raise SystemExit(f"{args.log}: no --durations lines (run pytest with --durations=0)")
    known = json.loads(DURATIONS.read_text()) if DURATIONS.is_file() else {}
    known |= {path: round(s, 1) for path, s in found.items()}
    tmp = DURATIONS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(dict(sorted(known.items())), indent=1) + "\n")
    tmp.replace(DURATIONS)
    print(f"{DURATIONS.relative_to(REPO)}: {len(known)} tests ({len(found)} from {args.log})")


if __name__ == "__main__":
    main()
