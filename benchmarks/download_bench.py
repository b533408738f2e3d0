"""What the download benchmarks share: the URL list they download, their command line and
the download settings it makes, so that bench_download.py and bench_distributed.py measure
the same work."""

from __future__ import annotations

import argparse
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from countclip.config import DownloadConfig
from countclip.synthetic import Scene, scene_url


def url_parquet(path: Path, base_url: str, n: int, with_count: bool = False) -> Path:
    """``n`` loopback scene URLs (ids from 100,000) in the stage's input schema."""
    ids = list(range(100_000, 100_000 + n))
    columns = {
        "SAMPLE_ID": ids,
        "URL": [scene_url(base_url, Scene(i, 2 + i % 9, "star", "red")) for i in ids],
        "TEXT": [f"img {i}" for i in ids],
    }
    if with_count:
        columns["count"] = [2 + i % 9 for i in ids]
    pq.write_table(pa.table(columns), path)
    return path


def parser(description: str, n: int, repeats: int) -> argparse.ArgumentParser:
    """The options every download benchmark takes (its own defaults for size and repeats)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--n", type=int, default=n, help="URLs")
    p.add_argument("--repeats", type=int, default=repeats)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--threads", type=int, default=32)
    p.add_argument("--shard-size", type=int, default=250)
    p.add_argument("--record", action="store_true", help="store in benchmarks/results/")
    return p


def download_config(args: argparse.Namespace, **settings: object) -> DownloadConfig:
    """The download settings of ``args`` (10 s timeout: loopback on busy cores)."""
    return DownloadConfig(
        processes_count=args.processes,
        thread_count=args.threads,
        number_sample_per_shard=args.shard_size,
        timeout=10.0,
        **settings,
    )
