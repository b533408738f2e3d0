"""Every speed benchmark's ratios as one table (``make bench``).

Each ``benchmarks/bench_*.py`` prints, besides its own report, one machine-readable line per
ratio it measures against a baseline of the same run:

    RATIO <name> <value> <goal>

``goal`` is the bound the ratio should meet (``<=1.2``, ``>=1.5``) or ``-`` for a ratio reported
without one. Run as a script, this module runs every benchmark with the arguments it is given
(``--smoke``: tiny sizes, seconds each, nothing recorded), shows their output as it comes, and
ends with one table of every ratio and its goal. Goals are reported, never asserted: a ratio on
a shared machine is a measurement, not a test. A benchmark that fails is named, and the exit
status is then non-zero.

    .venv/bin/python benchmarks/ratios.py [--smoke] [--only bench_eval bench_train]
    make bench                       # the same, every benchmark at its own sizes
    make bench BENCH_ARGS=--smoke    # the quick pass
"""

from __future__ import annotations

import argparse
import operator
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
LINE = re.compile(r"^RATIO (\S+) (\S+) (\S+)$", re.MULTILINE)
GOAL = re.compile(r"^(<=|>=)([0-9.]+)$")


def ratio(name: str, value: float, goal: str = "-") -> None:
    """Print one ratio as the line the table is collected from (``goal``: ``<=X``, ``>=X``
    or ``-``)."""
    if goal != "-" and not GOAL.match(goal):
        raise ValueError(f"goal {goal!r}: expected '<=X', '>=X' or '-'")
    print(f"RATIO {name} {value:.3f} {goal}", flush=True)


def parse(output: str) -> list[tuple[str, float, str]]:
    """The ``(name, value, goal)`` of every RATIO line in ``output``."""
    return [(name, float(value), goal) for name, value, goal in LINE.findall(output)]


def met(value: float, goal: str) -> str:
    """``yes``/``NO`` against the goal, ``-`` without one."""
    match = GOAL.match(goal)
    if match is None:
        return "-"
    compare = operator.le if match.group(1) == "<=" else operator.ge
    return "yes" if compare(value, float(match.group(2))) else "NO"


def run(script: Path, args: list[str]) -> tuple[int, str]:
    """Run one benchmark, echoing its output; its exit status and output."""
    proc = subprocess.Popen(
        [sys.executable, str(script), *args],
        cwd=HERE.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        print(line, end="", flush=True)
        lines.append(line)
    return proc.wait(), "".join(lines)


def table(rows: list[tuple[str, str, float, str]]) -> str:
    header = ("benchmark", "ratio", "value", "goal", "met")
    cells = [header] + [(b, n, f"{v:.3f}", g, met(v, g)) for b, n, v, g in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="these benchmarks only")
    args, passed = parser.parse_known_args(argv)
    scripts = sorted(HERE.glob("bench_*.py"))
    if args.only:
        unknown = set(args.only) - {s.stem for s in scripts}
        if unknown:
            parser.error(f"--only: no benchmark {sorted(unknown)}")
        scripts = [s for s in scripts if s.stem in args.only]
    rows: list[tuple[str, str, float, str]] = []
    failed = []
    for script in scripts:
        print(f"== {script.name} {' '.join(passed)}".rstrip(), flush=True)
        status, output = run(script, passed)
        if status:
            failed.append(f"{script.name} (exit {status})")
        rows += [(script.stem, *found) for found in parse(output)]
    print("\n" + table(rows))
    if failed:
        print(f"\nFAILED: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
