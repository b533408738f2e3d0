"""The synthetic world's baseline CLIP: contrastive pretraining before any counting loss.

The paper fine-tunes OpenAI's CLIP, which learnt from web captions where few state a count and
so counts poorly. The synthetic world has no such model, so this stage makes one the same way:
L_CLIP only, from random init, on the world's own metadata rows (counting captions at their
natural, LAION-like share). Images are rendered in-process from the world's ground truth
(:mod:`countclip.synthetic.ground_truth`: metadata URLs are opaque) rather than
downloaded — the pipeline's download path is exercised by the much smaller counting and common
sets; routing a pretraining corpus through the loopback server would only cost minutes.

On real data this stage does not exist: ``train.model.pretrained: openai`` is the baseline.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from countclip.atomic import atomic_dir
from countclip.config import PretrainConfig, TrainConfig, WorldConfig
from countclip.data.captions.parser import parse_captions
from countclip.stage import Progress, Stage, StageOutput, StagePlan, report_to, sub_progress

PRETRAIN = Stage("pretrain", __name__, resumable=True)


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


def pretrain_train_config(cfg: PretrainConfig, counting_share: float) -> TrainConfig:
    """The :class:`TrainConfig` of a pretraining run: L_CLIP only, counting captions mixed in at
    their natural share (never forced up: that would teach counting before the experiment)."""
    return TrainConfig(
        model=cfg.model,
        count_loss="none",
        lambda_scale=0.0,
        counting_fraction=max(counting_share, 1.0 / cfg.batch_size),
        batch_size=cfg.batch_size,
        steps=cfg.steps,
        lr=cfg.lr,
        warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay,
        val_fraction=0.05,
        eval_every=cfg.steps,
        checkpoint_every=max(cfg.steps // 4, 1),
        seed=cfg.seed,
        device="cpu",
        threads=cfg.threads,
    )


def plan_pretrain_stage(world_manifest: dict, cfg: PretrainConfig, data_root: str) -> StagePlan:
    return PRETRAIN.plan(data_root, config=cfg, upstream={"world": world_manifest})


def run_pretrain_stage(
    world_manifest: dict,
    cfg: PretrainConfig,
    data_root: str,
    progress: Progress | None = None,
) -> dict:
    """Stage "pretrain": corpus rendering + L_CLIP training; outputs the baseline checkpoint.

    ``world_manifest`` is the synthetic world's manifest (its ``metadata`` output holds the
    parquet parts, its ``config`` the world whose ground truth the images are rendered from).
    The run directory survives a crash, so a rerun resumes training.
    """
    from countclip.training.loop import train

    if "config" not in world_manifest:
        raise ValueError("pretrain: the world manifest has no 'config' (the WorldConfig)")
    world = WorldConfig.model_validate(world_manifest["config"])

    def build(work: Path) -> StageOutput:
        parts = sorted(
            str(p) for p in Path(world_manifest["outputs"]["metadata"]).glob("*.parquet")
        )
        if not parts:
            raise FileNotFoundError(
                f"pretrain: no parquet parts in {world_manifest['outputs']['metadata']}"
            )
        corpus_dir = work / "corpus"
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
        corpus = json.loads((corpus_dir / "corpus.json").read_text())
        sizes = corpus["sizes"]
        share = sizes["counting"] / max(sizes["counting"] + sizes["common"], 1)
        report_to(progress)(0.05, f"rendered {sum(sizes.values())} images ({share:.1%} counting)")
        summary = train(
            pretrain_train_config(cfg, share),
            corpus["counting"],
            corpus["common"],
            None,
            work / "run",
            progress=sub_progress(progress, 0.05, 1.0),
            show_progress="pretrain baseline",
        )
        return StageOutput(
            outputs={
                # The last weights, not the "best" by counting accuracy: a baseline is not
                # selected for counting.
                "checkpoint": summary.get("last") or work / "run" / "last.pt",
                "metrics": summary.get("metrics") or work / "run" / "metrics.jsonl",
            },
            stats={
                "corpus": sizes,
                "counting_share": round(share, 4),
                "model": cfg.model.name,
                "steps": cfg.steps,
            },
        )

    return plan_pretrain_stage(world_manifest, cfg, data_root).run(build, progress)
