"""The download benchmarks' shared workload: the URL list they download, their command line and
the download settings it makes, so that bench_download.py and bench_distributed.py measure
the same work (a helper, not a benchmark: ``benchmarks/ratios.py`` runs ``bench_*.py`` only)."""

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


SMOKE = {"n": 20, "repeats": 1, "shard_size": 10, "processes": 1, "threads": 8}
"""``--smoke``: sizes that run in seconds (the ratios mean little; the code paths all run)."""


def parser(description: str, n: int, repeats: int) -> argparse.ArgumentParser:
    """The options every download benchmark takes (its own defaults for size and repeats)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--n", type=int, default=n, help="URLs")
    p.add_argument("--repeats", type=int, default=repeats)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--threads", type=int, default=32)
    p.add_argument("--shard-size", type=int, default=250)
    p.add_argument("--record", action="store_true", help="store in benchmarks/results/")
    p.add_argument("--smoke", action="store_true", help=f"tiny sizes {SMOKE}, nothing recorded")
    return p


def parse_args(p: argparse.ArgumentParser) -> argparse.Namespace:
    """``p``'s arguments, with ``--smoke``'s sizes applied."""
    args = p.parse_args()
    if args.smoke:
        if args.record:
            p.error("--smoke records nothing: drop --record")
        vars(args).update(SMOKE)
    return args


def download_config(args: argparse.Namespace, **settings: object) -> DownloadConfig:
    """The download settings of ``args`` (10 s timeout: loopback on busy cores)."""
    return DownloadConfig(
        processes_count=args.processes,
        thread_count=args.threads,
        number_sample_per_shard=args.shard_size,
        timeout=10.0,
        **settings,
    )
