"""CountBench metrics and evaluation, and the evaluation stage (CountBench + zero-shot check).

CountBench scoring (the paper's protocol): every image is compared with nine captions, its own
caption with the labelled number word replaced by two..ten; the predicted count is the argmax of
image–caption similarity. The number word is located for the *given* count, so another number in
the caption ("two dogs and three cats", labelled 3) stays as it is.

Cost: the nine captions of a row differ only in one word, but each is a separate text-tower
pass, so text encoding dominates a naive evaluation (nine captions per image). Distinct caption
strings are encoded once (captions repeat across rows and, for short templates, across counts)
and images are encoded in batches; ``benchmarks/bench_eval.py`` measures the difference.

Captions longer than the text context are cropped to whole words around the number
(:func:`countclip.tokens.crop_span`): the tokenizer's own truncation — or the reproduction's
character truncation — can cut the number off, leaving nine identical captions.
"""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from countclip.config import COUNTS, EvalConfig
from countclip.stage import (
    Timer,
    atomic_path,
    atomic_write_json,
    file_fingerprint,
    fingerprint,
    read_manifest,
    stage_dir,
    write_manifest,
)
from countclip.zeroshot import zero_shot_eval

__all__ = [
    "count_captions",
    "countbench_metrics",
    "evaluate_countbench",
    "metrics_from_similarities",
    "model_ref_from_train_manifest",
    "run_evaluation_stage",
    "zero_shot_eval",
]

STAGE = "evaluate"
STAGE_VERSION = "evaluate-v1"
Progress = Callable[[float, str], None]


# --------------------------------------------------------------------------- pure metrics


def metrics_from_similarities(
    similarities: Any, true_counts: Sequence[int] | torch.Tensor, counts: Iterable[int] = COUNTS
) -> dict:
    """Accuracy, per-count accuracy, mean per-class recall, confusion matrix and predictions
    from an ``(N, K)`` similarity matrix whose column ``j`` is the caption saying ``counts[j]``.

    Ties go to the first (smallest) count, as ``torch.argmax`` does. A count with no samples
    has accuracy ``None`` and is left out of the mean per-class recall.
    """
    counts = [int(c) for c in counts]
    sims = torch.as_tensor(similarities).detach().to("cpu", torch.float64)
    true = torch.as_tensor(true_counts).detach().to("cpu", torch.long).reshape(-1)
    if sims.ndim != 2 or sims.shape[1] != len(counts):
        raise ValueError(
            f"similarities must be (N, {len(counts)}) for counts {counts}, got {tuple(sims.shape)}"
        )
    if sims.shape[0] != true.shape[0]:
        raise ValueError(f"{sims.shape[0]} similarity rows but {true.shape[0]} true counts")
    position = {c: i for i, c in enumerate(counts)}
    unknown = sorted({int(t) for t in true.tolist()} - set(position))
    if unknown:
        raise ValueError(f"true counts {unknown} are not among the evaluated counts {counts}")
    k = len(counts)
    true_idx = torch.tensor([position[int(t)] for t in true.tolist()], dtype=torch.long)
    pred_idx = sims.argmax(dim=1) if len(true_idx) else torch.zeros(0, dtype=torch.long)
    confusion = torch.zeros(k, k, dtype=torch.long)
    confusion.index_put_((true_idx, pred_idx), torch.ones_like(true_idx), accumulate=True)
    support = confusion.sum(dim=1)
    correct = confusion.diagonal()
    per_count = {
        c: (correct[i].item() / support[i].item() if support[i] else None)
        for i, c in enumerate(counts)
    }
    present = [v for v in per_count.values() if v is not None]
    n = int(true_idx.numel())
    return {
        "n": n,
        "counts": counts,
        "accuracy": (correct.sum().item() / n) if n else None,
        "per_count_accuracy": per_count,
        "mean_per_class_recall": (sum(present) / len(present)) if present else None,
        "support": {c: int(support[i]) for i, c in enumerate(counts)},
        "confusion": confusion.tolist(),
        "predictions": [counts[i] for i in pred_idx.tolist()],
    }


