"""``python -m countclip.synthetic OUT_DIR``: start the world, write a small dataset, show it.

Starts the loopback image server, writes metadata parquet + CountBench JSON into ``OUT_DIR``,
fetches one image to prove the server answers, prints where everything is. With ``--serve`` it
keeps serving (the URLs in the files point at this server's port) until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq

from countclip.config import WorldConfig
from countclip.synthetic import ImageServer, generate_metadata, write_countbench


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m countclip.synthetic", description=__doc__)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--port", type=int, default=0, help="0 = a random free port")
    parser.add_argument("--countbench-per-count", type=int, default=60)
    parser.add_argument("--serve", action="store_true", help="keep serving until Ctrl-C")
    args = parser.parse_args(argv)

    world = WorldConfig(
        rows=args.rows, seed=args.seed, port=args.port,
        countbench_per_count=args.countbench_per_count,
    )  # fmt: skip
    with ImageServer(world) as srv:
        t0 = time.perf_counter()
        parts = generate_metadata(args.out_dir / "metadata", world, srv.base_url)
        bench = write_countbench(args.out_dir / "countbench.json", world, srv.base_url)
        seconds = time.perf_counter() - t0
        first = pq.read_table(parts[0]).slice(0, 3).to_pylist()
        with urllib.request.urlopen(first[0]["URL"], timeout=5) as resp:
            size = len(resp.read())
        print(f"image server:  {srv.base_url}")
        print(f"metadata:      {len(parts)} part(s), {world.rows} rows -> {parts[0].parent}")
        print(f"countbench:    {len(json.loads(bench.read_text()))} rows -> {bench}")
        print(f"generated in {seconds:.2f} s; fetched {first[0]['URL']} ({size} bytes)")
        for row in first:
            print(f"  {row['SAMPLE_ID']:>6}  {row['TEXT']!r}")
        if args.serve:
            print("serving; Ctrl-C to stop")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
        else:
            print("server stopped: the URLs above are only valid while it runs (use --serve)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
