"""Benchmarks that cannot rot: every speed benchmark runs in its ``--smoke`` mode (tiny sizes,
seconds each, nothing recorded) as the script a user runs, and prints its ratio lines. The
ratios themselves are not asserted: at smoke sizes on a shared machine they mean little; what
is checked is that the benchmark still runs against the code it measures. One test per script,
independent of the others, so they spread over workers when the suite runs in parallel; all of
them take about 2 minutes on 2 cores (``pytest -m benchmarks``; ``make bench BENCH_ARGS=--smoke``
runs the same and prints the table)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"

RATIOS: dict[str, set[str]] = {
    "bench_captions.py": {
        "laion_mix_parse_over_re",
        "laion_mix_parse_per_s_over_goal",
        "candidates_parse_over_tokenize",
    },
    "bench_dask.py": {"work_speedup_2_over_1_workers", "wall_speedup_2_over_1_workers"},
    "bench_distributed.py": {"ray_over_multiprocessing_images_per_s"},
    "bench_download.py": {"stage_over_cli", "stage_over_in_process"},
    "bench_eval.py": {
        "text_share_default",
        "text_mac_share_floor",
        "naive_over_default_seconds",
        "trim_over_default_text_seconds",
    },
    "bench_metadata.py": {"candidates_over_raw", "remote_over_local_stage1_rows_per_s"},
    "bench_synthetic.py": {"render_jpeg_over_new_jpeg", "metadata_over_python_loop"},
    "bench_train.py": {
        "countclip_over_clip_step",
        "untrimmed_over_clip_step",
        "countclip_over_clip_trimmed_step",
        "fused_over_loop_adamw_step",
        "loader_over_step_samples_per_s",
    },
    "bench_verify.py": {"stage_over_bare_counter_wall", "stage_over_bare_counter_cpu"},
}
"""Each benchmark and the ratios its smoke run must print (``RATIO name value goal``)."""

LINE = re.compile(r"^RATIO (\S+) (-?[0-9.]+|inf|nan) (<=[0-9.]+|>=[0-9.]+|-)$", re.MULTILINE)


def test_every_benchmark_runs_in_smoke_mode() -> None:
    """A new benchmark is listed with its ratios, so its smoke run is tested too."""
    assert {p.name for p in BENCHMARKS.glob("bench_*.py")} == set(RATIOS)


@pytest.mark.benchmarks
@pytest.mark.slow  # 2 to 30 s each: in `make test`, not in `make test-fast`
@pytest.mark.parametrize("script", sorted(RATIOS))
def test_benchmark_smoke_run_prints_its_ratios(script: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--smoke"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    printed = {name for name, _value, _goal in LINE.findall(proc.stdout)}
    assert printed == RATIOS[script], output[-4000:]