def countbench_metrics(
    image_features: torch.Tensor,
    caption_features_per_count: torch.Tensor,
    true_counts: Sequence[int] | torch.Tensor,
    counts: Iterable[int] = COUNTS,
) -> dict:
    """CountBench metrics from embeddings: ``image_features`` (N, D), ``caption_features_per_count``
    (N, K, D) — row ``n``'s caption rewritten to each of ``counts`` — and ``true_counts`` (N,).

    Both sides are L2-normalised first (cosine similarity, as CLIP scores), so unnormalised
    inputs give the same answer as normalised ones.
    """
    img = torch.nn.functional.normalize(torch.as_tensor(image_features).double(), dim=-1)
    cap = torch.nn.functional.normalize(
        torch.as_tensor(caption_features_per_count).double(), dim=-1
    )
    if cap.ndim != 3 or img.ndim != 2 or cap.shape[0] != img.shape[0]:
        raise ValueError(
            f"expected image (N, D) and captions (N, K, D); got {tuple(img.shape)} and "
            f"{tuple(cap.shape)}"
        )
    sims = torch.einsum("nd,nkd->nk", img, cap)
    return metrics_from_similarities(sims, true_counts, counts)


# --------------------------------------------------------------------------- captions


def count_captions(
    text: str,
    number: int,
    tokenizer: Any,
    counts: Iterable[int] = COUNTS,
    context_length: int | None = None,
) -> list[str] | None:
    """The captions of one CountBench row: ``text`` with its labelled number word replaced by
    each of ``counts`` (case kept), each cropped around the number to fit the text context.

    The word is located with :func:`countclip.captions.find_number` for the given ``number``
    (the stage stored the same span in ``rows.parquet``). Returns None if it cannot be found.
    """
    from countclip.captions import find_number
    from countclip.tokens import crop_span

    found = find_number(text, number)
    if found is None:
        return None
    start, end = found.start, found.end
    suffix = text[end:]
    rewritten_all = [found.counterfactual(c) if c != number else text for c in counts]
    if _fits_for_every_count(text, start, end, rewritten_all, tokenizer, context_length):
        return rewritten_all
    out: list[str] = []
    for c, rewritten in zip(counts, rewritten_all, strict=True):
        new_end = len(rewritten) - len(suffix)
        if rewritten[:start] != text[:start] or not rewritten.endswith(suffix) or new_end <= start:
            raise ValueError(f"counterfactual({c}) changed more than the number span: {text!r}")
        out.append(crop_span(rewritten, start, new_end, tokenizer, context_length)[0])
    return out


def _fits_for_every_count(
    text: str,
    start: int,
    end: int,
    rewritten: Sequence[str],
    tokenizer: Any,
    context_length: int | None,
) -> bool:
    """Fast path: with open_clip's SimpleTokenizer (BPE never crosses a word or punctuation
    boundary) a caption's token count is its count without the number word plus the word's own
    tokens, so one tokenisation of the row tells whether all nine rewrites fit uncropped."""
    from countclip.tokens import token_count

    limit = context_length or getattr(tokenizer, "context_length", None)
    if not limit or not (hasattr(tokenizer, "encode") and hasattr(tokenizer, "sot_token_id")):
        return False
    words = [r[start : len(r) - (len(text) - end)] for r in rewritten]
    if not all(w.isalnum() for w in words):
        return False
    cost = [_word_tokens(tokenizer, w) for w in words]
    base = token_count(text, tokenizer) - _word_tokens(tokenizer, text[start:end])
    return base + max(cost) <= int(limit)


def _word_tokens(tokenizer: Any, word: str) -> int:
    try:
        cache = _WORD_TOKENS.setdefault(tokenizer, {})
    except TypeError:  # not weak-referenceable: no cache
        return len(tokenizer.encode(word))
    if word not in cache:
        cache[word] = len(tokenizer.encode(word))
    return cache[word]


_WORD_TOKENS: weakref.WeakKeyDictionary[Any, dict[str, int]] = weakref.WeakKeyDictionary()


# --------------------------------------------------------------------------- encoding


def resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _trimmable(model: Any) -> bool:
    """True if ``model`` is open_clip's ``CLIP`` with a causal text mask and an EOT/first pool:
    then trailing padding cannot influence the pooled feature, and cutting the token tensor to
    the batch's longest caption gives the same embedding for less work."""
    import open_clip

    mask = getattr(model, "attn_mask", None)
    if type(model).encode_text is not open_clip.model.CLIP.encode_text or mask is None:
        return False
    if getattr(model, "text_pool_type", "argmax") not in ("argmax", "eos", "first"):
        return False
    causal = torch.ones(mask.shape, dtype=torch.bool, device=mask.device).triu(1)
    return bool(torch.equal(torch.isinf(mask), causal))


