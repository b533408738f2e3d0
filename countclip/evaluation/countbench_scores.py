"""Scoring one model on the downloaded CountBench, and on the zero-shot check.

CountBench scoring (the paper's protocol): every image is compared with nine captions, its own
caption with the labelled number word replaced by two..ten; the predicted count is the argmax of
image–caption similarity. The number word is located for the *given* count, so another number in
the caption ("two dogs and three cats", labelled 3) stays as it is.

Cost: the nine captions of a row differ only in one word, but each is a separate text-tower
pass, so text encoding dominates a naive evaluation (nine captions per image). Distinct caption
strings are encoded once (captions repeat across rows and, for short templates, across counts)
and images are encoded in batches; ``benchmarks/bench_eval.py`` measures the difference.

The scoring rule itself is :mod:`countclip.evaluation.scoring`; the batched encoders are
:mod:`countclip.training.encoders`. This module loads models and shards and writes the
results the evaluate stage (:mod:`countclip.stages.evaluate`) keeps.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from countclip.atomic import atomic_path, atomic_write_json
from countclip.config import EvalConfig, ModelConfig
from countclip.counts import COUNTS
from countclip.data.download.passes import shard_paths
from countclip.devices import resolve_device
from countclip.evaluation.countbench import check_coverage
from countclip.evaluation.scoring import (
    count_captions,
    metrics_from_similarities,
    stored_span,
)
from countclip.evaluation.zeroshot import zero_shot_eval
from countclip.fingerprints import file_fingerprint
from countclip.progress import Progress, report_to, sub_progress
from countclip.training.encoders import encode_images, encode_texts
from countclip.training.seeding import seeded_global_rng

__all__ = [
    "evaluate_countbench",
    "evaluate_model",
    "iter_shard_batches",
    "model_identity",
    "model_ref_from_train_manifest",
]


def iter_shard_batches(shards: Sequence[str], batch_size: int) -> Iterator[list[tuple[dict, Any]]]:
    """Lists of up to ``batch_size`` ``(json metadata, PIL image)`` pairs, in shard order, from
    img2dataset webdataset shards (webdataset's own batching, uncollated)."""
    import webdataset as wds

    if not shards:
        return
    dataset = (
        wds.WebDataset(list(shards), shardshuffle=False, empty_check=False)
        .decode("pil")
        .to_tuple("json", "jpg;png;webp;jpeg")
        .batched(batch_size, collation_fn=None, partial=True)
    )
    yield from dataset


# --------------------------------------------------------------------------- evaluation


def evaluate_countbench(
    model: Any,
    preprocess: Callable[[Any], torch.Tensor],
    tokenizer: Any,
    countbench_manifest: Mapping[str, Any],
    out_dir: str | os.PathLike[str],
    batch_size: int = 128,
    device: str | torch.device = "cpu",
    *,
    dedupe: bool = True,
    trim: bool = True,
    share_prefixes: bool = True,
    label: str = "",
    counts: Sequence[int] = COUNTS,
    progress: Progress | None = None,
) -> dict:
    """Score ``model`` on the downloaded CountBench images of ``countbench_manifest``.

    Writes ``results.json`` (metrics, coverage, timing), ``predictions.parquet`` (one row per
    evaluated image: true and predicted count, the nine similarities, the captions' crop flag),
    ``confusion.png`` and ``per_count.png`` to ``out_dir``; returns the results dict.
    ``dedupe=False`` encodes every caption of every row, ``share_prefixes=False`` encodes each
    caption whole (not each shared token prefix once) and ``trim=False`` pads every caption to
    the full context (together: the naive baseline, for ``benchmarks/bench_eval.py``).
    """
    from countclip.plots import plot_confusion_matrix, plot_per_count_accuracy

    device = torch.device(device)  # resolved once, by the caller
    out_dir = Path(out_dir)
    counts = [int(c) for c in counts]
    rows = pq.read_table(countbench_manifest["outputs"]["rows"]).to_pylist()
    by_id = {int(r["SAMPLE_ID"]): r for r in rows}
    shards = list(shard_paths(countbench_manifest["outputs"]["shards"]))
    was_training = getattr(model, "training", False)
    model.eval()

    t0 = time.perf_counter()
    ids: list[int] = []
    keys: list[str] = []
    feats: list[torch.Tensor] = []
    stats = countbench_manifest.get("stats") or {}
    expected = int(stats.get("evaluated", 0)) or len(rows)
    for batch in iter_shard_batches(shards, batch_size):
        metas = []
        tensors = []
        for meta, image in batch:
            sid = int(meta["SAMPLE_ID"])
            if sid not in by_id:
                raise ValueError(
                    f"{countbench_manifest['outputs']['shards']}: sample {meta.get('key')} has "
                    f"SAMPLE_ID {sid}, not in {countbench_manifest['outputs']['rows']}"
                )
            metas.append((sid, str(meta.get("key", sid))))
            tensors.append(preprocess(image.convert("RGB")))
        feats.append(encode_images(model, torch.stack(tensors), device))
        ids.extend(s for s, _ in metas)
        keys.extend(k for _, k in metas)
        if progress:
            progress(min(0.8, 0.8 * len(ids) / max(expected, 1)), f"{len(ids)} images encoded")

    # Captions: nine per image, cropped around the number; distinct strings encoded once.
    text_start = time.perf_counter()
    image_seconds = text_start - t0  # reading + decoding + preprocessing + encoding images
    caption_rows: list[list[str]] = []
    kept: list[int] = []
    skipped: list[int] = []
    cropped: list[bool] = []
    for i, sid in enumerate(ids):
        row = by_id[sid]
        captions = count_captions(
            row["TEXT"], int(row["number"]), tokenizer, counts, span=stored_span(row)
        )
        if captions is None:
            skipped.append(sid)
            continue
        kept.append(i)
        caption_rows.append(captions)
        cropped.append(captions[counts.index(int(row["number"]))] != row["TEXT"])
    flat = [c for caps in caption_rows for c in caps]
    if dedupe:
        unique = list(dict.fromkeys(flat))
        where = {c: j for j, c in enumerate(unique)}
        index = torch.tensor([where[c] for c in flat], dtype=torch.long)
    else:
        unique = flat
        index = torch.arange(len(flat))
    text_batch = max(batch_size, 256)
    text_feats = encode_texts(
        model, tokenizer, unique, text_batch, device, trim=trim, share_prefixes=share_prefixes
    )
    text_seconds = time.perf_counter() - text_start

    image_feats = torch.cat(feats) if feats else torch.zeros(0, 1)
    image_feats = image_feats[torch.tensor(kept, dtype=torch.long)] if kept else image_feats[:0]
    n = len(kept)
    if n:
        sims = (image_feats @ text_feats.T).gather(1, index.view(n, len(counts)))
    else:
        sims = torch.zeros(0, len(counts))
    true = [int(by_id[ids[i]]["number"]) for i in kept]
    metrics = metrics_from_similarities(sims, true, counts)
    total_seconds = time.perf_counter() - t0
    if was_training:
        model.train()

    rows_main = int(stats.get("rows_main", len(rows)))
    evaluated_main = sum(1 for i in kept if by_id[ids[i]].get("subset", "main") == "main")
    message = f"evaluated {evaluated_main} of {rows_main}"
    if n - evaluated_main:
        message += f" (+{n - evaluated_main} supplement)"
    results = {
        "label": label,
        **{k: v for k, v in metrics.items() if k != "predictions"},
        "evaluated": n,
        "evaluated_main": evaluated_main,
        "rows_main": rows_main,
        "rows": len(rows),
        "dead_urls": stats.get("dead_urls"),
        "skipped_unlocated": skipped,
        "cropped_captions": int(sum(cropped)),
        "message": message,
        "timing": {
            "seconds": round(total_seconds, 3),
            "image_seconds": round(image_seconds, 3),
            "text_seconds": round(text_seconds, 3),
            "text_share": round(text_seconds / total_seconds, 4) if total_seconds else None,
            "images_per_second": round(n / total_seconds, 2) if total_seconds else None,
            "captions": len(flat),
            "encoded_captions": len(unique),
            "dedupe": dedupe,
            "trim": trim,
            "share_prefixes": share_prefixes,
        },
        "countbench_fingerprint": countbench_manifest.get("fingerprint"),
    }

    out_dir.mkdir(parents=True, exist_ok=True)
    predictions = pa.table(
        {
            "SAMPLE_ID": pa.array([ids[i] for i in kept], pa.int64()),
            "key": pa.array([keys[i] for i in kept], pa.string()),
            "URL": pa.array([by_id[ids[i]]["URL"] for i in kept], pa.string()),
            "TEXT": pa.array([by_id[ids[i]]["TEXT"] for i in kept], pa.string()),
            "number": pa.array(true, pa.int64()),
            "predicted": pa.array(metrics["predictions"], pa.int64()),
            "correct": pa.array(
                [t == p for t, p in zip(true, metrics["predictions"], strict=True)], pa.bool_()
            ),
            "similarities": pa.array(sims.tolist(), pa.list_(pa.float32())),
            "caption_cropped": pa.array(cropped, pa.bool_()),
        }
    )
    with atomic_path(out_dir / "predictions.parquet") as tmp:
        pq.write_table(predictions, tmp)
    name = label or "model"
    acc = results["accuracy"]
    title = f"{name}: CountBench accuracy {acc:.1%} (n={n})" if acc is not None else name
    plot_confusion_matrix(metrics["confusion"], counts, out_dir / "confusion.png", title=title)
    plot_per_count_accuracy(
        {name: {c: v for c, v in metrics["per_count_accuracy"].items() if v is not None}},
        out_dir / "per_count.png",
    )
    results["outputs"] = {
        "results": str((out_dir / "results.json").resolve()),
        "predictions": str((out_dir / "predictions.parquet").resolve()),
        "confusion_png": str((out_dir / "confusion.png").resolve()),
        "per_count_png": str((out_dir / "per_count.png").resolve()),
    }
    atomic_write_json(out_dir / "results.json", results)
    if progress:
        progress(1.0, message)
    return results


# --------------------------------------------------------------------------- one model


def model_ref_from_train_manifest(manifest: Mapping[str, Any], label: str = "countclip") -> dict:
    """``{"name", "checkpoint", "pretrained", "label"}`` for :func:`run_evaluation_stage` from a
    train stage manifest (its checkpoint output and its model config)."""
    outputs = manifest.get("outputs", {})
    checkpoint = next(
        (
            outputs[k]
            for k in ("best_checkpoint", "checkpoint", "final_checkpoint")
            if outputs.get(k)
        ),
        None,
    )
    config = manifest.get("config", {})
    model_cfg = config.get("model", {}) if isinstance(config, Mapping) else {}
    if "train" in config and isinstance(config["train"], Mapping):
        model_cfg = config["train"].get("model", model_cfg)
    return {
        "name": model_cfg.get("name", "countclip-tiny"),
        "checkpoint": checkpoint,
        "pretrained": None if checkpoint else model_cfg.get("pretrained"),
        "label": label,
        "fingerprint": manifest.get("fingerprint"),
    }


def quick_gelu_of(model_ref: Mapping[str, Any]) -> bool:
    """The activation the model was trained with: as ``model_ref["quick_gelu"]`` says, else as
    its ``pretrained`` tag was trained (a fine-tuned checkpoint keeps its origin tag there)."""
    from countclip.training.model import uses_quick_gelu

    return uses_quick_gelu(
        ModelConfig(
            name=model_ref["name"],
            pretrained=model_ref.get("pretrained"),
            quick_gelu=model_ref.get("quick_gelu"),
        )
    )


def _tag_identity(model_ref: Mapping[str, Any]) -> str | None:
    """A pretrained tag, or the content of the weights when they ship with countclip."""
    from countclip.training.shipped import shipped_path

    shipped = shipped_path(model_ref["name"], model_ref.get("pretrained"))
    return (
        file_fingerprint(shipped) if shipped and shipped.is_file() else model_ref.get("pretrained")
    )


def model_identity(model_ref: Mapping[str, Any]) -> dict:
    """What the stage fingerprint needs to know about a model: name, activation, weights
    content, label."""
    checkpoint = model_ref.get("checkpoint")
    return {
        "name": model_ref["name"],
        "quick_gelu": quick_gelu_of(model_ref),
        "weights": file_fingerprint(checkpoint) if checkpoint else _tag_identity(model_ref),
        "label": model_ref.get("label", ""),
        "seed": model_ref.get("seed"),
    }


def evaluate_model(
    model_ref: Mapping[str, Any],
    countbench_manifest: Mapping[str, Any],
    cfg: EvalConfig,
    work: Path,
    progress: Progress | None = None,
) -> tuple[dict, dict]:
    """CountBench (and, if ``cfg.zero_shot``, the zero-shot check) for one model, into
    ``work``; returns ``(outputs, stats)``. ``model_ref["checkpoint"]`` is a weights file (a
    train output); else ``model_ref["pretrained"]`` an open_clip tag or None (random init,
    seeded by ``model_ref.get("seed", 0)``). Outputs: ``results.json`` combining both, plus
    CountBench's predictions and plots under ``countbench/``."""
    from countclip.training.model import load_model

    report = report_to(progress)
    checkpoint = model_ref.get("checkpoint")
    label = model_ref.get("label") or model_ref["name"]
    device = resolve_device(cfg.device)
    with seeded_global_rng(int(model_ref.get("seed") or 0)):
        model, preprocess, tokenizer = load_model(
            model_ref["name"],
            checkpoint or model_ref.get("pretrained"),
            device,
            quick_gelu=quick_gelu_of(model_ref),
        )
    countbench = evaluate_countbench(
        model,
        preprocess,
        tokenizer,
        countbench_manifest,
        work / "countbench",
        batch_size=cfg.batch_size,
        device=device,
        label=label,
        progress=sub_progress(progress, 0.0, 0.85),
    )
    dead = (countbench_manifest.get("stats") or {}).get("dead_by_error") or {}
    check_coverage(countbench["evaluated_main"], countbench["rows_main"], cfg.min_images, dead)
    zero_shot = None
    if cfg.zero_shot and cfg.zero_shot_datasets:
        report(0.85, f"zero-shot check: {', '.join(cfg.zero_shot_datasets)}")
        zero_shot = zero_shot_eval(
            model,
            preprocess,
            tokenizer,
            cfg.zero_shot_datasets,
            split=cfg.zero_shot_split,
            batch_size=cfg.batch_size,
            device=device,
        )
    results = {
        "label": label,
        "model": {k: model_ref.get(k) for k in ("name", "checkpoint", "pretrained", "seed")},
        "countbench": countbench,
        "zero_shot": zero_shot,
    }
    atomic_write_json(work / "results.json", results)
    report(0.99, countbench["message"])
    outputs = {k: v for k, v in countbench["outputs"].items() if k != "results"}
    outputs = {
        "results": work / "results.json",
        **outputs,
        "countbench_results": countbench["outputs"]["results"],
    }
    return outputs, {
        "label": label,
        "model": model_ref.get("fingerprint") or model_identity(model_ref)["weights"],
        **{
            k: countbench[k]
            for k in (
                "accuracy",
                "mean_per_class_recall",
                "per_count_accuracy",
                "evaluated",
                "evaluated_main",
                "rows_main",
                "message",
            )
        },
        "zero_shot": {
            task: {
                "accuracy": r["accuracy"],
                "mean_per_class_recall": r["mean_per_class_recall"],
            }
            for task, r in (zero_shot or {}).items()
        },
    }
