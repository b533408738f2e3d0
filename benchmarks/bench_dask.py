"""Scale-out of the data stages: the per-part work (stage 1 metadata + stage 2 captions, what
``--runner dask`` maps over parquet parts) on a ``distributed.LocalCluster`` of 1 and of 2
worker processes, in the same run, and the speed-up between them.

    .venv/bin/python benchmarks/bench_dask.py [--parts 8] [--rows 100000] [--repeats 1]
    .venv/bin/python benchmarks/bench_dask.py --record     # also store in results/scale.json
    .venv/bin/python benchmarks/bench_dask.py --smoke      # 2 parts x 2,000 rows, once

Each run starts its own cluster (one thread per worker, DuckDB one thread per part) and warms
its workers (imports, the spaCy pipeline: "start"), then maps the parts, gathers the manifests
and merges the caption parts (the library calls the Prefect tasks make: "work"), in a fresh
data root, so nothing is cached. Runs alternate 1, 2, 1, 2, ... so machine load hits both
alike; medians are reported, for the work phase and for the whole run.

Amdahl: the serial part of the work ``s`` (scheduling, gathering, the merge: work time minus
the median part time x parts, with one worker) and the median time of one part ``t`` give the
projection for ``P`` parts on ``W`` workers as ``start + s + ceil(P / W) x t`` (parts are the
unit of work: 32 parts on 16 workers are two waves). It assumes a part takes as long on a busy
16-core node as here, i.e. no memory-bandwidth or disk contention: a projection, not a
measurement. On a shared machine wall times mostly measure the neighbours, so the run also
reports CPU seconds (of each part in its worker, and of this process's scheduler, gathering and
merge), which the same projection uses in docs/scale.md.
"""

from __future__ import annotations

import argparse
import atexit
import math
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from ratios import ratio
from scale_record import record, snapshot

from countclip.config import CaptionConfig, MetadataConfig, WorldConfig
from countclip.data.captions.parser import CaptionParser
from countclip.stages.captions import merge_caption_parts, run_caption_stage
from countclip.stages.metadata import run_metadata_stage
from countclip.synthetic.laion_metadata import generate_metadata


def one_part(path: str, root: str) -> dict:
    """Stage 1 then stage 2 on one part, in a worker process; its own wall time and pid."""
    c0, t0 = time.process_time(), time.perf_counter()
    cfg = MetadataConfig(source=path, threads=1, memory_limit="1GB", common_ratio=1.0)
    meta = run_metadata_stage(cfg, root)
    captions = run_caption_stage(meta, CaptionConfig(), root)
    return {
        "manifest": captions,
        "seconds": time.perf_counter() - t0,
        "cpu_s": time.process_time() - c0,
        "pid": os.getpid(),
        "rows": meta["stats"]["rows_read"],
        "captions": meta["stats"]["kept"],
    }


def warm() -> int:
    """What a worker pays once (imports, the spaCy pipeline), before its first part."""
    CaptionParser()
    return os.getpid()


def run(parts: list[str], workers: int, root: str) -> dict:
    from distributed import Client, LocalCluster

    t0 = time.perf_counter()
    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        client.run(warm)
        started = time.perf_counter() - t0
        c0 = time.process_time()  # this process: the scheduler, gathering and the merge
        results = client.gather(client.map(one_part, parts, root=root, pure=False))
        merge_caption_parts([r["manifest"] for r in results], root)
        wall = time.perf_counter() - t0
        serial_cpu = time.process_time() - c0
    return {
        "workers": workers,
        "wall_s": wall,
        "work_s": wall - started,
        "cluster_start_s": started,
        "part_s": [r["seconds"] for r in results],
        "part_cpu_s": [r["cpu_s"] for r in results],
        "serial_cpu_s": serial_cpu,
        "pids": sorted({r["pid"] for r in results}),
        "rows": sum(r["rows"] for r in results),
        "captions": sum(r["captions"] for r in results),
    }