def _encode_text_trimmed(model: Any, tokens: torch.Tensor) -> torch.Tensor:
    """open_clip ``CLIP.encode_text`` on ``tokens[:, :L]``, L = the longest caption in the batch
    (padding id 0 after the EOT token)."""
    from open_clip.transformer import text_global_pool

    used = (tokens != 0).int()
    length = int((used * torch.arange(1, tokens.shape[1] + 1, device=tokens.device)).amax())
    tokens = tokens[:, : max(length, 1)]
    seq = tokens.shape[1]
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast_dtype)
    x = x + model.positional_embedding[:seq].to(cast_dtype)
    x = model.transformer(x, attn_mask=model.attn_mask[:seq, :seq])
    x = model.ln_final(x)
    x = text_global_pool(
        x, tokens, model.text_pool_type, eos_token_id=getattr(model, "text_eos_id", None)
    )
    if model.text_projection is not None:
        if isinstance(model.text_projection, torch.nn.Linear):
            x = model.text_projection(x)
        else:
            x = x @ model.text_projection
    return torch.nn.functional.normalize(x, dim=-1)


@torch.inference_mode()
def encode_texts(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    batch_size: int,
    device: torch.device,
    *,
    trim: bool = True,
) -> torch.Tensor:
    """L2-normalised text embeddings (float32, CPU) of ``texts``, in order.

    With ``trim`` (and a model where it is exact, see :func:`_trimmable`) texts are batched in
    order of token length and each batch is cut to its longest caption: CountBench captions
    are ~10-25 tokens, padded to a 77-token context for ViT-B-32.
    """
    if not texts:
        return torch.zeros(0, 0)
    tokens = tokenizer(list(texts))
    if trim and _trimmable(model):
        lengths = (tokens != 0).sum(dim=1)
        order = torch.argsort(lengths, stable=True)
        chunks = []
        for i in range(0, len(texts), batch_size):
            idx = order[i : i + batch_size]
            chunks.append(_encode_text_trimmed(model, tokens[idx].to(device)).float().cpu())
        out = torch.empty(len(texts), chunks[0].shape[1])
        out[order] = torch.cat(chunks)
        return out
    chunks = [
        model.encode_text(tokens[i : i + batch_size].to(device), normalize=True).float().cpu()
        for i in range(0, len(texts), batch_size)
    ]
    return torch.cat(chunks)


@torch.inference_mode()
def encode_images(model: Any, images: torch.Tensor, device: torch.device) -> torch.Tensor:
    return model.encode_image(images.to(device), normalize=True).float().cpu()


def iter_shard_samples(shards: Sequence[str]) -> Iterator[tuple[dict, Any]]:
    """``(json metadata, PIL image)`` of every sample in img2dataset webdataset shards."""
    import webdataset as wds

    if not shards:
        return
    dataset = (
        wds.WebDataset(list(shards), shardshuffle=False, empty_check=False)
        .decode("pil")
        .to_tuple("json", "jpg;png;webp;jpeg")
    )
    yield from dataset


def _shard_list(shard_dir: str | os.PathLike[str]) -> list[str]:
    try:
        from countclip.download import shard_paths

        return list(shard_paths(shard_dir))
    except ImportError:  # pragma: no cover - download module always present in the project
        return sorted(str(p) for p in Path(shard_dir).glob("*.tar"))


def _batches(iterable: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in iterable:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


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
    label: str = "",
    counts: Sequence[int] = COUNTS,
    progress: Progress | None = None,
) -> dict:
    """Score ``model`` on the downloaded CountBench images of ``countbench_manifest``.

    Writes ``results.json`` (metrics, coverage, timing), ``predictions.parquet`` (one row per
    evaluated image: true and predicted count, the nine similarities, the captions' crop flag),
    ``confusion.png`` and ``per_count.png`` to ``out_dir``; returns the results dict.
    ``dedupe=False`` encodes every caption of every row and ``trim=False`` pads every caption to
    the full context (together: the naive baseline, for ``benchmarks/bench_eval.py``).
    """
    from countclip.plots import plot_confusion_matrix, plot_per_count_accuracy

    device = resolve_device(device)
    out_dir = Path(out_dir)
    counts = [int(c) for c in counts]
    rows = pq.read_table(countbench_manifest["outputs"]["rows"]).to_pylist()
    by_id = {int(r["SAMPLE_ID"]): r for r in rows}
    shards = _shard_list(countbench_manifest["outputs"]["shards"])
    was_training = getattr(model, "training", False)
    model.eval()

    t0 = time.perf_counter()
    ids: list[int] = []
    keys: list[str] = []
    feats: list[torch.Tensor] = []
    expected = int(countbench_manifest.get("evaluated", 0)) or len(rows)
    for batch in _batches(iter_shard_samples(shards), batch_size):
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
        captions = count_captions(row["TEXT"], int(row["number"]), tokenizer, counts)
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
    text_feats = encode_texts(model, tokenizer, unique, text_batch, device, trim=trim)
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

    rows_main = int(countbench_manifest.get("rows_main", len(rows)))
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
        "dead_urls": countbench_manifest.get("dead_urls"),
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


