"""The record that orders test files for xdist: parsed from pytest's --durations report."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOG = """
============================= slowest durations ==============================
12.50s call     tests/test_a.py::test_one[x-1]
0.50s setup    tests/test_a.py::test_one[x-1]
3.00s call     tests/test_b.py::TestK::test_two
(12 durations < 0.005s hidden.  Use -vv to show these durations.)
"""


def test_setup_call_and_teardown_are_summed_per_test() -> None:
    from importlib.util import module_from_spec, spec_from_file_location

    spec = spec_from_file_location("record", REPO / "scripts" / "record_test_durations.py")
    record = module_from_spec(spec)
    spec.loader.exec_module(record)
    assert record.seconds_per_test(LOG) == {
        "tests/test_a.py::test_one[x-1]": 13.0,
        "tests/test_b.py::TestK::test_two": 3.0,
    }
