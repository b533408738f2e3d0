"""The baseline's pretraining corpus: the world's own metadata rows, rendered in-process.

Images are rendered from the world's ground truth (:mod:`countclip.synthetic.ground_truth`:
metadata URLs are opaque) rather than downloaded — the pipeline's download path is exercised by
the much smaller counting and common sets; routing a pretraining corpus through the loopback
server would only cost minutes.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from countclip.atomic import atomic_dir
from countclip.config import PretrainConfig, WorldConfig
from countclip.data.captions.parser import parse_captions


def _metadata_rows(parts: Sequence[str], rows: int) -> list[dict[str, Any]]:
    """The first ``rows`` (SAMPLE_ID, URL, TEXT) rows of the world's parquet parts."""
    out: list[dict[str, Any]] = []
    for part in sorted(parts):
        for batch in pq.ParquetFile(part).iter_batches(
            batch_size=10_000, columns=["SAMPLE_ID", "URL", "TEXT"]
        ):
            out.extend(batch.to_pylist())
            if len(out) >= rows:
                return out[:rows]
    return out


def render_corpus(
    parts: Sequence[str],
    out_dir: str | Path,
    rows: int,
    image_size: int,
    counting_share: float = 1.0,
    per_shard: int = 2000,
    *,
    world: WorldConfig,
) -> dict[str, Any]:
    """Render up to ``rows`` metadata rows into img2dataset-shaped shards: captions that state a
    count (parsed by :mod:`countclip.data.captions.parser`) go to ``counting-*.tar`` with their
    count and span, the rest to ``common-*.tar``. A counting row that would lift the counting share
    of
    the corpus so far above ``counting_share`` is skipped, so the corpus stays LAION-like even
    over a counting-rich world. Each image is the scene ``world``'s ground truth holds for the
    row's SAMPLE_ID (noisy captions included, as in LAION). Returns shard lists and sizes."""
    import webdataset as wds

    from countclip.synthetic.ground_truth import world_truth
    from countclip.synthetic.render import render_scene

    truth = world_truth(world)
    records = _metadata_rows(parts, rows)
    if not records:
        raise ValueError(f"pretrain: no metadata rows in {list(parts)}")
    parsed = parse_captions([r["TEXT"] for r in records])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    writers = {
        kind: wds.ShardWriter(str(out / f"{kind}-%05d.tar"), maxcount=per_shard, verbose=0)
        for kind in ("counting", "common")
    }
    sizes = {"counting": 0, "common": 0}
    try:
        for i, (record, caption) in enumerate(zip(records, parsed, strict=True)):
            kept = sizes["counting"] + sizes["common"]
            if caption is not None and sizes["counting"] + 1 > counting_share * (kept + 1):
                continue
            scene = truth.scene(int(record["SAMPLE_ID"]))
            if scene is None:
                raise ValueError(
                    f"pretrain: SAMPLE_ID {record['SAMPLE_ID']} of {list(parts)} is not a row "
                    "of the world's metadata (another world's parts?)"
                )
            buffer = io.BytesIO()
            render_scene(scene, size=image_size).save(buffer, format="JPEG", quality=90)
            meta: dict[str, Any] = {"SAMPLE_ID": record["SAMPLE_ID"], "status": "success"}
            kind = "common"
            if caption is not None:
                kind = "counting"
                meta.update(
                    count=caption.count,
                    number_start=caption.start,
                    number_end=caption.end,
                    number_word=caption.word,
                )
            key = f"{i:09d}"
            writers[kind].write(
                {"__key__": key, "jpg": buffer.getvalue(), "txt": record["TEXT"], "json": meta}
            )
            sizes[kind] += 1
    finally:
        for writer in writers.values():
            writer.close()
    return {
        kind: sorted(str(p) for p in out.glob(f"{kind}-*.tar")) for kind in ("counting", "common")
    } | {"sizes": sizes}


def corpus_once(
    metadata_dir: str | Path, corpus_dir: Path, cfg: PretrainConfig, world: WorldConfig
) -> dict[str, Any]:
    """The corpus of ``cfg`` in ``corpus_dir`` (``corpus.json`` lists its shards and sizes),
    rendered atomically the first time and read back after that (a resumed pretraining run
    reuses it)."""
    parts = sorted(str(p) for p in Path(metadata_dir).glob("*.parquet"))
    if not parts:
        raise FileNotFoundError(f"pretrain: no parquet parts in {metadata_dir}")
    if not (corpus_dir / "corpus.json").exists():
        with atomic_dir(corpus_dir) as tmp:
            corpus = render_corpus(
                parts, tmp, cfg.rows, cfg.image_size, cfg.counting_share, world=world
            )
            corpus = {
                k: [str(corpus_dir / Path(p).name) for p in v] if k != "sizes" else v
                for k, v in corpus.items()
            }
            (tmp / "corpus.json").write_text(json.dumps(corpus, indent=2))
    return json.loads((corpus_dir / "corpus.json").read_text())
