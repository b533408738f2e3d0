"""``--runner dask``: metadata + captions per parquet part on a real ``distributed.LocalCluster``,
with as many worker processes as ``dask.workers`` says, and each part's DuckDB given its share
of the threads and memory."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from countclip.config import DaskConfig, MetadataConfig

REPO = Path(__file__).resolve().parents[1]


def test_parts_share_duckdb_threads_and_memory(tmp_path) -> None:
    from countclip_flows.dask_captions import part_configs, worker_count

    for name in ("part-00000.parquet", "part-00001.parquet", "part-00002.parquet"):
        (tmp_path / name).touch()
    cfg = MetadataConfig(source=str(tmp_path / "part-*.parquet"), threads=16, memory_limit="32GB")
    parts = part_configs(cfg, workers=4)
    assert [p.source for p in parts] == sorted(str(p) for p in tmp_path.glob("part-*.parquet"))
    assert {(p.threads, p.memory_limit) for p in parts} == {(4, "8000000000B")}
    assert part_configs(cfg.model_copy(update={"threads": 2}), workers=16)[0].threads == 1
    assert worker_count(DaskConfig(workers=3)) == 3
    assert worker_count(DaskConfig()) == len(os.sched_getaffinity(0))


@pytest.mark.slow
def test_cli_build_with_dask_starts_the_configured_workers(prefect_harness, tmp_path, capsys):
    """`countclip build --runner dask --set dask.workers=2` on a two-part world: the flow reports
    two distinct worker processes (neither is this one), both parts mapped and merged, and
    the downloads that follow succeed."""
    from countclip_flows.cli import main

    argv = [
        "build",
        "--config",
        str(REPO / "configs" / "synthetic-small.yaml"),
        "--data-root",
        str(tmp_path),
        "--runner",
        "dask",
        "--set",
        "dask.workers=2",
        "--set",
        "world.rows=300",
        "--set",
        "world.counting_fraction=0.3",
        "--set",
        "download.retry_failed_passes=0",
        "--json",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    result = json.loads(out[out.index("{\n") :])
    stats = result["metadata"]["stats"]
    assert stats["dask_workers"] == 2
    assert len(set(stats["dask_worker_pids"])) == 2 and os.getpid() not in stats["dask_worker_pids"]
    assert len(stats["parts"]) == 2 and stats["rows_read"] == 300
    assert result["captions"]["stats"]["parts"] == 2
    assert result["counting"]["stats"]["successes"] > 0
