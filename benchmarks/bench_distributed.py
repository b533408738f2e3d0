"""Download on img2dataset's ray distributor vs its multiprocessing distributor, same URLs.

    .venv/bin/python benchmarks/bench_distributed.py [--n 2000] [--repeats 2] [--record | --smoke]

Both go through :func:`countclip.data.download.passes.download_urls` with the same settings
(the stage's child process, accounting, one pass: the loopback server misbehaves on no id), on
``--processes`` CPUs: a pool of that many processes, or a local Ray cluster of that many CPUs
started by the pass. Each repeat runs both engines on the full list and on one shard, in
alternating order (the machine is shared: the load drifts). Printed per engine:

- images/s of the whole run (start-up included), and the ratio ray / multiprocessing;
- the time of a one-shard run: what a pass costs before it downloads much (interpreter,
  imports, the pool or the local Ray cluster, and their teardown).

On one machine Ray can only add cost (the same CPUs, plus its own services): the point of the
ratio is how much a user pays for the engine that scales out, not a speed-up.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

import download_workload
from ratios import ratio
from scale_record import record, snapshot

from countclip.config import DownloadConfig, WorldConfig
from countclip.data.download.passes import download_urls
from countclip.offline import apply_offline_env
from countclip.synthetic import ImageServer

ENGINES = ("multiprocessing", "ray")


def _run(src: Path, out: Path, cfg: DownloadConfig) -> tuple[float, int]:
    t0 = time.perf_counter()
    summary = download_urls(src, out, cfg, additional_columns=["SAMPLE_ID"])
    return time.perf_counter() - t0, summary["successes"]


def main() -> None:
    p = download_workload.parser(__doc__.splitlines()[0], n=2000, repeats=2)
    args = download_workload.parse_args(p)
    if args.smoke:  # the whole list is one shard: its run is also the one-shard run
        args.n = args.shard_size
    before = snapshot()
    apply_offline_env()
    base = download_workload.download_config(args, retry_failed_passes=0)
    full: dict[str, list[float]] = {e: [] for e in ENGINES}
    one: dict[str, list[float]] = {e: [] for e in ENGINES}
    work = Path(tempfile.mkdtemp(prefix="bench_distributed_"))
    try:
        with ImageServer(WorldConfig(misbehave_fraction=0.0)) as srv:
            urllib.request.urlopen(f"{srv.base_url}/img/1.jpg", timeout=30).read()
            src = download_workload.url_parquet(work / "urls.parquet", srv.base_url, args.n)
            small = download_workload.url_parquet(
                work / "one-shard.parquet", srv.base_url, args.shard_size
            )
            for rep in range(args.repeats):
                order = ENGINES if rep % 2 == 0 else ENGINES[::-1]
                for engine in order:
                    cfg = base.model_copy(update={"distributor": engine})
                    seconds, ok = _run(src, work / f"{engine}-{rep}", cfg)
                    assert ok == args.n, f"{engine}: {ok}/{args.n} downloaded"
                    full[engine].append(seconds)
                    seconds_one = seconds
                    if not args.smoke:
                        seconds_one, ok = _run(small, work / f"{engine}-one-{rep}", cfg)
                        assert ok == args.shard_size, f"{engine}: {ok}/{args.shard_size} (shard)"
                    one[engine].append(seconds_one)
                    print(
                        f"repeat {rep} {engine:>15}: {args.n} URLs in {seconds:.1f} s, "
                        f"one shard ({args.shard_size}) in {seconds_one:.1f} s"
                    )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rate = {e: args.n / statistics.median(full[e]) for e in ENGINES}
    startup = {e: statistics.median(one[e]) for e in ENGINES}
    print(f"medians of {args.repeats}, {args.n} URLs, {args.processes} CPUs:")
    for engine in ENGINES:
        print(f"  {engine:>15}: {rate[engine]:.1f} images/s, one shard {startup[engine]:.1f} s")
    ray_ratio = rate["ray"] / rate["multiprocessing"]
    print(f"  ratio ray / multiprocessing, images/s: {ray_ratio:.3f}")
    ratio("ray_over_multiprocessing_images_per_s", ray_ratio)
    if args.record:
        result = {
            "urls": args.n,
            "processes": args.processes,
            "threads": args.threads,
            "shard_size": args.shard_size,
            "repeats": args.repeats,
            **{f"{e}_images_per_s": round(rate[e], 1) for e in ENGINES},
            **{f"{e}_one_shard_s": round(startup[e], 1) for e in ENGINES},
            "ratio_ray_over_multiprocessing": round(ray_ratio, 3),
            "runs_s": {e: [round(t, 2) for t in full[e]] for e in ENGINES},
            "one_shard_runs_s": {e: [round(t, 2) for t in one[e]] for e in ENGINES},
        }
        record("distributed", result, before)


if __name__ == "__main__":
    main()
