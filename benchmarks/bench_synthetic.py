"""Speed of the synthetic world: render images/s at 224 px on one core, metadata rows/s at 1M.

Each number comes with a baseline measured in the same run, so the ratio survives a busy machine:
- rendering vs ``Image.new`` + JPEG encode of the same size (the floor any image server pays);
- metadata vs a plain per-row Python generator (random.choice + str.format), 100k rows.

Run: ``.venv/bin/python benchmarks/bench_synthetic.py [--rows 1000000] [--images 3000]``;
``--smoke``: 20,000 rows and 50 images (the ratios mean little; every code path runs).
"""

from __future__ import annotations

import argparse
import io
import os
import random
import tempfile
import time
from collections.abc import Callable

from PIL import Image
from ratios import ratio

from countclip.config import WorldConfig
from countclip.synthetic import COLOURS, SHAPES, Scene, generate_metadata, render_scene
from countclip.synthetic.captions import COUNTING_TEMPLATES, NON_COUNTING_TEMPLATES, fill


def _rate(n: int, fn: Callable[[int], object]) -> float:
    t0 = time.perf_counter()
    fn(n)
    return n / (time.perf_counter() - t0)


def _scenes(n: int) -> list[Scene]:
    return [Scene(i, i % 11, SHAPES[i % 8], COLOURS[(i // 8) % 8]) for i in range(n)]


def bench_render(n: int, size: int = 224) -> dict[str, float]:
    scenes = _scenes(n)
    render_scene(scenes[0], size)  # build the texture cache outside the timing

    def render(k: int) -> None:
        for s in scenes[:k]:
            render_scene(s, size)

    def render_jpeg(k: int) -> None:
        for s in scenes[:k]:
            render_scene(s, size).save(io.BytesIO(), "JPEG", quality=90)

    def baseline(k: int) -> None:
        for i in range(k):
            Image.new("RGB", (size, size), (i % 256, 128, 64)).save(
                io.BytesIO(), "JPEG", quality=90
            )

    return {
        "render": _rate(n, render),
        "render+jpeg": _rate(n, render_jpeg),
        "baseline new+jpeg": _rate(n, baseline),
    }


def _naive_metadata(n: int) -> None:
    rng = random.Random(0)
    rows = []
    for i in range(n):
        s, c = rng.choice(SHAPES), rng.choice(COLOURS)
        if rng.random() < 0.05:
            text = fill(rng.choice(COUNTING_TEMPLATES), s, c, rng.choice(["two", "three"]))
        else:
            text = fill(rng.choice(NON_COUNTING_TEMPLATES)[0], s, c)
        url = f"http://127.0.0.1:9/img/{i}.jpg?n=1&shape={s}&colour={c}"
        rows.append((i, url, text, 224, 224, "?", "UNLIKELY", rng.uniform(0.28, 0.4)))


def bench_metadata(rows: int, baseline_rows: int = 100_000) -> dict[str, float]:
    world = WorldConfig(rows=rows, parts=4)
    with tempfile.TemporaryDirectory() as tmp:
        rate = _rate(rows, lambda _: generate_metadata(tmp, world, "http://127.0.0.1:9"))
    return {
        "generate_metadata": rate,
        "baseline python loop": _rate(baseline_rows, _naive_metadata),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--smoke", action="store_true", help="20,000 rows, 50 images")
    args = parser.parse_args()
    baseline_rows = 100_000
    if args.smoke:
        args.rows, args.images, baseline_rows = 20_000, 50, 10_000
    if hasattr(os, "sched_setaffinity"):  # one core, as the requirement says
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    r = bench_render(args.images)
    print(f"render 224 px, one core: {r['render']:8.0f} images/s (render only)")
    print(f"                         {r['render+jpeg']:8.0f} images/s (render + JPEG q90)")
    print(f"baseline Image.new+JPEG: {r['baseline new+jpeg']:8.0f} images/s")
    print(f"  ratio render+jpeg / baseline = {r['render+jpeg'] / r['baseline new+jpeg']:.2f}")
    ratio("render_jpeg_over_new_jpeg", r["render+jpeg"] / r["baseline new+jpeg"])
    m = bench_metadata(args.rows, baseline_rows)
    print(f"metadata {args.rows} rows:   {m['generate_metadata']:10.0f} rows/s "
          f"({args.rows / m['generate_metadata']:.2f} s, parquet written)")  # fmt: skip
    print(f"baseline python loop:    {m['baseline python loop']:10.0f} rows/s (no parquet)")
    print(f"  ratio = {m['generate_metadata'] / m['baseline python loop']:.1f}x")
    ratio("metadata_over_python_loop", m["generate_metadata"] / m["baseline python loop"])


if __name__ == "__main__":
    main()
