"""Download stage vs raw img2dataset: same URL list from the loopback server, same settings.

    .venv/bin/python benchmarks/bench_download.py [--n 1000] [--repeats 1] [--record | --smoke]

Runs, on the same parquet and with the arguments the stage passes, in turn:

- raw img2dataset as its CLI runs (a fresh Python process: interpreter + import + download);
- raw ``img2dataset.download`` called in this process (already imported: its best case);
- ``run_download_stage`` (child process, accounting, retry-failed pass, results.parquet).

and prints images/s for each and the stage's wall-time ratio to both (goal <= 1.1). The server
misbehaves on no id here, so the stage's retry pass has nothing to do: the ratio is the stage's
own overhead. The stage runs img2dataset in a child process (see countclip/download.py), so the
CLI-like run is the like-for-like comparison; the in-process one shows the import it pays.
"""

from __future__ import annotations

import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import download_workload
import pyarrow.parquet as pq
from ratios import ratio
from scale_record import record, snapshot

from countclip.config import WorldConfig
from countclip.data.download.runner import img2dataset_kwargs
from countclip.offline import apply_offline_env
from countclip.stages.download import run_download_stage
from countclip.synthetic import ImageServer


def _successes(folder: Path) -> int:
    return sum(
        pq.read_table(p, columns=["status"]).column("status").to_pylist().count("success")
        for p in folder.rglob("*.parquet")
        if p.name[0].isdigit()
    )


def main() -> None:
    p = download_workload.parser(__doc__.splitlines()[0], n=1000, repeats=1)
    args = download_workload.parse_args(p)
    before = snapshot()
    apply_offline_env()
    from img2dataset import download

    cfg = download_workload.download_config(args)
    work = Path(tempfile.mkdtemp(prefix="bench_download_"))
    cli_times, raw_times, stage_times, cli_cpu = [], [], [], []
    try:
        with ImageServer(WorldConfig(misbehave_fraction=0.0)) as srv:
            urllib.request.urlopen(f"{srv.base_url}/img/1.jpg", timeout=30).read()
            src = download_workload.url_parquet(
                work / "counting.parquet", srv.base_url, args.n, with_count=True
            )
            extra = ["SAMPLE_ID", "count"]
            for rep in range(args.repeats):
                kwargs = img2dataset_kwargs(src, work / f"cli-{rep}", cfg, "URL", "TEXT", extra)
                t0 = time.perf_counter()
                usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                subprocess.run(
                    [
                        sys.executable,
                        "-c",
                        "import json, sys; from img2dataset import download; "
                        "download(**json.loads(sys.argv[1]))",
                        json.dumps(kwargs),
                    ],
                    check=True,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                cli_times.append(time.perf_counter() - t0)
                usage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                # CPU of the whole img2dataset process tree: what the work costs whatever else
                # shares the machine (wall time on a loaded machine does not say that)
                cli_cpu.append(
                    usage1.ru_utime + usage1.ru_stime - usage0.ru_utime - usage0.ru_stime
                )
                cli_ok = _successes(work / f"cli-{rep}")

                raw_out = work / f"raw-{rep}"
                t0 = time.perf_counter()
                download(**img2dataset_kwargs(src, raw_out, cfg, "URL", "TEXT", extra))
                raw_times.append(time.perf_counter() - t0)
                raw_ok = _successes(raw_out)

                source = {"fingerprint": f"bench-{rep}", "outputs": {"counting": str(src)}}
                t0 = time.perf_counter()
                manifest = run_download_stage(source, "counting", cfg, str(work / "data"))
                stage_times.append(time.perf_counter() - t0)
                stage_ok = manifest["stats"]["successes"]
                print(
                    f"repeat {rep}: img2dataset CLI-like {cli_times[-1]:.1f} s ({cli_ok} ok), "
                    f"in-process {raw_times[-1]:.1f} s ({raw_ok} ok), "
                    f"stage {stage_times[-1]:.1f} s ({stage_ok} ok)"
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    cli, raw = statistics.median(cli_times), statistics.median(raw_times)
    stage = statistics.median(stage_times)
    print(f"medians of {args.repeats}, {args.n} URLs:")
    print(f"  img2dataset CLI-like:    {args.n / cli:.1f} images/s ({cli:.1f} s)")
    print(f"  img2dataset in-process:  {args.n / raw:.1f} images/s ({raw:.1f} s)")
    print(f"  download stage:          {args.n / stage:.1f} images/s ({stage:.1f} s)")
    print(f"  ratio stage / CLI-like:   {stage / cli:.3f} (goal <= 1.1)")
    print(f"  ratio stage / in-process: {stage / raw:.3f}")
    ratio("stage_over_cli", stage / cli, "<=1.1")
    ratio("stage_over_in_process", stage / raw)
    cpu = statistics.median(cli_cpu) / args.n
    print(f"  CPU per image (img2dataset tree): {cpu * 1000:.1f} ms -> {1 / cpu:.0f} images/s/core")
    if args.record:
        result = {
            "urls": args.n,
            "processes": args.processes,
            "threads": args.threads,
            "repeats": args.repeats,
            "cli_images_per_s": round(args.n / cli, 1),
            "in_process_images_per_s": round(args.n / raw, 1),
            "stage_images_per_s": round(args.n / stage, 1),
            "ratio_stage_over_cli": round(stage / cli, 3),
            "cpu_s_per_image": round(statistics.median(cli_cpu) / args.n, 5),
        }
        record("download", result, before)


if __name__ == "__main__":
    main()
