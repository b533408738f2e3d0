"""The verify stage against the bare counter on the same images, and how well it verifies.

A noisy synthetic world's counting rows are rendered (at ``--render-size``, resized to
``--size`` and JPEG-encoded, as the download delivers them) into img2dataset-shaped shards with
a results parquet; then, in the same run:

- **bare counter**: the JPEG bytes already in memory, decoded and counted in batches (also the
  counting alone, on decoded arrays);
- **stage**: ``run_verify_stage`` on the shards (tar reads, decode, count, kept tars, decision
  files, the results join), from a cold data root.

The ratio stage / bare counter is the stage's overhead (goal <= 1.2x), in wall time and in
this process's CPU time (the steadier one on a machine other jobs share). Then the stage's
decisions are scored against the world's ground truth (precision, recall, kept fraction per
count and per noise kind).

Run: ``.venv/bin/python benchmarks/bench_verify.py [--rows 40000] [--noise 0.2] [--size 64]``;
``--smoke``: 4,000 rows, at most 200 images (the ratios mean little; every code path runs).
"""

from __future__ import annotations

import argparse
import io
import json
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image
from ratios import ratio

from countclip.config import VerifyConfig, WorldConfig
from countclip.counts import COUNTS
from countclip.data.verify.build import build_counter
from countclip.data.verify.quality import verification_quality
from countclip.stages.verify import run_verify_stage
from countclip.synthetic import NUMBER_WORDS, render_scene, world_truth, write_ground_truth


def _jpeg(image: Image.Image, size: int) -> bytes:
    if image.size != (size, size):
        image = image.resize((size, size), Image.BOX)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def write_download(
    root: Path, world: WorldConfig, size: int, per_shard: int, limit: int
) -> tuple[dict, list[bytes]]:
    """The counting rows of ``world`` as a counting download (shards + results.parquet); returns
    its manifest and the JPEG bytes in shard order."""
    truth = world_truth(world)
    ids = np.flatnonzero((truth.caption_kind == 1) & np.isin(truth.caption_count, COUNTS))[:limit]
    shard_dir = root / "shards" / "pass-0"
    shard_dir.mkdir(parents=True)
    rows, shards, images = [], [], []
    for s, start in enumerate(range(0, len(ids), per_shard)):
        tar_path = shard_dir / f"{s:05d}.tar"
        with tarfile.open(tar_path, "w") as tar:
            for j, sid in enumerate(ids[start : start + per_shard]):
                scene, count = truth.scene(int(sid)), int(truth.caption_count[sid])
                key, word = f"{s:05d}{j:04d}", NUMBER_WORDS[count]
                jpg = _jpeg(render_scene(scene, world.image_size), size)
                meta = {"SAMPLE_ID": int(sid), "count": count, "number_start": 0}
                meta |= {"number_end": len(word), "number_word": word}
                text = f"{word} {scene.colour} {scene.shape}s"
                for ext, data in (
                    ("jpg", jpg),
                    ("txt", text.encode()),
                    ("json", json.dumps(meta).encode()),
                ):
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                rows.append({"row": len(rows), "key": key, "status": "success", "pass": 0}
                            | {"shard": f"pass-0/{tar_path.name}", "SAMPLE_ID": int(sid)}
                            | {"count": count})  # fmt: skip
                images.append(jpg)
        shards.append(str(tar_path))
    pq.write_table(pa.Table.from_pylist(rows), root / "results.parquet")
    manifest = {
        "fingerprint": f"bench-{world.seed}-{size}-{len(ids)}",
        "run_id": "bench",
        "outputs": {"shards": shards, "results": str(root / "results.parquet")},
    }
    return manifest, images


class Clock:
    """Wall and CPU seconds of a block."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def _decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def bare_counter(cfg: VerifyConfig, images: list[bytes]) -> tuple[Clock, Clock]:
    """Time to decode + count ``images`` in batches, and to count them alone (decoded
    beforehand, untimed)."""
    counter = build_counter(cfg)
    assert counter is not None
    counter.count([_decode(images[0])])  # imports and first-call costs, outside the clocks
    with Clock() as with_decode:
        for i in range(0, len(images), cfg.batch_size):
            counter.count([_decode(b) for b in images[i : i + cfg.batch_size]])
    decoded = [_decode(b) for b in images]
    with Clock() as alone:
        for i in range(0, len(decoded), cfg.batch_size):
            counter.count(decoded[i : i + cfg.batch_size])
    return with_decode, alone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=40_000, help="world metadata rows")
    parser.add_argument("--counting-fraction", type=float, default=0.25)
    parser.add_argument("--noise", type=float, default=0.2, help="world.caption_noise")
    parser.add_argument("--render-size", type=int, default=64, help="world.image_size")
    parser.add_argument("--size", type=int, default=64, help="download.image_size")
    parser.add_argument("--per-shard", type=int, default=1000)
    parser.add_argument("--limit", type=int, default=10_000, help="at most this many images")
    parser.add_argument("--smoke", action="store_true", help="4,000 rows, at most 200 images")
    args = parser.parse_args()
    if args.smoke:
        args.rows, args.limit, args.per_shard = 4_000, 200, 100
    world = WorldConfig(
        rows=args.rows,
        counting_fraction=args.counting_fraction,
        caption_noise=args.noise,
        image_size=args.render_size,
    )
    cfg = VerifyConfig()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifest, images = write_download(
            root / "download", world, args.size, args.per_shard, args.limit
        )
        truth = write_ground_truth(root / "ground_truth.parquet", world)
        n = len(images)
        bare, count_only = bare_counter(cfg, images)
        with Clock() as stage:
            verified = run_verify_stage(manifest, cfg, str(root / "data"))
        quality = verification_quality(verified, truth)
    print(f"{n} images, {args.size} px (rendered at {args.render_size}), counter {cfg.counter}")
    print("                                 wall images/s   CPU images/s")
    for label, clock in (
        ("bare counter (decode + count)", bare),
        ("counting alone (decoded)", count_only),
        ("verify stage", stage),
    ):
        print(f"  {label:30s} {n / clock.wall:13.0f}  {n / clock.cpu:13.0f}")
    for label, base in (("bare counter", bare), ("counting alone", count_only)):
        print(f"  stage / {label}: wall {stage.wall / base.wall:.2f}x, "
              f"CPU {stage.cpu / base.cpu:.2f}x")  # fmt: skip
    ratio("stage_over_bare_counter_wall", stage.wall / bare.wall, "<=1.2")
    ratio("stage_over_bare_counter_cpu", stage.cpu / bare.cpu, "<=1.2")
    keys = ("kept_fraction", "precision", "recall", "noise_before", "counter_accuracy")
    print("quality vs ground truth: " + ", ".join(f"{k} {quality[k]}" for k in keys))
    print("count  samples  kept  kept_fraction  precision  recall")
    for count, q in quality["per_count"].items():
        print(f"{count:5d}  {q['samples']:7d}  {q['kept']:4d}  {q['kept_fraction']!s:>13}  "
              f"{q['precision']!s:>9}  {q['recall']!s:>6}")  # fmt: skip
    print("noise kind   samples  kept  kept_fraction")
    for kind, q in quality["per_noise"].items():
        print(f"{kind:11s}  {q['samples']:7d}  {q['kept']:4d}  {q['kept_fraction']!s:>13}")


if __name__ == "__main__":
    main()