# --------------------------------------------------------------------------- the stage


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


def _model_identity(model_ref: Mapping[str, Any]) -> dict:
    """What the stage fingerprint needs to know about a model: name, weights content, label."""
    checkpoint = model_ref.get("checkpoint")
    return {
        "name": model_ref["name"],
        "weights": file_fingerprint(checkpoint) if checkpoint else model_ref.get("pretrained"),
        "label": model_ref.get("label", ""),
        "seed": model_ref.get("seed"),
    }


def run_evaluation_stage(
    model_ref: Mapping[str, Any],
    countbench_manifest: Mapping[str, Any],
    cfg: EvalConfig,
    data_root: str,
    progress: Progress | None = None,
) -> dict:
    """Stage ``evaluate``: CountBench (and, if ``cfg.zero_shot``, the shape/colour check) for
    one model. ``model_ref["checkpoint"]`` is a weights file (a train output); else
    ``model_ref["pretrained"]`` an open_clip tag or None (random init, seeded by
    ``model_ref.get("seed", 0)``). Outputs: ``results.json`` combining both, plus CountBench's
    predictions and plots under ``countbench/``.
    """
    from countclip.model import load_model

    if not model_ref.get("name"):
        raise ValueError("model_ref: field 'name' (open_clip model name) is required")
    checkpoint = model_ref.get("checkpoint")
    if checkpoint and not Path(checkpoint).is_file():
        raise FileNotFoundError(f"model_ref: checkpoint file not found: {checkpoint}")
    identity = _model_identity(model_ref)
    fp = fingerprint(STAGE, cfg, identity, countbench_manifest["fingerprint"], STAGE_VERSION)
    out = stage_dir(data_root, STAGE, fp)
    done = read_manifest(out)
    if done is not None:
        return done
    label = model_ref.get("label") or model_ref["name"]
    device = resolve_device(cfg.device)
    with Timer() as timer:
        torch.manual_seed(int(model_ref.get("seed") or 0))
        model, preprocess, tokenizer = load_model(
            model_ref["name"], checkpoint or model_ref.get("pretrained"), device
        )

        def _cb_progress(fraction: float, message: str) -> None:
            if progress:
                progress(0.85 * fraction, message)

        countbench = evaluate_countbench(
            model,
            preprocess,
            tokenizer,
            countbench_manifest,
            out / "countbench",
            batch_size=cfg.batch_size,
            device=device,
            label=label,
            progress=_cb_progress,
        )
        zero_shot = None
        if cfg.zero_shot:
            if progress:
                progress(0.85, "zero-shot shape/colour check")
            zero_shot = zero_shot_eval(
                model,
                preprocess,
                tokenizer,
                per_class=cfg.zero_shot_per_class,
                image_size=cfg.zero_shot_image_size,
                dataset_dir=cfg.zero_shot_dataset or None,
                batch_size=cfg.batch_size,
                device=device,
            )
        results = {
            "label": label,
            "model": {k: model_ref.get(k) for k in ("name", "checkpoint", "pretrained", "seed")},
            "countbench": countbench,
            "zero_shot": zero_shot,
        }
        results_path = atomic_write_json(out / "results.json", results)
    if progress:
        progress(1.0, countbench["message"])
    return write_manifest(
        out,
        {
            "stage": STAGE,
            "fingerprint": fp,
            "directory": str(out.resolve()),
            "outputs": {
                "results": str(results_path.resolve()),
                **{k: v for k, v in countbench["outputs"].items() if k != "results"},
                "countbench_results": countbench["outputs"]["results"],
            },
            "inputs": {
                "countbench": countbench_manifest["fingerprint"],
                "model": model_ref.get("fingerprint") or identity["weights"],
            },
            "config": cfg,
            "seconds": timer.seconds,
            "label": label,
            "accuracy": countbench["accuracy"],
            "mean_per_class_recall": countbench["mean_per_class_recall"],
            "per_count_accuracy": countbench["per_count_accuracy"],
            "evaluated": countbench["evaluated"],
            "evaluated_main": countbench["evaluated_main"],
            "rows_main": countbench["rows_main"],
            "message": countbench["message"],
            "zero_shot": {
                task: {
                    "accuracy": r["accuracy"],
                    "mean_per_class_recall": r["mean_per_class_recall"],
                }
                for task, r in (zero_shot or {}).items()
            },
        },
    )