def project(serial: float, part: float, parts: int, workers: int) -> float:
    return serial + math.ceil(parts / workers) * part


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", type=int, default=8)
    ap.add_argument("--rows", type=int, default=100_000, help="rows per part")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--record", action="store_true", help="store in benchmarks/results/")
    ap.add_argument("--smoke", action="store_true", help="2 parts x 2,000 rows, once")
    args = ap.parse_args()
    if args.smoke:
        if args.record:
            ap.error("--smoke records nothing: drop --record")
        args.parts, args.rows, args.repeats = 2, 2_000, 1
    before = snapshot()
    work = Path(tempfile.mkdtemp(prefix="bench_dask_"))
    if args.smoke:
        atexit.register(shutil.rmtree, work, True)
    world = WorldConfig(rows=args.rows * args.parts, parts=args.parts, seed=11)
    parts = [str(p) for p in generate_metadata(work / "parts", world, "http://127.0.0.1:9/")]
    runs: dict[int, list[dict]] = {1: [], 2: []}
    for rep in range(args.repeats):
        for workers in (1, 2):
            r = run(parts, workers, str(work / f"root-{workers}-{rep}"))
            runs[workers].append(r)
            print(
                f"{workers} worker(s): {r['wall_s']:.1f} s wall = start "
                f"{r['cluster_start_s']:.1f} s + work {r['work_s']:.1f} s; parts "
                f"{min(r['part_s']):.2f}-{max(r['part_s']):.2f} s, {len(r['pids'])} worker pid(s)"
            )

    def med(workers: int, key: str) -> float:
        return statistics.median(r[key] for r in runs[workers])

    w1, w2 = med(1, "work_s"), med(2, "work_s")
    t1, t2 = med(1, "wall_s"), med(2, "wall_s")
    start = med(1, "cluster_start_s")
    part = statistics.median(s for r in runs[1] for s in r["part_s"])
    serial = max(w1 - part * args.parts, 0.0)
    p32_1 = start + project(serial, part, 32, 1)
    p32_16 = start + project(serial, part, 32, 16)
    rows, captions = runs[1][0]["rows"], runs[1][0]["captions"]
    print(
        f"{args.parts} parts x {args.rows:,} rows ({captions:,} candidate captions): work "
        f"1 worker {w1:.1f} s, 2 workers {w2:.1f} s -> SPEED-UP {w1 / w2:.2f}x (efficiency "
        f"{w1 / w2 / 2:.0%}); whole run incl. cluster start {t1:.1f} s vs {t2:.1f} s -> "
        f"{t1 / t2:.2f}x"
    )
    ratio("work_speedup_2_over_1_workers", w1 / w2)
    ratio("wall_speedup_2_over_1_workers", t1 / t2)
    part_cpu = statistics.median(c for r in runs[1] for c in r["part_cpu_s"])
    serial_cpu = med(1, "serial_cpu_s")
    cpu_1 = serial_cpu + project(0.0, part_cpu, 32, 1)
    cpu_16 = serial_cpu + project(0.0, part_cpu, 32, 16)
    print(
        f"CPU (load-independent): one part {part_cpu:.2f} s, serial {serial_cpu:.2f} s "
        f"(parallel share {1 - serial_cpu / (serial_cpu + args.parts * part_cpu):.1%}); 32 "
        f"parts: 1 worker {cpu_1:.0f} s, 16 workers {cpu_16:.0f} s -> {cpu_1 / cpu_16:.1f}x"
    )
    print(
        f"Amdahl: start {start:.1f} s, serial work {serial:.1f} s, one part {part:.2f} s "
        f"(parallel share of the work {1 - serial / w1:.1%}). Projection, 32 such parts: "
        f"1 worker {p32_1:.0f} s, 16 workers {p32_16:.0f} s -> {p32_1 / p32_16:.1f}x"
    )
    if args.record:
        record(
            "dask",
            {
                "parts": args.parts,
                "rows_per_part": args.rows,
                "rows": rows,
                "candidate_captions": captions,
                "repeats": args.repeats,
                "wall_s": {"1": round(t1, 2), "2": round(t2, 2)},
                "work_s": {"1": round(w1, 2), "2": round(w2, 2)},
                "speedup_work_2_over_1": round(w1 / w2, 3),
                "speedup_wall_2_over_1": round(t1 / t2, 3),
                "worker_pids_2": runs[2][0]["pids"],
                "part_s_median": round(part, 3),
                "part_cpu_s_median": round(part_cpu, 3),
                "serial_cpu_s": round(serial_cpu, 3),
                "serial_s": round(serial, 2),
                "cluster_start_s": {
                    str(w): round(statistics.median(r["cluster_start_s"] for r in runs[w]), 2)
                    for w in runs
                },
            },
            before,
        )


if __name__ == "__main__":
    main()
