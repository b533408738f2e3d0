"""Where the benchmarks keep what they measured: ``benchmarks/results/scale.json``.

Each benchmark run with ``--record`` stores its numbers under its own key, with the machine, the
commit, the time, and what else was running (load average before and after, and the processes
using the most CPU that are not this run): measurements on a shared machine mean little without
that. ``scripts/render_scale_doc.py`` turns the file into the tables of ``docs/scale.md``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from countclip.atomic import atomic_write_json

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "scale.json"


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def _others(top: int = 5) -> list[dict[str, Any]]:
    """The processes outside this run using the most CPU over half a second."""
    try:
        import psutil
    except ImportError:
        return []
    me = psutil.Process()
    ours = {me.pid, *(c.pid for c in me.children(recursive=True))}
    procs = [p for p in psutil.process_iter(["name", "cmdline"]) if p.pid not in ours]
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.cpu_percent(None)
    psutil.cpu_percent(0.5)
    rows = []
    for p in procs:
        try:
            cpu = p.cpu_percent(None)
        except psutil.Error:
            continue
        if cpu >= 5:
            cmd = " ".join(p.info["cmdline"] or [p.info["name"] or "?"])
            rows.append({"pid": p.pid, "cpu_percent": round(cpu), "cmd": cmd[:120]})
    return sorted(rows, key=lambda r: -r["cpu_percent"])[:top]


def snapshot() -> dict[str, Any]:
    """The machine and its load now (call before a measurement, and :func:`record` after)."""
    return {
        "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "busy_processes": _others(),
    }


def machine() -> dict[str, Any]:
    import duckdb

    return {
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
    }


def record(name: str, data: dict[str, Any], before: dict[str, Any], path: Path = RESULTS) -> None:
    """Store ``data`` under ``name`` in the results file (other entries are kept)."""
    results = json.loads(path.read_text()) if path.is_file() else {}
    results[name] = {
        **data,
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": _commit(),
        "machine": machine(),
        "load_before": before,
        "load_after": snapshot(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, results)
    print(f"recorded {name!r} in {path.relative_to(ROOT)}")
